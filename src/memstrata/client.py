"""A client for the memstrata REST server with `Memory`'s method names, arguments and return types.

Moving from embedded to server is one line::

    memory = Memory()                                               # embedded
    memory = MemoryClient("http://127.0.0.1:8765", api_key="ms_...")  # over HTTP

Both return the same models (`Episode`/`Note`/... rebuilt by layer, `SearchHit`,
`ContextBlock`, `Page`, `HistoryEvent`, `AddResult`) and raise the same typed
errors (`NotFound`, `ScopeRequired`, `ContentTooLarge`, ...; plus `Unauthorized`
and `Forbidden` for key problems), rebuilt from the server's error code.

`AsyncMemoryClient` has the same methods, awaitable. Both share one core
(`_MemoryAPI`): each method builds a `_Call` (HTTP method, path, body, how to read
the answer); the sync and async faces differ only in how they send it.
"""

from __future__ import annotations

import builtins
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable, Mapping, Sequence

import httpx

from .errors import InvalidInput, StoreError
from .model import RECORD_TYPES, AddResult, ContextBlock, HistoryEvent, Page, Record, SearchHit
from .server.errors import Forbidden, ServerError, Unauthorized, error_from_body

DEFAULT_URL = "http://127.0.0.1:8765"
TENANT_HEADER = "X-Memstrata-Tenant"

__all__ = ["AsyncMemoryClient", "Forbidden", "MemoryClient", "ServerError", "Unauthorized"]


# ---------------------------------------------------------------------- wire <-> models


def record_from_json(data: Mapping[str, Any]) -> Record:
    """A record of the right class (`Episode`, `Note`, `Topic`, `ProfileFact`) from its JSON."""
    data = dict(data)
    layer = data.pop("layer", 0)
    return RECORD_TYPES[int(layer)].model_validate(data)


def _hit(data: Mapping[str, Any]) -> SearchHit:
    return SearchHit(
        record=record_from_json(data["record"]), score=data["score"], ranks=data.get("ranks") or {},
        provenance=data.get("provenance") or [],
    )


def _jsonable(value: Any) -> Any:
    """Datetimes as ISO 8601 strings, mappings as dicts, tuples as lists; the rest unchanged."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (builtins.list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _scope(**ids: Any) -> dict[str, Any]:
    return {k: v for k, v in ids.items() if v is not None}


def _recipe(recipe: Any) -> str | None:
    if recipe is None or isinstance(recipe, str):
        return recipe
    raise InvalidInput("over the server a recipe is named (hybrid, bm25, dense), not passed as an object", field="recipe")


@dataclass
class _Call:
    """One request and how to turn its JSON answer into the value `Memory` would return."""

    method: str
    path: str
    parse: Callable[[Any], Any]
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None


# ---------------------------------------------------------------------- the shared core


class _MemoryAPI:
    """`Memory`'s methods, each turned into a `_Call` and handed to `_send` (sync or async)."""

    def _send(self, call: _Call) -> Any:  # pragma: no cover - each face implements it
        raise NotImplementedError

    # writes -------------------------------------------------------------

    def add(
        self,
        messages: Any,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        timestamp: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AddResult:
        """See `Memory.add`."""
        body = _scope(user_id=user_id, agent_id=agent_id, session_id=session_id, timestamp=_jsonable(timestamp),
                      metadata=_jsonable(metadata))
        body["messages"] = _jsonable(messages)
        return self._send(_Call("POST", "/v1/memories", lambda d: AddResult(
            episodes=[record_from_json(r) for r in d["episodes"]], notes=[record_from_json(r) for r in d["notes"]],
            merged=d.get("merged") or [],
        ), body=body))

    def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
    ) -> Record:
        """See `Memory.update`."""
        body = _scope(content=content, metadata=_jsonable(metadata), user_id=user_id, agent_id=agent_id)
        return self._send(_Call("PATCH", f"/v1/memories/{_path_id(memory_id)}", record_from_json, body=body))

    def delete(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None) -> None:
        """See `Memory.delete`."""
        return self._send(_Call("DELETE", f"/v1/memories/{_path_id(memory_id)}", lambda d: None,
                                params=_scope(user_id=user_id, agent_id=agent_id)))

    def delete_all(
        self, *, user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None
    ) -> int:
        """See `Memory.delete_all`."""
        return self._send(_Call("DELETE", "/v1/memories", lambda d: int(d["deleted"]),
                                params=_scope(user_id=user_id, agent_id=agent_id, session_id=session_id)))

    def reset(self) -> None:
        """See `Memory.reset`. Needs an admin key: it erases every tenant's memories."""
        return self._send(_Call("POST", "/v1/reset", lambda d: None))

    # reads --------------------------------------------------------------

    def get(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None) -> Record:
        """See `Memory.get`."""
        return self._send(_Call("GET", f"/v1/memories/{_path_id(memory_id)}", record_from_json,
                                params=_scope(user_id=user_id, agent_id=agent_id)))

    def list(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        layers: Sequence[int] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """See `Memory.list`."""
        params = _scope(user_id=user_id, agent_id=agent_id, session_id=session_id, limit=limit, cursor=cursor)
        if layers is not None:
            params["layers"] = [int(x) for x in layers]
        return self._send(_Call("GET", "/v1/memories", lambda d: Page(
            items=[record_from_json(r) for r in d["items"]], next_cursor=d.get("next_cursor"),
        ), params=params))

    def history(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None) -> builtins.list[HistoryEvent]:
        """See `Memory.history`."""
        return self._send(_Call("GET", f"/v1/memories/{_path_id(memory_id)}/history",
                                lambda d: [HistoryEvent.model_validate(e) for e in d["events"]],
                                params=_scope(user_id=user_id, agent_id=agent_id)))

    def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        limit: int = 10,
        time_from: Any = None,
        time_to: Any = None,
        filters: Mapping[str, Any] | None = None,
        layers: Sequence[int] | None = None,
        recipe: Any = None,
    ) -> builtins.list[SearchHit]:
        """See `Memory.search`."""
        body = _scope(user_id=user_id, agent_id=agent_id, session_id=session_id, time_from=_jsonable(time_from),
                      time_to=_jsonable(time_to), filters=_jsonable(filters), recipe=_recipe(recipe))
        body.update(query=query, limit=limit)
        if layers is not None:
            body["layers"] = [int(x) for x in layers]
        return self._send(_Call("POST", "/v1/search", lambda d: [_hit(h) for h in d["hits"]], body=body))

    def context(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        budget_tokens: int = 1000,
        time_from: Any = None,
        time_to: Any = None,
        filters: Mapping[str, Any] | None = None,
        recipe: Any = None,
    ) -> ContextBlock:
        """See `Memory.context`."""
        body = _scope(user_id=user_id, agent_id=agent_id, session_id=session_id, time_from=_jsonable(time_from),
                      time_to=_jsonable(time_to), filters=_jsonable(filters), recipe=_recipe(recipe))
        body.update(query=query, budget_tokens=budget_tokens)
        return self._send(_Call("POST", "/v1/context", ContextBlock.model_validate, body=body))

    def stats(self, *, user_id: str | None = None, agent_id: str | None = None) -> dict:
        """See `Memory.stats`. Without a scope it needs an admin key (whole store)."""
        return self._send(_Call("GET", "/v1/stats", dict, params=_scope(user_id=user_id, agent_id=agent_id)))

    # server -------------------------------------------------------------

    def health(self) -> dict:
        """The server's liveness answer: ``{"status": "ok", "version": ...}``."""
        return self._send(_Call("GET", "/v1/health", dict))

    def version(self) -> dict:
        """The server's memstrata version and API version."""
        return self._send(_Call("GET", "/v1/version", dict))

    # PLACEHOLDER(organise / export / experience): add `organise`, `export`, `add_experience`,
    # `search_experience` here, one `_Call` each, when the server has the endpoints.


def _path_id(memory_id: Any) -> str:
    """The id, checked as `Memory` checks it, quoted for the URL path."""
    from urllib.parse import quote

    if not isinstance(memory_id, str) or not memory_id.strip() or len(memory_id) > 128:
        raise InvalidInput(f"id must be a memory id such as 'ep_01J...', got {memory_id!r}"[:200], field="id")
    return quote(memory_id, safe="")


def _headers(api_key: str | None, tenant: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "memstrata-client"}
    key = api_key if api_key is not None else os.environ.get("MEMSTRATA_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if tenant:
        headers[TENANT_HEADER] = tenant
    headers.update(extra or {})
    return headers


def _answer(call: _Call, response: httpx.Response) -> Any:
    """The parsed value of a response, or the typed error it carries."""
    try:
        data = response.json() if response.content else None
    except ValueError:
        data = response.text
    if response.status_code >= 400:
        raise error_from_body(response.status_code, data)
    return call.parse(data)


def _transport_error(exc: httpx.HTTPError, base_url: str) -> StoreError:
    return StoreError(f"cannot reach the memstrata server at {base_url}: {exc}")


class MemoryClient(_MemoryAPI):
    """`Memory` over HTTP (sync). `api_key` defaults to $MEMSTRATA_API_KEY.

    Admin keys may act for a tenant with `tenant=` (sent as the X-Memstrata-Tenant header).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        tenant: str | None = None,
        timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=_headers(api_key, tenant, headers), timeout=timeout, transport=transport
        )

    def _send(self, call: _Call) -> Any:
        try:
            response = self._http.request(call.method, call.path, params=call.params or None, json=call.body)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.base_url) from exc
        return _answer(call, response)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> "MemoryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncMemoryClient(_MemoryAPI):
    """`AsyncMemory` over HTTP: the same methods as `MemoryClient`, awaitable."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        tenant: str | None = None,
        timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=_headers(api_key, tenant, headers), timeout=timeout, transport=transport
        )

    async def _send(self, call: _Call) -> Any:  # type: ignore[override]
        try:
            response = await self._http.request(call.method, call.path, params=call.params or None, json=call.body)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.base_url) from exc
        return _answer(call, response)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncMemoryClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
