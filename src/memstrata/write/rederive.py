"""Re-deriving notes after one of their sources was erased.

A note repeated by several episodes keeps one text, extracted from whichever
episode came first. When that episode is erased, the text (and the metadata and
event time it inherited) must come from what remains: the note is extracted
afresh from its remaining episodes and rewritten in place, keeping its id,
status, validity end and other sources. A note none of whose remaining episodes
yields a statement like it is deleted: nothing left supports it.

Topics and profile facts that lost a source are deleted by the store at once
(their text may quote what was erased) and rebuilt by the next `organise()`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

import numpy as np

from ..embed.base import Embedder
from ..model import Episode, Record, embedding_text
from ..store.base import Store
from .extract import Extractor, NoteDraft
from .resolve import note_key


def _closest(record: Record, drafts: list[NoteDraft], embedder: Embedder) -> NoteDraft | None:
    for d in drafts:
        if note_key(d.content) == record.dedup_key:
            return d
    if not drafts:
        return None
    vectors = embedder.embed([record.embedding_text, *(d.content for d in drafts)])
    return drafts[int(np.argmax(vectors[1:] @ vectors[0]))]


def rederive_notes(
    store: Store,
    embedder: Embedder,
    extractor: Extractor,
    records: Sequence[Record],
    participants: Sequence[str],
    at: datetime,
) -> dict[str, int]:
    """Rewrite each L1 note among `records` from its remaining source episodes; returns counts."""
    out = {"rederived": 0, "deleted": 0}
    for rec in records:
        if rec.layer_value != 1 or rec.kind == "experience":
            continue  # topics/profile went with the erased source; an experience has one source
        scope = rec.scope.model_copy(update={"session_id": None})
        episodes = [e for e in store.get(rec.sources, scope) if isinstance(e, Episode)]
        draft = _closest(rec, extractor.extract(episodes, participants), embedder) if episodes else None
        if draft is None:
            if not episodes and rec.sources:
                continue  # derived from notes or topics, not episodes: nothing to re-extract
            out["deleted"] += store.delete([rec.id], scope)
            continue
        session = rec.session_id
        if session is not None and session not in {e.session_id for e in episodes}:
            session = episodes[0].session_id  # its own session is being erased: it moves with its sources
        if (draft.content, draft.metadata, draft.event_time, session) == (
            rec.content, rec.metadata, rec.event_time, rec.session_id
        ):
            continue
        vector = None
        if draft.content != rec.content:
            vector = embedder.embed([embedding_text(rec.speaker, draft.content)])[0]
        valid_from = rec.valid_from
        if valid_from is not None and (rec.valid_to is None or draft.event_time < rec.valid_to):
            valid_from = draft.event_time
        store.rederive(
            rec.id, scope, content=draft.content, metadata=dict(draft.metadata), event_time=draft.event_time,
            valid_from=valid_from, vector=vector,
            model=embedder.name if vector is not None else None, at=at.timestamp(),
            detail={"sources": list(rec.sources)}, actor="delete",
            session_id=session if session != rec.session_id else None,
        )
        out["rederived"] += 1
    return out
