"""Settings of the REST and MCP servers, from MEMSTRATA_* environment variables.

Kept apart from `memstrata.config.Settings` (the engine's settings) because they
only matter to a running server. `memstrata serve` passes its options to the
worker processes through these variables (uvicorn workers are fresh processes).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Default largest request body (bytes); see docs/server.md "Limits".
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


class ServerSettings(BaseSettings):
    """Server-only settings. Environment variables: MEMSTRATA_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="MEMSTRATA_", extra="ignore")

    keys_db: Path | None = Field(
        None, description="API key store (SQLite); default: <db>.keys.db beside the memory db; with store = 'postgres' "
        "the keys are in the database and this file's are copied there"
    )
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1024, description="largest request body accepted (413 above)")
    mcp_user_id: str | None = Field(None, description="MCP: default user_id when a tool call names none")
    mcp_agent_id: str | None = Field(None, description="MCP: default agent_id when a tool call names none")
    mcp_session_id: str | None = Field(None, description="MCP: default session_id for remember")


def keys_path_for(db: Path | str, configured: Path | str | None = None) -> Path | str:
    """Where the key store lives: the configured path, else `<db>.keys.db`."""
    if configured:
        return Path(configured).expanduser()
    if str(db) == ":memory:":
        return ":memory:"
    db = Path(db).expanduser()
    return db.with_name(db.name + ".keys.db")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'; False for 0.0.0.0, :: and anything else."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False
