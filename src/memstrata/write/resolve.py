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
    """What to write: new notes, and sources to add to notes already stored."""

    notes: list[Note] = field(default_factory=list)
    merges: dict[str, list[str]] = field(default_factory=dict)


def resolve(
    drafts: Sequence[NoteDraft], scope: Scope, known: Mapping[str, str], stamp: datetime
) -> Resolution:
    """Turn drafts into notes; a draft whose key is `known` (key -> note id) or repeats an earlier draft merges."""
    out = Resolution()
    batch: dict[str, Note] = {}
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
        )
        batch[key] = note
        out.notes.append(note)
    return out
