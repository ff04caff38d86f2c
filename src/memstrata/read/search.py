"""The read path: analyse the query, run the recipe's retrievers, fuse, rescore, return hits with provenance."""

from __future__ import annotations

from typing import Sequence

from ..embed.base import Embedder
from ..model import Record, Scope, SearchFilters, SearchHit
from ..store.base import Store
from .fusion import reciprocal_rank_fusion
from .query import QueryPlan, analyse
from .recipes import Recipe


def provenance(record: Record) -> list[str]:
    """Episode ids a record traces back to: itself for an episode, else its sources."""
    return [record.id] if record.layer_value == 0 else list(record.sources)


def subject_of(record: Record) -> str | None:
    """Who a memory is about: an episode's speaker, a note's first entity."""
    if record.layer_value == 0:
        return record.speaker
    return record.entities[0] if record.entities else None


def _layer_filters(filters: SearchFilters, recipe: Recipe) -> SearchFilters:
    if recipe.layers is None:
        return filters
    layers = [x for x in recipe.layers if filters.layers is None or x in filters.layers]
    return filters.model_copy(update={"layers": layers})


def rescore(hits: list[SearchHit], plan: QueryPlan, recipe: Recipe) -> list[SearchHit]:
    """Adjust fused scores with what the query says (who it is about), best first."""
    if recipe.subject_boost and plan.persons:
        for hit in hits:
            if subject_of(hit.record) in plan.persons:
                hit.score *= 1.0 + recipe.subject_boost
    return sorted(hits, key=lambda h: -h.score)


def retrieve(
    store: Store,
    embedder: Embedder,
    query: str,
    scope: Scope,
    filters: SearchFilters,
    limit: int,
    recipe: Recipe,
    participants: Sequence[str] = (),
) -> list[SearchHit]:
    """Candidates from each retriever, fused by reciprocal rank, rescored, top `limit` as hits."""
    plan = analyse(query, participants)
    filters = _layer_filters(filters, recipe)
    depth = max(recipe.candidates, limit)
    rankings: dict[str, list[str]] = {}
    if "bm25" in recipe.retrievers:
        rankings["bm25"] = [i for i, _ in store.lexical_search(plan.terms, scope, filters, depth)]
    if "dense" in recipe.retrievers:
        vector = embedder.embed([query])[0]
        rankings["dense"] = [i for i, _ in store.vector_search(vector, embedder.name, scope, filters, depth)]
    fused = reciprocal_rank_fusion(rankings, k=recipe.rrf_k, weights=recipe.weights)
    if not recipe.subject_boost:
        fused = fused[:limit]
    records = {r.id: r for r in store.get([i for i, _, _ in fused], scope)}
    hits = [
        SearchHit(record=records[i], score=score, ranks=ranks, provenance=provenance(records[i]))
        for i, score, ranks in fused
        if i in records
    ]
    return rescore(hits, plan, recipe)[:limit]
