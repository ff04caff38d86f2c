"""Retrievers beyond the first round: topic-tree descent, graph walk, time window.

Each returns record ids, best first. They use the store's links and vectors and
never see SQL.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, time, timezone
from typing import Sequence

import numpy as np

from ..ids import kind_of
from ..model import Scope, SearchFilters
from ..store.base import Store
from .query import QueryPlan


#: Profile facts a request for a suggestion brings in: the asker's likes, dislikes and restrictions.
PREFERENCE_KINDS = ["preference", "identity"]
PREFERENCE_DEPTH = 5


def preferences(store: Store, model: str, query: np.ndarray, plan: QueryPlan, scope: Scope, filters: SearchFilters,
                depth: int = PREFERENCE_DEPTH) -> list[str]:
    """The profile facts (L3) of kinds `PREFERENCE_KINDS` nearest the query, of the people it is about when it
    names any: for a request for a suggestion, what the asker likes and cannot have ("The user stopped eating
    meat" for "Can you suggest a dinner?") though the request shares no word with it. Nothing when the
    caller's filters leave out the profile or those kinds."""
    kinds = [k for k in PREFERENCE_KINDS if filters.kinds is None or k in filters.kinds]
    if not kinds or (filters.layers is not None and 3 not in filters.layers):
        return []
    wanted = filters.model_copy(update={"layers": [3], "kinds": kinds})
    found = [i for i, _ in store.vector_search(query, model, scope, wanted, depth * 4)]
    if plan.persons and found:
        about = {r.id for r in store.get(found, scope) if r.entities and r.entities[0] in plan.persons}
        found = [i for i in found if i in about]
    return found[:depth]


def tree_descent(
    store: Store, model: str, query: np.ndarray, scope: Scope, filters: SearchFilters, depth: int, topics: int = 3
) -> list[str]:
    """Best topics for the query, then down their `member` links to notes, ranked by similarity."""
    topic_filters = filters.model_copy(update={"layers": [2]})
    frontier = [i for i, _ in store.vector_search(query, model, scope, topic_filters, topics)]
    notes: set[str] = set()
    for _ in range(3):  # theme -> cluster -> note
        if not frontier:
            break
        children = [dst for _, dst, _, _ in store.neighbours(frontier, scope, kinds=["member"])]
        notes.update(c for c in children if kind_of(c) == "note")
        frontier = [c for c in children if kind_of(c) == "topic"]
    vectors = store.vectors(sorted(notes), model, scope)
    ranked = sorted(vectors, key=lambda i: -float(vectors[i] @ query))
    return ranked[:depth]


def graph_walk(store: Store, seeds: Sequence[str], scope: Scope, depth: int) -> list[str]:
    """One step of a personalised walk: from the first round's best notes along entity and similarity
    links; a neighbour scores the sum over seeds of seed weight (1/rank) times link weight."""
    if not seeds:
        return []
    weight = {s: 1.0 / (rank + 1) for rank, s in enumerate(seeds)}
    score: dict[str, float] = defaultdict(float)
    for src, dst, _, w in store.neighbours(list(seeds), scope, kinds=["entity", "similar"]):
        if dst not in weight:
            score[dst] += weight[src] * w
    return sorted(score, key=lambda i: -score[i])[:depth]


def time_window(
    store: Store, model: str, query: np.ndarray, plan: QueryPlan, scope: Scope, filters: SearchFilters, depth: int
) -> list[str]:
    """Dense search restricted to the days the query names (nothing when it names none)."""
    if plan.window is None:
        return []
    first, last = plan.window
    start = datetime.combine(first, time.min, tzinfo=timezone.utc)
    end = datetime.combine(last, time.max, tzinfo=timezone.utc)
    if filters.time_from is not None:
        start = max(start, filters.time_from)
    if filters.time_to is not None:
        end = min(end, filters.time_to)
    if start > end:
        return []
    windowed = filters.model_copy(update={"time_from": start, "time_to": end})
    return [i for i, _ in store.vector_search(query, model, scope, windowed, depth)]
