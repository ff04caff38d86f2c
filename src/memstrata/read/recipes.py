"""Retrieval recipes: which retrievers run, how they are fused and rescored, which layers they read.

A new strategy is a new `Recipe`, not a new code path; benchmarks sweep recipes by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InvalidInput

RETRIEVERS = ("bm25", "dense", "time", "tree", "graph")


@dataclass(frozen=True)
class Recipe:
    """A declared retrieval strategy."""

    name: str
    retrievers: tuple[str, ...]
    #: Candidates each retriever contributes before fusion.
    candidates: int = 100
    #: Reciprocal-rank-fusion constant (larger flattens the rank curve).
    rrf_k: int = 60
    #: Per-retriever weights in the fusion; missing means 1.0.
    weights: dict[str, float] = field(default_factory=dict)
    #: Layers read (None: all). Baselines read episodes (layer 0) only.
    layers: tuple[int, ...] | None = None
    #: Score multiplier bonus for memories whose subject is a person the query names.
    subject_boost: float = 0.0
    #: First-round results the graph walk starts from.
    graph_seeds: int = 10


_ALL = ("bm25", "dense", "time", "tree", "graph")

PRESETS: dict[str, Recipe] = {
    # The default, chosen by LoCoMo evidence recall per token (docs/benchmarks.md): lexical, dense
    # and time-window retrieval over episodes, notes and profile facts, rescored by who the query
    # is about. Topics, tree descent and the graph walk did not add recall per token offline.
    "hybrid": Recipe("hybrid", ("bm25", "dense", "time"), subject_boost=0.5, layers=(0, 1, 3)),
    # every retriever over every layer (topic summaries, tree descent, graph walk included)
    "strata": Recipe("strata", _ALL, subject_boost=0.5),
    # ablations of the default, one part off at a time
    "no-time": Recipe("no-time", ("bm25", "dense"), subject_boost=0.5, layers=(0, 1, 3)),
    "no-rescore": Recipe("no-rescore", ("bm25", "dense", "time"), layers=(0, 1, 3)),
    "no-profile": Recipe("no-profile", ("bm25", "dense", "time"), subject_boost=0.5, layers=(0, 1)),
    "plus-tree": Recipe("plus-tree", ("bm25", "dense", "time", "tree"), subject_boost=0.5, layers=(0, 1, 3)),
    "plus-graph": Recipe("plus-graph", ("bm25", "dense", "time", "graph"), subject_boost=0.5, layers=(0, 1, 3)),
    "plus-topics": Recipe("plus-topics", ("bm25", "dense", "time"), subject_boost=0.5),
    "bm25": Recipe("bm25", ("bm25",)),
    "dense": Recipe("dense", ("dense",)),
    # flat baselines: one unit per turn, no derived layers, no rescoring
    "bm25-turns": Recipe("bm25-turns", ("bm25",), layers=(0,)),
    "dense-turns": Recipe("dense-turns", ("dense",), layers=(0,)),
    "hybrid-turns": Recipe("hybrid-turns", ("bm25", "dense"), layers=(0,)),
}


def get_recipe(recipe: str | Recipe | None, default: str = "hybrid") -> Recipe:
    """Resolve a recipe name (or pass a `Recipe` through)."""
    if isinstance(recipe, Recipe):
        unknown = [r for r in recipe.retrievers if r not in RETRIEVERS]
        if unknown:
            raise InvalidInput(f"unknown retriever(s) {unknown}; known: {', '.join(RETRIEVERS)}", field="recipe")
        return recipe
    name = recipe or default
    if name not in PRESETS:
        raise InvalidInput(f"unknown recipe {name!r}; choose one of {', '.join(PRESETS)}", field="recipe")
    return PRESETS[name]
