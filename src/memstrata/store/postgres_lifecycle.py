"""The Postgres store's lifecycle operations: reinforcement, status, pins, merges, re-derivation,
history import and re-embedding (docs/lifecycle.md). Mixed into `PostgresStore`; the same contract
as the SQLite store's (store/sqlite_lifecycle.py)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InvalidInput, StoreError
from ..model import HistoryEvent, Scope, embedding_text, text_hash
from .exact import STATUS_CODES
from .postgres_conn import replayable
from .postgres_sql import locked_row, scope_sql


def _scope(scope: Scope | None, *, owner: bool = False) -> tuple[str, list[Any]]:
    if scope is None:
        return "true", []
    return scope_sql(Scope(user_id=scope.user_id, agent_id=scope.agent_id) if owner else scope)


class PostgresLifecycle:
    """Lifecycle methods of `PostgresStore`; they use its connections and transactions."""

    def touch(self, strengths: Mapping[str, float], scope: Scope, at: float) -> int:
        """Mark records as just retrieved: last_access = `at`, strength as given (one UPDATE).

        Best effort, never in a reader's way: when the rows are locked by another writer for more
        than a moment, or a deadlock aborts it, nothing is written and 0 is returned (it is not run again).
        Not flushed synchronously (a lost reinforcement is harmless). Strength and last access are in no
        cached index: no version bump.
        """
        if not strengths:
            return 0
        where, params = _scope(scope, owner=True)
        items = list(strengths.items())[:500]
        try:
            with self._write() as cur:
                cur.execute("SELECT set_config('lock_timeout', '50ms', true), "  # SET LOCAL both, one round trip
                            "set_config('synchronous_commit', 'off', true)")
                cur.execute(
                    "UPDATE records AS r SET last_access = %s, strength = t.s "
                    "FROM unnest(%s::text[], %s::float8[]) AS t(i, s) "
                    f"WHERE r.id = t.i AND {where}",
                    [at, [i for i, _ in items], [float(s) for _, s in items], *params],
                )
                return cur.rowcount
        except StoreError:
            return 0

    @replayable
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
        where, params = _scope(scope)
        sets, values = ["status = %s", "updated_at = %s"], [status, at]
        if strength is not None:
            sets += ["strength = %s", "last_access = %s"]
            values += [strength, at]
        with self._write() as cur:
            cur.execute(
                f"UPDATE records AS r SET {', '.join(sets)} WHERE r.id = ANY(%s) AND r.status = ANY(%s) AND {where} "
                "RETURNING r.rid, r.id, r.user_id, r.agent_id",
                [*values, list(dict.fromkeys(ids)), list(from_status), *params],
            )
            changed = sorted(cur.fetchall())
            self._history(cur, [(i, event, at, None, None, actor, dict(detail or {})) for _, i, _, _ in changed])
            self._bump(cur, [(u, a) for _, _, u, a in changed])
        return [i for _, i, _, _ in changed]

    @replayable
    def set_pinned(self, ids: Sequence[str], scope: Scope, pinned: bool, *, at: float, actor: str = "api") -> list[str]:
        """Pin (never fades) or unpin records; returns the ids that changed."""
        where, params = _scope(scope)
        with self._write() as cur:
            cur.execute(
                f"UPDATE records AS r SET pinned = %s WHERE r.id = ANY(%s) AND r.pinned <> %s AND {where} "
                "RETURNING r.rid, r.id",
                [pinned, list(dict.fromkeys(ids)), pinned, *params],
            )
            changed = [i for _, i in sorted(cur.fetchall())]
            self._history(cur, [(i, "pinned" if pinned else "unpinned", at, None, None, actor, {}) for i in changed])
        return changed

    @replayable
    def merge_records(self, keep_id: str, drop_id: str, scope: Scope, *, at: float, actor: str = "organise") -> bool:
        """Fold the near-duplicate `drop_id` into `keep_id` in one transaction (see the SQLite store:
        `keep` gains drop's sources and the earlier valid_from; `drop` is closed, its history kept)."""
        where, params = _scope(scope, owner=True)
        with self._write() as cur:
            cur.execute(
                f"SELECT r.rid, r.id, r.user_id, r.agent_id, coalesce(r.valid_from, r.event_time) FROM records r "
                f"WHERE r.id IN (%s, %s) AND r.status = 'active' AND {where} ORDER BY r.rid FOR UPDATE",
                [keep_id, drop_id, *params],
            )
            rows = {r[1]: r for r in cur.fetchall()}
            if keep_id == drop_id or len(rows) != 2:
                return False
            keep, drop = rows[keep_id], rows[drop_id]
            cur.execute("SELECT source_id FROM sources WHERE rid = %s ORDER BY position", [drop[0]])
            self._add_sources(cur, keep_id, [s for (s,) in cur.fetchall()], at, actor)
            cur.execute(
                "UPDATE records SET valid_from = least(coalesce(valid_from, event_time), %s), updated_at = %s "
                "WHERE rid = %s",
                [drop[4], at, keep[0]],
            )
            cur.execute("UPDATE records SET status = 'superseded', updated_at = %s WHERE rid = %s", [at, drop[0]])
            self._history(cur, [(drop_id, "superseded", at, None, None, actor, {"merged_into": keep_id})])
            self._bump(cur, [(keep[2], keep[3])])
        return True

    def derived_from(self, source_ids: Sequence[str], scope: Scope) -> list[str]:
        """Ids of the scope's records that name any of `source_ids` among their sources, oldest first."""
        where, params = _scope(scope, owner=True)
        rows = self._read(
            "SELECT r.id FROM records r WHERE r.rid IN (SELECT s.rid FROM sources s WHERE s.source_id = ANY(%s)) "
            f"AND {where} ORDER BY r.rid",
            [list(source_ids), *params],
        )
        return [r[0] for r in rows]

    def outdated_sources(self, source_ids: Sequence[str], scope: Scope, at: float) -> set[str]:
        where, params = _scope(scope, owner=True)
        rows = self._read(
            "SELECT s.source_id FROM sources s JOIN records r ON r.rid = s.rid WHERE s.source_id = ANY(%s) "
            f"AND r.layer = 1 AND r.kind <> 'question' AND {where} GROUP BY s.source_id "
            "HAVING bool_and(r.valid_to IS NOT NULL AND r.valid_to <= %s)",
            [list(dict.fromkeys(source_ids)), *params, at],
        )
        return {r[0] for r in rows}

    @replayable
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
        `session_id`, when given). The old text is not kept, nor earlier history texts and details."""
        with self._write() as cur:
            row = locked_row(cur, "rid, content_hash, speaker, user_id, agent_id", record_id,
                             Scope(user_id=scope.user_id, agent_id=scope.agent_id))
            if row is None:
                return False
            rid, old_hash, speaker, user_id, agent_id = row
            new_hash = text_hash(embedding_text(speaker, content))
            cur.execute(
                "UPDATE records SET content = %s, content_hash = %s, metadata = %s, event_time = %s, valid_from = %s, "
                "updated_at = %s, session_id = coalesce(%s, session_id) WHERE rid = %s",
                [content, new_hash, json.dumps(metadata, ensure_ascii=False), event_time.timestamp(),
                 valid_from.timestamp() if valid_from else None, at, session_id, rid],
            )
            if vector is not None and model is not None:
                self._put_vector(cur, rid, model, vector)
            cur.execute(
                "UPDATE history SET old_content = NULL, new_content = NULL, detail = '{}' WHERE record_id = %s",
                [record_id],
            )
            self._history(cur, [(record_id, "rederived", at, None, None, actor, dict(detail or {}))])
            if old_hash != new_hash:  # the old text's cached vector goes unless the owner still uses it
                self._purge_cache(cur, [(user_id, agent_id, old_hash)])
            self._bump(cur, [(user_id, agent_id)])
        return True

    @replayable
    def put_history(self, events: Sequence[HistoryEvent]) -> int:
        """Replace the history of the records the events name with exactly these events (import)."""
        ids = list(dict.fromkeys(e.record_id for e in events))
        if not ids:
            return 0
        with self._write() as cur:
            cur.execute("SELECT id FROM records WHERE id = ANY(%s)", [ids])
            existing = {i for (i,) in cur.fetchall()}
            cur.execute("DELETE FROM history WHERE record_id = ANY(%s)", [ids])
            rows = [
                (e.record_id, e.event, e.at.timestamp(), e.old_content, e.new_content, e.actor, e.detail)
                for e in events if e.record_id in existing
            ]
            self._history(cur, rows)
        return len(rows)

    def missing_vectors(self, model: str, limit: int, scope: Scope | None = None) -> list[tuple[str, str]]:
        """(id, text to embed) of records that have no vector under `model`, oldest first."""
        where, params = _scope(scope)
        rows = self._read(
            f"SELECT r.id, r.speaker, r.content FROM records r LEFT JOIN vectors v ON v.rid = r.rid "
            f"WHERE (v.rid IS NULL OR v.model <> %s) AND {where} ORDER BY r.rid LIMIT %s",
            [model, *params, limit],
        )
        return [(i, embedding_text(speaker, content)) for i, speaker, content in rows]

    @replayable
    def put_vectors(self, items: Sequence[tuple[str, np.ndarray]], model: str) -> int:
        """Store (id, vector) under `model`, replacing a record's vector from another model."""
        if not items:
            return 0
        with self._write() as cur:
            cur.execute("SELECT id, rid, user_id, agent_id FROM records WHERE id = ANY(%s)", [[i for i, _ in items]])
            found = {r[0]: r[1:] for r in cur.fetchall()}
            touched = []
            for rec_id, vec in items:
                if rec_id in found:  # else deleted meanwhile
                    rid, user_id, agent_id = found[rec_id]
                    self._put_vector(cur, rid, model, vec)
                    touched.append((user_id, agent_id))
            self._bump(cur, touched)
        return len(touched)

    def vector_models(self) -> dict[str, int]:
        """How many records have a vector under each model."""
        return dict(self._read("SELECT model, count(*) FROM vectors GROUP BY model"))
