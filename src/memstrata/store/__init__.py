"""Storage backends behind one protocol (`Store`)."""

from __future__ import annotations

from typing import Callable

from ..config import Settings
from .base import Store


def open_store(settings: Settings, clock: Callable[[], float] | None = None) -> Store:
    """The store named by `settings.store`, opened at `settings.db`; `clock` gives the epoch seconds
    it stamps records and history with (default: the wall clock)."""
    from .sqlite import SQLiteStore

    return SQLiteStore(
        settings.db,
        synchronous=settings.sqlite_synchronous,
        busy_timeout_ms=settings.busy_timeout_ms,
        vector_cache_mb=settings.vector_cache_mb,
        search_threads=settings.search_threads,
        clock=clock,
    )


__all__ = ["Store", "open_store"]
