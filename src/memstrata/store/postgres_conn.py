"""One psycopg connection for the Postgres store: URL checks, the schema's search path, transactions,
reconnection after the server went away, and driver errors as `StoreError` without the password."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from ..config import redact_url
from ..errors import ConfigError, MemstrataError, StoreError

_SCHEMES = ("postgresql://", "postgres://")


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "store = 'postgres' needs the psycopg driver: pip install 'memstrata[postgres]'", field="store"
        ) from None
    return psycopg


class Connector:
    """A connection to one database and schema, opened at once and reopened when it breaks.

    Not thread-safe by itself: the store serialises calls with its lock."""

    def __init__(self, url: str, *, schema: str = "public", connect_timeout_s: int = 10) -> None:
        self._psycopg = _driver()
        if not url or not url.startswith(_SCHEMES):
            raise ConfigError(
                f"postgres_url must be a postgresql://user:password@host:port/dbname URL, got {redact_url(url or '')!r}",
                field="postgres_url",
            )
        try:
            params = self._psycopg.conninfo.conninfo_to_dict(url)
        except self._psycopg.Error as exc:
            raise ConfigError(f"postgres_url {redact_url(url)!r} is not valid: {self._clean(exc, url)}",
                              field="postgres_url") from None
        if not params.get("dbname"):
            raise ConfigError(f"postgres_url {redact_url(url)!r} names no database (…/dbname)", field="postgres_url")
        self._url = url
        self._secret = str(params.get("password") or "")
        self._timeout = None if "connect_timeout" in params else connect_timeout_s
        self.schema = schema
        #: The URL without its password.
        self.display = redact_url(url)
        self._conn: Any = None
        self._connect()

    def _clean(self, exc: BaseException, url: str | None = None) -> str:
        """The driver's message, one line, without the password."""
        text = " ".join(str(exc).split())
        if url:
            text = text.replace(url, redact_url(url))
        secret = getattr(self, "_secret", "")
        if secret:  # libpq does not print it; should any message, it goes (as a whole word only)
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
        return text

    def _connect(self) -> None:
        extra = {"connect_timeout": self._timeout} if self._timeout else {}
        try:
            self._conn = self._psycopg.connect(self._url, autocommit=True, application_name="memstrata", **extra)
        except self._psycopg.Error as exc:
            raise StoreError(f"cannot connect to the Postgres database {self.display}: {self._clean(exc)}") from None
        sql = self._psycopg.sql
        try:
            with self._conn.cursor() as cur:
                cur.execute("SET client_min_messages = warning")
                cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.schema])
                if cur.fetchone() is None:  # (a role without CREATE on the database can use an existing schema)
                    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
                cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        except self._psycopg.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot use schema {self.schema!r} of {self.display}: {self._clean(exc)}") from None

    def _ready(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._connect()
        return self._conn

    def _fail(self, exc: BaseException) -> StoreError:
        return StoreError(f"Postgres database {self.display}: {self._clean(exc)}")

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor inside one transaction: committed when the block ends, rolled back on any error."""
        conn = self._ready()
        try:
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        except MemstrataError:
            raise
        except self._psycopg.errors.UniqueViolation as exc:
            raise StoreError(f"a concurrent write conflicted ({self._clean(exc)}); retry") from None
        except self._psycopg.Error as exc:
            raise self._fail(exc) from None

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one statement run on its own (autocommit)."""
        try:
            with self._ready().cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        except self._psycopg.Error as exc:
            raise self._fail(exc) from None

    def autocommit(self, sql: str) -> None:
        """Run a statement that cannot run inside a transaction (VACUUM)."""
        try:
            self._ready().execute(sql)
        except self._psycopg.Error as exc:
            raise self._fail(exc) from None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except self._psycopg.Error:
                pass
