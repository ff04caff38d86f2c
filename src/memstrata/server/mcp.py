"""memstrata as an MCP server (official MCP Python SDK): long-term memory tools for an agent.

Tools: ``remember`` (add), ``recall`` (a memory block within a token budget, or a ranked
list), ``forget`` (delete), ``list_memories`` (browse, with a cursor), ``add_experience``
(how a task went: steps and outcome) and ``search_experience`` (how similar tasks went
before, with the lessons drawn from them).

Transports:

- stdio (``memstrata mcp``): a local agent host spawns it. It acts in the root namespace,
  like the embedded `Memory`, or inside one tenant with ``--tenant`` (then its ids are the
  ones that tenant's REST key sees).
- streamable HTTP (``memstrata mcp --transport http``): every request needs
  ``Authorization: Bearer ms_...``; the key's tenant namespaces every id, exactly as in
  the REST server (admin keys may name a tenant with X-Memstrata-Tenant).

Scope: a tool call may name ``user_id`` / ``agent_id`` / ``session_id``; what it leaves out
comes from the configuration (``--user-id``/``--agent-id``/``--session-id`` or
MEMSTRATA_MCP_USER_ID / MEMSTRATA_MCP_AGENT_ID / MEMSTRATA_MCP_SESSION_ID).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from .. import __version__
from ..config import Settings
from ..errors import ConfigError, MemstrataError, ScopeRequired
from ..memory import Memory
from .auth import TENANT_HEADER, Principal, bearer_token, principal_for_key
from .errors import Unauthorized
from .keys import KeyStore, check_tenant, open_key_store
from .settings import ServerSettings

INSTRUCTIONS = """\
memstrata is your long-term memory: it keeps what you are told across conversations and \
hands back what matters for the task at hand.
- At the start of a task, or whenever earlier context might help, call `recall` with a short \
description of what you need; put the returned block in your working context.
- When the user tells you something worth keeping (facts about them, preferences, decisions, \
plans, outcomes), call `remember` with that text, in the user's words, one fact or turn per item.
- When the user asks you to forget something, find it with `recall` (mode="search") or \
`list_memories`, then call `forget` with its id.
- Before a multi-step task, call `search_experience` with the task to learn how similar tasks went \
(what worked, what failed, the lesson). When you finish a task (or give up), call `add_experience` \
with the task, the steps you took and the outcome, failures included.
Memories are kept per user_id / agent_id; if the server has no default, pass user_id."""

# Descriptions are written for the model that calls the tools.
_USER = Annotated[str | None, Field(description="whose memory: the user's id (omit to use the configured default)")]
_AGENT = Annotated[str | None, Field(description="the agent's id, if memories are kept per agent (optional)")]
_SESSION = Annotated[str | None, Field(description="conversation/session id (optional)")]


@dataclass(frozen=True)
class McpDefaults:
    """Scope used when a tool call leaves it out."""

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None

    @classmethod
    def from_env(cls, **overrides: str | None) -> "McpDefaults":
        env = ServerSettings()
        values = {"user_id": env.mcp_user_id, "agent_id": env.mcp_agent_id, "session_id": env.mcp_session_id}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class _KeyVerifier:
    """The SDK's TokenVerifier over memstrata's key store."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    async def verify_token(self, token: str) -> AccessToken | None:
        import anyio.to_thread

        key = await anyio.to_thread.run_sync(self.keys.verify, token)
        if key is None:
            return None
        return AccessToken(token=token, client_id=key.id, scopes=[key.role], subject=key.tenant or "")


def build_server(
    memory: Memory,
    *,
    defaults: McpDefaults | None = None,
    tenant: str | None = None,
    keys: KeyStore | None = None,
) -> MCPServer:
    """An `MCPServer` with memstrata's tools.

    `keys` given: HTTP mode, the caller's key (from the request) decides the namespace.
    Otherwise (stdio) every call acts in `tenant`'s namespace (None: the root namespace).
    """
    defaults = defaults or McpDefaults()
    if tenant is not None:
        tenant = check_tenant(tenant)
    auth: dict[str, Any] = {}
    if keys is not None:
        auth = {
            "token_verifier": _KeyVerifier(keys),
            "auth": AuthSettings(issuer_url="http://127.0.0.1", resource_server_url=None),
        }
    server = MCPServer(
        "memstrata", title="memstrata memory", version=__version__, instructions=INSTRUCTIONS,
        log_level="WARNING", **auth,
    )

    def principal(ctx: Context) -> Principal:
        if keys is None:
            return Principal(role="admin", tenant=tenant)
        headers = ctx.headers or {}
        token = bearer_token(headers.get("authorization"))
        key = keys.verify(token) if token else None
        if key is None:
            raise Unauthorized("send 'Authorization: Bearer ms_...' with a valid memstrata API key")
        return principal_for_key(key, headers.get(TENANT_HEADER.lower()))

    def scope(who: Principal, user_id: str | None, agent_id: str | None) -> dict[str, str | None]:
        user_id = user_id or defaults.user_id
        agent_id = agent_id or defaults.agent_id
        if user_id is None and agent_id is None:
            raise ScopeRequired(
                "whose memory? pass user_id (this server has no default user; set MEMSTRATA_MCP_USER_ID to give one)",
                field="user_id",
            )
        return who.namespace.scope(user_id, agent_id)

    def failing(who: Principal | None, exc: MemstrataError) -> ToolError:
        message = who.namespace.message(exc.message) if who else exc.message
        return ToolError(f"{exc.code}: {message}")

    @server.tool(
        description=(
            "Store something in long-term memory so it can be recalled in later conversations. "
            "Use it for facts about the user, preferences, decisions, plans, events and outcomes. "
            "Pass the text as said (a list stores several items at once, in order). "
            "Returns the ids of the stored memories."
        ),
    )
    def remember(
        content: Annotated[str | list[str], Field(description="the text to remember, or a list of texts")],
        ctx: Context,
        user_id: _USER = None,
        agent_id: _AGENT = None,
        session_id: _SESSION = None,
        speaker: Annotated[str | None, Field(description="who said it, e.g. the user's name (optional)")] = None,
        timestamp: Annotated[str | None, Field(description="when it happened, ISO 8601 (default: now)")] = None,
    ) -> str:
        who = None
        try:
            who = principal(ctx)
            texts = [content] if isinstance(content, str) else list(content)
            messages = [{"role": "user", "content": t, **({"speaker": speaker} if speaker else {})} for t in texts]
            result = memory.add(
                messages, **scope(who, user_id, agent_id), session_id=session_id or defaults.session_id,
                timestamp=timestamp,
            )
        except MemstrataError as exc:
            raise failing(who, exc) from None
        ids = ", ".join(result.ids)
        return f"Remembered {len(result.episodes)} item(s): {ids}"

    @server.tool(
        description=(
            "Recall what long-term memory knows about something. Describe what you need in a short query "
            "(a question or keywords). mode='context' (default) returns a memory block that fits in "
            "budget_tokens, each line dated and ending in the [id] of its source: put it in your context. "
            "mode='search' returns the best matches one per line with ids and scores (use it to find "
            "an id to forget). Returns an empty answer when nothing relevant is stored."
        ),
    )
    def recall(
        query: Annotated[str, Field(description="what you want to know, e.g. 'where does the user live?'")],
        ctx: Context,
        user_id: _USER = None,
        agent_id: _AGENT = None,
        session_id: Annotated[str | None, Field(description="only this session (optional)")] = None,
        mode: Annotated[Literal["context", "search"], Field(description="context: a block; search: a ranked list")] = "context",
        budget_tokens: Annotated[int, Field(ge=1, le=100_000, description="size of the context block in tokens")] = 800,
        limit: Annotated[int, Field(ge=1, le=100, description="search mode: how many matches")] = 10,
        time_from: Annotated[str | None, Field(description="only memories from this time on (ISO 8601)")] = None,
        time_to: Annotated[str | None, Field(description="only memories up to this time (ISO 8601)")] = None,
    ) -> str:
        who = None
        try:
            who = principal(ctx)
            ids = scope(who, user_id, agent_id)
            if mode == "context":
                block = memory.context(
                    query, **ids, session_id=session_id, budget_tokens=budget_tokens, time_from=time_from, time_to=time_to
                )
                return block.text or "No relevant memories."
            hits = memory.search(query, **ids, session_id=session_id, limit=limit, time_from=time_from, time_to=time_to)
        except MemstrataError as exc:
            raise failing(who, exc) from None
        if not hits:
            return "No relevant memories."
        return "\n".join(
            f"- [{h.record.id}] ({h.score:.3f}, {h.record.event_time:%Y-%m-%d}) "
            f"{(h.record.speaker + ': ') if h.record.speaker else ''}{' '.join(h.record.content.split())}"
            for h in hits
        )

    @server.tool(
        description=(
            "Erase one memory for good (from every layer and index), by its id, e.g. 'ep_01J...'. "
            "Find ids with recall(mode='search') or list_memories. Use it when the user asks you to forget "
            "something or a memory is wrong."
        ),
    )
    def forget(
        memory_id: Annotated[str, Field(description="the id of the memory to erase")],
        ctx: Context,
        user_id: _USER = None,
        agent_id: _AGENT = None,
    ) -> str:
        who = None
        try:
            who = principal(ctx)
            memory.delete(memory_id, **scope(who, user_id, agent_id))
        except MemstrataError as exc:
            raise failing(who, exc) from None
        return f"Forgot {memory_id}."

    @server.tool(
        description=(
            "List stored memories, oldest first, one per line with id, date and text. Pages of `limit` items; "
            "when there are more, the answer ends with a cursor to pass back for the next page."
        ),
    )
    def list_memories(
        ctx: Context,
        user_id: _USER = None,
        agent_id: _AGENT = None,
        session_id: Annotated[str | None, Field(description="only this session (optional)")] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="memories per page")] = 20,
        cursor: Annotated[str | None, Field(description="the cursor the previous page ended with")] = None,
    ) -> str:
        who = None
        try:
            who = principal(ctx)
            page = memory.list(**scope(who, user_id, agent_id), session_id=session_id, limit=limit, cursor=cursor)
        except MemstrataError as exc:
            raise failing(who, exc) from None
        if not page.items:
            return "No memories."
        lines = [
            f"- [{r.id}] ({r.event_time:%Y-%m-%d}) {(r.speaker + ': ') if r.speaker else ''}{' '.join(r.content.split())}"
            for r in page.items
        ]
        if page.next_cursor:
            lines.append(f"More: call list_memories again with cursor={page.next_cursor!r}")
        return "\n".join(lines)

    @server.tool(
        description=(
            "Record how a task you carried out went, so that you (or another agent) can do better next time. "
            "Call it when you finish a multi-step task or give up on one: pass the task, the steps you took in "
            "order (short texts such as 'ran the tests', or objects like {\"action\": ..., \"observation\": ...}), "
            "and the outcome. Record failures too; they say what to avoid. success is inferred from the outcome "
            "when you leave it out. Returns the id of the stored experience."
        ),
    )
    def add_experience(
        task: Annotated[str, Field(description="what you set out to do, e.g. 'deploy the web app to staging'")],
        outcome: Annotated[str, Field(description="how it ended, e.g. 'deployed; health check passed'")],
        ctx: Context,
        steps: Annotated[
            list[str | dict[str, Any]] | None,
            Field(description="what you did, in order: one short text or object per action (optional)"),
        ] = None,
        feedback: Annotated[str | None, Field(description="what the user or a check said about it (optional)")] = None,
        success: Annotated[bool | None, Field(description="true if it worked, false if not (default: inferred)")] = None,
        user_id: _USER = None,
        agent_id: _AGENT = None,
        session_id: _SESSION = None,
    ) -> str:
        who = None
        try:
            who = principal(ctx)
            record = memory.add_experience(
                task, steps, outcome, feedback, success=success, **scope(who, user_id, agent_id),
                session_id=session_id or defaults.session_id,
            )
        except MemstrataError as exc:
            raise failing(who, exc) from None
        label = {True: "succeeded", False: "failed", None: "outcome unknown"}[
            record.metadata.get("experience", {}).get("success")
        ]
        return f"Stored experience {record.id} ({label})."

    @server.tool(
        description=(
            "Find how tasks like the one at hand went before: for each similar past task, whether it succeeded "
            "or failed, the steps taken, the outcome, and the lesson drawn from it. Call it before starting a "
            "multi-step task and follow what worked; avoid what failed. Returns 'No similar experience.' when "
            "there is none."
        ),
    )
    def search_experience(
        task: Annotated[str, Field(description="the task you are about to do, in a sentence")],
        ctx: Context,
        user_id: _USER = None,
        agent_id: _AGENT = None,
        limit: Annotated[int, Field(ge=1, le=50, description="how many past tasks")] = 5,
        include_failed: Annotated[bool, Field(description="also show failed attempts (default true)")] = True,
    ) -> str:
        who = None
        try:
            who = principal(ctx)
            hits = memory.search_experience(
                task, **scope(who, user_id, agent_id), limit=limit, include_failed=include_failed
            )
        except MemstrataError as exc:
            raise failing(who, exc) from None
        if not hits:
            return "No similar experience."
        blocks = []
        for h in hits:
            lines = [f"- [{h.record.id}] ({h.score:.3f}, {h.record.event_time:%Y-%m-%d}) {h.label.upper()}: {h.task}"]
            lines += [f"  step {i}: {_one_line(step)}" for i, step in enumerate(h.steps, start=1)]
            lines.append(f"  outcome: {_one_line(h.outcome)}")
            if h.feedback:
                lines.append(f"  feedback: {_one_line(h.feedback)}")
            if h.lesson:
                lines.append(f"  lesson: {_one_line(h.lesson)}")
            blocks.append("\n".join(lines))
        return "\n".join(blocks)

    return server


def _one_line(value: Any) -> str:
    """A step, outcome or lesson on one line (objects as compact JSON)."""
    if not isinstance(value, str):
        import json

        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return " ".join(value.split())


def run(
    *,
    transport: Literal["stdio", "http"] = "stdio",
    db: str | Path | None = None,
    config: str | Path | None = None,
    keys_db: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8766,
    tenant: str | None = None,
    user_id: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
) -> None:
    """Run the MCP server until the client disconnects (stdio) or it is interrupted (HTTP)."""
    memory = Memory(settings=Settings.load(config, db=db))
    defaults = McpDefaults.from_env(user_id=user_id, agent_id=agent_id, session_id=session_id)
    try:
        if transport == "stdio":
            build_server(memory, defaults=defaults, tenant=tenant).run("stdio")
            return
        if transport != "http":
            raise ConfigError(f"unknown transport {transport!r}; use stdio or http", field="transport")
        if tenant is not None:
            raise ConfigError("--tenant is for stdio; over HTTP the API key decides the tenant", field="tenant")
        keys = open_key_store(memory.settings, keys_db or ServerSettings().keys_db, memory.store)
        if not keys.has_active_keys():
            raise ConfigError(
                "the HTTP transport needs API keys and none exists; create one with `memstrata keys create --tenant NAME`",
                field="transport",
            )
        run_http(build_server(memory, defaults=defaults, keys=keys), host=host, port=port)
    finally:
        memory.close()


def run_http(server: MCPServer, *, host: str, port: int) -> None:
    """Serve `server` over streamable HTTP at http://host:port/mcp."""
    import uvicorn

    app = server.streamable_http_app(host=host)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)


def main(argv: list[str] | None = None) -> None:
    """`python -m memstrata.server.mcp`: the same as `memstrata mcp`, without the CLI."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m memstrata.server.mcp", description="memstrata MCP server")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--db")
    parser.add_argument("--config")
    parser.add_argument("--keys-db")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--tenant")
    parser.add_argument("--user-id")
    parser.add_argument("--agent-id")
    parser.add_argument("--session-id")
    args = parser.parse_args(argv)
    try:
        run(transport=args.transport, db=args.db, config=args.config, keys_db=args.keys_db, host=args.host, port=args.port,
            tenant=args.tenant, user_id=args.user_id, agent_id=args.agent_id, session_id=args.session_id)
    except MemstrataError as exc:
        raise SystemExit(f"error: {exc.message}") from None


if __name__ == "__main__":
    main()
