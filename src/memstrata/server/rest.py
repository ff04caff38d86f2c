"""The REST server: `Memory` over HTTP, with API keys, tenant isolation and limits.

`create_app()` is the factory uvicorn imports in each worker process
("memstrata.server.rest:create_app", factory=True); with no arguments it reads
MEMSTRATA_* environment variables (see `memstrata.config.Settings` and
`memstrata.server.settings.ServerSettings`). Endpoints are sync functions:
FastAPI runs them in its thread pool, and the store serialises writes.
"""

from __future__ import annotations

import json
import logging
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, BinaryIO, Iterator

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, limits
from ..config import Settings
from ..errors import InvalidInput, MemstrataError, ScopeRequired
from ..memory import Memory
from ..model import ContextBlock
from ..transfer import EXPORT_TYPE, export_jsonl
from .auth import TENANT_HEADER, Namespace, Principal, authenticate
from .bodylimit import BodyLimitMiddleware
from .errors import Forbidden, MalformedRequest, MethodNotAllowed, ServerError, error_body, status_for
from .keys import KeyStore, open_key_store
from .webpage import web_router
from .schemas import (
    ID_SCHEMA,
    AddRequest,
    AddResponse,
    ContextRequest,
    DeletedResponse,
    ErrorResponse,
    ExperienceRequest,
    ExperienceSearchRequest,
    ExperienceSearchResponse,
    HealthResponse,
    HistoryResponse,
    OkResponse,
    OrganiseRequest,
    OrganiseResponse,
    PageOut,
    PinRequest,
    RecordOut,
    ReembedRequest,
    ReembedResponse,
    ScopeOnly,
    ScopesResponse,
    SearchRequest,
    SearchResponse,
    UpdateRequest,
    VersionResponse,
)
from .settings import ServerSettings

log = logging.getLogger("memstrata.server")

API_VERSION = "v1"
_ERRORS = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (400, "malformed JSON"),
        (401, "no API key, or an unknown or revoked one"),
        (403, "the key may not do this (admin-only call, or another tenant named)"),
        (404, "no such memory in the caller's scope"),
        (413, "a size limit was exceeded (body, texts, items per add, query length)"),
        (422, "an argument is invalid"),
        (503, "the store is busy or unavailable; retry"),
    )
}

_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer ms_...`")


@dataclass
class ServerState:
    memory: Memory
    keys: KeyStore
    settings: ServerSettings


# ---------------------------------------------------------------------- errors


def _json_error(request: Request, status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None:
        message = principal.namespace.message(message)
    return JSONResponse(error_body(code, message, field), status_code=status)


#: Names pydantic puts in an error's location for the branch of a union it tried ("time_to.str").
_UNION_BRANCHES = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _field_of(loc: tuple | list) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    parts = [p for p in parts if p not in _UNION_BRANCHES and "[" not in p]
    return ".".join(parts) or None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MemstrataError)
    async def _memstrata(request: Request, exc: MemstrataError) -> JSONResponse:
        return _json_error(request, status_for(exc), exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            detail = (first.get("ctx") or {}).get("error", "")
            return _json_error(request, 400, MalformedRequest.code, f"the body is not valid JSON ({detail})", "body")
        loc = tuple(first.get("loc", ()))
        field = _field_of(loc)
        msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        ctype = request.headers.get("content-type", "")
        if loc == ("body",) and ctype and "json" not in ctype.lower():
            msg = f"the body must be JSON, sent with 'Content-Type: application/json' (got {ctype[:60]!r})"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        return _json_error(request, 422, InvalidInput.code, f"{field or loc[0] if loc else 'request'}: {msg}{more}", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _json_error(request, 404, "not_found", f"no endpoint {request.url.path}; see /docs", None)
        if exc.status_code == 405:
            response = _json_error(
                request, 405, MethodNotAllowed.code, f"{request.method} is not allowed on {request.url.path}"
            )
            response.headers.update(exc.headers or {})  # Allow: the methods that are
            return response
        if exc.status_code == 400:
            return _json_error(request, 400, MalformedRequest.code, "the body could not be parsed as JSON", "body")
        return _json_error(request, exc.status_code, "http_error", str(exc.detail))

    # Input that slipped past validation and failed deeper down (a number too large for SQLite,
    # a date outside years 1-9999): the caller's value is at fault, so 422, but log it with its
    # traceback so the missing check gets added where it belongs.
    @app.exception_handler(ValueError)
    @app.exception_handler(OverflowError)
    @app.exception_handler(UnicodeError)
    async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
        log.warning("unvalidated bad input reached %s: %r", request.url.path, exc, exc_info=exc)
        detail = str(exc)[:200]
        return _json_error(
            request, 422, InvalidInput.code, f"a value in the request is out of range or not valid text ({detail})"
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body(ServerError.code, "the server failed unexpectedly; its log has the details"), status_code=500
        )


# ---------------------------------------------------------------------- the app


def create_app(
    *,
    settings: Settings | None = None,
    server_settings: ServerSettings | None = None,
    memory: Memory | None = None,
    keys: KeyStore | None = None,
) -> FastAPI:
    """The ASGI app. With no arguments everything comes from MEMSTRATA_* environment variables."""
    server_settings = server_settings or ServerSettings()
    own_memory = memory is None
    if memory is None:
        memory = Memory(settings=settings or Settings.load())
    own_keys = keys is None
    if keys is None:
        keys = open_key_store(memory.settings, server_settings.keys_db, memory.store)
    state = ServerState(memory=memory, keys=keys, settings=server_settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        try:  # load the model now rather than on the first request
            await anyio.to_thread.run_sync(lambda: state.memory.embedder.embed(["warm up"]))
        except MemstrataError as exc:  # e.g. a remote embedder that is down: requests will answer 503
            log.warning("embedder not ready: %s", exc.message)
        yield
        if own_memory:
            state.memory.close()
        if own_keys:
            state.keys.close()

    app = FastAPI(
        title="memstrata",
        version=__version__,
        summary="Layered long-term memory for LLM agents, over HTTP.",
        description=(
            "Every call except health and version needs `Authorization: Bearer ms_...` "
            "(unless the server has no keys and is reached over loopback). A tenant key sees only its "
            f"tenant's memories; an admin key may name a tenant with the `{TENANT_HEADER}` header. "
            "Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`. See docs/server.md."
        ),
        lifespan=lifespan,
    )
    app.state.memstrata = state
    _install_error_handlers(app)
    app.include_router(_router(state))
    app.include_router(web_router())
    app.add_middleware(BodyLimitMiddleware, max_bytes=server_settings.max_body_bytes)
    return app


#: Exports up to this size are built in memory, larger ones in a temporary file, before the first byte is sent.
_SPOOL_BYTES = 8 * 1024 * 1024


class _ExportSink:
    """The text file `export_jsonl` writes to: each line's user_id / agent_id mapped back to the caller's
    ids, and link lines kept only between records of the export, written as UTF-8 into `out`."""

    def __init__(self, ns: Namespace, out: BinaryIO) -> None:
        self.ns, self.out, self.pending, self.ids = ns, out, "", set()

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.strip():
                self._line(json.loads(line))
        return len(text)

    def close(self) -> None:
        if self.pending.strip():
            self._line(json.loads(self.pending))
        self.pending = ""

    def _line(self, obj: dict[str, Any]) -> None:
        kind = obj.get("type")
        if kind == EXPORT_TYPE:
            obj["scope"] = {
                k: self.ns.out_id(v) if k in ("user_id", "agent_id") else v for k, v in (obj.get("scope") or {}).items()
            }
        elif kind == "record":
            obj["user_id"] = self.ns.out_id(obj.get("user_id"))
            obj["agent_id"] = self.ns.out_id(obj.get("agent_id"))
            self.ids.add(obj.get("id"))
        elif kind == "link":
            if obj.get("src") not in self.ids or obj.get("dst") not in self.ids:
                return
        else:
            raise RuntimeError(f"unexpected line in an export: {str(kind)[:40]!r}")
        self.out.write((json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))


def _chunks(spool: BinaryIO, size: int = 64 * 1024) -> Iterator[bytes]:
    while chunk := spool.read(size):
        yield chunk


def _router(state: ServerState) -> APIRouter:
    memory = state.memory
    router = APIRouter(prefix=f"/{API_VERSION}")
    secured = APIRouter(responses=_ERRORS)

    def principal(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(_bearer),
        tenant: str | None = Header(
            None, alias=TENANT_HEADER, description="admin keys only: the tenant to act for", max_length=64
        ),
    ) -> Principal:
        server = request.scope.get("server")
        who = authenticate(
            state.keys,
            authorization=request.headers.get("authorization"),
            tenant_header=tenant,
            local_host=server[0] if server else None,
        )
        request.state.principal = who
        return who

    def admin(who: Principal = Depends(principal)) -> Principal:
        if not who.is_admin:
            raise Forbidden("this call needs an admin key (`memstrata keys create --admin`)")
        return who

    ScopeQ = Query(
        None, description="a user id (ids are per tenant); user_id or agent_id is required", json_schema_extra=ID_SCHEMA
    )
    AgentQ = Query(None, description="an agent id", json_schema_extra=ID_SCHEMA)
    SessionQ = Query(None, description="only this session", json_schema_extra={**ID_SCHEMA, "maxLength": 256})

    # -------------------------------------------------------------- open

    @router.get("/health", response_model=HealthResponse, tags=["meta"])
    def health() -> dict:
        """Liveness: 200 while the server answers. Needs no key."""
        return {"status": "ok", "version": __version__}

    @router.get("/version", response_model=VersionResponse, tags=["meta"])
    def version() -> dict:
        """memstrata's version and the API version. Needs no key."""
        return {"version": __version__, "api": API_VERSION}

    # -------------------------------------------------------------- writes

    @secured.post("/memories", status_code=201, response_model=AddResponse, tags=["memories"])
    def add(body: AddRequest, who: Principal = Depends(principal)) -> JSONResponse:
        """Store messages as episodes (L0); they are searchable as soon as this returns."""
        ns = who.namespace
        raw = body.messages
        if isinstance(raw, list):
            messages: Any = [m if isinstance(m, str) else m.model_dump(exclude_none=True) for m in raw]
        else:
            messages = raw if isinstance(raw, str) else raw.model_dump(exclude_none=True)
        result = memory.add(
            messages, **ns.scope(body.user_id, body.agent_id), session_id=body.session_id,
            timestamp=body.timestamp, metadata=body.metadata, importance=body.importance,
        )
        return JSONResponse(
            {
                "episodes": [ns.record(r) for r in result.episodes],
                "notes": [ns.record(r) for r in result.notes],
                "merged": list(getattr(result, "merged", [])),
            },
            status_code=201,
        )

    @secured.patch("/memories/{memory_id}", response_model=RecordOut, tags=["memories"])
    def update(body: UpdateRequest, memory_id: str = Path(max_length=128), who: Principal = Depends(principal)) -> JSONResponse:
        """Change a memory's text and/or metadata; the old text stays in its history."""
        ns = who.namespace
        record = memory.update(memory_id, content=body.content, metadata=body.metadata, **ns.scope(body.user_id, body.agent_id))
        return JSONResponse(ns.record(record))

    @secured.delete("/memories/{memory_id}", response_model=DeletedResponse, tags=["memories"])
    def delete(
        memory_id: str = Path(max_length=128), user_id: str | None = ScopeQ, agent_id: str | None = AgentQ,
        who: Principal = Depends(principal),
    ) -> dict:
        """Erase one memory from every layer and index (404 if it is not in the scope)."""
        memory.delete(memory_id, **who.namespace.scope(user_id, agent_id))
        return {"deleted": 1}

    @secured.delete("/memories", response_model=DeletedResponse, tags=["memories"])
    def delete_all(
        user_id: str | None = ScopeQ, agent_id: str | None = AgentQ,
        session_id: str | None = SessionQ, who: Principal = Depends(principal),
    ) -> dict:
        """Erase every memory in a scope; answers how many were erased."""
        return {"deleted": memory.delete_all(**who.namespace.scope(user_id, agent_id), session_id=session_id)}

    @secured.post("/reset", response_model=OkResponse, tags=["admin"])
    def reset(who: Principal = Depends(admin)) -> dict:
        """Admin only: erase every memory of every scope and every tenant in this store."""
        memory.reset()
        return {"ok": True}

    # -------------------------------------------------------------- reads

    @secured.post("/search", response_model=SearchResponse, tags=["read"])
    def search(body: SearchRequest, who: Principal = Depends(principal)) -> JSONResponse:
        """Memories most relevant to a query, best first, with scores and provenance."""
        ns = who.namespace
        hits = memory.search(
            body.query, **ns.scope(body.user_id, body.agent_id), session_id=body.session_id, limit=body.limit,
            time_from=body.time_from, time_to=body.time_to, filters=body.filters, layers=body.layers, recipe=body.recipe,
            as_of=body.as_of, include_archived=body.include_archived, reinforce=body.reinforce,
            reference_time=body.reference_time,
        )
        return JSONResponse({"hits": [
            {"record": ns.record(h.record), "score": h.score, "ranks": h.ranks, "provenance": h.provenance} for h in hits
        ]})

    @secured.post("/context", response_model=ContextBlock, tags=["read"])
    def context(body: ContextRequest, who: Principal = Depends(principal)) -> JSONResponse:
        """A memory block for a query that fits a token budget, ready to put in a prompt."""
        block = memory.context(
            body.query, **who.namespace.scope(body.user_id, body.agent_id), session_id=body.session_id,
            budget_tokens=body.budget_tokens, time_from=body.time_from, time_to=body.time_to, filters=body.filters,
            recipe=body.recipe, as_of=body.as_of, include_archived=body.include_archived, reinforce=body.reinforce,
            reference_time=body.reference_time,
        )
        return JSONResponse(block.model_dump(mode="json"))

    @secured.get("/memories/{memory_id}", response_model=RecordOut, tags=["memories"])
    def get(
        memory_id: str = Path(max_length=128), user_id: str | None = ScopeQ, agent_id: str | None = AgentQ,
        who: Principal = Depends(principal),
    ) -> JSONResponse:
        """One memory by id (404 if it is not in the scope)."""
        ns = who.namespace
        return JSONResponse(ns.record(memory.get(memory_id, **ns.scope(user_id, agent_id))))

    @secured.get("/memories", response_model=PageOut, tags=["memories"])
    def list_memories(
        user_id: str | None = ScopeQ, agent_id: str | None = AgentQ,
        session_id: str | None = SessionQ,
        layers: list[int] | None = Query(None, description="0 episodes, 1 notes, 2 topics, 3 profile; default all"),
        limit: int = Query(100, ge=1, le=limits.MAX_LIMIT, description="items per page"),
        cursor: str | None = Query(None, max_length=64, description="`next_cursor` of the previous page"),
        who: Principal = Depends(principal),
    ) -> JSONResponse:
        """Memories in a scope, oldest first, one page at a time (cursor pagination)."""
        if layers is not None and any(not 0 <= x <= 3 for x in layers):
            raise InvalidInput("layers are 0 (episodes), 1 (notes), 2 (topics), 3 (profile)", field="layers")
        ns = who.namespace
        page = memory.list(
            **ns.scope(user_id, agent_id), session_id=session_id, layers=layers, limit=limit, cursor=cursor
        )
        return JSONResponse({"items": [ns.record(r) for r in page.items], "next_cursor": page.next_cursor})

    @secured.get("/memories/{memory_id}/history", response_model=HistoryResponse, tags=["memories"])
    def history(
        memory_id: str = Path(max_length=128), user_id: str | None = ScopeQ, agent_id: str | None = AgentQ,
        who: Principal = Depends(principal),
    ) -> JSONResponse:
        """How one memory changed: created, updated, superseded, ... oldest first."""
        events = memory.history(memory_id, **who.namespace.scope(user_id, agent_id))
        return JSONResponse({"events": [e.model_dump(mode="json") for e in events]})

    @secured.get("/scopes", response_model=ScopesResponse, tags=["read"])
    def scopes(
        limit: int = Query(limits.MAX_LIMIT, ge=1, le=limits.MAX_LIMIT, description="most scopes to list"),
        who: Principal = Depends(principal),
    ) -> dict:
        """The users and agents the caller's tenant holds memories for (an admin key acts for the tenant
        its header names, else for the ids outside every tenant)."""
        ns = who.namespace
        owned = [s for s in memory.scopes() if ns.owns(s)]
        return {
            "scopes": [{"user_id": ns.out_id(s.user_id), "agent_id": ns.out_id(s.agent_id)} for s in owned[:limit]],
            "truncated": len(owned) > limit,
        }

    @secured.get("/stats", response_model=dict[str, Any], tags=["read"])
    def stats(user_id: str | None = ScopeQ, agent_id: str | None = AgentQ, who: Principal = Depends(principal)) -> dict:
        """Counts per layer and status for a scope; admin keys without a tenant may omit the scope (whole store)."""
        scope = who.namespace.scope(user_id, agent_id)
        if scope["user_id"] is None and scope["agent_id"] is None and not (who.is_admin and who.tenant is None):
            raise ScopeRequired("a scope is required: pass user_id=... or agent_id=... (or both)", field="user_id")
        out = memory.stats(**scope)
        if not (who.is_admin and who.tenant is None):
            out.pop("path", None)
        return out

    # -------------------------------------------------------------- lifecycle

    @secured.post("/memories/{memory_id}/pin", response_model=RecordOut, tags=["lifecycle"])
    def pin(body: PinRequest, memory_id: str = Path(max_length=128), who: Principal = Depends(principal)) -> JSONResponse:
        """Pin a memory (it never fades or expires), or unpin it with `pinned: false`."""
        ns = who.namespace
        return JSONResponse(ns.record(memory.pin(memory_id, pinned=body.pinned, **ns.scope(body.user_id, body.agent_id))))

    @secured.post("/memories/{memory_id}/archive", response_model=RecordOut, tags=["lifecycle"])
    def archive(body: ScopeOnly, memory_id: str = Path(max_length=128), who: Principal = Depends(principal)) -> JSONResponse:
        """Take a memory out of default search; it stays stored, and `restore` brings it back."""
        ns = who.namespace
        return JSONResponse(ns.record(memory.archive(memory_id, **ns.scope(body.user_id, body.agent_id))))

    @secured.post("/memories/{memory_id}/restore", response_model=RecordOut, tags=["lifecycle"])
    def restore(body: ScopeOnly, memory_id: str = Path(max_length=128), who: Principal = Depends(principal)) -> JSONResponse:
        """Bring an archived (faded, expired or archived) memory back to default search, at full strength."""
        ns = who.namespace
        return JSONResponse(ns.record(memory.restore(memory_id, **ns.scope(body.user_id, body.agent_id))))

    @secured.delete("/episodes/{episode_id}", response_model=DeletedResponse, tags=["lifecycle"])
    def delete_episode(
        episode_id: str = Path(max_length=128), user_id: str | None = ScopeQ, agent_id: str | None = AgentQ,
        who: Principal = Depends(principal),
    ) -> dict:
        """Erase one episode (L0) and what was derived only from it; 422 if the id is not an episode."""
        memory.delete_episode(episode_id, **who.namespace.scope(user_id, agent_id))
        return {"deleted": 1}

    @secured.post("/organise", response_model=OrganiseResponse, tags=["lifecycle"])
    def organise(body: OrganiseRequest, who: Principal = Depends(principal)) -> JSONResponse:
        """Consolidate a scope: links, topics, profile, lessons, merges, fading. Idempotent; `max_work`
        bounds each step (a later call goes on). Admin keys may omit the scope: every scope of the
        tenant they act for (never another tenant's)."""
        ns = who.namespace
        scope = ns.scope(body.user_id, body.agent_id)
        if scope["user_id"] is None and scope["agent_id"] is None:
            if not who.is_admin:
                raise ScopeRequired(
                    "a scope is required: pass user_id=... or agent_id=... (only admin keys may organise every scope)",
                    field="user_id",
                )
            scopes = [{"user_id": s.user_id, "agent_id": s.agent_id} for s in memory.store.scopes() if ns.owns(s)]
        else:
            scopes = [scope]
        reports = [r for ids in scopes for r in memory.organise(**ids, max_work=body.max_work)]
        return JSONResponse({"reports": [
            {
                "scope": {"user_id": ns.out_id(r.scope.user_id), "agent_id": ns.out_id(r.scope.agent_id)},
                "steps": r.steps, "changed": r.changed, "complete": r.complete,
            }
            for r in reports
        ]})

    # -------------------------------------------------------------- export

    @secured.get(
        "/export", tags=["read"], response_class=StreamingResponse,
        responses={200: {
            "description": "JSON lines: a header, one line per record (with its history and vector), one per link",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        }},
    )
    def export(
        user_id: str | None = ScopeQ, agent_id: str | None = AgentQ, who: Principal = Depends(principal)
    ) -> StreamingResponse:
        """Every memory of a scope (all layers and statuses, history, vectors, links) as memstrata's export
        JSONL, which `memstrata import` reads back. Ids are the caller's (no tenant prefix)."""
        ns = who.namespace
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES, mode="w+b")
        try:
            sink = _ExportSink(ns, spool)
            count = export_jsonl(memory, sink, **ns.scope(user_id, agent_id))
            sink.close()
            size = spool.tell()
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return StreamingResponse(
            _chunks(spool), media_type="application/x-ndjson", background=BackgroundTask(spool.close),
            headers={"Content-Length": str(size), "X-Memstrata-Records": str(count),
                     "Content-Disposition": 'attachment; filename="memstrata-export.jsonl"'},
        )

    # -------------------------------------------------------------- experience

    @secured.post("/experiences", status_code=201, response_model=RecordOut, tags=["experience"])
    def add_experience(body: ExperienceRequest, who: Principal = Depends(principal)) -> JSONResponse:
        """Remember how a task went: the trajectory (an episode) and an experience record citing it.
        Failures are kept and labelled: they say what to avoid."""
        ns = who.namespace
        record = memory.add_experience(
            body.task, body.steps, body.outcome, body.feedback, success=body.success,
            **ns.scope(body.user_id, body.agent_id), session_id=body.session_id, timestamp=body.timestamp,
            importance=body.importance, metadata=body.metadata,
        )
        return JSONResponse(ns.record(record), status_code=201)

    @secured.post("/experiences/search", response_model=ExperienceSearchResponse, tags=["experience"])
    def search_experience(body: ExperienceSearchRequest, who: Principal = Depends(principal)) -> JSONResponse:
        """Past tasks like this one, best first: what was done, whether it worked, the lesson drawn."""
        ns = who.namespace
        hits = memory.search_experience(
            body.task, **ns.scope(body.user_id, body.agent_id), limit=body.limit, include_failed=body.include_failed,
            as_of=body.as_of,
        )
        return JSONResponse({"hits": [
            {**h.model_dump(mode="json", exclude={"record"}), "record": ns.record(h.record)} for h in hits
        ]})

    # -------------------------------------------------------------- store maintenance (admin)

    @secured.post("/reembed", response_model=ReembedResponse, tags=["admin"])
    def reembed(body: ReembedRequest, who: Principal = Depends(admin)) -> dict:
        """Admin only: give records a vector from the server's current embedding model (resumable). No
        scope: every record in the store; a scope is taken in the tenant acted for."""
        scope = who.namespace.scope(body.user_id, body.agent_id)
        return {"reembedded": memory.reembed(**scope, batch_size=body.batch_size)}

    @secured.post("/vacuum", response_model=OkResponse, tags=["admin"])
    def vacuum(who: Principal = Depends(admin)) -> dict:
        """Admin only: rewrite the database file so erased memories' bytes are gone from disk (whole store)."""
        memory.vacuum()
        return {"ok": True}

    router.include_router(secured)
    return router
