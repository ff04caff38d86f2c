"""The LLM extractor: one batched call per window of turns, validated against a pydantic model.

A malformed answer is repaired once by the client (`complete_json`); an answer
that still fails, a failed request, or notes that cite turns outside the window
fall back to the offline `RuleExtractor` for that window, so extraction never
stops because the model misbehaved.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timezone
from typing import Protocol, Sequence

from pydantic import BaseModel, Field

from ..errors import MemstrataError
from ..model import Episode
from .extract import Extractor, NoteDraft, default_name, keywords_of
from .slots import slot_of

log = logging.getLogger(__name__)

SYSTEM_PROMPT = """You turn conversation turns into atomic, self-contained memory notes.
Rules:
- One fact, event, plan or preference per note; skip greetings and small talk.
- Replace I/me/my/you/your with the people's names; never leave a pronoun whose referent is unclear.
- Replace relative times (yesterday, last week, next month) with absolute dates computed from the turn's date.
- `turns` lists the numbers of the turns the note comes from (at least one).
- `date` is the ISO date (YYYY-MM-DD) when the event happened, if the turns say; else null.
- `entities` are the people, places, organisations and things the note names.
Answer with a JSON object: {"notes": [{"text": ..., "turns": [...], "date": ..., "entities": [...]}]}"""


class LLMNote(BaseModel):
    """One note as the model must answer it."""

    text: str = Field(min_length=3, max_length=2000)
    turns: list[int] = Field(min_length=1)
    date: str | None = None
    entities: list[str] = Field(default_factory=list)


class LLMExtraction(BaseModel):
    """The model's whole answer for one window."""

    notes: list[LLMNote]


class ChatModel(Protocol):
    """What the extractor needs from an LLM client (see llm.openai_compat.OpenAIChat)."""

    def complete_json(self, messages, model, **kwargs): ...


def render_window(episodes: Sequence[Episode]) -> str:
    """Numbered turns with their dates, as the prompt shows them."""
    lines = []
    for i, ep in enumerate(episodes, start=1):
        who = ep.speaker or default_name(ep) or ep.role or "someone"
        lines.append(f"[{i}] ({ep.event_time:%Y-%m-%d}) {who}: {' '.join(ep.content.split())}")
    return "\n".join(lines)


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        d = date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None
    return datetime.combine(d, time(12, 0), tzinfo=timezone.utc)


class LLMExtractor:
    """Extracts notes with an LLM, window by window, falling back to `fallback` per window."""

    def __init__(self, chat: ChatModel, fallback: Extractor, window: int = 20) -> None:
        self.chat = chat
        self.fallback = fallback
        self.window = window
        #: Windows answered by the model / by the fallback, since creation.
        self.stats = {"llm": 0, "fallback": 0}

    def extract(self, episodes: Sequence[Episode], participants: Sequence[str]) -> list[NoteDraft]:
        drafts: list[NoteDraft] = []
        for start in range(0, len(episodes), self.window):
            window = list(episodes[start : start + self.window])
            try:
                drafts += self._extract_window(window, participants)
                self.stats["llm"] += 1
            except (MemstrataError, ValueError) as exc:
                log.warning("LLM extraction failed for %d turns, using offline rules: %s", len(window), exc)
                drafts += self.fallback.extract(window, participants)
                self.stats["fallback"] += 1
        return drafts

    def _extract_window(self, window: list[Episode], participants: Sequence[str]) -> list[NoteDraft]:
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Participants: {', '.join(participants) or 'unknown'}\n\n{render_window(window)}"},
        ]
        answer, _ = self.chat.complete_json(messages, LLMExtraction)
        out: list[NoteDraft] = []
        for note in answer.notes:
            if any(not 1 <= t <= len(window) for t in note.turns):
                raise ValueError(f"note cites turn(s) {note.turns} outside 1..{len(window)}")
            sources = [window[t - 1] for t in dict.fromkeys(note.turns)]
            first = sources[0]
            subject = first.speaker or default_name(first)
            entities = list(dict.fromkeys(([subject] if subject else []) + note.entities))
            out.append(
                NoteDraft(
                    content=note.text.strip(),
                    sources=[e.id for e in sources],
                    event_time=_parse_date(note.date) or first.event_time,
                    entities=entities,
                    keywords=keywords_of(note.text),
                    metadata=dict(first.metadata),
                    slot=slot_of(note.text, [subject]) if subject else None,
                )
            )
        return out
