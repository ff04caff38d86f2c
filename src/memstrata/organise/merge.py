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


def plan_merges(
    notes: list[Record], matrix: np.ndarray, threshold: float, fresh: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """(keep, drop) index pairs: each note, oldest first, absorbs the later compatible notes above
    `threshold` that nothing absorbed before. Deterministic for a given store state.

    `fresh` (a boolean mask) limits the comparison to pairs with at least one fresh note: the notes
    changed since the last complete run, whose other pairs were compared then. None: all pairs."""
    rows = np.arange(len(notes)) if fresh is None else np.flatnonzero(fresh)
    candidates: set[tuple[int, int]] = set()
    for start in range(0, len(rows), _BLOCK):
        block = rows[start : start + _BLOCK]
        sims = matrix[block] @ matrix.T
        for i, row in zip(block, sims):
            for j in np.flatnonzero(row >= threshold):
                if j != i:
                    candidates.add((min(int(i), int(j)), max(int(i), int(j))))
    alive = np.ones(len(notes), dtype=bool)
    pairs: list[tuple[int, int]] = []
    for i, j in sorted(candidates):
        if alive[i] and alive[j] and notes[i].kind not in UNMERGED_KINDS and compatible(notes[i], notes[j]):
            pairs.append((i, j))
            alive[j] = False
    return pairs


class MergeStep:
    """Folds near-duplicate active notes of the scope into the oldest of them.

    A complete run records a watermark (the newest `updated_at` it saw); the next run compares only
    pairs that involve a note changed since, so a run costs what changed, not the square of the scope.
    """

    name = "merge"

    def run(self, ctx: OrganiseContext) -> dict:
        settings = settings_of(ctx)
        notes, matrix = load_layer(ctx, 1)
        at = ctx.clock()
        # what decay is about to archive (a bounded run may leave some) is not worth merging
        keep = [i for i, n in enumerate(notes) if not (faded(n, at, settings) or expired(n, at, settings))]
        notes, matrix = [notes[i] for i in keep], matrix[keep]
        mark = ctx.store.organise_state(ctx.scope, self.name)
        fresh = None if mark is None else np.array([n.updated_at.timestamp() > float(mark) for n in notes], dtype=bool)
        pairs = plan_merges(notes, matrix, settings.merge_threshold, fresh)
        budget = ctx.max_work if ctx.max_work is not None else len(pairs)
        merged = 0
        stamp = at.timestamp()
        for keep, drop in pairs[:budget]:
            merged += ctx.store.merge_records(notes[keep].id, notes[drop].id, ctx.scope, at=stamp)
        pending = max(0, len(pairs) - budget)
        if not pending and notes:
            ctx.store.set_organise_state(ctx.scope, self.name, repr(max(n.updated_at.timestamp() for n in notes)))
        return {"merged": merged, "pending": pending, "compared": len(notes) if fresh is None else int(fresh.sum())}
