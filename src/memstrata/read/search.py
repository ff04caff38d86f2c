"""The read path: run the recipe's retrievers, fuse, and return hits with provenance."""

from __future__ import annotations

from ..embed.base import Embedder
from ..model import Record, Scope, SearchFilters, SearchHit
from ..store.base import Store
from .fusion import reciprocal_rank_fusion
from .query import lexical_terms
from .recipes import Recipe


def provenance(record: Record) -> list[str]:
    """Episode ids a record traces back to: itself for an episode, else its sources."""
    return [record.id] if record.layer_value == 0 else list(record.sources)


def retrieve(
    store: Store,
    embedder: Embedder,
    query: str,
    scope: Scope,
    filters: SearchFilters,
    limit: int,
    recipe: Recipe,
) -> list[SearchHit]:
    """Candidates from each retriever, fused by reciprocal rank, top `limit` as hits."""
    depth = max(recipe.candidates, limit)
    rankings: dict[str, list[str]] = {}
    if "bm25" in recipe.retrievers:
        rankings["bm25"] = [i for i, _ in store.lexical_search(lexical_terms(query), scope, filters, depth)]
    if "dense" in recipe.retrievers:
        vector = embedder.embed([query])[0]
        rankings["dense"] = [i for i, _ in store.vector_search(vector, embedder.name, scope, filters, depth)]
    fused = reciprocal_rank_fusion(rankings, k=recipe.rrf_k, weights=recipe.weights)[:limit]
    records = {r.id: r for r in store.get([i for i, _, _ in fused], scope)}
    return [
        SearchHit(record=records[i], score=score, ranks=ranks, provenance=provenance(records[i]))
        for i, score, ranks in fused
        if i in records
    ]
