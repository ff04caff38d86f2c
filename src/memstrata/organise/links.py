"""Sideways links between notes: shared entities and close meaning (a Zettelkasten graph).

`entity` links join notes that name the same thing other than the conversation's
participants (names everyone shares say nothing); `similar` links join each note
to its nearest notes above a cosine threshold. Weights are similarities in [0, 1].
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .runner import OrganiseContext
from .topics import load_layer

SIMILAR_THRESHOLD = 0.6
SIMILAR_NEIGHBOURS = 5
#: An entity named by more notes than this is too common to link on.
MAX_ENTITY_FANOUT = 30


class LinkStep:
    """Links the scope's active notes; writes only links that are new or changed, drops stale ones."""

    name = "links"

    def run(self, ctx: OrganiseContext) -> dict:
        notes, matrix = load_layer(ctx, 1)
        if not notes:
            return {"linked": 0, "unlinked": 0}
        speakers = {n.entities[0] for n in notes if n.entities}
        wanted: dict[tuple[str, str, str], float] = {}
        by_entity: dict[str, list[int]] = defaultdict(list)
        for i, n in enumerate(notes):
            for e in n.entities[1:]:
                if e not in speakers:
                    by_entity[e.lower()].append(i)
        for idx in by_entity.values():
            if 1 < len(idx) <= MAX_ENTITY_FANOUT:
                for a in idx:
                    for b in idx:
                        if a != b:
                            wanted[(notes[a].id, notes[b].id, "entity")] = 1.0
        block = 2048
        for start in range(0, len(notes), block):
            sims = matrix[start : start + block] @ matrix.T
            for r, row in enumerate(sims):
                i = start + r
                row[i] = -1.0
                k = min(SIMILAR_NEIGHBOURS, len(notes) - 1)
                if k <= 0:
                    continue
                top = np.argpartition(-row, k - 1)[:k]
                for j in top:
                    if row[j] >= SIMILAR_THRESHOLD:
                        wanted[(notes[i].id, notes[int(j)].id, "similar")] = round(float(row[j]), 4)
        ids = [n.id for n in notes]
        have = {(a, b, k): w for a, b, k, w in ctx.store.neighbours(ids, ctx.scope, kinds=["entity", "similar"])}
        missing = [(a, b, k, w) for (a, b, k), w in wanted.items() if have.get((a, b, k)) != w]
        todo = missing if ctx.max_work is None else missing[: ctx.max_work]
        linked = ctx.store.put_links(todo)
        pending = len(missing) - len(todo)
        unlinked = 0
        if not pending:
            for kind in ("entity", "similar"):
                keep = [(a, b) for (a, b, k) in wanted if k == kind]
                if any(k == kind and (a, b, k) not in wanted for (a, b, k) in have):
                    unlinked += ctx.store.delete_links(ids, kind, keep=keep)
        return {"linked": linked, "unlinked": unlinked, "pending": pending}
