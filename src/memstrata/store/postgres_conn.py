"""A pool of psycopg connections for the Postgres store: URL checks, the schema's search path on every
connection, transactions run again after a deadlock or serialization failure, reconnection after the
server went away, and driver errors as `StoreError` without the password."""

from __future__ import annotations

import functools
import logging
import random
import re
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Concatenate, Iterator, ParamSpec, Sequence, TypeVar

from ..config import redact_url
from ..errors import ConfigError, MemstrataError, StoreError

_SCHEMES = ("postgresql://", "postgres://")
#: SQLSTATEs after which a transaction is run again: deadlock_detected, serialization_failure.
RETRY_SQLSTATES = frozenset({"40P01", "40001"})
#: Runs after the first one, and the wait before the first of them (seconds; doubled each time, jittered).
RETRIES, RETRY_DELAY_S = 4, 0.05
#: Largest `postgres_pool_max` (the server's own `max_connections` is 100 by default).
POOL_MAX_LIMIT = 100

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")
S = TypeVar("S")


class TransactionConflict(StoreError):
    """A transaction lost a deadlock or a serialization conflict to a concurrent one (SQLSTATE 40P01 / 40001)."""


def _driver() -> tuple[Any, Any]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise ConfigError(
            f"store = 'postgres' needs {exc.name}: pip install 'memstrata[postgres]'", field="store"
        ) from None
    return psycopg, psycopg_pool


class Connector:
    """A pool of connections to one database and schema (thread-safe).

    A thread's transaction holds one pooled connection; whatever that thread runs before the transaction
    ends runs on it (so it sees the transaction's writes). Other statements take any free connection.
    """

    def __init__(
        self, url: str, *, schema: str = "public", connect_timeout_s: int = 10, pool_min: int = 1, pool_max: int = 8
    ) -> None:
        self._psycopg, pool = _driver()
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
        if not (1 <= pool_max <= POOL_MAX_LIMIT and 0 <= pool_min <= pool_max):
            raise ConfigError(
                f"postgres_pool_max must be 1-{POOL_MAX_LIMIT} and postgres_pool_min 0-postgres_pool_max, "
                f"got min {pool_min}, max {pool_max}",
                field="postgres_pool_max",
            )
        self._url = url
        self._secret = str(params.get("password") or "")
        self._kwargs: dict[str, Any] = {"autocommit": True}
        defaults = {"application_name": "memstrata", "connect_timeout": connect_timeout_s}
        self._kwargs.update({k: v for k, v in defaults.items() if k not in params})  # the URL's win
        #: How long a call waits for a free connection: the connect timeout (libpq's 0, no limit, is not one).
        self._wait_s = float(params.get("connect_timeout") or 0) or float(connect_timeout_s)
        self.schema = schema
        #: The URL without its password.
        self.display = redact_url(url)
        self._local = threading.local()
        self._open().close()  # a clear error now (the server's reason), and the schema exists from here on
        self._pool_errors = pool
        self._pool = pool.ConnectionPool(
            url, kwargs=self._kwargs, min_size=pool_min, max_size=pool_max, configure=self._configure,
            timeout=self._wait_s, reconnect_timeout=max(self._wait_s, 1.0), name="memstrata", open=False,
        )
        self._pool.open()

    # ------------------------------------------------------------------ connections

    def _clean(self, exc: BaseException, url: str | None = None) -> str:
        """The driver's message, one line, without the password."""
        text = " ".join(str(exc).split())
        if url:
            text = text.replace(url, redact_url(url))
        secret = getattr(self, "_secret", "")
        if secret:  # libpq does not print it; should any message, it goes (as a whole word only)
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
        return text

    def _configure(self, conn: Any) -> None:
        """Every new connection: quiet notices, the store's schema first on the search path."""
        conn.execute("SET client_min_messages = warning")
        conn.execute(self._psycopg.sql.SQL("SET search_path TO {}").format(self._psycopg.sql.Identifier(self.schema)))

    def _open(self) -> Any:
        """A connection outside the pool, the schema created when missing; `StoreError` with the server's reason."""
        try:
            conn = self._psycopg.connect(self._url, **self._kwargs)
        except self._psycopg.Error as exc:
            raise StoreError(f"cannot connect to the Postgres database {self.display}: {self._clean(exc)}") from None
        sql = self._psycopg.sql
        try:
            if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.schema]).fetchone() is None:
                # (a role without CREATE on the database can use an existing schema)
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            self._configure(conn)
        except self._psycopg.Error as exc:
            conn.close()
            raise StoreError(f"cannot use schema {self.schema!r} of {self.display}: {self._clean(exc)}") from None
        return conn

    def _unavailable(self) -> StoreError:
        """Why no pooled connection came in time: the server's reason when it refuses a new one, else a full pool."""
        try:
            self._open().close()
        except StoreError as exc:
            return exc
        return StoreError(
            f"no connection to the Postgres database {self.display} came free within {self._wait_s:g} s: all "
            f"{self._pool.max_size} of this process's are busy (raise postgres_pool_max) or being reopened"
        )

    @property
    def in_transaction(self) -> bool:
        """Whether the calling thread is inside a transaction of this connector."""
        return getattr(self._local, "conn", None) is not None

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """The calling thread's connection: its transaction's, else one taken from the pool for the block."""
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        try:
            conn = self._pool.getconn()
        except self._pool_errors.PoolTimeout:
            raise self._unavailable() from None
        except self._pool_errors.PoolClosed:
            raise StoreError(f"the store on {self.display} is closed; open a new one") from None
        self._local.conn = conn
        try:
            yield conn
        finally:
            self._local.conn = None
            broken = conn.broken
            self._pool.putconn(conn)  # a broken one is replaced by a new one
            if broken:  # the server went away: its other idle connections are gone too
                self._pool.check()

    # ------------------------------------------------------------------ errors and retries

    def _fail(self, exc: BaseException) -> StoreError:
        text = self._clean(exc)
        if getattr(exc, "sqlstate", None) in RETRY_SQLSTATES:
            return TransactionConflict(f"Postgres database {self.display}: a concurrent transaction won ({text})")
        if isinstance(exc, self._psycopg.errors.UniqueViolation):
            return StoreError(f"a concurrent write conflicted ({text}); retry")
        return StoreError(f"Postgres database {self.display}: {text}")

    def retrying(self, run: Callable[[], T]) -> T:
        """`run()`, run again (at most RETRIES times, after a jittered, doubling wait) while it raises
        `TransactionConflict`: for a call whose whole effect is one transaction. Inside another transaction
        (which the conflict aborted) it is not run again."""
        for attempt in range(RETRIES + 1):
            try:
                return run()
            except TransactionConflict as exc:
                if self.in_transaction:
                    raise
                if attempt == RETRIES:
                    raise TransactionConflict(f"{exc.message}; gave up after {attempt + 1} attempts") from None
                delay = RETRY_DELAY_S * 2**attempt * random.uniform(0.5, 1.5)
                log.warning("transaction conflict, running it again in %.0f ms: %s", delay * 1000, exc.message)
                time.sleep(delay)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ statements

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor inside one transaction: committed when the block ends, rolled back on any error."""
        try:
            with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield cur
        except MemstrataError:
            raise
        except self._psycopg.Error as exc:
            raise self._fail(exc) from None

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one statement (none for a statement that returns none), run on its own (autocommit)
        unless the thread is in a transaction; run again after a conflict."""

        def run() -> list[tuple]:
            try:
                with self._connection() as conn, conn.cursor() as cur:
                    cur.execute(sql, params)
                    return cur.fetchall() if cur.description else []
            except self._psycopg.Error as exc:
                raise self._fail(exc) from None

        return self.retrying(run)

    def autocommit(self, sql: Any) -> None:
        """Run a statement (a string or a `psycopg.sql.Composed`) that cannot run inside a transaction (VACUUM)."""
        try:
            with self._connection() as conn:
                conn.execute(sql)
        except self._psycopg.Error as exc:
            raise self._fail(exc) from None

    def drop_schema(self) -> None:
        """Drop the connector's schema and everything in it."""
        sql = self._psycopg.sql
        self.autocommit(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))

    def close(self) -> None:
        self._pool.close()


def replayable(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """Run a store method again after a transaction conflict (`Connector.retrying` on `self._db`). Only for
    methods whose whole effect is one transaction: a replay must be the same call made a moment later."""

    @functools.wraps(method)
    def run(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._db.retrying(lambda: method(self, *args, **kwargs))  # type: ignore[attr-defined]

    return run
