"""The server's commands, for the main CLI to mount:

    memstrata serve [--host H] [--port P] [--workers N] [--print-openapi]
    memstrata keys create --tenant T [--admin] | keys list | keys revoke ID
    memstrata mcp [--transport stdio|http] [--user-id U] ...
    memstrata bench serve [--levels 1,8,32] [--requests N] ...

`--db` / `--config` are the root command's options (``memstrata --db X serve``); this
module reads them from the click context, so it never imports the main CLI. Errors are
raised as `MemstrataError`s for the main CLI to print as one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..config import Settings
from ..errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from .keys import KeyStore

serve_app = typer.Typer(
    help="Run the REST server (FastAPI + uvicorn). See docs/server.md.",
    invoke_without_command=True,
    add_completion=False,
)
keys_app = typer.Typer(help="API keys of the REST and MCP servers (shown once, stored hashed).", no_args_is_help=True,
                       add_completion=False)
mcp_app = typer.Typer(help="Run the MCP server (stdio or streamable HTTP).", invoke_without_command=True,
                      add_completion=False)


def _need(*modules: str) -> None:
    """Fail with one clear line when the server extra is not installed."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"this command needs {', '.join(missing)}: pip install 'memstrata[server]'", field="install"
        )


def _root_settings(ctx: typer.Context) -> Settings:
    """Settings from the root command's --config / --db (when mounted), env vars and defaults."""
    root = ctx.find_root()
    return Settings.load(root.params.get("config"), db=root.params.get("db"))


def _key_store(ctx: typer.Context, keys_db: Path | None) -> KeyStore:
    """The key store of the root command's settings (the Postgres schema with store = postgres)."""
    from .keys import open_key_store
    from .settings import ServerSettings

    return open_key_store(_root_settings(ctx), keys_db or ServerSettings().keys_db)


KeysDb = Annotated[
    Optional[Path],
    typer.Option("--keys-db", help="Key store file (env MEMSTRATA_KEYS_DB; default <db>.keys.db). With store = "
                 "postgres the keys are in the database, and this file's are copied there.", show_default=False),
]


# ---------------------------------------------------------------------- serve


@serve_app.callback()
def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on. Beyond loopback, API keys must exist.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes sharing the database.")] = 1,
    keys_db: KeysDb = None,
    max_body_bytes: Annotated[
        Optional[int], typer.Option(help="Largest request body (default 4 MiB; env MEMSTRATA_MAX_BODY_BYTES).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    print_openapi: Annotated[bool, typer.Option("--print-openapi", help="Print the OpenAPI schema and exit.")] = False,
) -> None:
    """Serve `Memory` over HTTP: add, search, context, get, list, update, delete, history, stats."""
    if ctx.invoked_subcommand is not None:
        return
    _need("fastapi", "uvicorn")
    from .serve import openapi_text, serve

    if print_openapi:
        typer.echo(openapi_text(), nl=False)
        return
    settings = _root_settings(ctx)
    serve(host=host, port=port, workers=workers, db=settings.db, config=ctx.find_root().params.get("config"),
          keys_db=keys_db, max_body_bytes=max_body_bytes, log_level=log_level)


# ---------------------------------------------------------------------- keys


def _key_row(key: Any) -> dict[str, Any]:
    return {
        "id": key.id, "tenant": key.tenant, "role": key.role, "label": key.label,
        "created_at": key.created_at.isoformat(), "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    tenant: Annotated[Optional[str], typer.Option(help="Tenant the key acts for (required unless --admin).")] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="An admin key: any tenant (X-Memstrata-Tenant), reset, whole-store stats.")
    ] = False,
    label: Annotated[Optional[str], typer.Option(help="A note to recognise the key by.")] = None,
    keys_db: KeysDb = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine output.")] = False,
) -> None:
    """Create a key and print its token once (only a hash is kept)."""
    store = _key_store(ctx, keys_db)
    try:
        created = store.create(tenant=tenant, admin=admin, label=label)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({**_key_row(created.key), "token": created.token}))
        return
    who = "admin" if admin else f"tenant {created.key.tenant}"
    typer.echo(f"Created {created.key.id} ({who}). The token is shown this once; keep it secret:")
    typer.echo(created.token)


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    keys_db: KeysDb = None,
    active: Annotated[bool, typer.Option("--active", help="Only keys that are not revoked.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine output.")] = False,
) -> None:
    """List keys (ids, tenants, roles, dates; never tokens)."""
    store = _key_store(ctx, keys_db)
    try:
        keys = store.list(include_revoked=not active)
    finally:
        store.close()
    rows = [_key_row(k) for k in keys]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo("No API keys. Create one with `memstrata keys create --tenant NAME`.")
        return
    for r in rows:
        state = f"revoked {r['revoked_at'][:19]}" if r["revoked_at"] else "active"
        typer.echo(f"{r['id']}  {r['role']:<6}  {r['tenant'] or '-':<20}  {r['created_at'][:19]}  {state}"
                   f"{'  ' + r['label'] if r['label'] else ''}")


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="Key id (from `memstrata keys list`), e.g. key_3f2a...")],
    keys_db: KeysDb = None,
) -> None:
    """Revoke a key; requests with it fail from now on."""
    store = _key_store(ctx, keys_db)
    try:
        key = store.revoke(key_id)
    finally:
        store.close()
    typer.echo(f"Revoked {key.id} ({key.role}{', tenant ' + key.tenant if key.tenant else ''}).")


# ---------------------------------------------------------------------- mcp


@mcp_app.callback()
def mcp_command(
    ctx: typer.Context,
    transport: Annotated[str, typer.Option(help="stdio (an agent host spawns it) or http (streamable HTTP at /mcp).")] = "stdio",
    host: Annotated[str, typer.Option(help="http: address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="http: port to listen on.")] = 8766,
    keys_db: KeysDb = None,
    tenant: Annotated[Optional[str], typer.Option(help="stdio: act inside this tenant's namespace.")] = None,
    user_id: Annotated[Optional[str], typer.Option(help="Default user_id (env MEMSTRATA_MCP_USER_ID).")] = None,
    agent_id: Annotated[Optional[str], typer.Option(help="Default agent_id (env MEMSTRATA_MCP_AGENT_ID).")] = None,
    session_id: Annotated[Optional[str], typer.Option(help="Default session_id (env MEMSTRATA_MCP_SESSION_ID).")] = None,
) -> None:
    """Serve memory tools to an agent over MCP: remember, recall, forget, list_memories."""
    if ctx.invoked_subcommand is not None:
        return
    _need("mcp", "uvicorn")
    from .mcp import run

    if transport not in ("stdio", "http"):
        raise InvalidInput(f"--transport is stdio or http, not {transport!r}", field="transport")
    root = ctx.find_root()
    run(
        transport=transport,  # type: ignore[arg-type]
        db=root.params.get("db"), config=root.params.get("config"), keys_db=keys_db, host=host, port=port,
        tenant=tenant, user_id=user_id, agent_id=agent_id, session_id=session_id,
    )


# ---------------------------------------------------------------------- bench serve


def bench_serve_command(
    levels: Annotated[str, typer.Option(help="Concurrent clients per level, comma-separated.")] = "1,8,32",
    requests: Annotated[int, typer.Option(min=1, max=100_000, help="Requests per operation and level.")] = 200,
    workers: Annotated[int, typer.Option(min=1, max=16, help="Server worker processes.")] = 2,
    seed: Annotated[int, typer.Option(min=0, max=1_000_000, help="Memories stored before the searches.")] = 500,
    time_cap: Annotated[float, typer.Option(min=1, help="Seconds at most per operation and level.")] = 60.0,
    docs: Annotated[
        Optional[Path], typer.Option(help="Markdown file to write the figures into (section 'REST server (bench serve)').")
    ] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write the full report as JSON here.")] = None,
) -> None:
    """Load-test the REST server on loopback: requests/s and p50/p95/p99 for add and search."""
    _need("fastapi", "uvicorn")
    from .bench import bench_serve, render_markdown, write_section

    try:
        level_list = [int(x) for x in levels.split(",") if x.strip()]
    except ValueError:
        raise InvalidInput(f"--levels must be integers separated by commas, got {levels!r}", field="levels") from None
    if not level_list or any(not 1 <= n <= 256 for n in level_list):
        raise InvalidInput("--levels must be 1..256 clients each", field="levels")
    report = bench_serve(levels=level_list, requests=requests, workers=workers, seed_memories=seed, time_cap=time_cap,
                         log=lambda m: typer.echo(m, err=True))
    table = render_markdown(report)
    typer.echo(table)
    if docs:
        write_section(docs, table)
        typer.echo(f"wrote the figures into {docs}", err=True)
    if out:
        out.write_text(json.dumps(report, indent=2) + "\n")
