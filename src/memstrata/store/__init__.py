"""Storage backends behind one protocol (`Store`)."""

from __future__ import annotations

from ..config import Settings
from .base import Store


def open_store(settings: Settings) -> Store:
    """The store named by `settings.store`, opened at `settings.db`."""
    from .sqlite import SQLiteStore

    return SQLiteStore(
        settings.db,
        synchronous=settings.sqlite_synchronous,
        busy_timeout_ms=settings.busy_timeout_ms,
        vector_cache_mb=settings.vector_cache_mb,
        search_threads=settings.search_threads,
    )


__all__ = ["Store", "open_store"]
