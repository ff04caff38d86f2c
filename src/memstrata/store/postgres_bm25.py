"""BM25 over the Postgres store's posting table, computed as SQLite's FTS5 bm25() does.

score(d) = sum over the query's lexemes of idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avglen)),
with tf the lexeme's occurrences in d weighted by field (speaker 0.5, the rest 1.0), idf =
log((N - df + 0.5) / (df + 0.5)) (at least 1e-6, as FTS5), and N, df and avglen counted over the
user's/agent's records: N and the total length from `record_lengths` (one row per owner, kept by
triggers), df from the postings. Those counts are cached per process under the scope's version stamp.

The postings (schema v3) hold each record's lexemes with their weighted tf and the record's length, so a
query reads the index ranges of its own lexemes in the owner's postings, not the whole tsvector of every
record that matches one of them.
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
        with self._lock:
            entry = self._scopes.get(key)
        if entry is None or entry[0] != version:
            lwhere, lparams = scope_sql(owner, "l")
            docs, total = read(
                f"SELECT coalesce(sum(l.docs), 0), coalesce(sum(l.total_len), 0) FROM record_lengths l WHERE {lwhere}",
                lparams)[0]
            entry = (version, int(docs), float(total) / int(docs) if docs else 0.0, {})
        missing = [x for x in lexemes if x not in entry[3]]
        if missing:
            pwhere, pparams = scope_sql(owner, "p")
            counts = dict(read(
                f"SELECT p.lexeme, count(*) FROM postings p WHERE {pwhere} AND p.lexeme = ANY(%s) GROUP BY p.lexeme",
                [*pparams, missing],
            ))
            entry[3].update((x, int(counts.get(x, 0))) for x in missing)
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


def bm25_sql(terms: int, owner_where: str, where: str, fwhere: str) -> str:
    """The ranking query: BM25 scores summed over the owner's postings (`owner_where`, on alias p) of the
    query's lexemes, best first; then each record in that order is checked against the scope and filters
    (`where`, `fwhere`) and against the OR of the `terms` phrases, until `limit` pass. Parameters, in
    order: the terms, lexemes, idfs, average length, the owner's, scope's and filters' parameters, the limit.

    Checking records in score order (a nested loop under the limit) reads about `limit` records, where a
    filter before ranking would read every record that shares a lexeme with the query."""
    return (
        f"WITH q AS (SELECT {tsquery_sql(terms)} AS q), "
        "w AS (SELECT %s::text[] AS lexemes, %s::float8[] AS idfs, greatest(%s::float8, 1) AS avglen), "
        "t AS MATERIALIZED (SELECT p.rid, "
        f"sum(x.idf * p.tf * {K1 + 1} / (p.tf + {K1} * ({1 - B} + {B} * p.doc_len::float8 / w.avglen))) AS s "
        "FROM w CROSS JOIN LATERAL unnest(w.lexemes, w.idfs) AS x(lexeme, idf) "
        f"JOIN postings p ON p.lexeme = x.lexeme AND {owner_where} GROUP BY p.rid ORDER BY s DESC, p.rid) "
        "SELECT r.id, t.s FROM t CROSS JOIN q CROSS JOIN LATERAL (SELECT r.id FROM records r WHERE r.rid = t.rid "
        f"AND r.tsv @@ q.q AND {where}" + (f" AND {fwhere}" if fwhere else "") + ") r LIMIT %s"
    )
