"""SQL building blocks of the Postgres store's modules: the shared scope and filter clauses with
Postgres placeholders, jsonb metadata equality, a locked row."""

from __future__ import annotations

import json
from typing import Any

from ..model import Scope, SearchFilters
from .sqlite_sql import _filter_where, _scope_where

Cursor = Any  # psycopg.Cursor (psycopg is an optional dependency, imported when a store opens)


def scope_sql(scope: Scope, alias: str = "r") -> tuple[str, list[Any]]:
    """SQL restricting `alias` to `scope` (Postgres placeholders)."""
    return _scope_where(scope, alias, mark="%s")


def locked_row(cur: Cursor, columns: str, record_id: str, scope: Scope) -> tuple | None:
    """`columns` of record `record_id` in `scope`, locked for the rest of the transaction (None: not there)."""
    where, params = scope_sql(scope)
    cur.execute(f"SELECT {columns} FROM records r WHERE r.id = %s AND {where} FOR UPDATE", [record_id, *params])
    return cur.fetchone()


def jsonb_equals(alias: str, key: str, value: Any) -> tuple[str, list[Any]]:
    """Metadata key `key` equals `value` as Python compares them (True == 1, 1 == 1.0, "1" != 1)."""
    candidates = {json.dumps(value)}
    if not isinstance(value, str) and value in (0, 1):
        candidates |= {json.dumps(bool(value)), json.dumps(int(value))}
    return f"(({alias}.metadata::jsonb) -> %s) = ANY(%s::jsonb[])", [key, sorted(candidates)]


def filter_sql(filters: SearchFilters, alias: str = "r") -> tuple[str, list[Any]]:
    """SQL applying `filters` to `alias` (Postgres placeholders, jsonb metadata)."""
    return _filter_where(filters, alias, mark="%s", metadata=jsonb_equals)
