"""Exact (brute-force) vector scan over one scope's vectors, vectorised with numpy.

A backend loads a scope's vectors once into a `ScopeMatrix`, keeps it in a
`MatrixCache` keyed by scope and a version stamp, and filters with boolean
masks. Cost per query is one matrix-vector product: about 1 ms per 100k
vectors of dimension 384 on one core.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Hashable, Iterator

import numpy as np
from threadpoolctl import ThreadpoolController

#: Status codes in `ScopeMatrix.status`.
ACTIVE, SUPERSEDED, ARCHIVED = 0, 1, 2
STATUS_CODES = {"active": ACTIVE, "superseded": SUPERSEDED, "archived": ARCHIVED}


_controller: ThreadpoolController | None = None


@contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """Run the block with at most `threads` BLAS threads (None: the library's default).

    On a busy 2-core machine a second BLAS thread spins against other work and made one
    matrix-vector product 25x slower; one thread is the safe default.
    """
    global _controller
    if threads is None:
        yield
        return
    if _controller is None:
        _controller = ThreadpoolController()
    with _controller.limit(limits=threads, user_api="blas"):
        yield


@dataclass
class ScopeMatrix:
    """Vectors of one scope and the per-row fields filters need."""

    rids: np.ndarray  # int64 row ids
    ids: list[str]
    matrix: np.ndarray  # float32 (n, dim), rows L2-normalised
    session: np.ndarray  # object array of session ids (None allowed)
    event_time: np.ndarray  # float64 epoch seconds
    layer: np.ndarray  # int8
    status: np.ndarray  # int8: STATUS_CODES
    valid_from: np.ndarray  # float64 epoch seconds (event_time when the record has no valid_from)
    valid_to: np.ndarray  # float64 epoch seconds (+inf when open)
    kind: np.ndarray | None = None  # object array of kinds

    @property
    def active(self) -> np.ndarray:
        return self.status == ACTIVE

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes + self.rids.nbytes + 3 * self.event_time.nbytes + 72 * len(self.ids))

    def search(
        self,
        query: np.ndarray,
        limit: int,
        *,
        session_id: str | None = None,
        time_from: float | None = None,
        time_to: float | None = None,
        layers: list[int] | None = None,
        include_inactive: bool = False,
        allowed_rids: np.ndarray | None = None,
        as_of: float | None = None,
        include_archived: bool = False,
        kinds: list[str] | None = None,
        threads: int | None = 1,
    ) -> list[tuple[str, float]]:
        """Top `limit` rows by dot product among rows passing every filter."""
        n = len(self.ids)
        if n == 0 or limit <= 0:
            return []
        mask = np.ones(n, dtype=bool)
        if session_id is not None:
            mask &= self.session == session_id
        if time_from is not None:
            mask &= self.event_time >= time_from
        if time_to is not None:
            mask &= self.event_time <= time_to
        if layers is not None:
            mask &= np.isin(self.layer, np.asarray(layers, dtype=np.int8))
        if not include_inactive:
            allowed = [ACTIVE, SUPERSEDED] if as_of is not None else [ACTIVE]
            mask &= np.isin(self.status, allowed + ([ARCHIVED] if include_archived else []))
        if as_of is not None:
            mask &= (self.valid_from <= as_of) & (as_of < self.valid_to)
            mask &= ~((self.status == SUPERSEDED) & np.isinf(self.valid_to))
        if kinds is not None and self.kind is not None:
            mask &= np.isin(self.kind, np.asarray(kinds, dtype=object))
        if allowed_rids is not None:
            mask &= np.isin(self.rids, allowed_rids)
        allowed = int(mask.sum())
        if allowed == 0:
            return []
        # Score every row (one matrix-vector product) and drop the filtered ones afterwards:
        # cheaper than gathering the allowed rows into a copy of the matrix.
        with blas_threads(threads):
            scores = self.matrix @ query
        if allowed < n:
            scores = np.where(mask, scores, -np.inf)
        k = min(limit, allowed)
        top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.argsort(-scores[top], kind="stable")][:k]
        return [(self.ids[r], float(scores[r])) for r in top]


class MatrixCache:
    """LRU of `ScopeMatrix` by key, bounded in bytes; an entry is valid for one version stamp."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[Hashable, ScopeMatrix]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, version: Hashable) -> ScopeMatrix | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: Hashable, version: Hashable, matrix: ScopeMatrix) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1].nbytes
            if matrix.nbytes > self.max_bytes:
                return
            self._entries[key] = (version, matrix)
            self._bytes += matrix.nbytes
            while self._bytes > self.max_bytes and self._entries:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
