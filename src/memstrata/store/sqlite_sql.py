"""SQL building blocks of the stores' modules (SQLite, and Postgres with its placeholder): scope and
filter clauses, cursors, chunks."""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, Iterator, Sequence

from ..errors import InvalidInput
from ..model import Scope, SearchFilters

_RECORD_COLUMNS = (
    "rid, id, layer, kind, user_id, agent_id, session_id, role, speaker, content, event_time, created_at, "
    "updated_at, valid_from, valid_to, status, importance, keywords, entities, metadata, dedup_key, slot, "
    "strength, last_access, pinned"
)


def _scope_where(scope: Scope, alias: str = "r", *, by_id: bool = False, mark: str = "?") -> tuple[str, list[Any]]:
    """SQL restricting `alias` to the scope. `by_id`: the query also names ids, so the scope columns are
    written `+col` to keep SQLite on the id index instead of scanning the whole scope. `mark`: the
    driver's placeholder (Postgres: "%s")."""
    clauses, params = [], []
    plus = "+" if by_id else ""
    for col in ("user_id", "agent_id", "session_id"):
        value = getattr(scope, col)
        if value is not None:
            clauses.append(f"{plus}{alias}.{col} = {mark}")
            params.append(value)
    return " AND ".join(clauses), params


MetadataClause = Callable[[str, str, Any], tuple[str, list[Any]]]


def _json_extract(alias: str, key: str, value: Any) -> tuple[str, list[Any]]:
    """SQLite: metadata key `key` equals `value` (booleans compare as 0/1, as JSON1 reads them)."""
    return f"json_extract({alias}.metadata, ?) = ?", [f'$."{key}"', int(value) if isinstance(value, bool) else value]


def _filter_where(
    filters: SearchFilters, alias: str = "r", *, mark: str = "?", metadata: MetadataClause = _json_extract
) -> tuple[str, list[Any]]:
    """SQL applying `filters` to `alias` (the rules of `SearchFilters.admits`); `mark` is the driver's
    placeholder and `metadata` writes one metadata equality in the backend's JSON dialect."""
    clauses: list[str] = []
    params: list[Any] = []
    if filters.time_from is not None:
        clauses.append(f"{alias}.event_time >= {mark}")
        params.append(filters.time_from.timestamp())
    if filters.time_to is not None:
        clauses.append(f"{alias}.event_time <= {mark}")
        params.append(filters.time_to.timestamp())
    if filters.layers is not None:
        clauses.append(f"{alias}.layer IN ({','.join([mark] * len(filters.layers))})")
        params.extend(int(x) for x in filters.layers)
    if not filters.include_inactive:
        allowed = ["active", "superseded"] if filters.as_of is not None else ["active"]
        allowed += ["archived"] if filters.include_archived else []
        clauses.append(f"{alias}.status IN ({','.join(repr(a) for a in allowed)})")
    if filters.as_of is not None:
        # valid_from (else event_time) <= T < valid_to; a superseded record without valid_to never counts
        clauses.append(
            f"coalesce({alias}.valid_from, {alias}.event_time) <= {mark} AND (({alias}.valid_to IS NULL "
            f"AND {alias}.status <> 'superseded') OR {alias}.valid_to > {mark})"
        )
        params += [filters.as_of.timestamp()] * 2
    if filters.kinds is not None:
        clauses.append(f"{alias}.kind IN ({','.join([mark] * len(filters.kinds))})")
        params.extend(filters.kinds)
    for key, value in filters.metadata.items():
        clause, values = metadata(alias, key, value)
        clauses.append(clause)
        params += values
    return " AND ".join(clauses), params


def _fts_query(terms: Sequence[str]) -> str:
    quoted = ['"' + t.replace('"', '""') + '"' for t in terms if t.strip()]
    return " OR ".join(quoted)


def _scope_keys(user_id: str | None, agent_id: str | None) -> list[str]:
    keys = []
    if user_id is not None:
        keys.append("u:" + user_id)
    if agent_id is not None:
        keys.append("a:" + agent_id)
    return keys


def _chunks(seq: list, size: int) -> Iterator[list]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _encode_cursor(rid: int) -> str:
    return f"r{rid}"


def _decode_cursor(cursor: str) -> int:
    digits = cursor[1:]
    if not cursor.startswith("r") or not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        raise InvalidInput(f"cursor {cursor[:40]!r} is not one this store returned; pass next_cursor unchanged", field="cursor")
    return int(digits)


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements, buf = [], []
    for line in script.splitlines():
        buf.append(line)
        text = "\n".join(buf).strip()
        if text.endswith(";") and sqlite3.complete_statement(text):
            statements.append(text)
            buf = []
    tail = "\n".join(buf).strip()
    if tail:
        statements.append(tail)
    return [s for s in statements if s.strip(" ;\n")]
