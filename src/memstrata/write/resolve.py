"""Resolution: each note draft becomes a new note, or is merged into a note that says the same."""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping, Sequence

from ..ids import new_id
from ..model import Note, Scope, SlotState, text_hash
from .extract import NoteDraft


def normalise(text: str) -> str:
    """Case-, space- and punctuation-insensitive form used to spot repeated statements."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def note_key(text: str) -> str:
    """Hash of the normalised text: equal keys mean 'the same statement'."""
    return text_hash("note:" + normalise(text))


@dataclass
class Resolution:
    """What to write: new notes, sources to add to stored notes, stored notes to close."""

    notes: list[Note] = field(default_factory=list)
    merges: dict[str, list[str]] = field(default_factory=dict)
    #: Stored note id -> (when it stopped being true, id of the note that replaced it).
    supersede: dict[str, tuple[datetime, str]] = field(default_factory=dict)


def resolve(
    drafts: Sequence[NoteDraft],
    scope: Scope,
    known: Mapping[str, str],
    stamp: datetime,
    timelines: Mapping[str, Sequence[SlotState]] | None = None,
) -> Resolution:
    """Turn drafts into notes.

    A draft whose key is `known` (key -> note id) or repeats an earlier draft merges into it.
    A draft with a slot contradicts the slot's other states (`timelines`: slot -> its stored states,
    oldest first). It holds the slot from its own time until the next state begins: the newest
    state is current and the state before it closes where it starts; a state told late fits in
    between, and the state it follows now ends where it begins.
    """
    out = Resolution()
    batch: dict[str, Note] = {}
    states = {slot: sorted(v, key=lambda x: x.valid_from) for slot, v in (timelines or {}).items()}
    for d in drafts:
        key = note_key(d.content)
        if key in known:
            srcs = out.merges.setdefault(known[key], [])
            srcs += [s for s in d.sources if s not in srcs]
            continue
        if key in batch:
            note = batch[key]
            note.sources += [s for s in d.sources if s not in note.sources]
            continue
        note = Note(
            id=new_id("note"),
            kind=d.kind,
            user_id=scope.user_id,
            agent_id=scope.agent_id,
            session_id=scope.session_id,
            content=d.content,
            event_time=d.event_time,
            created_at=stamp,
            updated_at=stamp,
            valid_from=d.event_time,
            importance=d.importance,
            sources=list(d.sources),
            keywords=d.keywords,
            entities=d.entities,
            dedup_key=key,
            metadata=dict(d.metadata),
            slot=d.slot,
        )
        if d.slot:
            _place(out, states.setdefault(d.slot, []), note)
        batch[key] = note
        out.notes.append(note)
    return out


def _place(out: Resolution, timeline: list[SlotState], note: Note) -> None:
    """Insert `note` into its slot's timeline, closing or shortening the state it follows."""
    start = note.event_time
    at = bisect_right([s.valid_from for s in timeline], start)
    before = timeline[at - 1] if at > 0 else None
    after = timeline[at] if at < len(timeline) else None
    if after is not None:  # told late: a past state, over as soon as the next one began
        note.status, note.valid_to = "superseded", after.valid_from
    if before is not None and (before.valid_to is None or before.valid_to > start):
        _close(out, before.id, start, note.id)
        before.valid_to, before.active = start, False
    timeline.insert(at, SlotState(id=note.id, valid_from=start, valid_to=note.valid_to, active=after is None))


def _close(out: Resolution, note_id: str, at: datetime, by: str) -> None:
    for note in out.notes:  # a note of this same batch
        if note.id == note_id:
            note.status, note.valid_to = "superseded", at
            return
    out.supersede[note_id] = (at, by)
