"""memstrata: layered long-term memory for LLM agents, embedded and offline by default."""

from __future__ import annotations

from .config import Settings
from .errors import (
    ContentTooLarge,
    EmptyContent,
    InvalidInput,
    InvalidTimestamp,
    MemstrataError,
    NotFound,
    SchemaTooNew,
    ScopeRequired,
    StoreCorrupt,
    StoreError,
)
from .memory import AsyncMemory, Memory
from .model import ContextBlock, Episode, HistoryEvent, Note, ProfileFact, Record, Scope, SearchHit, Topic

__version__ = "0.1.0"

__all__ = [
    "AsyncMemory", "ContentTooLarge", "ContextBlock", "EmptyContent", "Episode", "HistoryEvent", "InvalidInput",
    "InvalidTimestamp", "Memory", "MemstrataError", "NotFound", "Note", "ProfileFact", "Record", "SchemaTooNew",
    "Scope", "ScopeRequired", "SearchHit", "Settings", "StoreCorrupt", "StoreError", "Topic", "__version__",
]
