"""Retrieval recipes: which retrievers run, how they are fused and rescored, which layers they read.

A new strategy is a new `Recipe`, not a new code path; benchmarks sweep recipes by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InvalidInput

RETRIEVERS = ("bm25", "dense")


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


PRESETS: dict[str, Recipe] = {
    "hybrid": Recipe("hybrid", ("bm25", "dense"), subject_boost=0.5),
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
