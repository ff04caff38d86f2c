"""Approximate nearest-neighbour search (HNSW, usearch) for large scopes, beside the exact scan.

An index is derived, never the truth: it mirrors one `ScopeMatrix` (the store's cached copy of a
scope's vectors) and is used for a search only while it mirrors exactly the matrix that search
loaded. When the matrix changes (any write to the scope loads a new one), a background thread
brings the index up to date: rows gone or whose vector changed are removed, new rows added, and
the whole graph rebuilt when removals pile up. Until then, and whenever a filter would starve the
index, the exact scan answers, so a search never waits for an index and never loses results to it.

Indexes live in memory (an LRU bounded in bytes) and, with a directory set (`AnnFiles`), on disk:
after a sync the thread saves the index with a manifest of the rows and fingerprints it holds, and
the next time the scope needs an index it is not holding (a new process, or one the LRU dropped), the
thread loads the file instead of building and reconciles it with the matrix through the same update
path. A file that fails any check is ignored and rebuilt. A file never holds a deleted or replaced
vector: erasing text deletes its scope's files at once (`forget`), a file is written only when the
graph keeps no removed vectors, and a sync that removes rows deletes the file it lags.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
import time
import weakref
from collections import Counter
from pathlib import Path
from typing import Hashable, Iterable

import numpy as np
import usearch
from usearch.index import Index

from ..errors import StoreError
from .exact import MatrixCache, ScopeMatrix

log = logging.getLogger(__name__)

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
#: Version of the saved files (index and manifest); a file of any other version is ignored and rebuilt.
FILE_FORMAT = 1
#: A saved index is written again once the rows added or removed since exceed this share of it (a lagging
#: file costs the next process that much incremental update); an index without a file is saved at each sync.
SAVE_SHARE = 0.02
#: Seconds after which a temporary file is taken for one a killed process left behind, and deleted.
STALE_TEMP = 3600

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


def _graph(dim: int) -> Index:
    """An empty usearch index as `AnnIndex` builds them."""
    return Index(ndim=dim, metric="ip", dtype="f32", connectivity=CONNECTIVITY, expansion_add=EXPANSION_ADD)


class AnnIndex:
    """An HNSW index (inner product on the L2-normalised float32 rows) of one scope, keyed by row id."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.lock = threading.Lock()
        self._index: Index | None = None
        self._rids = np.zeros(0, dtype=np.int64)  # sorted row ids in the index
        self._prints = np.zeros(0, dtype=np.uint64)  # their fingerprints
        self._removed = 0  # rows removed since the last full build (tombstones in the graph)
        self._holes = 0  # removed slots no add reused yet: usearch keeps their vectors (and saves them) until then
        self._source: weakref.ref[ScopeMatrix] | None = None
        #: Whether a saved file of this index exists, and rows added or removed since it was written or loaded.
        self.on_disk = False
        self.unsaved = 0
        #: Seconds of the last full build, of the last sync (build or update) and of the load from disk; counts.
        self.build_seconds: float | None = None
        self.sync_seconds: float | None = None
        self.load_seconds: float | None = None
        self.builds = 0
        self.updates = 0
        self.loads = 0
        self.saves = 0

    @classmethod
    def restored(cls, graph: Index, rids: np.ndarray, prints: np.ndarray, removed: int, seconds: float) -> AnnIndex:
        """An index loaded from its file: mirrors no matrix until a sync reconciles it."""
        index = cls(graph.ndim)
        index._index, index._rids, index._prints, index._removed = graph, rids, prints, removed
        index.on_disk, index.loads, index.load_seconds = True, 1, seconds
        return index

    def __len__(self) -> int:
        return len(self._rids)

    @property
    def nbytes(self) -> int:
        """Memory the index holds: its vectors and graph as saved (usearch's `memory_usage` also counts
        reserved capacity, many times the rows' size for a small index, which would leave much of
        `ann_cache_mb` unused), plus the row ids and fingerprints."""
        graph = self._index.serialized_length if self._index is not None else 0
        return int(graph + self._rids.nbytes + self._prints.nbytes)

    def mirrors(self, entry: ScopeMatrix) -> bool:
        """True when the index holds exactly the rows and vectors of `entry`."""
        return self._source is not None and self._source() is entry

    def sync(self, entry: ScopeMatrix, threads: int, stop: threading.Event) -> int:
        """Bring the index to `entry`'s rows: update in place, or rebuild when that is cheaper or due.
        Returns how many of its rows were gone or changed (a file saved before still holds them)."""
        t0 = time.perf_counter()
        prints = fingerprints(entry.matrix)
        common, old_at, new_at = np.intersect1d(self._rids, entry.rids, assume_unique=True, return_indices=True)
        changed = common[self._prints[old_at] != prints[new_at]]
        gone = np.union1d(np.setdiff1d(self._rids, entry.rids, assume_unique=True), changed)
        fresh = np.union1d(np.setdiff1d(entry.rids, self._rids, assume_unique=True), changed)
        if (self._index is None or entry.matrix.shape[1] != self.dim or len(fresh) > len(common)
                or self._removed + len(gone) > REBUILD_SHARE * max(1, len(entry.rids))):
            self._build(entry, prints, threads, stop)
        elif not len(gone) and not len(fresh):
            self._source = weakref.ref(entry)  # the same rows and vectors (a file just loaded, say)
        else:
            with self.lock:
                self._source = None  # mirrors nothing until the update is complete
                try:
                    if len(gone):
                        self._index.remove(gone.astype(np.uint64), threads=threads)
                    rows = np.searchsorted(entry.rids, fresh)
                    self._add(self._index, fresh, entry.matrix[rows], threads, stop)
                except BaseException:
                    self._index = None  # half updated: the next sync builds afresh
                    raise
                self._removed += len(gone)
                self._holes = max(0, self._holes + len(gone) - len(fresh))  # an add fills removed slots first
                self._rids, self._prints = entry.rids.copy(), prints
                self._source = weakref.ref(entry)
            self.updates += 1
        self.unsaved += len(gone) + len(fresh)
        self.sync_seconds = time.perf_counter() - t0
        return len(gone)

    def _build(self, entry: ScopeMatrix, prints: np.ndarray, threads: int, stop: threading.Event) -> None:
        """A new graph over every row of `entry`, built outside the lock and swapped in."""
        t0 = time.perf_counter()
        dim = entry.matrix.shape[1]
        index = _graph(dim)
        self._add(index, entry.rids, entry.matrix, threads, stop)
        with self.lock:
            self._index, self.dim = index, dim
            self._rids, self._prints, self._removed, self._holes = entry.rids.copy(), prints, 0, 0
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


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _part(value: object) -> str:
    """One component of a file name: a hash of a key's user, agent or model ('-' for None)."""
    return "-" if value is None else hashlib.blake2b(str(value).encode(), digest_size=8).hexdigest()


#: The names `AnnFiles` writes: user, agent and model parts, then the kind (and a temporary file's suffix).
_FILE_NAME = re.compile(r"([0-9a-f]{16}|-)\.([0-9a-f]{16}|-)\.([0-9a-f]{16}|-)\.(usearch|npz)(\.[0-9]+-[0-9]+\.tmp)?")


class AnnFiles:
    """The saved indexes of one store in one directory, at most `max_bytes` in all (the least recently saved
    or loaded go first). Per scope key (user_id, agent_id, model): `<user>.<agent>.<model>.usearch`, usearch's
    own file, and `.npz`, its manifest (format, key, dimension, connectivity, usearch's major version, the
    index file's size and sha256, and the row ids and fingerprints it holds), each name part a hash.

    Files are written to temporary names and renamed (no fsync: a torn file fails its checksum); one that
    fails a check is deleted, never trusted. `erased_at` (monotonic ns of the last `forget` or `clear`)
    keeps an index synced to a matrix read before then from being written back.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.lock = threading.Lock()  # renames and deletions
        self.erased_at = 0
        #: loaded, saved, rejected (a file failed a check), dropped (deleted as stale), save_error.
        self.events: Counter[str] = Counter()

    def _paths(self, key: Hashable) -> tuple[Path, Path] | None:
        if not (isinstance(key, tuple) and len(key) == 3):
            return None
        stem = ".".join(_part(k) for k in key)
        return self.dir / f"{stem}.usearch", self.dir / f"{stem}.npz"

    @staticmethod
    def _meta(key: Hashable, dim: int) -> dict:
        """What a manifest must say for an index of `key` at `dim` to be loaded by this code."""
        return {"format": FILE_FORMAT, "key": list(key) if isinstance(key, tuple) else None, "dim": dim,
                "connectivity": CONNECTIVITY, "usearch": usearch.__version__.split(".")[0]}

    def _ours(self) -> list[tuple[Path, re.Match]]:
        """Index, manifest and temporary files in the directory, with their names parsed."""
        found = [(p, _FILE_NAME.fullmatch(p.name)) for p in self.dir.glob("*")]
        return [(p, m) for p, m in found if m is not None]

    def load(self, key: Hashable, dim: int) -> AnnIndex | None:
        """The saved index of `key`, or None when there is none or it fails a check (it is then deleted)."""
        paths = self._paths(key)
        if paths is None or not paths[1].exists():
            return None
        graph_path, manifest_path = paths
        t0 = time.perf_counter()
        try:
            with np.load(manifest_path, allow_pickle=False) as z:
                meta, rids, prints = json.loads(str(z["meta"])), z["rids"], z["prints"]
            want = {**self._meta(key, dim), "rows": len(rids)}
            if {k: meta.get(k) for k in want} != want:
                raise ValueError("manifest of another format, scope, shape or usearch version")
            if (rids.dtype != np.int64 or prints.dtype != np.uint64 or rids.shape != prints.shape
                    or bool(np.any(np.diff(rids) <= 0))):
                raise ValueError("malformed row list")
            before = graph_path.stat()
            if before.st_size != meta["size"] or _sha256(graph_path) != meta["sha256"]:
                raise ValueError("index file truncated, corrupt or not the one its manifest describes")
            graph = _graph(dim)
            graph.load(str(graph_path))
            after = graph_path.stat()
            if (after.st_ino, after.st_mtime_ns) != (before.st_ino, before.st_mtime_ns):
                raise ValueError("replaced while being read")
            if len(graph) != len(rids) or graph.ndim != dim or not bool(np.all(graph.contains(rids))):
                raise ValueError("graph does not hold the manifest's rows")
            removed = int(meta["removed"])
            os.utime(graph_path)  # recently used: evicted last
        except Exception as exc:  # noqa: BLE001 - a cache: any doubt and it is rebuilt
            log.warning("ignoring saved ANN index %s (%s: %s); building it again", graph_path,
                        type(exc).__name__, exc)
            self.events["rejected"] += 1
            self.drop(key)
            return None
        self.events["loaded"] += 1
        return AnnIndex.restored(graph, rids, prints, removed, time.perf_counter() - t0)

    def save(self, key: Hashable, index: AnnIndex, stamp: int) -> bool:
        """Write `index` (synced to a matrix read at monotonic ns `stamp`) as `key`'s files. False, writing
        nothing: no file name for the key, over the budget, removed vectors in the graph, or erased since."""
        paths, graph = self._paths(key), index._index
        if paths is None or graph is None or index._holes or graph.serialized_length > self.max_bytes:
            return False
        self.dir.mkdir(parents=True, exist_ok=True)
        self._sweep()
        temps = [p.with_name(f"{p.name}.{os.getpid()}-{threading.get_ident()}.tmp") for p in paths]
        try:
            graph.save(str(temps[0]))
            header = Index.metadata(str(temps[0])) or {}
            if header.get("count_deleted") != 0 or header.get("count_present") != len(index):
                return False  # removed vectors still in the file
            meta = {**self._meta(key, index.dim), "rows": len(index), "removed": index._removed,
                    "size": temps[0].stat().st_size, "sha256": _sha256(temps[0])}
            with open(temps[1], "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)), rids=index._rids, prints=index._prints)
            with self.lock:
                if stamp <= self.erased_at or not all(t.exists() for t in temps):  # erased since, or cleared
                    return False
                os.replace(temps[0], paths[0])
                os.replace(temps[1], paths[1])  # after the index: a crash between leaves a mismatch, rejected
        finally:
            for t in temps:
                t.unlink(missing_ok=True)
        self.events["saved"] += 1
        self._evict(paths[0])
        return True

    def drop(self, key: Hashable) -> bool:
        """Delete `key`'s files; False when there were none."""
        found = False
        with self.lock:
            for p in self._paths(key) or ():
                try:
                    p.unlink()
                    found = True
                except FileNotFoundError:
                    pass
        return found

    def forget(self, owners: Iterable[tuple[str | None, str | None]], grace: float = 0.0) -> None:
        """Delete the files of every scope whose matrix holds records of these (user_id, agent_id) owners;
        save no index of a matrix read before now, or `grace` seconds from now."""
        parts = {(_part(u), _part(a)) for u, a in owners}
        try:
            with self.lock:
                self.erased_at = max(self.erased_at, time.monotonic_ns() + int(grace * 1e9))
                for p, name in self._ours():
                    # a scope of one user holds that user's records whatever their agent ('-'), and so on
                    if any(name[1] in ("-", u) and name[2] in ("-", a) for u, a in parts):
                        p.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot delete saved ANN indexes in {self.dir}: {exc} "
                             "(fix the directory, or set ann_dir = '')") from None

    def clear(self) -> None:
        """Delete every saved index."""
        with self.lock:
            self.erased_at = max(self.erased_at, time.monotonic_ns())
            for p, _ in self._ours():
                p.unlink(missing_ok=True)

    def _sweep(self) -> None:
        """Delete temporary files older than `STALE_TEMP` (left by a killed process)."""
        for p, name in self._ours():
            try:
                if name[5] and time.time() - p.stat().st_mtime > STALE_TEMP:
                    p.unlink(missing_ok=True)
            except FileNotFoundError:
                pass

    def _evict(self, keep: Path) -> None:
        """Delete the least recently used indexes (not `keep`) until the directory fits `max_bytes`."""
        files = []
        for p, name in self._ours():
            if name[4] != "usearch" or name[5]:
                continue
            try:
                st, manifest = p.stat(), p.with_suffix(".npz")
                files.append((st.st_mtime, st.st_size + (manifest.stat().st_size if manifest.exists() else 0), p))
            except FileNotFoundError:
                pass
        total = sum(size for _, size, _ in files)
        for _, size, p in sorted(files):
            if total <= self.max_bytes:
                break
            if p != keep:
                with self.lock:
                    p.unlink(missing_ok=True)
                    p.with_suffix(".npz").unlink(missing_ok=True)
                total -= size


class AnnIndexes:
    """The ANN indexes of one store, by scope key: kept in sync by a background thread, used once current."""

    def __init__(
        self, *, min_vectors: int, expansion_search: int, max_bytes: int, threads: int | None,
        files: AnnFiles | None = None,
    ) -> None:
        self.min_vectors = min_vectors
        #: The saved indexes (None: kept in memory only).
        self.files = files
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
                index = self._sync(key, entry)
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

    def _sync(self, key: Hashable, entry: ScopeMatrix) -> AnnIndex:
        """`key`'s index (held, else loaded from its file, else new) brought to `entry`, and saved when due."""
        index = self._cache.get(key, None)
        if index is None and self.files is not None:
            index = self.files.load(key, entry.matrix.shape[1])
        if index is None:
            index = AnnIndex(entry.matrix.shape[1])
        if index.mirrors(entry):
            return index
        try:
            stale = index.sync(entry, self.threads, self._stop)
        except InterruptedError:
            raise
        except Exception:
            self._drop(key, index)  # rows may have been removed before it failed
            raise
        if stale:
            self._drop(key, index)  # the file holds rows now gone or changed
        self._save(key, index, entry)
        return index

    def _drop(self, key: Hashable, index: AnnIndex) -> None:
        index.on_disk = False
        if self.files is not None and self.files.drop(key):
            self.files.events["dropped"] += 1

    def _save(self, key: Hashable, index: AnnIndex, entry: ScopeMatrix) -> None:
        """Save `index` when it has no file yet, or `SAVE_SHARE` of its rows changed since its file was written."""
        due = not index.on_disk or index.unsaved >= SAVE_SHARE * len(index)
        if self.files is None or self._stop.is_set() or not due:
            return
        try:
            saved = self.files.save(key, index, entry.stamp)
        except Exception as exc:  # noqa: BLE001 - the index in memory still answers
            log.warning("could not save an ANN index in %s (%s: %s)", self.files.dir, type(exc).__name__, exc)
            self.files.events["save_error"] += 1
            return
        if saved:
            index.on_disk, index.unsaved = True, 0
            index.saves += 1

    def forget(self, owners: Iterable[tuple[str | None, str | None]], grace: float = 0.0) -> None:
        """Text of these (user_id, agent_id) owners is being erased or replaced: the files of their scopes go
        now, inside the writing transaction, and no index synced to a matrix read before that transaction
        committed is saved: one read before this call, or within `grace` seconds after it (for a store
        whose reads need not wait for the transaction)."""
        if self.files is not None:
            self.files.forget(owners, grace)

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
        """Per index: key, rows, bytes, seconds of the last full build, sync and load from disk, counts."""
        return [
            {"key": key, "rows": len(ix), "nbytes": ix.nbytes, "build_seconds": ix.build_seconds,
             "sync_seconds": ix.sync_seconds, "load_seconds": ix.load_seconds, "builds": ix.builds,
             "updates": ix.updates, "loads": ix.loads, "saves": ix.saves}
            for key, ix in self._cache.items()
        ]

    def clear(self) -> None:
        """Forget every index, saved ones too (they are rebuilt on demand)."""
        with self._cond:
            self._pending.clear()
            self._skip.clear()
        self._cache.clear()
        if self.files is not None:
            self.files.clear()

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


def ann_indexes(
    min_vectors: int, expansion_search: int, cache_mb: int, threads: int | None,
    ann_dir: str | Path | None = None, disk_mb: int = 0,
) -> AnnIndexes | None:
    """The ANN indexes a store keeps, or None when the settings turn them off (`min_vectors` <= 0 or no memory);
    saved in `ann_dir` (at most `disk_mb`) when that is set. Off, the indexes saved there are deleted: no
    delete would reach them."""
    files = AnnFiles(Path(ann_dir).expanduser(), disk_mb * 1024 * 1024) if ann_dir and disk_mb > 0 else None
    if min_vectors <= 0 or cache_mb <= 0:
        if files is not None:
            files.clear()
        return None
    return AnnIndexes(min_vectors=min_vectors, expansion_search=expansion_search, max_bytes=cache_mb * 1024 * 1024,
                      threads=threads, files=files)
