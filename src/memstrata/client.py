"""A client for the memstrata REST server with `Memory`'s method names, arguments and return types.

Moving from embedded to server is one line::

    memory = Memory()                                               # embedded
    memory = MemoryClient("http://127.0.0.1:8765", api_key="ms_...")  # over HTTP

Both return the same models (`Episode`/`Note`/... rebuilt by layer, `SearchHit`,
`ContextBlock`, `Page`, `HistoryEvent`, `AddResult`, `ExperienceHit`,
`OrganiseReport`) and raise the same typed errors (`NotFound`, `ScopeRequired`,
`ContentTooLarge`, ...; plus `Unauthorized` and `Forbidden` for key problems),
rebuilt from the server's error code. `export` writes a scope's export JSONL, as
`memstrata.transfer.export_jsonl` does.

`AsyncMemoryClient` has the same methods, awaitable. Both share one core
(`_MemoryAPI`): each method builds a `_Call` (HTTP method, path, body, how to read
the answer); the sync and async faces differ only in how they send it.
"""

from __future__ import annotations

import builtins
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TextIO

import httpx

from .errors import InvalidInput, StoreError
from .model import RECORD_TYPES, AddResult, ContextBlock, ExperienceHit, HistoryEvent, Page, Record, Scope, SearchHit
from .organise.runner import OrganiseReport
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


def _experience_hit(data: Mapping[str, Any]) -> ExperienceHit:
    return ExperienceHit.model_validate({**data, "record": record_from_json(data["record"])})


def _report(data: Mapping[str, Any]) -> OrganiseReport:
    scope = data.get("scope") or {}
    return OrganiseReport(scope=Scope.of(scope.get("user_id"), scope.get("agent_id")), steps=dict(data.get("steps") or {}))


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
    """One request and how to turn its JSON answer into the value `Memory` would return.

    With a `sink` the answer is not JSON but streamed text, handed to the sink chunk by chunk;
    `parse` then gets None once the body is complete.
    """

    method: str
    path: str
    parse: Callable[[Any], Any]
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    sink: "_ExportSink | None" = None


class _ExportSink:
    """Where a streamed export goes: a text file, or a path written whole (temporary file, then rename).

    Counts the record lines as they pass."""

    def __init__(self, out: TextIO | str | Path) -> None:
        self.path = Path(out) if isinstance(out, (str, Path)) else None
        self.tmp = self.path.with_name(f".{self.path.name}.tmp") if self.path else None
        self.fh: Any = None if self.path else out
        self.records = 0
        self._partial = ""

    def write(self, text: str) -> None:
        if self.fh is None:
            try:
                self.fh = open(self.tmp, "w", encoding="utf-8")  # type: ignore[arg-type]
            except OSError as exc:
                raise InvalidInput(f"cannot write {self.path}: {exc.strerror or exc}", field="out") from None
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        self.records += sum(1 for line in lines if line.startswith('{"type":"record"'))
        self.fh.write(text)

    def finish(self) -> int:
        if self._partial.startswith('{"type":"record"'):
            self.records += 1
        if self.path is not None:
            if self.fh is None:
                self.write("")
            self.fh.close()
            os.replace(self.tmp, self.path)  # type: ignore[arg-type]
        return self.records

    def abort(self) -> None:
        if self.path is not None:
            if self.fh is not None:
                self.fh.close()
            self.tmp.unlink(missing_ok=True)  # type: ignore[union-attr]


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
        importance: float | None = None,
    ) -> AddResult:
        """See `Memory.add`."""
        body = _scope(user_id=user_id, agent_id=agent_id, session_id=session_id, timestamp=_jsonable(timestamp),
                      metadata=_jsonable(metadata), importance=importance)
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
        as_of: Any = None,
        include_archived: bool = False,
        reinforce: bool = True,
        reference_time: Any = None,
    ) -> builtins.list[SearchHit]:
        """See `Memory.search`."""
        body = _scope(user_id=user_id, agent_id=agent_id, session_id=session_id, time_from=_jsonable(time_from),
                      time_to=_jsonable(time_to), filters=_jsonable(filters), recipe=_recipe(recipe),
                      as_of=_jsonable(as_of), reference_time=_jsonable(reference_time))
        body.update(query=query, limit=limit, include_archived=include_archived, reinforce=reinforce)
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
        as_of: Any = None,
        include_archived: bool = False,
        reinforce: bool = True,
        reference_time: Any = None,
    ) -> ContextBlock:
        """See `Memory.context`."""
        body = _scope(user_id=user_id, agent_id=agent_id, session_id=session_id, time_from=_jsonable(time_from),
                      time_to=_jsonable(time_to), filters=_jsonable(filters), recipe=_recipe(recipe),
                      as_of=_jsonable(as_of), reference_time=_jsonable(reference_time))
        body.update(query=query, budget_tokens=budget_tokens, include_archived=include_archived, reinforce=reinforce)
        return self._send(_Call("POST", "/v1/context", ContextBlock.model_validate, body=body))

    def scopes(self) -> list[Scope]:
        """See `Memory.scopes`: the scopes of the key's tenant (at most 1,000; `GET /v1/scopes`)."""
        return self._send(_Call("GET", "/v1/scopes", lambda body: [Scope(**s) for s in body["scopes"]]))

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

    # lifecycle ----------------------------------------------------------

    def pin(
        self, memory_id: str, *, pinned: bool = True, user_id: str | None = None, agent_id: str | None = None
    ) -> Record:
        """See `Memory.pin`."""
        body = {**_scope(user_id=user_id, agent_id=agent_id), "pinned": pinned}
        return self._send(_Call("POST", f"/v1/memories/{_path_id(memory_id)}/pin", record_from_json, body=body))

    def archive(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None) -> Record:
        """See `Memory.archive`."""
        return self._send(_Call("POST", f"/v1/memories/{_path_id(memory_id)}/archive", record_from_json,
                                body=_scope(user_id=user_id, agent_id=agent_id)))

    def restore(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None) -> Record:
        """See `Memory.restore`."""
        return self._send(_Call("POST", f"/v1/memories/{_path_id(memory_id)}/restore", record_from_json,
                                body=_scope(user_id=user_id, agent_id=agent_id)))

    def delete_episode(self, episode_id: str, *, user_id: str | None = None, agent_id: str | None = None) -> None:
        """See `Memory.delete_episode`."""
        return self._send(_Call("DELETE", f"/v1/episodes/{_path_id(episode_id)}", lambda d: None,
                                params=_scope(user_id=user_id, agent_id=agent_id)))

    def organise(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        max_work: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> builtins.list[OrganiseReport]:
        """See `Memory.organise`. Without a scope it needs an admin key, and organises every scope of the
        tenant the key acts for. `progress` is called once per scope when the server's answer arrives."""

        def parse(data: Any) -> builtins.list[OrganiseReport]:
            reports = [_report(r) for r in data["reports"]]
            for i in range(len(reports)):
                if progress is not None:
                    progress(i + 1, len(reports))
            return reports

        body = _scope(user_id=user_id, agent_id=agent_id, max_work=max_work)
        return self._send(_Call("POST", "/v1/organise", parse, body=body))

    # experience ---------------------------------------------------------

    def add_experience(
        self,
        task: str,
        steps: Sequence[Any] | None,
        outcome: str,
        feedback: str | None = None,
        *,
        success: bool | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        timestamp: Any = None,
        importance: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Record:
        """See `Memory.add_experience`."""
        if steps is not None and (isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence)):
            raise InvalidInput("steps must be a list of strings or dicts (one per action taken)", field="steps")
        body = _scope(
            feedback=feedback, success=success, user_id=user_id, agent_id=agent_id, session_id=session_id,
            timestamp=_jsonable(timestamp), importance=importance, metadata=_jsonable(metadata),
            steps=_jsonable(steps),
        )
        body.update(task=task, outcome=outcome)
        return self._send(_Call("POST", "/v1/experiences", record_from_json, body=body))

    def search_experience(
        self,
        task: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        limit: int = 5,
        include_failed: bool = True,
        as_of: Any = None,
    ) -> builtins.list[ExperienceHit]:
        """See `Memory.search_experience`."""
        body = _scope(user_id=user_id, agent_id=agent_id, as_of=_jsonable(as_of))
        body.update(task=task, limit=limit, include_failed=include_failed)
        return self._send(_Call("POST", "/v1/experiences/search",
                                lambda d: [_experience_hit(h) for h in d["hits"]], body=body))

    # export -------------------------------------------------------------

    def export(self, out: TextIO | str | Path, *, user_id: str | None = None, agent_id: str | None = None) -> int:
        """Write every memory of a scope as memstrata's export JSONL, like `memstrata.transfer.export_jsonl`:
        to a text file, or to a path (written whole or not at all). Returns the number of records."""
        sink = _ExportSink(out)
        return self._send(_Call("GET", "/v1/export", lambda d: sink.finish(),
                                params=_scope(user_id=user_id, agent_id=agent_id), sink=sink))

    # store maintenance (admin keys) -------------------------------------

    def reembed(
        self,
        embedder: Any = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        batch_size: int = 256,
        progress: Any = None,
    ) -> int:
        """See `Memory.reembed`. Needs an admin key. The model is the server's (its configuration), so
        `embedder` must be None; `progress(done, None)` is called once, when the server has finished."""
        if embedder is not None:
            raise InvalidInput(
                "over the server the embedding model is the server's setting (embedding_model in its configuration); "
                "reembed(embedder=...) works on an embedded Memory only",
                field="embedder",
            )

        def parse(data: Any) -> int:
            done = int(data["reembedded"])
            if progress:
                progress(done, None)
            return done

        body = _scope(user_id=user_id, agent_id=agent_id)
        body["batch_size"] = batch_size
        return self._send(_Call("POST", "/v1/reembed", parse, body=body))

    def vacuum(self) -> None:
        """See `Memory.vacuum`. Needs an admin key (it rewrites the whole store's file)."""
        return self._send(_Call("POST", "/v1/vacuum", lambda d: None))


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
        if call.sink is not None:
            return self._stream(call, call.sink)
        try:
            response = self._http.request(call.method, call.path, params=call.params or None, json=call.body)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.base_url) from exc
        return _answer(call, response)

    def _stream(self, call: _Call, sink: _ExportSink) -> Any:
        try:
            with self._http.stream(call.method, call.path, params=call.params or None, json=call.body) as response:
                if response.status_code >= 400:
                    response.read()
                    return _answer(call, response)
                for chunk in response.iter_text():
                    sink.write(chunk)
        except httpx.HTTPError as exc:
            sink.abort()
            raise _transport_error(exc, self.base_url) from exc
        except BaseException:
            sink.abort()
            raise
        return call.parse(None)

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
        if call.sink is not None:
            return await self._stream(call, call.sink)
        try:
            response = await self._http.request(call.method, call.path, params=call.params or None, json=call.body)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.base_url) from exc
        return _answer(call, response)

    async def _stream(self, call: _Call, sink: _ExportSink) -> Any:
        try:
            async with self._http.stream(call.method, call.path, params=call.params or None, json=call.body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    return _answer(call, response)
                async for chunk in response.aiter_text():
                    sink.write(chunk)
        except httpx.HTTPError as exc:
            sink.abort()
            raise _transport_error(exc, self.base_url) from exc
        except BaseException:
            sink.abort()
            raise
        return call.parse(None)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncMemoryClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
