"""Starting the REST server (uvicorn, one or more worker processes) and writing its OpenAPI schema."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ConfigError
from .keys import KeyStore, open_key_store
from .settings import ServerSettings, is_loopback, keys_path_for
from .webpage import PAGE_PATH

APP_FACTORY = "memstrata.server.rest:create_app"
DEFAULT_PORT = 8765


def check_bind(host: str, keys: KeyStore | Path | str) -> None:
    """Refuse a non-loopback address while no API key exists (anyone could read every memory).
    `keys`: the key store, or the path of a SQLite one."""
    if is_loopback(host):
        return
    store = keys if isinstance(keys, KeyStore) else KeyStore(keys)
    try:
        active = store.has_active_keys()
    finally:
        if store is not keys:
            store.close()
    if not active:
        raise ConfigError(
            f"refusing to listen on {host}: no API key exists, so anyone who reaches it could read every memory; "
            "create one with `memstrata keys create --tenant NAME` or listen on 127.0.0.1",
            field="host",
        )


def server_env(
    *,
    db: str | Path | None = None,
    config: str | Path | None = None,
    keys_db: str | Path | None = None,
    max_body_bytes: int | None = None,
) -> dict[str, str]:
    """The MEMSTRATA_* variables that carry `serve`'s options to each worker process."""
    settings = Settings.load(config, db=db)  # fails here, once, on a bad setting
    env = {"MEMSTRATA_DB": str(settings.db)}
    if config:
        env["MEMSTRATA_CONFIG"] = str(Path(config).expanduser().resolve())
    env["MEMSTRATA_KEYS_DB"] = str(keys_path_for(settings.db, keys_db or ServerSettings().keys_db))
    if max_body_bytes is not None:
        env["MEMSTRATA_MAX_BODY_BYTES"] = str(max_body_bytes)
    return env


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    workers: int = 1,
    db: str | Path | None = None,
    config: str | Path | None = None,
    keys_db: str | Path | None = None,
    max_body_bytes: int | None = None,
    log_level: str = "info",
) -> None:
    """Run the REST server until interrupted. Several workers share one SQLite file (WAL)."""
    import uvicorn

    if workers < 1:
        raise ConfigError("workers must be at least 1", field="workers")
    env = server_env(db=db, config=config, keys_db=keys_db, max_body_bytes=max_body_bytes)
    keys = open_key_store(Settings.load(config, db=db), env["MEMSTRATA_KEYS_DB"])
    try:
        check_bind(host, keys)
    finally:
        keys.close()
    os.environ.update(env)  # the worker processes read their settings from here
    shown = f"[{host}]" if ":" in host else host
    print(f"memstrata: API at http://{shown}:{port}/v1, web page at http://{shown}:{port}{PAGE_PATH}", file=sys.stderr)
    uvicorn.run(
        APP_FACTORY, factory=True, host=host, port=port, workers=workers, log_level=log_level,
        proxy_headers=False, server_header=False, timeout_graceful_shutdown=10,
    )


def openapi_schema() -> dict[str, Any]:
    """The app's OpenAPI schema (built on an in-memory store; no model is loaded)."""
    from ..memory import Memory
    from .rest import create_app

    memory = Memory(settings=Settings(db=Path(":memory:")))
    keys = KeyStore(":memory:")
    try:
        return create_app(memory=memory, keys=keys, server_settings=ServerSettings()).openapi()
    finally:
        memory.close()
        keys.close()


def openapi_text() -> str:
    """The schema as the text kept in docs/openapi.json."""
    return json.dumps(openapi_schema(), indent=2, ensure_ascii=False) + "\n"


def write_openapi(path: str | Path) -> Path:
    """Write the schema to `path` (docs/openapi.json in the repository)."""
    path = Path(path)
    path.write_text(openapi_text(), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    """`python -m memstrata.server.serve`: the same as `memstrata serve`, without the CLI."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m memstrata.server.serve", description="memstrata REST server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--db")
    parser.add_argument("--config")
    parser.add_argument("--keys-db")
    parser.add_argument("--max-body-bytes", type=int)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--print-openapi", action="store_true", help="print the OpenAPI schema and exit")
    args = parser.parse_args(argv)
    if args.print_openapi:
        print(openapi_text(), end="")
        return
    try:
        serve(host=args.host, port=args.port, workers=args.workers, db=args.db, config=args.config, keys_db=args.keys_db,
              max_body_bytes=args.max_body_bytes, log_level=args.log_level)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc.message}") from None


if __name__ == "__main__":
    main()
