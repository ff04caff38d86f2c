"""Merging near-duplicate notes: two active notes that say the same thing become one.

Exact repeats are merged when they are written (same `dedup_key`); this step
catches the rest: notes of one scope whose vectors have cosine similarity at least
`settings.merge_threshold`, of the same kind and slot, naming the same things,
numbers and negations (so "Ana ran 5 km" and "Ana ran 10 km", or "likes" and
"doesn't like", never merge however close their vectors are).

The older note (first stored) is kept: it gains the other's sources and the earlier
valid_from, with a 'merged' history event. The other is closed, not erased:
status 'superseded' with no valid_to (so no "as of" query returns it) and a
'superseded' history event naming the note it went into. Each merge is one
transaction that first checks both notes are still active, so the step is safe
beside live writes, a killed run leaves whole merges only, and a second run finds
nothing left to merge.
"""

from __future__ import annotations

import re

import numpy as np

from ..model import Record
from .lifecycle import expired, faded, settings_of
from .runner import OrganiseContext
from .topics import load_layer

_GUARD = re.compile(r"\d+(?:[.,]\d+)?|\b(?:not|no|never|none|nothing|without)\b|n't\b", re.I)
#: Kinds this step never merges: each experience is its own trajectory.
UNMERGED_KINDS = frozenset({"experience"})
_BLOCK = 1024


def guard_terms(record: Record) -> tuple[frozenset[str], frozenset[str]]:
    """What must agree for two notes to merge: named things, and numbers with negations."""
    return (
        frozenset(e.lower() for e in record.entities),
        frozenset(t.lower() for t in _GUARD.findall(record.content)),
    )


def compatible(a: Record, b: Record) -> bool:
    """Same kind, same slot, same named things, numbers and negations."""
    return a.kind == b.kind and a.slot == b.slot and guard_terms(a) == guard_terms(b)


def plan_merges(notes: list[Record], matrix: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(keep, drop) index pairs: each note, oldest first, absorbs the later compatible notes above
    `threshold` that nothing absorbed before. Deterministic for a given store state."""
    alive = np.ones(len(notes), dtype=bool)
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(notes), _BLOCK):
        sims = matrix[start : start + _BLOCK] @ matrix.T
        for r, row in enumerate(sims):
            i = start + r
            if not alive[i] or notes[i].kind in UNMERGED_KINDS:
                continue
            for j in np.flatnonzero(row[i + 1 :] >= threshold) + i + 1:
                if alive[j] and compatible(notes[i], notes[j]):
                    pairs.append((i, int(j)))
                    alive[j] = False
    return pairs


class MergeStep:
    """Folds near-duplicate active notes of the scope into the oldest of them."""

    name = "merge"

    def run(self, ctx: OrganiseContext) -> dict:
        settings = settings_of(ctx)
        notes, matrix = load_layer(ctx, 1)
        at = ctx.clock()
        # what decay is about to archive (a bounded run may leave some) is not worth merging
        keep = [i for i, n in enumerate(notes) if not (faded(n, at, settings) or expired(n, at, settings))]
        notes, matrix = [notes[i] for i in keep], matrix[keep]
        pairs = plan_merges(notes, matrix, settings.merge_threshold)
        budget = ctx.max_work if ctx.max_work is not None else len(pairs)
        merged = 0
        stamp = at.timestamp()
        for keep, drop in pairs[:budget]:
            merged += ctx.store.merge_records(notes[keep].id, notes[drop].id, ctx.scope, at=stamp)
        return {"merged": merged, "pending": max(0, len(pairs) - budget)}
