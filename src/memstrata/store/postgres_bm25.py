"""BM25 over the Postgres store's tsvector column, computed as SQLite's FTS5 bm25() does.

score(d) = sum over the query's lexemes of idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avglen)),
with tf the lexeme's occurrences in d weighted by field (speaker 0.5, the rest 1.0), idf =
log((N - df + 0.5) / (df + 0.5)) (at least 1e-6, as FTS5), and N, df and avglen counted over the
user's/agent's records. Those counts are cached per process under the scope's version stamp.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any, Callable, Sequence

from ..model import Scope
from .postgres_schema import TS_CONFIG, TS_WEIGHT_B
from .postgres_sql import scope_sql

K1, B = 1.2, 0.75
_MAX_SCOPES = 256

Read = Callable[[str, Sequence[Any]], list[tuple]]


def tsquery_sql(count: int) -> str:
    """SQL of the OR of `count` phrase queries (one %s each): any term may match."""
    return " || ".join(f"phraseto_tsquery('{TS_CONFIG}', %s)" for _ in range(count))


class Bm25Stats:
    """Per-scope document count, average length and lexeme document frequencies, valid for one
    version stamp of the scope (an LRU of scopes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scopes: OrderedDict[tuple, tuple[Any, int, float, dict[str, int]]] = OrderedDict()

    def idf(self, read: Read, owner: Scope, version: Any, lexemes: Sequence[str]) -> tuple[dict[str, float], float]:
        """(lexeme -> idf, average document length) in `owner`'s records at `version`."""
        key = (owner.user_id, owner.agent_id)
        where, params = scope_sql(owner)
        with self._lock:
            entry = self._scopes.get(key)
        if entry is None or entry[0] != version:
            docs, avglen = read(f"SELECT count(*), coalesce(avg(r.doc_len), 0) FROM records r WHERE {where}", params)[0]
            entry = (version, int(docs), float(avglen), {})
        missing = [x for x in lexemes if x not in entry[3]]
        if missing:
            entry[3].update(read(
                f"SELECT l, (SELECT count(*) FROM records r WHERE r.tsv @@ quote_literal(l)::tsquery AND {where}) "
                "FROM unnest(%s::text[]) AS l",
                [*params, missing],
            ))
        with self._lock:
            self._scopes[key] = entry
            self._scopes.move_to_end(key)
            while len(self._scopes) > _MAX_SCOPES:
                self._scopes.popitem(last=False)
        docs = entry[1]
        return {x: max(1e-6, math.log((docs - entry[3][x] + 0.5) / (entry[3][x] + 0.5))) for x in lexemes}, entry[2]

    def clear(self) -> None:
        with self._lock:
            self._scopes.clear()


def bm25_sql(terms: int, where: str, fwhere: str) -> str:
    """The ranking query: matches of the OR of `terms` phrases in the scope (`where`, `fwhere`),
    scored by BM25 from (lexeme, idf) arrays and the average length. Parameters, in order: the terms,
    lexemes, idfs, average length, the scope's and filters' parameters, the limit.

    A matching record's tsvector is unnested and only the query's lexemes kept; a lexeme's idf is read
    from the array by position and its tf counted from its weights array, so the plan has no join (a
    join of the unnested lexemes with the query's let the planner, which expects one row, loop over
    every pair)."""
    return (
        f"WITH q AS (SELECT {tsquery_sql(terms)} AS q), "
        "w AS (SELECT %s::text[] AS lexemes, %s::float8[] AS idfs, greatest(%s::float8, 1) AS avglen) "
        f"SELECT r.id, sum(t.idf * t.tf * {K1 + 1} / (t.tf + {K1} * ({1 - B} + {B} * r.doc_len / w.avglen))) AS s "
        "FROM records r CROSS JOIN q CROSS JOIN w "
        "CROSS JOIN LATERAL (SELECT w.idfs[array_position(w.lexemes, u.lexeme)] AS idf, "
        f"cardinality(u.weights) - {1 - TS_WEIGHT_B} * cardinality(array_positions(u.weights, 'B')) AS tf "
        "FROM unnest(r.tsv) AS u WHERE u.lexeme = ANY(w.lexemes)) t "
        f"WHERE r.tsv @@ q.q AND {where}" + (f" AND {fwhere}" if fwhere else "")
        + " GROUP BY r.rid, r.id ORDER BY s DESC, r.rid LIMIT %s"
    )
