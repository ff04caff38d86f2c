"""The SQLite store's lifecycle operations: reinforcement, status, pins, merges, re-derivation,
history import and re-embedding (docs/lifecycle.md). Mixed into `SQLiteStore`."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InvalidInput
from ..model import HistoryEvent, Scope, embedding_text, text_hash
from .exact import STATUS_CODES
from .sqlite_sql import _chunks, _scope_where


class LifecycleMixin:
    """Lifecycle methods of `SQLiteStore`; they use its connection, lock and transactions."""


    def touch(self, strengths: Mapping[str, float], scope: Scope, at: float) -> int:
        """Mark records as just retrieved: last_access = `at`, strength as given (one UPDATE).

        Best effort, never in a reader's way: when another writer holds the database for more than
        a moment (or it cannot be written), nothing is written and 0 is returned. Strength and last
        access are in no cached index, so the scope version is not bumped.
        """
        if not strengths:
            return 0
        where, params = _scope_where(Scope(user_id=scope.user_id, agent_id=scope.agent_id), by_id=True)
        items = list(strengths.items())[:500]
        case = " ".join("WHEN ? THEN ?" for _ in items)
        sql = (
            f"UPDATE records AS r SET last_access = ?, strength = CASE r.id {case} ELSE r.strength END "
            f"WHERE r.id IN ({','.join('?' * len(items))}) AND {where}"
        )
        values = [at, *(x for pair in items for x in pair), *(i for i, _ in items), *params]
        with self._lock:
            (timeout,) = self._conn.execute("PRAGMA busy_timeout").fetchone()
            (sync,) = self._conn.execute("PRAGMA synchronous").fetchone()
            try:
                self._conn.execute("PRAGMA busy_timeout = 50")
                # No fsync for this commit: a lost reinforcement is harmless, a read that waits on the disk is not.
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error:
                self._conn.execute(f"PRAGMA synchronous = {int(sync)}")
                return 0
            finally:
                self._conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")
            try:
                changed = self._conn.execute(sql, values).rowcount
                self._conn.execute("COMMIT")
                return changed
            except sqlite3.Error:
                self._conn.execute("ROLLBACK")
                return 0
            finally:
                self._conn.execute(f"PRAGMA synchronous = {int(sync)}")

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
        """Move records whose status is in `from_status` to `status` (optionally resetting strength and
        last access to `at`), with a history `event` each; returns the ids that changed."""
        if status not in STATUS_CODES:
            raise InvalidInput(f"status must be one of {', '.join(STATUS_CODES)}, got {status!r}", field="status")
        where, params = _scope_where(scope, by_id=True)
        changed: list[tuple[str, str | None, str | None]] = []
        with self._write() as conn:
            for chunk in _chunks(list(dict.fromkeys(ids)), 500):
                sets, values = ["status = ?", "updated_at = ?"], [status, at]
                if strength is not None:
                    sets += ["strength = ?", "last_access = ?"]
                    values += [strength, at]
                changed += conn.execute(
                    f"UPDATE records AS r SET {', '.join(sets)} WHERE r.id IN ({','.join('?' * len(chunk))}) "
                    f"AND r.status IN ({','.join('?' * len(from_status))}) AND {where} "
                    "RETURNING id, user_id, agent_id",
                    [*values, *chunk, *from_status, *params],
                ).fetchall()
            conn.executemany(
                "INSERT INTO history (record_id, event, at, actor, detail) VALUES (?, ?, ?, ?, ?)",
                [(i, event, at, actor, json.dumps(dict(detail or {}))) for i, _, _ in changed],
            )
            self._bump(conn, [(u, a) for _, u, a in changed])
        return [i for i, _, _ in changed]

    def set_pinned(self, ids: Sequence[str], scope: Scope, pinned: bool, *, at: float, actor: str = "api") -> list[str]:
        """Pin (never fades) or unpin records; returns the ids that changed."""
        where, params = _scope_where(scope, by_id=True)
        with self._write() as conn:
            changed = [
                r[0] for chunk in _chunks(list(dict.fromkeys(ids)), 500) for r in conn.execute(
                    f"UPDATE records AS r SET pinned = ? WHERE r.id IN ({','.join('?' * len(chunk))}) "
                    f"AND r.pinned <> ? AND {where} RETURNING id",
                    [int(pinned), *chunk, int(pinned), *params],
                ).fetchall()
            ]
            conn.executemany(
                "INSERT INTO history (record_id, event, at, actor) VALUES (?, ?, ?, ?)",
                [(i, "pinned" if pinned else "unpinned", at, actor) for i in changed],
            )
        return changed

    def merge_records(self, keep_id: str, drop_id: str, scope: Scope, *, at: float, actor: str = "organise") -> bool:
        """Fold the near-duplicate `drop_id` into `keep_id` in one transaction.

        `keep` gains drop's sources (history 'merged') and the earlier valid_from; `drop` is closed
        (status 'superseded', no valid_to, history 'superseded' naming `keep`) and kept for history.
        Returns False, changing nothing, unless both are active records of the scope.
        """
        where, params = _scope_where(Scope(user_id=scope.user_id, agent_id=scope.agent_id), by_id=True)
        with self._write() as conn:
            rows = {
                r[1]: r for r in conn.execute(
                    f"SELECT r.rid, r.id, r.user_id, r.agent_id, coalesce(r.valid_from, r.event_time) FROM records r "
                    f"WHERE r.id IN (?, ?) AND r.status = 'active' AND {where}",
                    [keep_id, drop_id, *params],
                ).fetchall()
            }
            if keep_id == drop_id or len(rows) != 2:
                return False
            keep, drop = rows[keep_id], rows[drop_id]
            new_sources = [s for (s,) in conn.execute(
                "SELECT source_id FROM sources WHERE rid = ? ORDER BY position", (drop[0],))]
            self._add_sources(conn, keep_id, new_sources, at, actor)
            conn.execute(
                "UPDATE records SET valid_from = min(coalesce(valid_from, event_time), ?), updated_at = ? WHERE rid = ?",
                (drop[4], at, keep[0]),
            )
            conn.execute(
                "UPDATE records SET status = 'superseded', updated_at = ? WHERE rid = ?", (at, drop[0])
            )
            conn.execute(
                "INSERT INTO history (record_id, event, at, actor, detail) VALUES (?, 'superseded', ?, ?, ?)",
                (drop_id, at, actor, json.dumps({"merged_into": keep_id})),
            )
            self._bump(conn, [(keep[2], keep[3])])
        return True

    def derived_from(self, source_ids: Sequence[str], scope: Scope) -> list[str]:
        """Ids of the scope's records that name any of `source_ids` among their sources, oldest first."""
        where, params = _scope_where(Scope(user_id=scope.user_id, agent_id=scope.agent_id))
        out: dict[str, None] = {}
        for chunk in _chunks(list(source_ids), 500):
            for (rid_id,) in self._read(
                f"SELECT DISTINCT r.id FROM sources s CROSS JOIN records r ON r.rid = s.rid "  # sources first: by index
                f"WHERE s.source_id IN ({','.join('?' * len(chunk))}) AND {where} ORDER BY r.rid",
                [*chunk, *params],
            ):
                out[rid_id] = None
        return list(out)

    def outdated_sources(self, source_ids: Sequence[str], scope: Scope, at: float) -> set[str]:
        where, params = _scope_where(Scope(user_id=scope.user_id, agent_id=scope.agent_id))
        out: set[str] = set()
        for chunk in _chunks(list(dict.fromkeys(source_ids)), 500):
            out.update(source for (source,) in self._read(
                f"SELECT s.source_id FROM sources s CROSS JOIN records r ON r.rid = s.rid "
                f"WHERE s.source_id IN ({','.join('?' * len(chunk))}) AND r.layer = 1 AND r.kind != 'question' "
                f"AND {where} GROUP BY s.source_id HAVING SUM(r.valid_to IS NULL OR r.valid_to > ?) = 0",
                [*chunk, *params, at],
            ))
        return out

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
        """Rewrite a derived record from its remaining sources after one was erased (and move it to
        `session_id`, when given: its own session is being erased).

        The old text is not kept: it may carry what was erased. Earlier history rows of the record
        lose their texts and details for the same reason; the new history row holds ids only.
        """
        where, params = _scope_where(Scope(user_id=scope.user_id, agent_id=scope.agent_id), by_id=True)
        with self._write() as conn:
            row = conn.execute(
                f"SELECT r.rid, r.content_hash, r.speaker, r.user_id, r.agent_id FROM records r WHERE r.id = ? AND {where}",
                [record_id, *params],
            ).fetchone()
            if row is None:
                return False
            rid, old_hash, speaker, user_id, agent_id = row
            new_hash = text_hash(embedding_text(speaker, content))
            conn.execute(
                "UPDATE records SET content = ?, content_hash = ?, metadata = ?, event_time = ?, valid_from = ?, "
                "updated_at = ?, session_id = coalesce(?, session_id) WHERE rid = ?",
                (content, new_hash, json.dumps(metadata, ensure_ascii=False), event_time.timestamp(),
                 valid_from.timestamp() if valid_from else None, at, session_id, rid),
            )
            if vector is not None and model is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                    (rid, model, np.ascontiguousarray(vector, dtype=np.float32).tobytes()),
                )
            conn.execute(
                "UPDATE history SET old_content = NULL, new_content = NULL, detail = '{}' WHERE record_id = ?",
                (record_id,),
            )
            conn.execute(
                "INSERT INTO history (record_id, event, at, actor, detail) VALUES (?, 'rederived', ?, ?, ?)",
                (record_id, at, actor, json.dumps(dict(detail or {}))),
            )
            if old_hash != new_hash:  # the old text's cached vector goes unless the owner still uses it
                self._purge_cache(conn, [(user_id, agent_id, old_hash)])
            self._bump(conn, [(user_id, agent_id)])
        return True

    def put_history(self, events: Sequence[HistoryEvent]) -> int:
        """Replace the history of the records the events name with exactly these events (import)."""
        ids = list(dict.fromkeys(e.record_id for e in events))
        if not ids:
            return 0
        with self._write() as conn:
            existing = set()
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                existing |= {i for (i,) in conn.execute(f"SELECT id FROM records WHERE id IN ({marks})", chunk)}
                conn.execute(f"DELETE FROM history WHERE record_id IN ({marks})", chunk)
            rows = [
                (e.record_id, e.event, e.at.timestamp(), e.old_content, e.new_content, e.actor,
                 json.dumps(e.detail, ensure_ascii=False))
                for e in events if e.record_id in existing
            ]
            conn.executemany(
                "INSERT INTO history (record_id, event, at, old_content, new_content, actor, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def missing_vectors(self, model: str, limit: int, scope: Scope | None = None) -> list[tuple[str, str]]:
        """(id, text to embed) of records that have no vector under `model`, oldest first."""
        where, params = _scope_where(scope) if scope else ("1=1", [])
        rows = self._read(
            f"SELECT r.id, r.speaker, r.content FROM records r LEFT JOIN vectors v ON v.rid = r.rid "
            f"WHERE (v.rid IS NULL OR v.model <> ?) AND {where} ORDER BY r.rid LIMIT ?",
            [model, *params, limit],
        )
        return [(i, embedding_text(speaker, content)) for i, speaker, content in rows]

    def put_vectors(self, items: Sequence[tuple[str, np.ndarray]], model: str) -> int:
        """Store (id, vector) under `model`, replacing a record's vector from another model."""
        if not items:
            return 0
        with self._write() as conn:
            touched: list[tuple[str | None, str | None]] = []
            for rec_id, vec in items:
                row = conn.execute("SELECT rid, user_id, agent_id FROM records WHERE id = ?", (rec_id,)).fetchone()
                if row is None:
                    continue  # deleted meanwhile
                conn.execute(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                    (row[0], model, np.ascontiguousarray(vec, dtype=np.float32).tobytes()),
                )
                touched.append((row[1], row[2]))
            self._bump(conn, touched)
        return len(touched)

    def vector_models(self) -> dict[str, int]:
        """How many records have a vector under each model."""
        return dict(self._read("SELECT model, count(*) FROM vectors GROUP BY model"))


# ---------------------------------------------------------------------- helpers
