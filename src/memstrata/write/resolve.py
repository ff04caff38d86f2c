"""Resolution: each note draft becomes a new note, or is merged into a note that says the same."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping, Sequence

from ..ids import new_id
from ..model import Note, Scope, text_hash
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


@dataclass
class Current:
    """The active note holding a slot."""

    id: str
    valid_from: datetime


def resolve(
    drafts: Sequence[NoteDraft],
    scope: Scope,
    known: Mapping[str, str],
    stamp: datetime,
    current: Mapping[str, Current] | None = None,
) -> Resolution:
    """Turn drafts into notes.

    A draft whose key is `known` (key -> note id) or repeats an earlier draft merges into it.
    A draft with a slot that an active note holds (`current`: slot -> note) contradicts it:
    whichever happened later is current, the other is closed (superseded, valid_to set).
    """
    out = Resolution()
    batch: dict[str, Note] = {}
    holders: dict[str, Current] = dict(current or {})
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
        holder = holders.get(d.slot) if d.slot else None
        if holder is not None:
            if note.event_time >= holder.valid_from:
                _close(out, holder.id, note.event_time, note.id)
                holders[d.slot] = Current(note.id, note.event_time)
            else:  # told late about an older state: it is history from the start
                note.status, note.valid_to = "superseded", holder.valid_from
        elif d.slot:
            holders[d.slot] = Current(note.id, note.event_time)
        batch[key] = note
        out.notes.append(note)
    return out


def _close(out: Resolution, note_id: str, at: datetime, by: str) -> None:
    for note in out.notes:  # a note of this same batch
        if note.id == note_id:
            note.status, note.valid_to = "superseded", at
            return
    out.supersede[note_id] = (at, by)
