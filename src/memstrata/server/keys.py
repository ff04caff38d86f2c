"""API keys: random tokens shown once, stored as SHA-256 hashes, each bound to a tenant or admin.

With the SQLite store the key store is its own small SQLite file beside the memory
database (default `<db>.keys.db`, or MEMSTRATA_KEYS_DB). With store = "postgres" it is
the `api_keys` table of the store's schema, so every server on that database accepts
the same keys. Either way keys never mix with memories and a memory export never
carries them.

A token looks like ``ms_<43 url-safe characters>`` (32 random bytes). Only its
SHA-256 is kept; a lost token cannot be recovered, only revoked and replaced.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from ..config import Settings
from ..errors import InvalidInput, NotFound, StoreError
from .settings import keys_path_for

if TYPE_CHECKING:
    from ..store import Store
    from ..store.postgres import PostgresStore

log = logging.getLogger("memstrata.server")

Role = Literal["tenant", "admin"]
TOKEN_PREFIX = "ms_"
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    tenant      TEXT,
    role        TEXT NOT NULL CHECK (role IN ('tenant', 'admin')),
    label       TEXT,
    created_at  REAL NOT NULL,
    revoked_at  REAL
)
"""


class ApiKey(BaseModel):
    """One key as stored (never the token itself)."""

    id: str
    tenant: str | None
    role: Role
    label: str | None = None
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class CreatedKey(BaseModel):
    """A new key and its token; the token is shown this once."""

    key: ApiKey
    token: str


def check_tenant(name: object, field: str = "tenant") -> str:
    """A tenant name: 1-64 letters, digits, '_', '.', '-', starting with a letter or digit (never '/')."""
    if not isinstance(name, str) or not _TENANT.fullmatch(name):
        raise InvalidInput(
            f"{field} {name!r} is not a valid tenant name; use 1-64 letters, digits, '_', '.' or '-'", field=field
        )
    return name


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token: what the key store keeps."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc)


class KeyStore:
    """Create, list, revoke and verify API keys in a SQLite file. Thread-safe; several processes may share
    the file. `PostgresKeyStore` keeps them in a Postgres schema instead, behind the same methods."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)
            self._conn.execute("PRAGMA busy_timeout = 10000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the key store {path}: {exc}") from None
        try:  # retried: two processes opening a new file at once can meet "database is locked" here
            if str(path) != ":memory:":
                self._query("PRAGMA journal_mode = WAL")
            self._query(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the key store {path}: {exc}") from None
        if str(path) != ":memory:":
            try:
                Path(path).chmod(0o600)  # hashes only, but nobody else needs to read them
            except OSError:
                pass

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        delay = 0.01
        for attempt in range(8):
            try:
                with self._lock:
                    return self._conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc).lower() and "busy" not in str(exc).lower() or attempt == 7:
                    raise StoreError(f"key store {self.path}: {exc}") from None
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    @staticmethod
    def _row(row: tuple) -> ApiKey:
        kid, tenant, role, label, created, revoked = row
        return ApiKey(id=kid, tenant=tenant, role=role, label=label, created_at=_dt(created), revoked_at=_dt(revoked))

    def create(self, *, tenant: str | None, admin: bool = False, label: str | None = None) -> CreatedKey:
        """A new key. Tenant keys need a tenant; admin keys may name one as their default."""
        if tenant is not None:
            tenant = check_tenant(tenant)
        elif not admin:
            raise InvalidInput("a tenant key needs a tenant: --tenant NAME (or --admin for an admin key)", field="tenant")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        kid = "key_" + secrets.token_hex(6)
        now = time.time()
        role: Role = "admin" if admin else "tenant"
        self._query(
            "INSERT INTO api_keys (id, hash, tenant, role, label, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (kid, hash_token(token), tenant, role, label, now),
        )
        return CreatedKey(key=ApiKey(id=kid, tenant=tenant, role=role, label=label, created_at=_dt(now)), token=token)

    def list(self, *, include_revoked: bool = True) -> list[ApiKey]:
        """Every key, oldest first."""
        sql = "SELECT id, tenant, role, label, created_at, revoked_at FROM api_keys"
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        return [self._row(r) for r in self._query(sql + " ORDER BY created_at, id")]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by id; it stops working on the next request. Revoking twice is harmless."""
        self._query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (time.time(), key_id))
        rows = self._query("SELECT id, tenant, role, label, created_at, revoked_at FROM api_keys WHERE id = ?", (key_id,))
        if not rows:
            raise NotFound(f"no API key {key_id!r}; `memstrata keys list` shows the ids", field="id")
        return self._row(rows[0])

    def verify(self, token: str) -> ApiKey | None:
        """The active key a token belongs to, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        rows = self._query(
            "SELECT id, tenant, role, label, created_at, revoked_at FROM api_keys WHERE hash = ? AND revoked_at IS NULL",
            (hash_token(token),),
        )
        return self._row(rows[0]) if rows else None

    def has_active_keys(self) -> bool:
        """True when at least one key is not revoked (the server then requires keys)."""
        return bool(self._query("SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1"))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresKeyStore(KeyStore):
    """The API keys in the `api_keys` table of a Postgres store's schema: every server process and machine
    on that schema accepts the same keys, and a revocation reaches them all at their next request."""

    def __init__(self, store: PostgresStore, *, owns_store: bool = False) -> None:
        self.path = f"{store.path} (schema {store.schema})"
        self._store, self._owns_store = store, owns_store

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self._store.execute(sql.replace("?", "%s"), params)

    def import_file(self, path: Path | str) -> int:
        """Copy in the keys of a SQLite key file that this schema lacks (by id, revoked ones as revoked), so
        the keys of a server that moves to store = "postgres" keep working; returns how many were new."""
        source = KeyStore(path)
        try:
            rows = source._query("SELECT id, hash, tenant, role, label, created_at, revoked_at FROM api_keys")
        finally:
            source.close()
        return sum(len(self._query(
            "INSERT INTO api_keys (id, hash, tenant, role, label, created_at, revoked_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id", row)) for row in rows)

    def close(self) -> None:
        if self._owns_store:
            self._store.close()


def open_key_store(settings: Settings, path: Path | str | None = None, store: Store | None = None) -> KeyStore:
    """The key store `settings` name: the SQLite file `path` (default `<db>.keys.db`), or with store =
    "postgres" the store's schema (through `store`'s connections when given), into which the keys of that
    file, when it exists, are copied first (`PostgresKeyStore.import_file`)."""
    file = keys_path_for(settings.db, path)
    if settings.store != "postgres":
        return KeyStore(file)
    from ..store import open_store
    from ..store.postgres import PostgresStore

    keys = (PostgresKeyStore(store) if isinstance(store, PostgresStore)
            else PostgresKeyStore(open_store(settings), owns_store=True))  # type: ignore[arg-type]
    if str(file) != ":memory:" and Path(file).is_file():
        try:
            copied = keys.import_file(file)
        except Exception:
            keys.close()
            raise
        if copied:
            log.warning("copied %d API key(s) from %s into %s: with store = postgres the keys live there",
                        copied, file, keys.path)
    return keys
