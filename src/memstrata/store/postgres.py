"""The Postgres store: several processes or machines over one database (docs/postgres.md).

Records, sources, links, history and caches are tables as in the SQLite backend; the lexical index
is a posting table kept by triggers from a tsvector column; vectors are float32 bytes searched in process by the shared exact path
(store/vecpath.py), each process caching a scope's matrix under the scope's version stamp, which
every write bumps inside its transaction.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import InvalidInput, NotFound, SchemaTooNew, StoreCorrupt, StoreError
from ..model import HistoryEvent, Page, Record, Scope, SearchFilters, SlotState, cache_key, embedding_text, text_hash
from ..timeutil import now, to_datetime
from .ann import ann_indexes
from .exact import MatrixCache
from .postgres_bm25 import Bm25Stats, bm25_sql
from .postgres_conn import Connector, replayable
from .postgres_lifecycle import PostgresLifecycle
from .postgres_schema import CURRENT_VERSION, MIGRATIONS, TABLES, TS_CONFIG
from .postgres_sql import Cursor, filter_sql, jsonb_equals, locked_row, scope_sql
from .rows import record_from_row, state_key
from .sqlite_schema import APP_ID
from .sqlite_sql import _RECORD_COLUMNS, _decode_cursor, _encode_cursor, _scope_keys
from .vecpath import CHANGE_LOG_ROWS, ExactVectorSearch

#: A record's columns and, last, its sources in order: one statement reads both.
_RECORD_SELECT = (
    f"{_RECORD_COLUMNS}, (SELECT coalesce(array_agg(s.source_id ORDER BY s.position), ARRAY[]::text[]) "
    "FROM sources s WHERE s.rid = r.rid)"
)
_DELETED_ROW = "r.rid, r.id, r.user_id, r.agent_id, r.content_hash"


def _owner(scope: Scope) -> Scope:
    return Scope(user_id=scope.user_id, agent_id=scope.agent_id)


def _vec_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


class PostgresStore(PostgresLifecycle, ExactVectorSearch):
    """Postgres backend. Thread-safe: a pool of connections, so reads run concurrently; each write is one
    transaction, run again after a deadlock or serialization failure. Any number of processes may share
    one database."""

    _sql_mark = "%s"
    _sql_infinity = "'Infinity'::float8"
    _sql_metadata = staticmethod(jsonb_equals)
    _erase_grace_s = 30.0  # reads run on other pooled connections while a transaction commits (store/vecpath.py)

    def __init__(
        self,
        url: str,
        *,
        schema: str = "public",
        vector_cache_mb: int = 512,
        search_threads: int | None = 1,
        ann_min_vectors: int = 50_000,
        ann_expansion_search: int = 128,
        ann_cache_mb: int = 1024,
        ann_dir: str | Path | None = None,
        ann_disk_mb: int = 4096,
        connect_timeout_s: int = 10,
        pool_min: int = 1,
        pool_max: int = 8,
        clock: Callable[[], float] | None = None,
    ) -> None:
        #: Epoch seconds for created/updated stamps and history (the owner's clock, so tests can set time).
        self._clock: Callable[[], float] = clock or now
        self._search_threads = search_threads
        self._matrices = MatrixCache(vector_cache_mb * 1024 * 1024)
        self._ann = ann_indexes(ann_min_vectors, ann_expansion_search, ann_cache_mb, search_threads, ann_dir,
                                ann_disk_mb)
        self._bm25 = Bm25Stats()
        self._db = Connector(url, schema=schema, connect_timeout_s=connect_timeout_s, pool_min=pool_min,
                             pool_max=pool_max)
        self.schema = schema
        #: The database's URL without its password (for messages and stats).
        self.path = self._db.display
        try:
            self._check_identity()
            self._migrate()
        except Exception:
            self._db.close()
            raise

    # ------------------------------------------------------------------ opening

    def _check_identity(self) -> None:
        """Refuse a schema that is not memstrata's or is newer than this code."""
        tables = {r[0] for r in self._read(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [self.schema])}
        if not tables:
            return
        where = f"schema {self.schema!r} of {self.path}"
        if "meta" not in tables:
            raise StoreCorrupt(
                f"{where} has tables ({', '.join(sorted(tables)[:5])}) but is not a memstrata store; "
                "use another database or postgres_schema"
            )
        meta = dict(self._read("SELECT key, value FROM meta"))
        if meta.get("app") != APP_ID:
            raise StoreCorrupt(f"{where} is not a memstrata store (app={meta.get('app')!r})")
        version = int(meta.get("schema_version", "0"))
        if version > CURRENT_VERSION:
            raise SchemaTooNew(
                f"{where} has schema version {version}, newer than this memstrata understands "
                f"({CURRENT_VERSION}); upgrade memstrata (pip install -U memstrata)"
            )

    @replayable
    def _migrate(self) -> None:
        """Create the schema, or bring an older one up to CURRENT_VERSION (one process at a time)."""
        with self._write() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"memstrata:migrate:{self.schema}"])
            cur.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'meta'", [self.schema])
            if cur.fetchone() is None:
                cur.execute("CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)")
                cur.execute("INSERT INTO meta VALUES ('app', %s), ('schema_version', '0')", [APP_ID])
            cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
            version = int(cur.fetchone()[0])
            for target in range(version, CURRENT_VERSION):
                cur.execute(MIGRATIONS[target])
                cur.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", [str(target + 1)])

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        """One transaction on a pooled connection: committed when the block ends, rolled back on any error.
        A method whose whole effect is this transaction is `@replayable`."""
        with self._db.transaction() as cur:
            yield cur

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self._db.fetchall(sql, params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one statement (%s placeholders) in the store's schema, run on its own: for the tables that
        hold no memories (the server's API keys, server/keys.py)."""
        return self._db.fetchall(sql, params)

    def _bump(self, cur: Cursor, pairs: Iterable[tuple[str | None, str | None]]) -> None:
        """Bump the version stamps of these users/agents (sorted: concurrent writers lock in one order)."""
        keys = sorted({k for u, a in pairs for k in _scope_keys(u, a)})
        if keys:
            cur.execute(
                "INSERT INTO scope_versions SELECT k, 1 FROM unnest(%s::text[]) AS k "
                "ON CONFLICT (scope_key) DO UPDATE SET version = scope_versions.version + 1",
                [keys],
            )

    def _lock_owners(self, cur: Cursor, records: Sequence[Record]) -> None:
        """Serialise writers of the same users/agents for the rest of the transaction (so two processes
        storing the same statement merge it instead of storing it twice)."""
        keys = sorted({k for r in records for k in _scope_keys(r.user_id, r.agent_id)})
        for key in keys:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"memstrata:{self.schema}:{key}"])

    def _put_vector(self, cur: Cursor, rid: int, model: str, vector: np.ndarray) -> None:
        cur.execute(
            "INSERT INTO vectors VALUES (%s, %s, %s) ON CONFLICT (rid) DO UPDATE SET model = excluded.model, "
            "vec = excluded.vec",
            [rid, model, _vec_bytes(vector)],
        )

    def _history(self, cur: Cursor, rows: Sequence[tuple]) -> None:
        """Insert (record_id, event, at, old_content, new_content, actor, detail dict) history rows."""
        if rows:
            cur.executemany(
                "INSERT INTO history (record_id, event, at, old_content, new_content, actor, detail) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(*r[:6], json.dumps(r[6], ensure_ascii=False)) for r in rows],
            )

    # ------------------------------------------------------------------ rows <-> records

    @staticmethod
    def _records(rows: list[tuple]) -> list[Record]:
        """Records from rows of `_RECORD_SELECT` (the sources are its last column)."""
        return [record_from_row(row[:-1], list(row[-1])) for row in rows]

    # ------------------------------------------------------------------ writes

    @replayable
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
        with self._write() as cur:
            self._lock_owners(cur, records)
            cur.execute("SELECT id FROM records WHERE id = ANY(%s) LIMIT 1", [[r.id for r in records]])
            taken = cur.fetchone()
            if taken:
                raise InvalidInput(f"memory id {taken[0]!r} already exists; give new ids", field="id")
            source_rows, vector_rows, history_rows = [], [], []
            for i, rec in enumerate(records):
                if rec.dedup_key and rec.layer_value > 0 and rec.status == "active":
                    # Another writer may have stored the same statement since the caller looked:
                    # merge here, inside the transaction, instead of storing a duplicate.
                    cur.execute(
                        "SELECT id FROM records WHERE dedup_key = %s AND status = 'active' AND layer = %s "
                        "AND user_id IS NOT DISTINCT FROM %s AND agent_id IS NOT DISTINCT FROM %s LIMIT 1",
                        [rec.dedup_key, rec.layer_value, rec.user_id, rec.agent_id],
                    )
                    same = cur.fetchone()
                    if same is not None:
                        redirected[rec.id] = same[0]
                        self._add_sources(cur, same[0], rec.sources, stamp, actor)
                        continue
                cur.execute(
                    f"INSERT INTO records ({_RECORD_COLUMNS.removeprefix('rid, ')}, content_hash) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING rid",
                    [
                        rec.id, rec.layer_value, rec.kind, rec.user_id, rec.agent_id, rec.session_id, rec.role,
                        rec.speaker, rec.content, rec.event_time.timestamp(), rec.created_at.timestamp(),
                        rec.updated_at.timestamp(), rec.valid_from.timestamp() if rec.valid_from else None,
                        rec.valid_to.timestamp() if rec.valid_to else None, rec.status, rec.importance,
                        json.dumps(rec.keywords), json.dumps(rec.entities),
                        json.dumps(rec.metadata, ensure_ascii=False), rec.dedup_key, rec.slot, rec.strength,
                        rec.last_access.timestamp() if rec.last_access else None, rec.pinned,
                        text_hash(rec.embedding_text),
                    ],
                )
                rid = cur.fetchone()[0]
                source_rows += [(rid, s, pos) for pos, s in enumerate(rec.sources)]
                if vectors is not None and model is not None:
                    vector_rows.append((rid, model, _vec_bytes(vectors[i])))
                history_rows.append((rec.id, "created", stamp, None, rec.content, actor, {}))
            if source_rows:
                cur.executemany("INSERT INTO sources VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", source_rows)
            if vector_rows:
                cur.executemany("INSERT INTO vectors VALUES (%s, %s, %s)", vector_rows)
            self._history(cur, history_rows)
            touched = [(r.user_id, r.agent_id) for r in records]
            for record_id, new_sources in (merges or {}).items():
                touched.append(self._add_sources(cur, record_id, new_sources, stamp, actor))
            for record_id, (valid_to, by) in (supersede or {}).items():
                # closes an active record, or ends a closed one earlier (a state told late fits in between)
                cur.execute(
                    "UPDATE records SET status = 'superseded', valid_to = %s, updated_at = %s WHERE id = %s "
                    "AND (status = 'active' OR (status = 'superseded' AND valid_to > %s)) RETURNING user_id, agent_id",
                    [valid_to.timestamp(), stamp, record_id, valid_to.timestamp()],
                )
                row = cur.fetchone()
                if row is not None:
                    touched.append(row)
                    self._history(cur, [(record_id, "superseded", stamp, None, None, actor,
                                         {"by": by, "valid_to": valid_to.isoformat()})])
            self._bump(cur, touched)
            self._cut_change_log(cur)
        return redirected

    # ------------------------------------------------------------------ the matrices' change log

    def _change_mark(self) -> int | None:
        return int(self._read("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")[0][0])

    def _changed_rids(self, scope: Scope, since: int, limit: int) -> list[int] | None:
        where, params = scope_sql(scope, "c")
        rids = [r[0] for r in self._read(
            f"SELECT DISTINCT c.rid FROM matrix_changes c WHERE {where} AND c.xid >= %s LIMIT %s",
            [*params, since, limit + 1])]
        cut = int(self._read("SELECT value FROM meta WHERE key = 'matrix_changes_cut'")[0][0])  # after the rows
        return None if since <= cut or len(rids) > limit else rids

    @staticmethod
    def _cut_change_log(cur: Cursor, keep: int = CHANGE_LOG_ROWS) -> None:
        """Keep the newest `keep` rows of the change log; meta notes the newest transaction whose rows went."""
        cur.execute(
            "WITH gone AS (DELETE FROM matrix_changes WHERE seq <= (SELECT max(seq) FROM matrix_changes) - %s "
            "RETURNING xid) UPDATE meta SET value = greatest(value::bigint, (SELECT max(xid) FROM gone))::text "
            "WHERE key = 'matrix_changes_cut' AND EXISTS (SELECT 1 FROM gone)",
            [keep],
        )

    def _add_sources(
        self, cur: Cursor, record_id: str, new_sources: Sequence[str], stamp: float, actor: str
    ) -> tuple[str | None, str | None]:
        cur.execute("SELECT rid, user_id, agent_id FROM records WHERE id = %s", [record_id])
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"no memory {record_id!r} to merge into")
        rid, user_id, agent_id = row
        cur.execute("SELECT coalesce(max(position) + 1, 0) FROM sources WHERE rid = %s", [rid])
        start = cur.fetchone()[0]
        added = []
        for s in new_sources:
            cur.execute("INSERT INTO sources VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                        [rid, s, start + new_sources.index(s)])
            if cur.rowcount:
                added.append(s)
        if added:
            cur.execute("UPDATE records SET updated_at = %s WHERE rid = %s", [stamp, rid])
            self._history(cur, [(record_id, "merged", stamp, None, None, actor, {"sources_added": added})])
        return user_id, agent_id

    @replayable
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
        with self._write() as cur:
            row = locked_row(cur, "rid, content, metadata, user_id, agent_id, content_hash, speaker", record_id, scope)
            if row is None:
                raise NotFound(f"no memory {record_id!r} in scope {scope.label()}")
            rid, old_content, old_meta, user_id, agent_id, old_hash, speaker = row
            stamp = self._clock()
            sets, values = ["updated_at = %s"], [stamp]
            if content is not None:
                sets += ["content = %s", "content_hash = %s"]
                values += [content, text_hash(embedding_text(speaker, content))]
            if metadata is not None:
                sets.append("metadata = %s")
                values.append(json.dumps(metadata, ensure_ascii=False))
            cur.execute(f"UPDATE records SET {', '.join(sets)} WHERE rid = %s", [*values, rid])
            if content is not None:
                self._purge_cache(cur, [(user_id, agent_id, old_hash)])  # the replaced text leaves the cache
            if vector is not None and model is not None:
                self._put_vector(cur, rid, model, vector)
            detail = {"metadata": {"old": json.loads(old_meta), "new": metadata}} if metadata is not None else {}
            self._history(cur, [(record_id, "updated", stamp, old_content,
                                 content if content is not None else old_content, actor, detail)])
            self._bump(cur, [(user_id, agent_id)])
            cur.execute(f"SELECT {_RECORD_SELECT} FROM records r WHERE r.rid = %s", [rid])
            return self._records(cur.fetchall())[0]

    def _delete_rids(self, cur: Cursor, rows: list[tuple]) -> int:
        """Delete (rid, id, user_id, agent_id, content_hash) rows and every trace of their content.

        Derived records lose the deleted ids from their sources; one left with no source is deleted too.
        """
        stamp = self._clock()
        total = 0
        while rows:
            total += len(rows)
            ids = [r[1] for r in rows]
            cur.execute("DELETE FROM records WHERE rid = ANY(%s)", [[r[0] for r in rows]])  # cascades
            cur.execute("DELETE FROM history WHERE record_id = ANY(%s)", [ids])
            cur.execute("INSERT INTO audit (record_id, event, at) SELECT i, 'deleted', %s FROM unnest(%s::text[]) AS i",
                        [stamp, ids])
            orphans = self._unlink_sources(cur, ids)
            self._purge_cache(cur, {(r[2], r[3], r[4]) for r in rows})
            self._bump(cur, ((r[2], r[3]) for r in rows))
            rows = orphans
        return total

    def _purge_cache(self, cur: Cursor, owned: Iterable[tuple[str | None, str | None, str]]) -> None:
        """Drop the cached vectors of (user_id, agent_id, content_hash) texts no record of that owner
        still has: deleting a memory takes its text out of the embedding cache too."""
        owned = list(owned)
        self._forget_ann(owned)  # and the saved ANN indexes that may hold its vector
        gone = []
        for user_id, agent_id, h in owned:
            cur.execute(
                "SELECT 1 FROM records WHERE content_hash = %s AND user_id IS NOT DISTINCT FROM %s "
                "AND agent_id IS NOT DISTINCT FROM %s LIMIT 1",
                [h, user_id, agent_id],
            )
            if cur.fetchone() is None:
                gone.append(cache_key(user_id, agent_id, h))
        if gone:
            cur.execute("DELETE FROM embed_cache WHERE text_hash = ANY(%s)", [gone])

    def _unlink_sources(self, cur: Cursor, source_ids: list[str]) -> list[tuple]:
        """Remove `source_ids` from every record's sources; return the derived records left with none,
        and the topics and profile facts (layers 2-3) that lost any (the next organise rebuilds them)."""
        cur.execute("DELETE FROM sources WHERE source_id = ANY(%s) RETURNING rid", [source_ids])
        dependants = list({r[0] for r in cur.fetchall()})
        if not dependants:
            return []
        cur.execute(
            f"SELECT {_DELETED_ROW} FROM records r WHERE r.rid = ANY(%s) AND r.layer > 0 "
            "AND (r.layer >= 2 OR NOT EXISTS (SELECT 1 FROM sources s WHERE s.rid = r.rid)) ORDER BY r.rid",
            [dependants],
        )
        return cur.fetchall()

    @replayable
    def detach(self, source_id: str, scope: Scope) -> int:
        where, params = scope_sql(_owner(scope))
        with self._write() as cur:
            cur.execute(f"SELECT 1 FROM records r WHERE r.id = %s AND {where}", [source_id, *params])
            if cur.fetchone() is None:
                raise NotFound(f"no memory {source_id!r} in scope {scope.label()}")
            return self._delete_rids(cur, self._unlink_sources(cur, [source_id]))

    @replayable
    def delete(self, ids: Sequence[str], scope: Scope) -> int:
        where, params = scope_sql(scope)
        with self._write() as cur:
            cur.execute(f"SELECT {_DELETED_ROW} FROM records r WHERE r.id = ANY(%s) AND {where} ORDER BY r.rid",
                        [list(ids), *params])
            return self._delete_rids(cur, cur.fetchall())

    @replayable
    def delete_scope(self, scope: Scope) -> int:
        where, params = scope_sql(scope)
        with self._write() as cur:
            cur.execute(f"SELECT {_DELETED_ROW} FROM records r WHERE {where} ORDER BY r.rid", params)
            rows = cur.fetchall()
            if scope.session_id is None:  # the whole user/agent: its organise progress goes too
                cur.execute("DELETE FROM organise_state WHERE scope_key = %s", [state_key(scope)])
            return self._delete_rids(cur, rows)

    def organise_state(self, scope: Scope, step: str) -> str | None:
        rows = self._read("SELECT value FROM organise_state WHERE scope_key = %s AND step = %s",
                          [state_key(scope), step])
        return rows[0][0] if rows else None

    @replayable
    def set_organise_state(self, scope: Scope, step: str, value: str) -> None:
        with self._write() as cur:
            cur.execute(
                "INSERT INTO organise_state VALUES (%s, %s, %s) "
                "ON CONFLICT (scope_key, step) DO UPDATE SET value = excluded.value",
                [state_key(scope), step, value],
            )

    @replayable
    def reset(self) -> None:
        with self._write() as cur:
            cur.execute(f"TRUNCATE {', '.join(TABLES)}")
            # versions are bumped, not dropped: another process's cached matrix must not match again; and
            # TRUNCATE logs no deletions, so no such matrix may be patched across it
            cur.execute("UPDATE scope_versions SET version = version + 1")
            cur.execute("UPDATE meta SET value = pg_current_xact_id()::text WHERE key = 'matrix_changes_cut'")
        self._matrices.clear()
        self._bm25.clear()
        if self._ann is not None:
            self._ann.clear()

    # ------------------------------------------------------------------ reads

    def find_by_keys(self, scope: Scope, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            return {}
        where, params = scope_sql(_owner(scope))
        out: dict[str, str] = {}
        for key, rid_id in self._read(
            f"SELECT r.dedup_key, r.id FROM records r WHERE r.dedup_key = ANY(%s) AND r.status = 'active' "
            f"AND {where} ORDER BY r.rid",
            [list(keys), *params],
        ):
            out.setdefault(key, rid_id)
        return out

    def slot_timelines(self, scope: Scope, slots: Sequence[str]) -> dict[str, list[SlotState]]:
        if not slots:
            return {}
        where, params = scope_sql(_owner(scope))
        out: dict[str, list[SlotState]] = {}
        for slot, rid_id, valid_from, valid_to, status in self._read(
            "SELECT r.slot, r.id, coalesce(r.valid_from, r.event_time), r.valid_to, r.status FROM records r "
            # a superseded record without valid_to was merged into another: not a state of its own
            f"WHERE r.slot = ANY(%s) AND {where} "
            "AND (r.status = 'active' OR (r.status = 'superseded' AND r.valid_to IS NOT NULL)) "
            "ORDER BY coalesce(r.valid_from, r.event_time), r.rid",
            [list(slots), *params],
        ):
            out.setdefault(slot, []).append(SlotState(
                id=rid_id, valid_from=to_datetime(valid_from),
                valid_to=to_datetime(valid_to) if valid_to is not None else None, active=status == "active",
            ))
        return out

    def speakers(self, scope: Scope, limit: int = 50) -> list[str]:
        where, params = scope_sql(_owner(scope))
        rows = self._read(
            f"SELECT r.speaker, count(*) AS n FROM records r WHERE {where} AND r.layer = 0 AND r.speaker IS NOT NULL "
            "GROUP BY r.speaker ORDER BY n DESC, r.speaker LIMIT %s",
            [*params, limit],
        )
        return [r[0] for r in rows]

    def get(self, ids: Sequence[str], scope: Scope) -> list[Record]:
        if not ids:
            return []
        where, params = scope_sql(scope)
        rows = self._read(f"SELECT {_RECORD_SELECT} FROM records r WHERE r.id = ANY(%s) AND {where}",
                          [list(ids), *params])
        records = {rec.id: rec for rec in self._records(rows)}
        return [records[i] for i in ids if i in records]

    def list(
        self, scope: Scope, filters: SearchFilters | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> Page:
        where, params = scope_sql(scope)
        fwhere, fparams = filter_sql(filters or SearchFilters(include_inactive=True))
        sql = f"SELECT {_RECORD_SELECT} FROM records r WHERE {where}" + (f" AND {fwhere}" if fwhere else "")
        if cursor:
            sql += " AND r.rid > %s"
            fparams = [*fparams, _decode_cursor(cursor)]
        rows = self._read(sql + " ORDER BY r.rid LIMIT %s", [*params, *fparams, limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        items = self._records(rows)
        return Page(items=items, next_cursor=_encode_cursor(rows[-1][0]) if more else None)

    def history(self, record_id: str, scope: Scope) -> list[HistoryEvent]:
        where, params = scope_sql(scope)
        if not self._read(f"SELECT 1 FROM records r WHERE r.id = %s AND {where}", [record_id, *params]):
            raise NotFound(f"no memory {record_id!r} in scope {scope.label()}")
        rows = self._read(
            "SELECT record_id, event, at, old_content, new_content, actor, detail FROM history "
            "WHERE record_id = %s ORDER BY hid",
            [record_id],
        )
        return [
            HistoryEvent(record_id=r[0], event=r[1], at=to_datetime(r[2]), old_content=r[3], new_content=r[4],
                         actor=r[5], detail=json.loads(r[6]))
            for r in rows
        ]

    def lexical_search(self, terms: Sequence[str], scope: Scope, filters: SearchFilters, limit: int) -> list[tuple[str, float]]:
        """BM25 over content, speaker, keywords and entities (stemmed; each term a phrase, any may match),
        as the SQLite store ranks with FTS5 (store/postgres_bm25.py)."""
        terms = [t for t in terms if t.strip()]
        if not terms or limit <= 0:
            return []
        lexemes = [x for (x,) in self._read(
            f"SELECT DISTINCT lexeme FROM unnest(to_tsvector('{TS_CONFIG}', %s)) ORDER BY lexeme", [" ".join(terms)])]
        if not lexemes:
            return []  # only stop words
        owner = _owner(scope)
        idf, avglen = self._bm25.idf(self._read, owner, self._scope_version(owner), lexemes)
        owhere, oparams = scope_sql(owner, "p")
        where, params = scope_sql(scope)
        fwhere, fparams = filter_sql(filters)
        rows = self._read(bm25_sql(len(terms), owhere, where, fwhere),
                          [*terms, lexemes, [idf[x] for x in lexemes], avglen, *oparams, *params, *fparams, limit])
        return [(rid, float(score)) for rid, score in rows]

    # ------------------------------------------------------------------ links and scopes

    @replayable
    def put_links(self, links: Sequence[tuple[str, str, str, float]]) -> int:
        if not links:
            return 0
        with self._write() as cur:
            ids = list({x for a, b, _, _ in links for x in (a, b)})
            cur.execute("SELECT id, rid FROM records WHERE id = ANY(%s)", [ids])
            rid_of = dict(cur.fetchall())
            last = {(rid_of[a], rid_of[b], k): w for a, b, k, w in links if a in rid_of and b in rid_of}
            if not last:
                return 0
            src, dst, kinds = (list(col) for col in zip(*last))
            cur.execute(
                "INSERT INTO links SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::float8[]) "
                "ON CONFLICT (src, dst, kind) DO UPDATE SET weight = excluded.weight WHERE links.weight <> excluded.weight",
                [src, dst, kinds, list(last.values())],
            )
            return cur.rowcount

    @replayable
    def delete_links(self, src_ids: Sequence[str], kind: str, keep: Sequence[tuple[str, str]] = ()) -> int:
        keep_set = set(keep)
        with self._write() as cur:
            cur.execute(
                "SELECT l.src, l.dst, a.id, b.id FROM links l JOIN records a ON a.rid = l.src "
                "JOIN records b ON b.rid = l.dst WHERE l.kind = %s AND a.id = ANY(%s)",
                [kind, list(src_ids)],
            )
            doomed = [(s_, d_) for s_, d_, a, b in cur.fetchall() if (a, b) not in keep_set]
            if doomed:
                cur.executemany("DELETE FROM links WHERE src = %s AND dst = %s AND kind = %s",
                                [(s_, d_, kind) for s_, d_ in doomed])
        return len(doomed)

    def neighbours(
        self, ids: Sequence[str], scope: Scope, kinds: Sequence[str] | None = None
    ) -> list[tuple[str, str, str, float]]:
        if not ids:
            return []
        where, params = scope_sql(_owner(scope), "b")
        kind_sql = " AND l.kind = ANY(%s)" if kinds else ""
        return self._read(
            "SELECT a.id, b.id, l.kind, l.weight FROM links l JOIN records a ON a.rid = l.src "
            f"JOIN records b ON b.rid = l.dst WHERE a.id = ANY(%s){kind_sql} AND {where}",
            [list(ids), *([list(kinds)] if kinds else []), *params],
        )

    def adjacent(self, ids: Sequence[str], scope: Scope, width: int = 1) -> dict[str, list[str]]:
        """For each given episode, the episodes next to it in its session (up to `width` turns before
        and after, in event-time order), nearest first, before and after in turn. One statement."""
        where, params = scope_sql(scope, "e")

        def side(before: bool) -> str:
            order, cmp = ("DESC", "<") if before else ("ASC", ">")
            return (f"(SELECT {before} AS before, e.id, row_number() OVER (ORDER BY e.event_time {order}, e.rid {order}) "
                    "AS k FROM records e WHERE e.session_id = s.session_id AND e.layer = 0 "
                    f"AND (e.event_time, e.rid) {cmp} (s.event_time, s.rid) AND {where} ORDER BY k LIMIT %s)")

        rows = self._read(
            "WITH s AS (SELECT e.id, e.session_id, e.event_time, e.rid FROM records e WHERE e.id = ANY(%s) "
            f"AND e.layer = 0 AND e.session_id IS NOT NULL AND {where}) "
            f"SELECT s.id, n.id FROM s LEFT JOIN LATERAL ({side(True)} UNION ALL {side(False)}) n ON true "
            "ORDER BY s.id, n.k, n.before DESC",
            [list(dict.fromkeys(ids)), *params, *params, width, *params, width],
        )
        out: dict[str, list[str]] = {}
        for seed, near in rows:  # a seed with no neighbour comes once, with None
            out.setdefault(seed, []).extend([near] if near is not None else [])
        return {i: out[i] for i in dict.fromkeys(ids) if i in out}

    def scopes(self) -> list[Scope]:
        rows = self._read("SELECT DISTINCT user_id, agent_id FROM records "
                          "ORDER BY user_id NULLS FIRST, agent_id NULLS FIRST")
        return [Scope(user_id=u, agent_id=a) for u, a in rows]

    # ------------------------------------------------------------------ embedding cache

    def embedding_cache_get(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        rows = self._read("SELECT text_hash, vec FROM embed_cache WHERE model = %s AND text_hash = ANY(%s)",
                          [model, list(hashes)])
        return {h: np.frombuffer(bytes(blob), dtype=np.float32) for h, blob in rows}

    @replayable
    def embedding_cache_put(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = {h: _vec_bytes(v) for h, v in items}
        if not rows:
            return
        with self._write() as cur:
            cur.execute(
                "INSERT INTO embed_cache SELECT %s, h, v FROM unnest(%s::text[], %s::bytea[]) AS t(h, v) "
                "ON CONFLICT (model, text_hash) DO UPDATE SET vec = excluded.vec",
                [model, list(rows), list(rows.values())],
            )

    # ------------------------------------------------------------------ maintenance

    def stats(self, scope: Scope | None = None) -> dict:
        where, params = scope_sql(scope) if scope else ("true", [])
        layers = self._read(
            f"SELECT r.layer, r.status, count(*) FROM records r WHERE {where} GROUP BY r.layer, r.status", params)
        scopes = self._read(
            f"SELECT count(DISTINCT coalesce(r.user_id,'') || '|' || coalesce(r.agent_id,'')) FROM records r WHERE {where}",
            params)[0][0]
        sessions = self._read(f"SELECT count(DISTINCT r.session_id) FROM records r WHERE {where}", params)[0][0]
        by_layer: dict[str, dict[str, int]] = {}
        names = {0: "episodes", 1: "notes", 2: "topics", 3: "profile"}
        for layer, status, count in layers:
            by_layer.setdefault(names[layer], {})[status] = count
        size = self._read(
            "SELECT coalesce(sum(pg_total_relation_size(format('%%I.%%I', table_schema, table_name))), 0) "
            "FROM information_schema.tables WHERE table_schema = %s", [self.schema])[0][0]
        return {
            "path": self.path,
            "schema": self.schema,
            "schema_version": CURRENT_VERSION,
            "records": by_layer,
            "scopes": scopes,
            "sessions": sessions,
            "file_bytes": int(size),
        }

    def integrity_check(self) -> list[str]:
        """What Postgres cannot enforce by itself: the store's identity and version, and one vector size
        per model (foreign keys, checks and the indexes are the server's)."""
        problems: list[str] = []
        try:
            meta = dict(self._read("SELECT key, value FROM meta"))
            if meta.get("app") != APP_ID or meta.get("schema_version") != str(CURRENT_VERSION):
                problems.append(f"meta says app={meta.get('app')!r} schema_version={meta.get('schema_version')!r}")
            for model, sizes in self._read(
                "SELECT model, count(DISTINCT length(vec)) FROM vectors GROUP BY model HAVING count(DISTINCT length(vec)) > 1"
            ):
                problems.append(f"vectors of model {model!r} have {sizes} different sizes")
            for table in TABLES:
                self._read(f"SELECT count(*) FROM {table}")
        except StoreError as exc:
            problems.append(str(exc))
        return problems

    def vacuum(self) -> None:
        """Rewrite the tables so deleted rows are gone from the database files (VACUUM FULL)."""
        self._db.autocommit(f"VACUUM FULL {', '.join(('meta', 'scope_versions', *TABLES))}")

    def analyze(self) -> None:
        """ANALYZE the store's tables: right after an import, autovacuum has not yet, and the planner's
        estimates of a new schema (a row or two a table) send scope queries through the wrong index."""
        self._db.autocommit(f"ANALYZE {', '.join(TABLES)}")

    def close(self) -> None:
        self._db.close()
        self._matrices.clear()
        if self._ann is not None:
            self._ann.close()

