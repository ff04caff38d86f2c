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
from dataclasses import dataclass, field
from typing import Any, Generic, Hashable, Iterator, Protocol, TypeVar

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


#: Spare rows a patch that appends gives the columns' buffer, as a share of its rows (a scope being
#: written to grows in place until they are used up, then is copied once into a larger buffer).
GROW_SHARE = 0.125


@dataclass
class RowBuffer:
    """A matrix's columns (row ids, ids, vectors, the filter fields) with spare rows at the end; `filled`
    rows are in use, by the matrix that grew last. Every matrix sharing the buffer shows the first rows
    of its columns, and a patch writes only past them, or into a column of its own."""

    columns: dict[str, np.ndarray]
    filled: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def capacity(self) -> int:
        return len(self.columns["rids"])

    @property
    def nbytes(self) -> int:
        return sum(int(c.nbytes) for c in self.columns.values())


#: The per-row fields of a `ScopeMatrix` beside its row ids, ids and vectors.
_FIELDS = ("session", "event_time", "layer", "status", "valid_from", "valid_to", "kind")


@dataclass
class ScopeMatrix:
    """Vectors of one scope and the per-row fields filters need."""

    rids: np.ndarray  # int64 row ids
    ids: np.ndarray  # object array of record ids
    matrix: np.ndarray  # float32 (n, dim), rows L2-normalised
    session: np.ndarray  # object array of session ids (None allowed)
    event_time: np.ndarray  # float64 epoch seconds
    layer: np.ndarray  # int8
    status: np.ndarray  # int8: STATUS_CODES
    valid_from: np.ndarray  # float64 epoch seconds (event_time when the record has no valid_from)
    valid_to: np.ndarray  # float64 epoch seconds (+inf when open)
    kind: np.ndarray | None = None  # object array of kinds
    #: time.monotonic_ns() before the rows were read (0: unknown); store/ann.py saves no index of a matrix
    #: read before the last erasure.
    stamp: int = 0

    #: The backend's change mark when the rows were read (None: it keeps no change log); rows changed
    #: after it are what `patched` takes in (store/vecpath.py).
    mark: int | None = None
    #: The buffer the columns are the first rows of, when a patch appended to it (None: they are their own).
    buffer: "RowBuffer | None" = field(default=None, repr=False, compare=False)

    @property
    def active(self) -> np.ndarray:
        return self.status == ACTIVE

    def _columns(self) -> dict[str, np.ndarray]:
        """The per-row arrays by name (a field this matrix does not have is left out)."""
        cols = {"rids": self.rids, "ids": self.ids, "matrix": self.matrix}
        return cols | {f: getattr(self, f) for f in _FIELDS if getattr(self, f) is not None}

    def patched(self, changed: np.ndarray, fresh: "ScopeMatrix") -> "ScopeMatrix":
        """These rows with the `changed` row ids taken out and `fresh` (the current state of those still
        there) put in, in row-id order. A new matrix unless nothing changed: searches may hold this one."""
        if not len(self.ids):
            return fresh
        if len(fresh.ids) and fresh.matrix.shape[1] != self.matrix.shape[1]:
            raise ValueError(f"changed rows have {fresh.matrix.shape[1]}-d vectors, the matrix {self.matrix.shape[1]}-d")
        return self._patched_in_place(changed, fresh) or self._patched_by_copy(changed, fresh)

    def _patched_in_place(self, changed: np.ndarray, fresh: "ScopeMatrix") -> "ScopeMatrix | None":
        """The usual patch, without copying what did not change: no row removed or re-embedded, new rows
        after the last (new records), changed rows' fields replaced. New rows go into the buffer's spare
        rows, past the rows any matrix sharing it shows; a field that changed in a row this matrix has is
        copied (whole, into a column of the new matrix's own). None when the patch is not of that kind."""
        n = len(self.rids)
        at = np.searchsorted(self.rids, fresh.rids)
        inside = (at < n) & (self.rids[np.minimum(at, n - 1)] == fresh.rids)
        here = np.searchsorted(self.rids, changed)
        here = here[(here < n) & (self.rids[np.minimum(here, n - 1)] == changed)]
        if len(here) > int(np.count_nonzero(inside)):
            return None  # a row of this matrix left the scope, the model or the store
        added = np.flatnonzero(~inside)
        if len(added) and fresh.rids[added[0]] <= self.rids[-1]:
            return None  # a row enters in the middle (moved here, or given a vector under this model)
        pos = at[inside]
        if not np.array_equal(self.matrix[pos], fresh.matrix[inside]):
            return None  # re-embedded
        mine, theirs = self._columns(), fresh._columns()
        names = [c for c in mine if c in theirs]  # a field one side lacks is lacking in the result
        edits = {f: (pos, theirs[f][inside]) for f in _FIELDS if f in names
                 and not np.array_equal(mine[f][pos], theirs[f][inside])}
        if not len(added) and not edits:
            return self  # nothing a search sees changed (the version moved for another reason)
        if len(added):
            columns, buffer = self._grown({c: theirs[c][added] for c in names}, edits)
        else:  # fields only: the edited ones copied, the others shared as they are
            columns, buffer = {c: mine[c] for c in names}, self.buffer
            for f, (rows, values) in edits.items():
                columns[f] = mine[f].copy()
                columns[f][rows] = values
        return ScopeMatrix(**({f: None for f in _FIELDS} | columns), buffer=buffer)

    def _grown(
        self, added: dict[str, np.ndarray], edits: dict[str, tuple[np.ndarray, np.ndarray]]
    ) -> tuple[dict[str, np.ndarray], RowBuffer]:
        """This matrix's columns with the `added` rows appended and the `edits` (rows, values) made, and
        the buffer they are views of: this matrix's, when it has room and no other matrix has grown into
        it (a column this matrix does not share with it, or an edited one, is copied into a new column of
        it), else a new buffer with `GROW_SHARE` spare rows."""
        n, k = len(self.rids), len(added["rids"])
        mine = self._columns()

        def column(name: str, size: int) -> np.ndarray:
            col = np.empty((size, *mine[name].shape[1:]), dtype=mine[name].dtype)
            col[:n] = mine[name]
            if name in edits:
                col[edits[name][0]] = edits[name][1]
            return col

        buf = self.buffer
        if buf is not None:
            with buf.lock:
                if buf.filled == n and n + k <= buf.capacity and buf.columns.keys() == added.keys():
                    for name, rows in added.items():
                        if name in edits or mine[name].base is not buf.columns[name]:
                            buf.columns[name] = column(name, buf.capacity)
                        buf.columns[name][n : n + k] = rows
                    buf.filled = n + k
                    return {name: col[: n + k] for name, col in buf.columns.items()}, buf
        size = n + k + max(k, int(GROW_SHARE * (n + k)))
        columns = {}
        for name, rows in added.items():
            columns[name] = column(name, size)
            columns[name][n : n + k] = rows
        buf = RowBuffer(columns, n + k)
        return {name: col[: n + k] for name, col in columns.items()}, buf

    def _patched_by_copy(self, changed: np.ndarray, fresh: "ScopeMatrix") -> "ScopeMatrix":
        """Any patch: the rows kept and `fresh` joined into new arrays, in row-id order."""
        keep = np.flatnonzero(~np.isin(self.rids, changed))
        whole = len(keep) == len(self.ids)
        if whole and not len(fresh.ids):
            return self
        rids = np.concatenate([self.rids if whole else self.rids[keep], fresh.rids])
        order: np.ndarray | None = np.argsort(rids, kind="stable")
        if bool(np.all(order == np.arange(len(rids)))):
            order = None

        def join(old: np.ndarray | None, new: np.ndarray | None) -> np.ndarray | None:
            if old is None or new is None:
                return None
            if not len(new):  # rows only taken out (an empty matrix is 0 x 0)
                return old[keep]
            both = np.concatenate([old if whole else old[keep], new])
            return both if order is None else both[order]

        return ScopeMatrix(
            rids=rids if order is None else rids[order], ids=join(self.ids, fresh.ids),
            matrix=join(self.matrix, fresh.matrix), **{f: join(getattr(self, f), getattr(fresh, f)) for f in _FIELDS},
        )

    @property
    def nbytes(self) -> int:
        """The arrays (the whole buffer, spare rows too, when the matrix has one) and about 64 bytes per id."""
        arrays = self.buffer.nbytes if self.buffer is not None else sum(int(c.nbytes) for c in self._columns().values())
        return arrays + 64 * len(self.ids)

    def mask(
        self,
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
    ) -> np.ndarray:
        """Boolean mask of the rows passing every filter."""
        mask = np.ones(len(self.ids), dtype=bool)
        if session_id is not None:
            mask &= self.session == session_id
        if time_from is not None:
            mask &= self.event_time >= time_from
        if time_to is not None:
            mask &= self.event_time <= time_to
        if layers is not None:
            mask &= np.isin(self.layer, np.asarray(layers, dtype=np.int8))
        if not include_inactive:
            codes = ([ACTIVE, SUPERSEDED] if as_of is not None else [ACTIVE]) + ([ARCHIVED] if include_archived else [])
            # one code (the default): a comparison, a hundred times cheaper than isin at 10^6 rows
            mask &= self.status == codes[0] if len(codes) == 1 else np.isin(self.status, codes)
        if as_of is not None:
            mask &= (self.valid_from <= as_of) & (as_of < self.valid_to)
            mask &= ~((self.status == SUPERSEDED) & np.isinf(self.valid_to))
        if kinds is not None and self.kind is not None:
            mask &= np.isin(self.kind, np.asarray(kinds, dtype=object))
        if allowed_rids is not None:
            mask &= np.isin(self.rids, allowed_rids)
        return mask

    def top(
        self, query: np.ndarray, mask: np.ndarray, limit: int, *, threads: int | None = 1, allowed: int | None = None
    ) -> list[tuple[str, float]]:
        """Top `limit` rows by dot product among the rows `mask` admits (`allowed`: its count, if known)."""
        n = len(self.ids)
        allowed = int(np.count_nonzero(mask)) if allowed is None else allowed
        if n == 0 or limit <= 0 or allowed == 0:
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

    def rank(
        self, query: np.ndarray, rows: np.ndarray, limit: int, *, threads: int | None = 1
    ) -> list[tuple[str, float]]:
        """Top `limit` of the given row positions by dot product (exact scores; gathers only those rows)."""
        if len(rows) == 0 or limit <= 0:
            return []
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        with blas_threads(threads):
            scores = self.matrix[rows] @ query
        order = np.argsort(-scores, kind="stable")[:limit]
        return [(self.ids[int(rows[o])], float(scores[o])) for o in order]

    def search(
        self,
        query: np.ndarray,
        limit: int,
        *,
        threads: int | None = 1,
        **filters: Any,
    ) -> list[tuple[str, float]]:
        """Top `limit` rows by dot product among rows passing every filter (keywords of `mask`)."""
        if len(self.ids) == 0 or limit <= 0:
            return []
        return self.top(query, self.mask(**filters), limit, threads=threads)


class Sized(Protocol):
    """Anything that reports the memory it holds."""

    @property
    def nbytes(self) -> int: ...


S = TypeVar("S", bound=Sized)


class MatrixCache(Generic[S]):
    """LRU of `ScopeMatrix` (or anything `Sized`) by key, bounded in bytes; an entry is valid for one version stamp.

    An entry's size is taken when it is put; put it again after it grew.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[Hashable, S, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, version: Hashable) -> S | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def latest(self, key: Hashable) -> S | None:
        """The entry under `key` whatever its version (to be brought up to date, not used as it is)."""
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else entry[1]

    def put(self, key: Hashable, version: Hashable, item: S) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            size = item.nbytes
            if size > self.max_bytes:
                return
            self._entries[key] = (version, item, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                _, (_, _, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted

    def items(self) -> list[tuple[Hashable, S]]:
        """(key, item) of every entry, least recently used first."""
        with self._lock:
            return [(k, v[1]) for k, v in self._entries.items()]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
