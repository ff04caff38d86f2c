"""Retrieval recipes: which retrievers run, how they are fused and rescored, which layers they read.

A new strategy is a new `Recipe`, not a new code path; benchmarks sweep recipes by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import InvalidInput

RETRIEVERS = ("bm25", "dense", "time", "tree", "graph", "preferences")


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
    #: First-round results the graph walk and the adjacent-turn expansion start from.
    graph_seeds: int = 10
    #: Share of a top hit's score its neighbouring turns (same session, one turn away) receive.
    adjacent_share: float = 0.0
    #: Score multiplier for notes that ask rather than state ("What did Ana think of it?").
    question_weight: float = 1.0
    #: Whether lexical retrieval matches the names of participants the query names (see
    #: `QueryPlan.topic_terms`); off, who the query is about only rescores.
    match_names: bool = True
    #: Score multiplier for turns whose every note has been superseded ("I live in Lisbon" once "I moved
    #: to Porto" closed it): the turn is still true of its day, no longer of now.
    stale_weight: float = 1.0
    #: How many of the best hits a context block shows as the whole turn they come from: a note is one
    #: sentence, and the answer is often in the turn's next one.
    verbatim_top: int = 0


_ALL = ("bm25", "dense", "time", "tree", "graph", "preferences")
_DEFAULT = ("bm25", "dense", "time", "preferences")
_LAYERS = (0, 1, 3)
_ADJ = 0.5
_QW = 0.5
_STALE = 0.5
_VERBATIM = 2

PRESETS: dict[str, Recipe] = {
    # The default, chosen by LoCoMo evidence recall per token (docs/benchmarks.md): lexical, dense
    # and time-window retrieval over episodes, notes and profile facts, rescored by who the query is
    # about, with the turns next to the best hits given a share of their score (a reply often holds
    # the answer). Lexical matching leaves out the names of the participants the query names (they
    # match nearly every memory of the scope), and notes that only ask a question rank below those
    # that state something. Topics, tree descent and the graph walk did not add recall per token
    # offline.
    "hybrid": Recipe("hybrid", _DEFAULT, subject_boost=0.5, layers=_LAYERS, adjacent_share=_ADJ,
                     question_weight=_QW, match_names=False, stale_weight=_STALE, verbatim_top=_VERBATIM),
    # every retriever over every layer (topic summaries, tree descent, graph walk included)
    "strata": Recipe("strata", _ALL, subject_boost=0.5, adjacent_share=_ADJ, question_weight=_QW, match_names=False,
                     stale_weight=_STALE, verbatim_top=_VERBATIM),
}
# ablations of the default, one part off (or on) at a time
_ABLATIONS = {
    "no-adjacent": {"adjacent_share": 0.0},
    "no-time": {"retrievers": ("bm25", "dense", "preferences")},
    "no-preferences": {"retrievers": ("bm25", "dense", "time")},
    "no-rescore": {"subject_boost": 0.0},
    "no-profile": {"layers": (0, 1)},
    "no-question-weight": {"question_weight": 1.0},
    "no-stale": {"stale_weight": 1.0},
    "no-verbatim": {"verbatim_top": 0},
    "match-names": {"match_names": True},
    "plus-tree": {"retrievers": (*_DEFAULT, "tree")},
    "plus-graph": {"retrievers": (*_DEFAULT, "graph")},
    "plus-topics": {"layers": None},
}
for _name, _change in _ABLATIONS.items():
    PRESETS[_name] = replace(PRESETS["hybrid"], name=_name, **_change)
PRESETS.update({
    "bm25": Recipe("bm25", ("bm25",)),
    "dense": Recipe("dense", ("dense",)),
    # flat baselines: one unit per turn, no derived layers, no rescoring
    "bm25-turns": Recipe("bm25-turns", ("bm25",), layers=(0,)),
    "dense-turns": Recipe("dense-turns", ("dense",), layers=(0,)),
    "hybrid-turns": Recipe("hybrid-turns", ("bm25", "dense"), layers=(0,)),
})


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
