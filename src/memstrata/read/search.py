"""The read path: analyse the query, run the recipe's retrievers, fuse, rescore, return hits with provenance.

    query -> analyse (terms, persons, time window)
          -> bm25, dense, time window            (first round, in the store)
          -> fuse (reciprocal rank)
          -> tree descent, graph walk            (second round, from the first)
          -> fuse again, filter, rescore (who the query is about)
          -> hits, each with the episode ids it traces back to
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

import numpy as np

from ..embed.base import Embedder
from ..model import Record, Scope, SearchFilters, SearchHit, speaker_label
from ..store.base import Store
from .fusion import reciprocal_rank_fusion
from .query import QueryPlan, analyse
from .recipes import Recipe
from .retrievers import graph_walk, preferences, time_window, tree_descent


def subject_of(record: Record) -> str | None:
    """Who a memory is about: an episode's speaker (an unnamed one: the user or the assistant), a derived
    record's first entity."""
    if record.layer_value == 0:
        return speaker_label(record.role, record.speaker)
    return record.entities[0] if record.entities else None


def matches(record: Record, filters: SearchFilters) -> bool:
    """Whether a record passes the filters (checked again here for retrievers that walk links).

    The rules (layers, kinds, time, status, as_of validity, metadata) live in `SearchFilters.admits`.
    """
    return filters.admits(record)


def provenance_map(store: Store, records: Sequence[Record], scope: Scope) -> dict[str, list[str]]:
    """Episode ids behind each record: itself for an episode, its sources for a note, and
    for topics and profile facts the episodes behind the notes (or topics) they cite."""
    out: dict[str, list[str]] = {}
    pending: dict[str, list[str]] = {}
    for r in records:
        if r.layer_value == 0:
            out[r.id] = [r.id]
        elif r.layer_value == 1:
            out[r.id] = list(r.sources)
        else:
            pending[r.id] = list(r.sources)
    for _ in range(3):
        if not pending:
            break
        children = {c.id: c for c in store.get(sorted({s for v in pending.values() for s in v}), scope)}
        nxt: dict[str, list[str]] = {}
        for rid, sources in pending.items():
            episodes: list[str] = []
            deeper: list[str] = []
            for s in sources:
                child = children.get(s)
                if child is None:
                    continue
                if child.layer_value == 0:
                    episodes.append(child.id)
                elif child.layer_value == 1:
                    episodes += child.sources
                else:
                    deeper += child.sources
            out[rid] = list(dict.fromkeys(out.get(rid, []) + episodes))
            if deeper:
                nxt[rid] = deeper
        pending = nxt
    return out


def _layer_filters(filters: SearchFilters, recipe: Recipe) -> SearchFilters:
    """The layers searched: the caller's, when named (`layers=[2]` reads topics under any recipe),
    else the recipe's."""
    if recipe.layers is None or filters.layers is not None:
        return filters
    return filters.model_copy(update={"layers": list(recipe.layers)})


def rescore(hits: list[SearchHit], plan: QueryPlan, recipe: Recipe, stale: set[str] = frozenset()) -> list[SearchHit]:
    """Adjust fused scores with what the query says (who it is about) and what each memory is (a
    note that only asks a question states nothing; a turn all of whose notes were superseded is out
    of date), best first."""
    for hit in hits:
        if recipe.subject_boost and plan.persons and subject_of(hit.record) in plan.persons:
            hit.score *= 1.0 + recipe.subject_boost
        if hit.record.layer_value == 1 and hit.record.kind == "question":
            hit.score *= recipe.question_weight
        if hit.record.id in stale:
            hit.score *= recipe.stale_weight
    return sorted(hits, key=lambda h: -h.score)


def _with_adjacent_turns(
    store: Store,
    scope: Scope,
    fused: list[tuple[str, float, dict[str, int]]],
    recipe: Recipe,
    records: dict[str, Record],
) -> list[tuple[str, float, dict[str, int]]]:
    """Bring in the turns next to the best hits: in a conversation the answer is often the reply
    before or after the turn that matched. A turn found only as a neighbour scores a share of its
    seed's score; one that scored higher on its own keeps its score. Adjacency never lifts a turn
    above the hit it sits next to."""
    seeds = fused[: recipe.graph_seeds]
    records.update((r.id, r) for r in store.get([i for i, _, _ in seeds], scope))  # kept for the caller
    turns_of = {  # the turns each seed stands for: itself, or a note's sources
        i: [i] if records[i].layer_value == 0 else list(records[i].sources) for i, _, _ in seeds if i in records
    }
    neighbours = store.adjacent([t for turns in turns_of.values() for t in turns], scope)
    scores = {i: (s, ranks) for i, s, ranks in fused}
    for rank, (i, score, _) in enumerate(seeds, start=1):
        for turn in turns_of.get(i, ()):
            for neighbour in neighbours.get(turn, ()):
                old, ranks = scores.get(neighbour, (0.0, {}))
                if recipe.adjacent_share * score > old:
                    scores[neighbour] = (recipe.adjacent_share * score, {**ranks, "adjacent": rank})
    return sorted(((i, s, r) for i, (s, r) in scores.items()), key=lambda x: -x[1])


def retrieve(
    store: Store,
    embedder: Embedder,
    query: str,
    scope: Scope,
    filters: SearchFilters,
    limit: int,
    recipe: Recipe,
    participants: Sequence[str] = (),
    reference: datetime | None = None,
) -> list[SearchHit]:
    """Candidates from each retriever, fused by reciprocal rank, rescored, top `limit` as hits.

    `reference` is when the query is asked: "last week" in it means the week before then. A `limit` above the
    recipe's `candidates` extends the list it gives at `candidates`, never reorders it: the first `candidates`
    hits are those of a search that deep, and the rest come from reading every retriever `limit` deep."""
    plan = analyse(query, participants, reference, scope.user_id)
    filters = _layer_filters(filters, recipe)
    uses = set(recipe.retrievers)
    vector = embedder.embed([query])[0] if uses & {"dense", "tree", "time", "preferences"} else None
    head = _ranked(store, embedder.name, vector, plan, scope, filters, min(limit, recipe.candidates), recipe, reference)
    if limit <= recipe.candidates:
        return head
    seen = {h.id for h in head}
    deeper = _ranked(store, embedder.name, vector, plan, scope, filters, limit, recipe, reference)
    return head + [h for h in deeper if h.id not in seen][: limit - len(head)]


def _ranked(
    store: Store,
    model: str,
    vector: np.ndarray | None,
    plan: QueryPlan,
    scope: Scope,
    filters: SearchFilters,
    limit: int,
    recipe: Recipe,
    reference: datetime | None,
) -> list[SearchHit]:
    """`retrieve` with every retriever read `max(candidates, limit)` deep."""
    depth = max(recipe.candidates, limit)
    uses = set(recipe.retrievers)
    rankings: dict[str, list[str]] = {}
    if "bm25" in uses:
        terms = plan.terms if recipe.match_names else plan.topic_terms()
        rankings["bm25"] = [i for i, _ in store.lexical_search(terms, scope, filters, depth)]
    if "dense" in uses:
        rankings["dense"] = [i for i, _ in store.vector_search(vector, model, scope, filters, depth)]
    if "time" in uses:
        rankings["time"] = time_window(store, model, vector, plan, scope, filters, depth)
    if "preferences" in uses and plan.asks_suggestion:
        rankings["preferences"] = preferences(store, model, vector, plan, scope, filters)
    if "tree" in uses:
        rankings["tree"] = tree_descent(store, model, vector, scope, filters, depth)
    if "graph" in uses:
        first = reciprocal_rank_fusion(rankings, k=recipe.rrf_k, weights=recipe.weights)
        rankings["graph"] = graph_walk(store, [i for i, _, _ in first[: recipe.graph_seeds]], scope, depth)
    fused = reciprocal_rank_fusion(rankings, k=recipe.rrf_k, weights=recipe.weights)
    fetched: dict[str, Record] = {}  # records already read, so none is read twice
    if recipe.adjacent_share and fused:
        fused = _with_adjacent_turns(store, scope, fused, recipe, fetched)
    # Only candidates that can still reach the top `limit` after rescoring are fetched: a boost
    # multiplies a score by at most 1 + subject_boost, and the question and stale weights can lower
    # the `limit`-th score by at most their factor.
    if fused:
        lowest = min(1.0, recipe.question_weight, recipe.stale_weight)
        floor = fused[min(len(fused), limit) - 1][1] * lowest / (1.0 + recipe.subject_boost)
    else:
        floor = 0.0
    pool = [f for f in fused if f[1] >= floor]
    records = dict(fetched)
    records.update((r.id, r) for r in store.get([i for i, _, _ in pool if i not in fetched], scope))
    kept = [(records[i], s, ranks) for i, s, ranks in pool if i in records and matches(records[i], filters)]
    prov = provenance_map(store, [r for r, _, _ in kept], scope)
    hits = [SearchHit(record=r, score=s, ranks=ranks, provenance=prov.get(r.id, [])) for r, s, ranks in kept]
    stale: set[str] = set()
    if recipe.stale_weight != 1.0:
        at = filters.as_of or reference or datetime.now(timezone.utc)
        stale = store.outdated_sources([r.id for r, _, _ in kept if r.layer_value == 0], scope, at.timestamp())
    return rescore(hits, plan, recipe, stale)[:limit]
