"""The storage protocol. Every backend (SQLite, Postgres) implements exactly this.

Ranking code above the store sees records and scores, never SQL. Every method
that reads or writes memories takes a `Scope` and enforces it itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping, Protocol, Sequence

import numpy as np

from ..model import HistoryEvent, Page, Record, Scope, SearchFilters, SlotState

#: (record id, score) pairs, best first.
Scored = list[tuple[str, float]]


class Store(Protocol):
    """Durable storage of records, their vectors, lexical index, sources, links and history."""

    def put(
        self,
        records: Sequence[Record],
        vectors: np.ndarray | None = None,
        model: str | None = None,
        *,
        merges: Mapping[str, Sequence[str]] | None = None,
        supersede: Mapping[str, tuple[datetime, str]] | None = None,
        actor: str = "api",
    ) -> dict[str, str]:
        """In one transaction: insert records (one vector each), add `merges` (record id -> new source ids),
        close `supersede` (record id -> (valid_to, replacing id)).

        A derived record whose `dedup_key` an active record of the same owner already has (another writer
        got there first) is merged into it instead of inserted; returns {new id: existing id} for those."""

    def slot_timelines(self, scope: Scope, slots: Sequence[str]) -> dict[str, list[SlotState]]:
        """Each slot's states in the scope's user/agent (the active record and the superseded ones that
        have a `valid_to`; not records merged into others), oldest first."""

    def find_by_keys(self, scope: Scope, keys: Sequence[str]) -> dict[str, str]:
        """Active records of the scope's user/agent whose dedup_key is in `keys`: key -> id."""

    def speakers(self, scope: Scope, limit: int = 50) -> list[str]:
        """Speakers of the scope's episodes, most frequent first."""

    def get(self, ids: Sequence[str], scope: Scope) -> list[Record]:
        """Records with these ids inside `scope`, in the order asked; missing ids are left out."""

    def list(
        self, scope: Scope, filters: SearchFilters | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> Page:
        """Records in `scope`, oldest first, one page at a time."""

    def update(
        self,
        record_id: str,
        scope: Scope,
        *,
        content: str | None = None,
        metadata: dict | None = None,
        vector: np.ndarray | None = None,
        model: str | None = None,
        actor: str = "api",
    ) -> Record:
        """Change a record's content and/or metadata (and vector), keeping the old text in history."""

    def delete(self, ids: Sequence[str], scope: Scope) -> int:
        """Erase records from every table and index; returns how many were deleted."""

    def detach(self, source_id: str, scope: Scope) -> int:
        """Remove `source_id` from every record's sources; derived records left with none are deleted."""

    def delete_scope(self, scope: Scope) -> int:
        """Erase every record in `scope`; returns how many were deleted."""

    def history(self, record_id: str, scope: Scope) -> list[HistoryEvent]:
        """The change events of one record, oldest first."""

    def lexical_search(self, terms: Sequence[str], scope: Scope, filters: SearchFilters, limit: int) -> Scored:
        """BM25 over content, speaker, keywords and entities; any term may match."""

    def vector_search(
        self, vector: np.ndarray, model: str, scope: Scope, filters: SearchFilters, limit: int
    ) -> Scored:
        """Cosine similarity (vectors are normalised) against records embedded with `model`."""

    def vectors(self, ids: Sequence[str], model: str, scope: Scope) -> dict[str, np.ndarray]:
        """Stored vectors (under `model`) of records in `scope`, by id."""

    def put_links(self, links: Sequence[tuple[str, str, str, float]]) -> int:
        """Add or reweight (src id, dst id, kind, weight) links; returns how many rows changed."""

    def delete_links(self, src_ids: Sequence[str], kind: str, keep: Sequence[tuple[str, str]] = ()) -> int:
        """Delete `kind` links leaving `src_ids`, except the (src, dst) pairs in `keep`."""

    def neighbours(
        self, ids: Sequence[str], scope: Scope, kinds: Sequence[str] | None = None
    ) -> list[tuple[str, str, str, float]]:
        """Links leaving `ids` to records in `scope`: (src id, dst id, kind, weight)."""

    def adjacent(self, ids: Sequence[str], scope: Scope, width: int = 1) -> dict[str, list[str]]:
        """For each given episode, the episodes next to it in its session (up to `width` turns on
        each side, in event-time order), nearest first."""

    def organise_state(self, scope: Scope, step: str) -> str | None:
        """What an organise step recorded for the scope's user/agent last time (None: nothing yet)."""

    def set_organise_state(self, scope: Scope, step: str, value: str) -> None:
        """Record where an organise step got to for the scope's user/agent."""

    def scopes(self) -> list[Scope]:
        """Every (user_id, agent_id) pair that has records."""

    def embedding_cache_get(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors for text hashes under `model`."""

    def embedding_cache_put(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Remember vectors for text hashes under `model`."""

    def stats(self, scope: Scope | None = None) -> dict:
        """Counts per layer and status, sizes; for one scope or the whole store."""

    def integrity_check(self) -> list[str]:
        """Problems found by the backend's own consistency check; empty when healthy."""

    def reset(self) -> None:
        """Erase everything (all scopes). Schema stays."""

    def close(self) -> None:
        """Release connections and files."""

    # ---- lifecycle (issue 5)

    def touch(self, strengths: Mapping[str, float], scope: Scope, at: float) -> int:
        """Mark records as retrieved at `at` (epoch seconds) with these new strengths, in one statement."""

    def set_status(
        self,
        ids: Sequence[str],
        scope: Scope,
        status: str,
        *,
        at: float,
        event: str,
        from_status: Sequence[str] = ("active",),
        strength: float | None = None,
        actor: str = "api",
        detail: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Archive, restore, expire: move records from `from_status` to `status` with a history event."""

    def set_pinned(self, ids: Sequence[str], scope: Scope, pinned: bool, *, at: float, actor: str = "api") -> list[str]:
        """Pin (never fades) or unpin records; returns the ids that changed."""

    def merge_records(self, keep_id: str, drop_id: str, scope: Scope, *, at: float, actor: str = "organise") -> bool:
        """Fold a near-duplicate into the record kept (sources unioned; the other closed, its history kept)."""

    def derived_from(self, source_ids: Sequence[str], scope: Scope) -> list[str]:
        """Ids of records that name any of `source_ids` among their sources."""

    def outdated_sources(self, source_ids: Sequence[str], scope: Scope, at: float) -> set[str]:
        """Those of `source_ids` that notes (L1, questions aside) were drawn from and whose every such note
        had closed by `at` (`valid_to <= at`): what they said no longer holds."""

    def rederive(
        self,
        record_id: str,
        scope: Scope,
        *,
        content: str,
        metadata: dict,
        event_time: datetime,
        valid_from: datetime | None,
        vector: np.ndarray | None,
        model: str | None,
        at: float,
        detail: Mapping[str, Any] | None = None,
        actor: str = "api",
        session_id: str | None = None,
    ) -> bool:
        """Rewrite a derived record from its remaining sources, keeping no trace of the old text."""

    def put_history(self, events: Sequence[HistoryEvent]) -> int:
        """Replace the history of the records the events name with exactly these events (import)."""

    def missing_vectors(self, model: str, limit: int, scope: Scope | None = None) -> list[tuple[str, str]]:
        """(id, text to embed) of records without a vector under `model`."""

    def put_vectors(self, items: Sequence[tuple[str, np.ndarray]], model: str) -> int:
        """Store (id, vector) pairs under `model`."""

    def vector_models(self) -> dict[str, int]:
        """How many records have a vector under each model."""

    def vacuum(self) -> None:
        """Make erased bytes unrecoverable from the backend's files (compact, drop free pages)."""

    def analyze(self) -> None:
        """Refresh the query planner's statistics, after a bulk load (an import) changed the tables at once."""
