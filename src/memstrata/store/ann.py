"""Approximate nearest-neighbour search (HNSW, usearch) for large scopes, beside the exact scan.

An index is derived, never the truth: it mirrors one `ScopeMatrix` (the store's cached copy of a
scope's vectors) and is used for a search only while it mirrors exactly the matrix that search
loaded. When the matrix changes (any write to the scope loads a new one), a background thread
brings the index up to date: rows gone or whose vector changed are removed, new rows added, and
the whole graph rebuilt when removals pile up. Until then, and whenever a filter would starve the
index, the exact scan answers, so a search never waits for an index and never loses results to it.
Indexes live in memory only (an LRU bounded in bytes); a restart rebuilds them.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections import Counter
from typing import Hashable

import numpy as np
from usearch.index import Index

from .exact import MatrixCache, ScopeMatrix

#: HNSW graph degree and build-time beam. Tried ad hoc on 100k of the scale benchmark's vectors: a beam
#: of 64 built in half the time of usearch's default 128, for recall@10 0.984 instead of 0.987 at ef 128.
CONNECTIVITY = 16
EXPANSION_ADD = 64
#: Candidates asked of the index: at least this many, and `OVERFETCH` x limit / share of rows admitted.
MIN_FETCH = 64
OVERFETCH = 4
#: Below this share of the scope's rows admitted by the filters, the exact scan over those rows is cheaper.
SMALL_SHARE = 0.10
#: Rebuild the graph from scratch when rows removed since the last build exceed this share of it.
REBUILD_SHARE = 0.25
#: Rows per `Index.add` call (a closing store stops a build between calls).
ADD_CHUNK = 16384
#: Seconds a search waits for an index another thread is updating before it scans exactly instead.
LOCK_WAIT = 0.5

_FINGERPRINT_SEED = 0x6D656D73


def fingerprints(matrix: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """One uint64 per row, a function of the row's exact bytes (a changed vector changes it)."""
    n, dim = matrix.shape
    out = np.empty(n, dtype=np.uint64)
    if n == 0:
        return out
    weights = np.random.default_rng(_FINGERPRINT_SEED).integers(1, 2**63, size=dim, dtype=np.uint64) | np.uint64(1)
    bits = np.ascontiguousarray(matrix, dtype=np.float32).view(np.uint32)
    for lo in range(0, n, chunk):
        out[lo : lo + chunk] = (bits[lo : lo + chunk].astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    return out


class AnnIndex:
    """An HNSW index (inner product on the L2-normalised float32 rows) of one scope, keyed by row id."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.lock = threading.Lock()
        self._index: Index | None = None
        self._rids = np.zeros(0, dtype=np.int64)  # sorted row ids in the index
        self._prints = np.zeros(0, dtype=np.uint64)  # their fingerprints
        self._removed = 0  # rows removed since the last full build (tombstones in the graph)
        self._source: weakref.ref[ScopeMatrix] | None = None
        #: Seconds of the last full build and of the last sync (build or update); counts of each.
        self.build_seconds: float | None = None
        self.sync_seconds: float | None = None
        self.builds = 0
        self.updates = 0

    def __len__(self) -> int:
        return len(self._rids)

    @property
    def nbytes(self) -> int:
        graph = self._index.memory_usage if self._index is not None else 0
        return int(graph + self._rids.nbytes + self._prints.nbytes)

    def mirrors(self, entry: ScopeMatrix) -> bool:
        """True when the index holds exactly the rows and vectors of `entry`."""
        return self._source is not None and self._source() is entry

    def sync(self, entry: ScopeMatrix, threads: int, stop: threading.Event) -> None:
        """Bring the index to `entry`'s rows: update in place, or rebuild when that is cheaper or due."""
        t0 = time.perf_counter()
        prints = fingerprints(entry.matrix)
        if self._index is None or entry.matrix.shape[1] != self.dim:
            self._build(entry, prints, threads, stop)
        else:
            common, old_at, new_at = np.intersect1d(self._rids, entry.rids, assume_unique=True, return_indices=True)
            changed = common[self._prints[old_at] != prints[new_at]]
            gone = np.union1d(np.setdiff1d(self._rids, entry.rids, assume_unique=True), changed)
            fresh = np.union1d(np.setdiff1d(entry.rids, self._rids, assume_unique=True), changed)
            if self._removed + len(gone) > REBUILD_SHARE * max(1, len(entry.rids)) or len(fresh) > len(common):
                self._build(entry, prints, threads, stop)
            else:
                with self.lock:
                    self._source = None  # mirrors nothing until the update is complete
                    if len(gone):
                        self._index.remove(gone.astype(np.uint64), threads=threads)
                    rows = np.searchsorted(entry.rids, fresh)
                    self._add(self._index, fresh, entry.matrix[rows], threads, stop)
                    self._removed += len(gone)
                    self._rids, self._prints = entry.rids.copy(), prints
                    self._source = weakref.ref(entry)
                self.updates += 1
        self.sync_seconds = time.perf_counter() - t0

    def _build(self, entry: ScopeMatrix, prints: np.ndarray, threads: int, stop: threading.Event) -> None:
        """A new graph over every row of `entry`, built outside the lock and swapped in."""
        t0 = time.perf_counter()
        dim = entry.matrix.shape[1]
        index = Index(ndim=dim, metric="ip", dtype="f32", connectivity=CONNECTIVITY,
                      expansion_add=EXPANSION_ADD)
        self._add(index, entry.rids, entry.matrix, threads, stop)
        with self.lock:
            self._index, self.dim = index, dim
            self._rids, self._prints, self._removed = entry.rids.copy(), prints, 0
            self._source = weakref.ref(entry)
        self.build_seconds = time.perf_counter() - t0
        self.builds += 1

    @staticmethod
    def _add(index: Index, rids: np.ndarray, vectors: np.ndarray, threads: int, stop: threading.Event) -> None:
        for lo in range(0, len(rids), ADD_CHUNK):
            if stop.is_set():
                raise InterruptedError("store closed")
            index.add(rids[lo : lo + ADD_CHUNK].astype(np.uint64), vectors[lo : lo + ADD_CHUNK], threads=threads)

    def search(self, query: np.ndarray, count: int, expansion: int, threads: int) -> np.ndarray:
        """Row ids of (about) the `count` nearest rows, nearest first, with a beam of `expansion`
        (at least `count`). Call holding `lock`."""
        assert self._index is not None
        self._index.expansion_search = max(expansion, count)
        matches = self._index.search(query, min(count, len(self._rids)), threads=threads)
        return np.asarray(matches.keys, dtype=np.int64)


class AnnIndexes:
    """The ANN indexes of one store, by scope key: kept in sync by a background thread, used once current."""

    def __init__(self, *, min_vectors: int, expansion_search: int, max_bytes: int, threads: int | None) -> None:
        self.min_vectors = min_vectors
        #: HNSW search beam (ef); read at every search, so it may be changed at any time.
        self.expansion_search = expansion_search
        self.threads = max(1, threads or 1)  # usearch's threads
        self._blas = threads  # BLAS threads of the exact scoring (None: the library's default)
        self._cache: MatrixCache[AnnIndex] = MatrixCache(max_bytes)
        self._pending: dict[Hashable, ScopeMatrix] = {}
        self._busy: Hashable | None = None
        self._skip: dict[Hashable, int] = {}  # key -> row count whose index did not fit or failed to build
        #: The last error a sync raised (that scope is then searched exactly until it shrinks or `clear()`).
        self.last_error: str | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        #: How searches were answered: ann, ann_fallback (the filters starved it), exact_filtered
        #: (few rows admitted), exact_unready (index not built or behind), exact_small (scope below the threshold).
        self.paths: Counter[str] = Counter()
        self._paths_lock = threading.Lock()

    def _count(self, path: str) -> None:
        with self._paths_lock:
            self.paths[path] += 1

    def search(
        self, key: Hashable, entry: ScopeMatrix, query: np.ndarray, mask: np.ndarray, limit: int
    ) -> list[tuple[str, float]] | None:
        """Top `limit` (id, dot product) among the rows `mask` admits, best first; None: scan exactly instead."""
        n = len(entry.ids)
        if n < self.min_vectors or limit <= 0:
            self._count("exact_small")
            return None
        allowed = int(np.count_nonzero(mask))
        if allowed == 0:
            return []
        if allowed < SMALL_SHARE * n:
            self._count("exact_filtered")
            return entry.rank(query, np.flatnonzero(mask), limit, threads=self._blas)
        index = self._cache.get(key, None)
        if index is None or not index.mirrors(entry):
            self._schedule(key, entry)
            self._count("exact_unready")
            return None
        fetch = max(MIN_FETCH, math.ceil(OVERFETCH * limit * n / allowed))
        if not index.lock.acquire(timeout=LOCK_WAIT):
            self._count("exact_unready")
            return None
        try:
            if not index.mirrors(entry):
                self._count("exact_unready")
                return None
            found = index.search(query, fetch, self.expansion_search, self.threads)
        finally:
            index.lock.release()
        rows = np.searchsorted(entry.rids, found)
        rows = rows[(rows < n) & (entry.rids[np.minimum(rows, n - 1)] == found)]
        rows = rows[mask[rows]]
        if len(rows) < min(limit, allowed):
            self._count("ann_fallback")
            return entry.top(query, mask, limit, threads=self._blas, allowed=allowed)
        self._count("ann")
        return entry.rank(query, rows, limit, threads=self._blas)

    # ---------------------------------------------------------------- background sync

    def _schedule(self, key: Hashable, entry: ScopeMatrix) -> None:
        dim = entry.matrix.shape[1] if entry.matrix.ndim == 2 else 0
        if self._skip.get(key, math.inf) <= len(entry.ids) or self._estimate(len(entry.ids), dim) > self._cache.max_bytes:
            return
        with self._cond:
            if self._stop.is_set() or self._pending.get(key) is entry:
                return
            self._pending[key] = entry
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="memstrata-ann", daemon=True)
                self._worker.start()
            self._cond.notify_all()

    @staticmethod
    def _estimate(rows: int, dim: int) -> int:
        """Bytes an index of `rows` x `dim` may take (vectors, growth slack and graph)."""
        return int(rows * (dim * 4 * 2 + CONNECTIVITY * 2 * 8))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
                key, entry = next(iter(self._pending.items()))
                del self._pending[key]
                self._busy = key
            try:
                index = self._cache.get(key, None) or AnnIndex(entry.matrix.shape[1])
                if not index.mirrors(entry):
                    index.sync(entry, self.threads, self._stop)
                self._cache.put(key, None, index)
                if self._cache.get(key, None) is not index:
                    self._skip[key] = len(entry.ids)
            except InterruptedError:
                return
            except Exception as exc:  # noqa: BLE001 - an index is an accelerator: the exact scan still answers
                self._skip[key] = len(entry.ids)
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._count("sync_error")
            finally:
                with self._cond:
                    self._busy = None
                    self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every scheduled sync is done (True) or `timeout` seconds passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy is not None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stats(self) -> list[dict]:
        """Per index: key, rows, bytes, seconds of the last full build and of the last sync, counts."""
        return [
            {"key": key, "rows": len(ix), "nbytes": ix.nbytes, "build_seconds": ix.build_seconds,
             "sync_seconds": ix.sync_seconds, "builds": ix.builds, "updates": ix.updates}
            for key, ix in self._cache.items()
        ]

    def clear(self) -> None:
        """Forget every index (they are rebuilt on demand)."""
        with self._cond:
            self._pending.clear()
            self._skip.clear()
        self._cache.clear()

    def close(self) -> None:
        """Stop the background thread (a build in progress stops at its next chunk)."""
        with self._cond:
            self._stop.set()
            self._pending.clear()
            self._cond.notify_all()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=5)
        self._cache.clear()


def ann_indexes(min_vectors: int, expansion_search: int, cache_mb: int, threads: int | None) -> AnnIndexes | None:
    """The ANN indexes a store keeps, or None when the settings turn them off (`min_vectors` <= 0 or no memory)."""
    if min_vectors <= 0 or cache_mb <= 0:
        return None
    return AnnIndexes(min_vectors=min_vectors, expansion_search=expansion_search, max_bytes=cache_mb * 1024 * 1024,
                      threads=threads)
