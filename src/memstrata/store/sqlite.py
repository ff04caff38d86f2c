"""The default store: one SQLite file (WAL, foreign keys, FTS5, vectors as BLOBs)."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from itertools import zip_longest
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

import numpy as np

from ..errors import InvalidInput, NotFound, SchemaTooNew, StoreCorrupt, StoreError
from ..model import (
    HistoryEvent, Page, Record, Scope, SearchFilters, SlotState, cache_key, embedding_text,
    text_hash,
)
from ..timeutil import now, to_datetime
from .ann import ann_indexes
from .exact import MatrixCache
from .rows import record_from_row, state_key
from .sqlite_lifecycle import LifecycleMixin
from .sqlite_schema import APP_ID, CURRENT_VERSION, MIGRATIONS, scope_tokens
from .sqlite_sql import (
    _RECORD_COLUMNS,
    _chunks,
    _decode_cursor,
    _encode_cursor,
    _filter_where,
    _fts_query,
    _scope_keys,
    _scope_where,
    _split_sql,
)
from .vecpath import CHANGE_LOG_ROWS, ExactVectorSearch

T = TypeVar("T")

_SQLITE_MAGIC = b"SQLite format 3\x00"
#: Rows `analyze()` samples per index (SQLite's `analysis_limit`): approximate statistics at a bounded cost.
ANALYSIS_LIMIT = 1000
_state_key = state_key


class SQLiteStore(LifecycleMixin, ExactVectorSearch):
    """SQLite backend. Thread-safe; several processes may share one file (WAL)."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        vector_cache_mb: int = 512,
        max_retries: int = 8,
        search_threads: int | None = 1,
        ann_min_vectors: int = 50_000,
        ann_expansion_search: int = 128,
        ann_cache_mb: int = 1024,
        ann_dir: str | Path | None = None,
        ann_disk_mb: int = 4096,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.path = Path(path).expanduser() if str(path) != ":memory:" else Path(":memory:")
        #: Epoch seconds for created/updated stamps and history (the owner's clock, so tests can set time).
        self._clock: Callable[[], float] = clock or now
        self._lock = threading.RLock()
        self._max_retries = max_retries
        self._search_threads = search_threads
        self._matrices = MatrixCache(vector_cache_mb * 1024 * 1024)
        self._ann = ann_indexes(ann_min_vectors, ann_expansion_search, ann_cache_mb, search_threads, ann_dir,
                                ann_disk_mb)
        self._check_file()
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from None
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            # Retried as a whole: when several processes open one new file at once, the journal-mode switch and
            # WAL recovery can answer "database is locked" without waiting out busy_timeout.
            self._retry(lambda: self._prepare(synchronous))
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreCorrupt(
                f"{self.path} is damaged or not a SQLite database ({exc}); restore it from a backup or use another --db"
            ) from None
        except Exception:
            self._conn.close()
            raise

    # ------------------------------------------------------------------ opening

    def _prepare(self, synchronous: str) -> None:
        self._check_identity()  # before anything writes: a foreign file stays byte-identical
        if str(self.path) != ":memory:":
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"could not switch {self.path} to WAL mode (got {mode})")
        self._conn.execute(f"PRAGMA synchronous = {synchronous}")
        self._migrate()

    def _check_file(self) -> None:
        if str(self.path) == ":memory:" or not self.path.exists():
            return
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory; give the path of a database file")
        with open(self.path, "rb") as fh:
            head = fh.read(16)
        if head and head != _SQLITE_MAGIC:
            raise StoreCorrupt(f"{self.path} is not a SQLite database; point --db / MEMSTRATA_DB at a memstrata database")

    def _check_identity(self) -> None:
        """Refuse (read-only) a database that is not memstrata's or is newer than this code."""
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return  # new file
        if "meta" not in tables:
            raise StoreCorrupt(
                f"{self.path} is a SQLite database but not a memstrata one (it has tables "
                f"{', '.join(sorted(tables)[:5])}); use another --db path"
            )
        meta = dict(self._conn.execute("SELECT key, value FROM meta"))
        if meta.get("app") != APP_ID:
            raise StoreCorrupt(f"{self.path} is not a memstrata database (app={meta.get('app')!r})")
        version = int(meta.get("schema_version", "0"))
        if version > CURRENT_VERSION:
            raise SchemaTooNew(
                f"{self.path} has schema version {version}, newer than this memstrata understands "
                f"({CURRENT_VERSION}); upgrade memstrata (pip install -U memstrata)"
            )

    def _migrate(self) -> None:
        """Create the schema in a new file, or bring an older one up to CURRENT_VERSION."""
        with self._write() as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "meta" not in tables:
                conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                conn.execute("INSERT INTO meta VALUES ('app', ?), ('schema_version', '0')", (APP_ID,))
            version = int(dict(conn.execute("SELECT key, value FROM meta"))["schema_version"])
            for target in range(version, CURRENT_VERSION):
                for statement in _split_sql(MIGRATIONS[target]):
                    conn.execute(statement)
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(target + 1),))

    # ------------------------------------------------------------------ transactions

    def _retry(self, fn: Callable[[], T]) -> T:
        delay = 0.01
        for attempt in range(self._max_retries + 1):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                msg = str(exc).lower()
                if ("locked" not in msg and "busy" not in msg) or attempt == self._max_retries:
                    raise StoreError(f"database {self.path}: {exc}") from None
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: committed when the block ends, rolled back on any error."""
        with self._lock:
            self._retry(lambda: self._conn.execute("BEGIN IMMEDIATE"))
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._retry(lambda: self._conn.execute("COMMIT"))

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._retry(lambda: self._conn.execute(sql, params).fetchall())

    def _bump(self, conn: sqlite3.Connection, pairs: Iterable[tuple[str | None, str | None]]) -> None:
        keys = {k for u, a in pairs for k in _scope_keys(u, a)}
        conn.executemany(
            "INSERT INTO scope_versions VALUES (?, 1) ON CONFLICT(scope_key) DO UPDATE SET version = version + 1",
            [(k,) for k in keys],
        )

    # ------------------------------------------------------------------ rows <-> records

    def _to_record(self, row: tuple, sources: list[str]) -> Record:
        return record_from_row(row, sources)

    def _records_by_rid(self, rows: list[tuple]) -> list[Record]:
        if not rows:
            return []
        rids = [r[0] for r in rows]
        sources: dict[int, list[str]] = {rid: [] for rid in rids}
        for chunk in _chunks(rids, 900):
            for rid, source_id in self._conn.execute(
                f"SELECT rid, source_id FROM sources WHERE rid IN ({','.join('?' * len(chunk))}) ORDER BY rid, position",
                chunk,
            ):
                sources[rid].append(source_id)
        return [self._to_record(r, sources[r[0]]) for r in rows]

    # ------------------------------------------------------------------ writes

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
        if vectors is not None and len(vectors) != len(records):
            raise ValueError("one vector per record is required")
        stamp = self._clock()
        redirected: dict[str, str] = {}
        with self._write() as conn:
            for chunk in _chunks([r.id for r in records], 500):
                taken = conn.execute(
                    f"SELECT id FROM records WHERE id IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                if taken:
                    raise InvalidInput(f"memory id {taken[0][0]!r} already exists; give new ids", field="id")
            for i, rec in enumerate(records):
                if rec.dedup_key and rec.layer_value > 0 and rec.status == "active":
                    # Another writer may have stored the same statement since the caller looked:
                    # merge here, inside the transaction, instead of storing a duplicate.
                    same = conn.execute(
                        "SELECT id FROM records WHERE dedup_key = ? AND status = 'active' AND layer = ? "
                        "AND user_id IS ? AND agent_id IS ? LIMIT 1",
                        (rec.dedup_key, rec.layer_value, rec.user_id, rec.agent_id),
                    ).fetchone()
                    if same is not None:
                        redirected[rec.id] = same[0]
                        self._add_sources(conn, same[0], rec.sources, stamp, actor)
                        continue
                cur = conn.execute(
                    "INSERT INTO records (id, layer, kind, user_id, agent_id, session_id, role, speaker, content, "
                    "content_hash, event_time, created_at, updated_at, valid_from, valid_to, status, importance, "
                    "keywords, entities, metadata, dedup_key, slot, strength, last_access, pinned) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        rec.id, rec.layer_value, rec.kind, rec.user_id, rec.agent_id, rec.session_id, rec.role,
                        rec.speaker, rec.content, text_hash(rec.embedding_text), rec.event_time.timestamp(),
                        rec.created_at.timestamp(), rec.updated_at.timestamp(),
                        rec.valid_from.timestamp() if rec.valid_from else None,
                        rec.valid_to.timestamp() if rec.valid_to else None,
                        rec.status, rec.importance, json.dumps(rec.keywords), json.dumps(rec.entities),
                        json.dumps(rec.metadata, ensure_ascii=False), rec.dedup_key, rec.slot,
                        rec.strength, rec.last_access.timestamp() if rec.last_access else None, int(rec.pinned),
                    ),
                )
                rid = cur.lastrowid
                if rec.sources:
                    conn.executemany(
                        "INSERT OR IGNORE INTO sources VALUES (?, ?, ?)",
                        [(rid, s, pos) for pos, s in enumerate(rec.sources)],
                    )
                if vectors is not None and model is not None:
                    conn.execute(
                        "INSERT INTO vectors VALUES (?, ?, ?)",
                        (rid, model, np.ascontiguousarray(vectors[i], dtype=np.float32).tobytes()),
                    )
                conn.execute(
                    "INSERT INTO history (record_id, event, at, new_content, actor) VALUES (?, 'created', ?, ?, ?)",
                    (rec.id, stamp, rec.content, actor),
                )
            touched = [(r.user_id, r.agent_id) for r in records]
            for record_id, new_sources in (merges or {}).items():
                touched.append(self._add_sources(conn, record_id, new_sources, stamp, actor))
            for record_id, (valid_to, by) in (supersede or {}).items():
                # closes an active record, or ends a closed one earlier (a state told late fits in between)
                row = conn.execute(
                    "UPDATE records SET status = 'superseded', valid_to = ?, updated_at = ? WHERE id = ? "
                    "AND (status = 'active' OR (status = 'superseded' AND valid_to > ?)) RETURNING user_id, agent_id",
                    (valid_to.timestamp(), stamp, record_id, valid_to.timestamp()),
                ).fetchone()
                if row is not None:
                    touched.append(row)
                    conn.execute(
                        "INSERT INTO history (record_id, event, at, actor, detail) VALUES (?, 'superseded', ?, ?, ?)",
                        (record_id, stamp, actor, json.dumps({"by": by, "valid_to": valid_to.isoformat()})),
                    )
            self._bump(conn, touched)
            self._cut_change_log(conn)
        return redirected

    # ------------------------------------------------------------------ the matrices' change log

    def _change_mark(self) -> int | None:
        rows = self._read("SELECT seq FROM sqlite_sequence WHERE name = 'matrix_changes'")
        return int(rows[0][0]) if rows else 0

    def _changed_rids(self, scope: Scope, since: int, limit: int) -> list[int] | None:
        where, params = _scope_where(scope, "c")
        rids = [r[0] for r in self._read(
            f"SELECT DISTINCT c.rid FROM matrix_changes c WHERE {where} AND c.seq > ? LIMIT ?", [*params, since, limit + 1])]
        (cut,) = self._read("SELECT value FROM meta WHERE key = 'matrix_changes_cut'")[0]  # after the rows: see put
        return None if since < int(cut) or len(rids) > limit else rids

    @staticmethod
    def _cut_change_log(conn: sqlite3.Connection, keep: int = CHANGE_LOG_ROWS) -> None:
        """Keep the newest `keep` rows of the change log; meta notes where it was cut."""
        (top,) = conn.execute("SELECT coalesce(max(seq), 0) FROM matrix_changes").fetchone()
        if conn.execute("DELETE FROM matrix_changes WHERE seq <= ?", (top - keep,)).rowcount:
            conn.execute("UPDATE meta SET value = max(CAST(value AS INTEGER), ?) WHERE key = 'matrix_changes_cut'",
                         (top - keep,))

    def _add_sources(
        self, conn: sqlite3.Connection, record_id: str, new_sources: Sequence[str], stamp: float, actor: str
    ) -> tuple[str | None, str | None]:
        row = conn.execute("SELECT rid, user_id, agent_id FROM records WHERE id = ?", (record_id,)).fetchone()
        if row is None:
            raise NotFound(f"no memory {record_id!r} to merge into")
        rid, user_id, agent_id = row
        start = conn.execute("SELECT coalesce(max(position) + 1, 0) FROM sources WHERE rid = ?", (rid,)).fetchone()[0]
        added = [s for s in new_sources if conn.execute(
            "INSERT OR IGNORE INTO sources VALUES (?, ?, ?)", (rid, s, start + new_sources.index(s))).rowcount]
        if added:
            conn.execute("UPDATE records SET updated_at = ? WHERE rid = ?", (stamp, rid))
            conn.execute(
                "INSERT INTO history (record_id, event, at, actor, detail) VALUES (?, 'merged', ?, ?, ?)",
                (record_id, stamp, actor, json.dumps({"sources_added": added})),
            )
        return user_id, agent_id

    def find_by_keys(self, scope: Scope, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            return {}
        where, params = _scope_where(Scope(user_id=scope.user_id, agent_id=scope.agent_id))
        out: dict[str, str] = {}
        for chunk in _chunks(list(dict.fromkeys(keys)), 500):
            for key, rid_id in self._read(
                f"SELECT r.dedup_key, r.id FROM records r WHERE r.dedup_key IN ({','.join('?' * len(chunk))}) "
                f"AND r.status = 'active' AND {where} ORDER BY r.rid",
                [*chunk, *params],
            ):
                out.setdefault(key, rid_id)
        return out

    def slot_timelines(self, scope: Scope, slots: Sequence[str]) -> dict[str, list[SlotState]]:
        if not slots:
            return {}
        where, params = _scope_where(Scope(user_id=scope.user_id, agent_id=scope.agent_id))
        out: dict[str, list[SlotState]] = {}
        for chunk in _chunks(list(dict.fromkeys(slots)), 500):
            for slot, rid_id, valid_from, valid_to, status in self._read(
                f"SELECT r.slot, r.id, coalesce(r.valid_from, r.event_time), r.valid_to, r.status FROM records r "
                # a superseded record without valid_to was merged into another: not a state of its own
                f"WHERE r.slot IN ({','.join('?' * len(chunk))}) AND {where} "
                "AND (r.status = 'active' OR (r.status = 'superseded' AND r.valid_to IS NOT NULL)) "
                "ORDER BY coalesce(r.valid_from, r.event_time), r.rid",
                [*chunk, *params],
            ):
                out.setdefault(slot, []).append(SlotState(
                    id=rid_id, valid_from=to_datetime(valid_from),
                    valid_to=to_datetime(valid_to) if valid_to is not None else None, active=status == "active",
                ))
        return out

    def speakers(self, scope: Scope, limit: int = 50) -> list[str]:
        where, params = _scope_where(Scope(user_id=scope.user_id, agent_id=scope.agent_id))
        rows = self._read(
            f"SELECT r.speaker, count(*) AS n FROM records r WHERE {where} AND r.layer = 0 AND r.speaker IS NOT NULL "
            "GROUP BY r.speaker ORDER BY n DESC LIMIT ?",
            [*params, limit],
        )
        return [r[0] for r in rows]

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
        where, params = _scope_where(scope, by_id=True)
        with self._write() as conn:
            row = conn.execute(
                f"SELECT rid, content, metadata, user_id, agent_id, content_hash FROM records r "
                f"WHERE r.id = ? AND {where}",
                [record_id, *params],
            ).fetchone()
            if row is None:
                raise NotFound(f"no memory {record_id!r} in scope {scope.label()}")
            rid, old_content, old_meta, user_id, agent_id, old_hash = row
            stamp = self._clock()
            sets, values = ["updated_at = ?"], [stamp]
            if content is not None:
                sets += ["content = ?"]
                values += [content]
            if metadata is not None:
                sets.append("metadata = ?")
                values.append(json.dumps(metadata, ensure_ascii=False))
            conn.execute(f"UPDATE records SET {', '.join(sets)} WHERE rid = ?", [*values, rid])
            if content is not None:
                rec_row = conn.execute("SELECT speaker, content FROM records WHERE rid = ?", (rid,)).fetchone()
                conn.execute(
                    "UPDATE records SET content_hash = ? WHERE rid = ?", (text_hash(embedding_text(*rec_row)), rid)
                )
                self._purge_cache(conn, [(user_id, agent_id, old_hash)])  # the replaced text leaves the cache
            if vector is not None and model is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                    (rid, model, np.ascontiguousarray(vector, dtype=np.float32).tobytes()),
                )
            detail = {"metadata": {"old": json.loads(old_meta), "new": metadata}} if metadata is not None else {}
            conn.execute(
                "INSERT INTO history (record_id, event, at, old_content, new_content, actor, detail) "
                "VALUES (?, 'updated', ?, ?, ?, ?, ?)",
                (record_id, stamp, old_content, content if content is not None else old_content, actor,
                 json.dumps(detail)),
            )
            self._bump(conn, [(user_id, agent_id)])
            full = conn.execute(f"SELECT {_RECORD_COLUMNS} FROM records WHERE rid = ?", (rid,)).fetchall()
            return self._records_by_rid(full)[0]

    def _delete_rids(self, conn: sqlite3.Connection, rows: list[tuple]) -> int:
        """Delete (rid, id, user_id, agent_id, content_hash) rows and every trace of their content.

        Derived records lose the deleted ids from their sources; one left with no source is deleted too.
        """
        if not rows:
            return 0
        stamp = self._clock()
        total = 0
        while rows:
            total += len(rows)
            orphans: list[tuple] = []
            for chunk in _chunks(rows, 500):
                rids = [r[0] for r in chunk]
                ids = [r[1] for r in chunk]
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM records WHERE rid IN ({marks})", rids)  # cascades: sources, links, vectors
                conn.execute(f"DELETE FROM history WHERE record_id IN ({marks})", ids)
                conn.executemany(
                    "INSERT INTO audit (record_id, event, at) VALUES (?, 'deleted', ?)", [(i, stamp) for i in ids]
                )
                orphans += self._unlink_sources(conn, ids)
                self._purge_cache(conn, {(r[2], r[3], r[4]) for r in chunk})
            self._bump(conn, ((r[2], r[3]) for r in rows))
            rows = orphans
        return total

    def _purge_cache(self, conn: sqlite3.Connection, owned: Iterable[tuple[str | None, str | None, str]]) -> None:
        """Drop the cached vectors of (user_id, agent_id, content_hash) texts no record of that owner
        still has: deleting a memory takes its text out of the embedding cache too."""
        owned = list(owned)
        self._forget_ann(owned)  # and the saved ANN indexes that may hold its vector
        gone = [
            cache_key(user_id, agent_id, h) for user_id, agent_id, h in owned
            if conn.execute(
                "SELECT 1 FROM records WHERE content_hash = ? AND user_id IS ? AND agent_id IS ? LIMIT 1",
                (h, user_id, agent_id),
            ).fetchone() is None
        ]
        for chunk in _chunks(gone, 500):
            conn.execute(f"DELETE FROM embed_cache WHERE text_hash IN ({','.join('?' * len(chunk))})", chunk)

    def _unlink_sources(self, conn: sqlite3.Connection, source_ids: list[str]) -> list[tuple]:
        """Remove `source_ids` from every record's sources; return the derived records left with none,
        and the topics and profile facts (layers 2-3) that lost any: their text may carry the removed
        content, so they go too and the next organise rebuilds them from what remains."""
        marks = ",".join("?" * len(source_ids))
        dependants = [r[0] for r in conn.execute(f"SELECT DISTINCT rid FROM sources WHERE source_id IN ({marks})", source_ids)]
        if not dependants:
            return []
        conn.execute(f"DELETE FROM sources WHERE source_id IN ({marks})", source_ids)
        return conn.execute(
            f"SELECT rid, id, user_id, agent_id, content_hash FROM records r WHERE r.rid IN "
            f"({','.join('?' * len(dependants))}) AND r.layer > 0 "
            "AND (r.layer >= 2 OR NOT EXISTS (SELECT 1 FROM sources s WHERE s.rid = r.rid))",
            dependants,
        ).fetchall()

    def detach(self, source_id: str, scope: Scope) -> int:
        """Remove `source_id` from the sources of records in `scope`; delete those left with none. Returns deletions."""
        where, params = _scope_where(Scope(user_id=scope.user_id, agent_id=scope.agent_id), by_id=True)
        with self._write() as conn:
            if conn.execute(f"SELECT 1 FROM records r WHERE r.id = ? AND {where}", [source_id, *params]).fetchone() is None:
                raise NotFound(f"no memory {source_id!r} in scope {scope.label()}")
            return self._delete_rids(conn, self._unlink_sources(conn, [source_id]))

    def delete(self, ids: Sequence[str], scope: Scope) -> int:
        where, params = _scope_where(scope, by_id=True)
        with self._write() as conn:
            rows: list[tuple] = []
            for chunk in _chunks(list(ids), 500):
                rows += conn.execute(
                    f"SELECT rid, id, user_id, agent_id, content_hash FROM records r "
                    f"WHERE r.id IN ({','.join('?' * len(chunk))}) AND {where}",
                    [*chunk, *params],
                ).fetchall()
            return self._delete_rids(conn, rows)

    def delete_scope(self, scope: Scope) -> int:
        where, params = _scope_where(scope)
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT rid, id, user_id, agent_id, content_hash FROM records r WHERE {where}", params
            ).fetchall()
            if scope.session_id is None:  # the whole user/agent: its organise progress goes too
                conn.execute("DELETE FROM organise_state WHERE scope_key = ?", (_state_key(scope),))
            return self._delete_rids(conn, rows)

    def organise_state(self, scope: Scope, step: str) -> str | None:
        rows = self._read("SELECT value FROM organise_state WHERE scope_key = ? AND step = ?", [_state_key(scope), step])
        return rows[0][0] if rows else None

    def set_organise_state(self, scope: Scope, step: str, value: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO organise_state VALUES (?, ?, ?) ON CONFLICT(scope_key, step) DO UPDATE SET value = excluded.value",
                (_state_key(scope), step, value),
            )

    def reset(self) -> None:
        with self._write() as conn:
            for table in ("links", "sources", "vectors", "records", "history", "audit", "embed_cache", "organise_state"):
                conn.execute(f"DELETE FROM {table}")
            # Versions are bumped, not dropped (a stamp that restarted could match another process's cached
            # matrix again), and the change log is cut, so no such matrix is patched across the reset.
            conn.execute("UPDATE scope_versions SET version = version + 1")
            self._cut_change_log(conn, keep=0)
            conn.execute("INSERT INTO records_fts(records_fts) VALUES ('rebuild')")
        self._matrices.clear()
        if self._ann is not None:
            self._ann.clear()

    # ------------------------------------------------------------------ reads

    def get(self, ids: Sequence[str], scope: Scope) -> list[Record]:
        if not ids:
            return []
        where, params = _scope_where(scope, by_id=True)
        with self._lock:
            rows: list[tuple] = []
            for chunk in _chunks(list(ids), 500):
                rows += self._retry(
                    lambda: self._conn.execute(
                        f"SELECT {_RECORD_COLUMNS} FROM records r WHERE r.id IN ({','.join('?' * len(chunk))}) AND {where}",
                        [*chunk, *params],
                    ).fetchall()
                )
            records = {rec.id: rec for rec in self._records_by_rid(rows)}
        return [records[i] for i in ids if i in records]

    def list(
        self, scope: Scope, filters: SearchFilters | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> Page:
        filters = filters or SearchFilters(include_inactive=True)
        where, params = _scope_where(scope)
        fwhere, fparams = _filter_where(filters)
        sql = f"SELECT {_RECORD_COLUMNS} FROM records r WHERE {where}"
        if fwhere:
            sql += f" AND {fwhere}"
        if cursor:
            sql += " AND r.rid > ?"
            fparams = [*fparams, _decode_cursor(cursor)]
        sql += " ORDER BY r.rid LIMIT ?"
        with self._lock:
            rows = self._retry(lambda: self._conn.execute(sql, [*params, *fparams, limit + 1]).fetchall())
            more = len(rows) > limit
            rows = rows[:limit]
            items = self._records_by_rid(rows)
        return Page(items=items, next_cursor=_encode_cursor(rows[-1][0]) if more else None)

    def history(self, record_id: str, scope: Scope) -> list[HistoryEvent]:
        where, params = _scope_where(scope, by_id=True)
        if not self._read(f"SELECT 1 FROM records r WHERE r.id = ? AND {where}", [record_id, *params]):
            raise NotFound(f"no memory {record_id!r} in scope {scope.label()}")
        rows = self._read(
            "SELECT record_id, event, at, old_content, new_content, actor, detail FROM history "
            "WHERE record_id = ? ORDER BY hid",
            (record_id,),
        )
        return [
            HistoryEvent(record_id=r[0], event=r[1], at=to_datetime(r[2]), old_content=r[3], new_content=r[4],
                         actor=r[5], detail=json.loads(r[6]))
            for r in rows
        ]

    def lexical_search(self, terms: Sequence[str], scope: Scope, filters: SearchFilters, limit: int) -> list[tuple[str, float]]:
        query = _fts_query(terms)
        if not query or limit <= 0:
            return []
        # the scope's tokens narrow the match inside FTS5; the SQL scope filter below stays exact
        owners = " AND ".join(f'scope_tokens : "{t}"' for t in scope_tokens(scope.user_id, scope.agent_id))
        query = f"{owners} AND ({query})" if owners else query
        where, params = _scope_where(scope)
        fwhere, fparams = _filter_where(filters)
        sql = (
            "SELECT r.id, bm25(records_fts, 1.0, 0.5, 1.0, 1.0, 0.0) AS s FROM records_fts "
            "JOIN records r ON r.rid = records_fts.rowid "
            f"WHERE records_fts MATCH ? AND {where}" + (f" AND {fwhere}" if fwhere else "") + " ORDER BY s LIMIT ?"
        )
        rows = self._read(sql, [query, *params, *fparams, limit])
        return [(rid, -score) for rid, score in rows]

    # ------------------------------------------------------------------ links and scopes

    def put_links(self, links: Sequence[tuple[str, str, str, float]]) -> int:
        if not links:
            return 0
        with self._write() as conn:
            ids = list({x for a, b, _, _ in links for x in (a, b)})
            rid_of: dict[str, int] = {}
            for chunk in _chunks(ids, 500):
                rid_of.update(conn.execute(
                    f"SELECT id, rid FROM records WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall())
            rows = [(rid_of[a], rid_of[b], k, w) for a, b, k, w in links if a in rid_of and b in rid_of]
            before = conn.total_changes
            conn.executemany(
                "INSERT INTO links VALUES (?, ?, ?, ?) ON CONFLICT(src, dst, kind) DO UPDATE SET weight = excluded.weight "
                "WHERE weight != excluded.weight",
                rows,
            )
            return conn.total_changes - before

    def delete_links(self, src_ids: Sequence[str], kind: str, keep: Sequence[tuple[str, str]] = ()) -> int:
        """Delete `kind` links leaving `src_ids`, except the (src, dst) pairs in `keep`."""
        keep_set = set(keep)
        removed = 0
        with self._write() as conn:
            for chunk in _chunks(list(src_ids), 500):
                rows = conn.execute(
                    "SELECT l.src, l.dst, a.id, b.id FROM links l JOIN records a ON a.rid = l.src "
                    f"JOIN records b ON b.rid = l.dst WHERE l.kind = ? AND a.id IN ({','.join('?' * len(chunk))})",
                    [kind, *chunk],
                ).fetchall()
                doomed = [(s_, d_) for s_, d_, a, b in rows if (a, b) not in keep_set]
                conn.executemany("DELETE FROM links WHERE src = ? AND dst = ? AND kind = ?", [(s_, d_, kind) for s_, d_ in doomed])
                removed += len(doomed)
        return removed

    def neighbours(
        self, ids: Sequence[str], scope: Scope, kinds: Sequence[str] | None = None
    ) -> list[tuple[str, str, str, float]]:
        if not ids:
            return []
        where, params = _scope_where(Scope(user_id=scope.user_id, agent_id=scope.agent_id), "b")
        kind_sql = f" AND l.kind IN ({','.join('?' * len(kinds))})" if kinds else ""
        out: list[tuple[str, str, str, float]] = []
        for chunk in _chunks(list(ids), 500):
            out += self._read(
                "SELECT a.id, b.id, l.kind, l.weight FROM links l JOIN records a ON a.rid = l.src "
                f"JOIN records b ON b.rid = l.dst WHERE a.id IN ({','.join('?' * len(chunk))}){kind_sql} AND {where}",
                [*chunk, *(kinds or []), *params],
            )
        return out

    def adjacent(self, ids: Sequence[str], scope: Scope, width: int = 1) -> dict[str, list[str]]:
        """For each given episode, the episodes next to it in its session (up to `width` turns before
        and after, in event-time order), nearest first. Ids that are not episodes of the scope map
        to nothing."""
        where, params = _scope_where(scope, "e")
        out: dict[str, list[str]] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), 200):
            seeds = self._read(
                f"SELECT e.id, e.session_id, e.event_time, e.rid FROM records e "
                f"WHERE e.id IN ({','.join('?' * len(chunk))}) AND e.layer = 0 AND e.session_id IS NOT NULL "
                f"AND {where}",
                [*chunk, *params],
            )
            for seed, session, at, rid in seeds:
                side = (
                    "SELECT e.id FROM records e WHERE e.session_id = ? AND e.layer = 0 AND {cmp} AND "
                    + where + " ORDER BY e.event_time {order}, e.rid {order} LIMIT ?"
                )
                before = self._read(side.format(cmp="(e.event_time, e.rid) < (?, ?)", order="DESC"),
                                    [session, at, rid, *params, width])
                after = self._read(side.format(cmp="(e.event_time, e.rid) > (?, ?)", order="ASC"),
                                   [session, at, rid, *params, width])
                nearest = [x for pair in zip_longest(before, after) for x in pair if x is not None]
                out[seed] = [i for (i,) in nearest]
        return out

    def scopes(self) -> list[Scope]:
        rows = self._read("SELECT DISTINCT user_id, agent_id FROM records ORDER BY user_id, agent_id")
        return [Scope(user_id=u, agent_id=a) for u, a in rows]

    # ------------------------------------------------------------------ embedding cache

    def embedding_cache_get(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for chunk in _chunks(list(hashes), 500):
            for h, blob in self._read(
                f"SELECT text_hash, vec FROM embed_cache WHERE model = ? AND text_hash IN ({','.join('?' * len(chunk))})",
                [model, *chunk],
            ):
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def embedding_cache_put(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = [(model, h, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for h, v in items]
        if not rows:
            return
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO embed_cache VALUES (?, ?, ?)", rows)

    # ------------------------------------------------------------------ maintenance

    def stats(self, scope: Scope | None = None) -> dict:
        where, params = _scope_where(scope) if scope else ("1=1", [])
        layers = self._read(
            f"SELECT r.layer, r.status, count(*) FROM records r WHERE {where} GROUP BY r.layer, r.status", params
        )
        scopes = self._read(f"SELECT count(DISTINCT coalesce(r.user_id,'') || '|' || coalesce(r.agent_id,'')) FROM records r WHERE {where}", params)[0][0]
        sessions = self._read(f"SELECT count(DISTINCT r.session_id) FROM records r WHERE {where}", params)[0][0]
        by_layer: dict[str, dict[str, int]] = {}
        names = {0: "episodes", 1: "notes", 2: "topics", 3: "profile"}
        for layer, status, count in layers:
            by_layer.setdefault(names[layer], {})[status] = count
        size = self.path.stat().st_size if str(self.path) != ":memory:" and self.path.exists() else 0
        return {
            "path": str(self.path),
            "schema_version": CURRENT_VERSION,
            "records": by_layer,
            "scopes": scopes,
            "sessions": sessions,
            "file_bytes": size,
        }

    def integrity_check(self) -> list[str]:
        problems: list[str] = []
        checks = [
            ("PRAGMA integrity_check", lambda rows: [r[0] for r in rows if r[0] != "ok"]),
            ("PRAGMA foreign_key_check", lambda rows: [f"foreign key violation in {r[0]}" for r in rows]),
            ("INSERT INTO records_fts(records_fts, rank) VALUES ('integrity-check', 1)", lambda rows: []),
        ]
        for sql, read in checks:
            try:
                with self._lock:
                    problems += read(self._conn.execute(sql).fetchall())
            except sqlite3.DatabaseError as exc:
                problems.append(f"{sql.split()[0]} {sql.split()[1]}: {exc}")
        return problems

    def analyze(self) -> None:
        """`ANALYZE` with SQLite's sampling limit (`analysis_limit`), so a large file costs a bounded read
        per index. (`PRAGMA optimize` analyses what the connection's past queries asked for: after a bulk
        `put` that ran none, the records table was left without statistics.)"""
        with self._lock:
            self._conn.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
            self._conn.execute("ANALYZE")

    def vacuum(self) -> None:
        """Rewrite the file so deleted bytes are gone from disk (lexical index merged, free pages dropped)."""
        with self._write() as conn:
            # Merging the FTS segments drops the terms of deleted rows, which tombstones keep until then.
            conn.execute("INSERT INTO records_fts(records_fts) VALUES ('optimize')")
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._matrices.clear()
        if self._ann is not None:
            self._ann.close()
