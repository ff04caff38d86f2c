"""Storage backends behind one protocol (`Store`)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Callable

from ..config import Settings, redact_url
from ..errors import ConfigError
from .base import Store


def ann_dir(settings: Settings) -> Path | None:
    """Where the store saves its HNSW indexes (`Settings.ann_dir`), or None: not saved."""
    if not settings.ann_dir or settings.ann_disk_mb <= 0:
        return None
    sqlite = settings.store == "sqlite"
    if settings.ann_dir == "auto":  # off for Postgres: a delete made on another machine cannot reach these files
        return Path(f"{settings.db.expanduser()}.ann") if sqlite and str(settings.db) != ":memory:" else None
    # a directory given holds one subdirectory per database, so two databases never take each other's files
    database = (str(settings.db.expanduser().resolve()) if sqlite
                else f"{redact_url(settings.postgres_url or '')}#{settings.postgres_schema}")
    return Path(settings.ann_dir).expanduser() / hashlib.blake2b(database.encode(), digest_size=8).hexdigest()


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
        ann_dir=ann_dir(settings),
        ann_disk_mb=settings.ann_disk_mb,
        clock=clock,
    )
    if settings.store == "postgres":
        from .postgres import PostgresStore

        return PostgresStore(_postgres_url(settings), schema=settings.postgres_schema,
                             pool_min=settings.postgres_pool_min, pool_max=settings.postgres_pool_max, **common)
    from .sqlite import SQLiteStore

    return SQLiteStore(
        settings.db, synchronous=settings.sqlite_synchronous, busy_timeout_ms=settings.busy_timeout_ms, **common
    )


def _postgres_url(settings: Settings) -> str:
    if not settings.postgres_url:
        raise ConfigError(
            "store = 'postgres' needs postgres_url (env MEMSTRATA_POSTGRES_URL), "
            "e.g. postgresql://user:password@host:5432/dbname",
            field="postgres_url",
        )
    return settings.postgres_url


def drop_database(settings: Settings) -> None:
    """Remove the whole store `settings` names, where it exists: the SQLite file with its -wal and -shm
    files, or the Postgres schema with everything in it; and its saved HNSW indexes. Nothing asks first
    (benchmarks use it to start from empty)."""
    if settings.store == "postgres":
        from .postgres_conn import Connector

        connector = Connector(_postgres_url(settings), schema=settings.postgres_schema, pool_min=0, pool_max=1)
        try:
            connector.drop_schema()
        finally:
            connector.close()
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{settings.db}{suffix}").unlink(missing_ok=True)
    saved = ann_dir(settings)
    if saved is not None:
        shutil.rmtree(saved, ignore_errors=True)


__all__ = ["Store", "ann_dir", "drop_database", "open_store"]
