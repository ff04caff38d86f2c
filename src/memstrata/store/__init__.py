"""Storage backends behind one protocol (`Store`)."""

from __future__ import annotations

from typing import Callable

from ..config import Settings
from ..errors import ConfigError
from .base import Store


def open_store(settings: Settings, clock: Callable[[], float] | None = None) -> Store:
    """The store named by `settings.store`: the SQLite file at `settings.db`, or the Postgres database
    at `settings.postgres_url`; `clock` gives the epoch seconds it stamps records and history with
    (default: the wall clock)."""
    # what every backend takes: the per-process vector matrices and ANN indexes, the clock
    common = dict(
        vector_cache_mb=settings.vector_cache_mb,
        search_threads=settings.search_threads,
        ann_min_vectors=settings.ann_min_vectors,
        ann_expansion_search=settings.ann_expansion_search,
        ann_cache_mb=settings.ann_cache_mb,
        clock=clock,
    )
    if settings.store == "postgres":
        if not settings.postgres_url:
            raise ConfigError(
                "store = 'postgres' needs postgres_url (env MEMSTRATA_POSTGRES_URL), "
                "e.g. postgresql://user:password@host:5432/dbname",
                field="postgres_url",
            )
        from .postgres import PostgresStore

        return PostgresStore(settings.postgres_url, schema=settings.postgres_schema, **common)
    from .sqlite import SQLiteStore

    return SQLiteStore(
        settings.db, synchronous=settings.sqlite_synchronous, busy_timeout_ms=settings.busy_timeout_ms, **common
    )

__all__ = ["Store", "open_store"]
