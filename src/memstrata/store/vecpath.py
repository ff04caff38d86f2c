"""The exact vector path every backend shares: per-scope `ScopeMatrix` kept in a `MatrixCache`
under the scope's version stamp, filtered and scanned in process (store/exact.py).

A backend mixes in `ExactVectorSearch` and supplies `_read` and its SQL dialect (placeholder,
infinity, metadata equality); the mixin reads the scope's version stamp, vector rows (`MATRIX_ROW`)
and the row ids a metadata filter admits from the tables both backends share.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from ..errors import StoreError
from ..model import Scope, SearchFilters
from .exact import STATUS_CODES, MatrixCache, ScopeMatrix
from .sqlite_sql import _filter_where, _json_extract, _scope_keys, _scope_where

if TYPE_CHECKING:
    from .ann import AnnIndexes

#: The columns of one row `_matrix_rows` returns, in order (vec: float32 bytes; valid_from already
#: coalesced with event_time; valid_to +inf when open).
MATRIX_ROW = ("rid", "id", "session_id", "event_time", "layer", "status", "vec", "valid_from", "valid_to", "kind")


def scope_matrix(rows: Sequence[tuple]) -> ScopeMatrix:
    """A `ScopeMatrix` from rows shaped as `MATRIX_ROW`, in row-id order."""
    if rows:
        blob = b"".join(bytes(r[6]) for r in rows)
        matrix = np.frombuffer(blob, dtype=np.float32).reshape(len(rows), -1)
    else:
        matrix = np.zeros((0, 0), dtype=np.float32)
    return ScopeMatrix(
        rids=np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
        ids=np.array([r[1] for r in rows], dtype=object),
        matrix=matrix,
        session=np.array([r[2] for r in rows], dtype=object),
        event_time=np.fromiter((r[3] for r in rows), dtype=np.float64, count=len(rows)),
        layer=np.fromiter((r[4] for r in rows), dtype=np.int8, count=len(rows)),
        status=np.fromiter((STATUS_CODES[r[5]] for r in rows), dtype=np.int8, count=len(rows)),
        valid_from=np.fromiter((r[7] for r in rows), dtype=np.float64, count=len(rows)),
        valid_to=np.fromiter((float(r[8]) for r in rows), dtype=np.float64, count=len(rows)),
        kind=np.array([r[9] for r in rows], dtype=object),
    )


#: After a write, a cached matrix is patched with the rows changed since it was read when they are at most
#: this share of it (or `PATCH_MIN_ROWS`); more, and the scope is read again whole.
PATCH_SHARE = 0.25
PATCH_MIN_ROWS = 256
#: Rows of the change log each backend's `put` keeps; a matrix older than the oldest is read again whole.
CHANGE_LOG_ROWS = 200_000


class ExactVectorSearch:
    """`vector_search` and `vectors` over cached per-scope matrices; mixed into each store."""

    _matrices: MatrixCache
    _search_threads: int | None
    #: ANN indexes for large scopes (None: every search is the exact scan).
    _ann: AnnIndexes | None = None
    #: Seconds after an erasure during which a matrix read may still miss it: 0 where reads wait for the
    #: writing transaction (SQLite: one connection under one lock); a store that reads on other connections
    #: meanwhile sets more, and saves no ANN index of a matrix read within it (store/ann.py).
    _erase_grace_s = 0.0

    @property
    def ann(self) -> AnnIndexes | None:
        """The ANN indexes of large scopes (`paths`, `stats()`, `wait()`); None when the settings turn them off."""
        return self._ann

    #: The backend's SQL dialect: the driver's placeholder, +infinity, one metadata equality
    #: (SQLite's; the Postgres store sets its own).
    _sql_mark = "?"
    _sql_infinity = "'inf'"
    _sql_metadata: staticmethod = staticmethod(_json_extract)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one read statement (the backend's)."""
        raise NotImplementedError

    def _scope_version(self, scope: Scope) -> tuple[int, ...]:
        """The version stamp of the scope's user/agent (every write bumps it)."""
        keys = _scope_keys(scope.user_id, scope.agent_id)
        marks = ",".join([self._sql_mark] * len(keys))
        found = dict(self._read(f"SELECT scope_key, version FROM scope_versions WHERE scope_key IN ({marks})", keys))
        return tuple(found.get(k, 0) for k in keys)

    def _matrix_rows(self, scope: Scope, model: str, rids: Sequence[int] | None = None) -> list[tuple]:
        """The user/agent scope's records with a vector under `model`, as `MATRIX_ROW`, by row id (only
        those of `rids` when given)."""
        where, params = _scope_where(scope, mark=self._sql_mark)
        sql = ("SELECT r.rid, r.id, r.session_id, r.event_time, r.layer, r.status, v.vec, "
               f"coalesce(r.valid_from, r.event_time), coalesce(r.valid_to, {self._sql_infinity}), r.kind FROM records r "
               f"JOIN vectors v ON v.rid = r.rid WHERE {where} AND v.model = {self._sql_mark}")
        if rids is None:
            return self._read(sql + " ORDER BY r.rid", [*params, model])
        rows: list[tuple] = []
        for lo in range(0, len(rids), 500):
            chunk = [int(r) for r in rids[lo : lo + 500]]
            marks = ",".join([self._sql_mark] * len(chunk))
            rows += self._read(f"{sql} AND r.rid IN ({marks})", [*params, model, *chunk])
        return sorted(rows, key=lambda r: r[0])

    def _change_mark(self) -> int | None:
        """The backend's change log position now (None: it keeps none, and a write means a full reload)."""
        return None

    def _changed_rids(self, scope: Scope, since: int, limit: int) -> list[int] | None:
        """Row ids of the user/agent scope's records written (added, changed, re-embedded, deleted) after
        change mark `since`; None when the log no longer reaches back that far or they are over `limit`."""
        return None

    def _metadata_rids(self, scope: Scope, metadata: dict) -> Sequence[int]:
        """Row ids of the scope's records (any status) whose metadata matches `metadata` exactly."""
        where, params = _scope_where(scope, mark=self._sql_mark)
        fwhere, fparams = _filter_where(SearchFilters(metadata=metadata, include_inactive=True), mark=self._sql_mark,
                                        metadata=self._sql_metadata)
        return [r[0] for r in self._read(f"SELECT r.rid FROM records r WHERE {where} AND {fwhere}", [*params, *fparams])]

    def _load_matrix(self, scope: Scope, model: str) -> ScopeMatrix:
        """The scope's matrix as of now: the cached one while the scope's version is unchanged; after a
        write, the cached one patched with the rows the change log names (a write touches a few rows, a
        reload reads them all); a full read when there is no cached matrix, no log reaching back to it,
        or more changed rows than `PATCH_SHARE` of it."""
        base = Scope(user_id=scope.user_id, agent_id=scope.agent_id)
        key = (base.user_id, base.agent_id, model)
        version = self._scope_version(base)
        cached = self._matrices.get(key, version)
        if cached is not None:
            return cached
        stamp = time.monotonic_ns()
        mark = self._change_mark()  # before the rows: a write after it is read again next time, never missed
        entry = self._patched(base, model, self._matrices.latest(key), mark)
        if entry is None:
            entry = scope_matrix(self._matrix_rows(base, model))
            entry.stamp = stamp
        elif entry.mark is None:  # a new matrix (`patched` returns the old one when none of its rows changed)
            entry.stamp = stamp
        entry.mark = mark
        self._matrices.put(key, version, entry)
        return entry

    def _patched(self, base: Scope, model: str, old: ScopeMatrix | None, mark: int | None) -> ScopeMatrix | None:
        """`old` brought up to date from the change log, or None when it cannot be (see `_load_matrix`)."""
        if old is None or old.mark is None or mark is None:
            return None
        changed = self._changed_rids(base, old.mark, max(PATCH_MIN_ROWS, int(PATCH_SHARE * len(old.ids))))
        if changed is None:
            return None
        fresh = scope_matrix(self._matrix_rows(base, model, changed) if changed else [])
        return old.patched(np.asarray(changed, dtype=np.int64), fresh)

    def _forget_ann(self, owned: Iterable[tuple[str | None, str | None, str]]) -> None:
        """Text of these (user_id, agent_id, content_hash) owners is being erased or replaced: the saved ANN
        indexes that may hold its vector go at once (call inside the writing transaction)."""
        if self._ann is not None:
            self._ann.forget({(u, a) for u, a, _ in owned}, self._erase_grace_s)

    def vector_search(
        self, vector: np.ndarray, model: str, scope: Scope, filters: SearchFilters, limit: int
    ) -> list[tuple[str, float]]:
        """Cosine similarity (vectors are normalised) against the scope's records embedded with `model`."""
        entry = self._load_matrix(scope, model)
        if not len(entry.ids):
            return []
        if entry.matrix.shape[1] != vector.shape[-1]:
            raise StoreError(
                f"query vector has dimension {vector.shape[-1]} but stored vectors for {model!r} have "
                f"{entry.matrix.shape[1]}"
            )
        allowed = None
        if filters.metadata:
            allowed = np.fromiter(self._metadata_rids(scope, dict(filters.metadata)), dtype=np.int64)
        query = np.asarray(vector, dtype=np.float32)
        mask = entry.mask(
            session_id=scope.session_id,
            time_from=filters.time_from.timestamp() if filters.time_from else None,
            time_to=filters.time_to.timestamp() if filters.time_to else None,
            layers=filters.layers,
            include_inactive=filters.include_inactive,
            allowed_rids=allowed,
            as_of=filters.as_of.timestamp() if filters.as_of else None,
            include_archived=filters.include_archived,
            kinds=filters.kinds,
        )
        if self._ann is not None:  # large scopes: the HNSW index once it mirrors this matrix (store/ann.py)
            hits = self._ann.search((scope.user_id, scope.agent_id, model), entry, query, mask, limit)
            if hits is not None:
                return hits
        return entry.top(query, mask, limit, threads=self._search_threads)

    def vectors(self, ids: Sequence[str], model: str, scope: Scope) -> dict[str, np.ndarray]:
        """Stored vectors (under `model`) of records in `scope`, by id."""
        entry = self._load_matrix(scope, model)
        wanted = set(ids)
        return {i: entry.matrix[row] for row, i in enumerate(entry.ids) if i in wanted}
