"""Abstractive topic summaries: an LLM writes a topic's summary from its notes.

Used by the topic step when `Settings.summariser` is "llm". The model sees the
topic's most central notes (at most `MAX_NOTES`), numbered, and answers a JSON
object validated against `LLMSummary` (one repair round-trip in the client).
The summary cites the notes it was given, so provenance still reaches the
episodes. Any failure (request, validation, an empty or over-long answer) leaves
the topic to the extractive summary, so organise never stops because the model
misbehaved; the next organise asks the model again for that topic (and keeps
the extractive stand-in while it keeps failing).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from pydantic import BaseModel, Field

from ..errors import MemstrataError
from ..model import Record

log = logging.getLogger(__name__)

#: Notes shown to the model per topic (the most central ones).
MAX_NOTES = 20
#: Longest summary kept, in characters.
MAX_SUMMARY_CHARS = 600

SYSTEM_PROMPT = """You summarise a group of memory notes about a conversation for later recall.
Rules:
- Write 1 to 3 sentences that keep the concrete facts: who, what, where, when (absolute dates as given).
- Use the people's names; no pronouns whose referent is unclear; add nothing the notes do not say.
- `title` is 2 to 5 words naming what the notes are about.
Answer with a JSON object: {"title": ..., "summary": ...}"""


class LLMSummary(BaseModel):
    """The model's answer for one topic."""

    title: str = Field(min_length=1, max_length=80)
    summary: str = Field(min_length=10, max_length=MAX_SUMMARY_CHARS)


def render_notes(notes: Sequence[Record]) -> str:
    """The notes as the prompt shows them: numbered, dated."""
    return "\n".join(f"{i}. ({n.event_time:%Y-%m-%d}) {' '.join(n.content.split())}" for i, n in enumerate(notes, 1))


def llm_summary(chat: Any, notes: Sequence[Record]) -> LLMSummary | None:
    """The model's title and summary of `notes`, or None when it failed (the caller falls back)."""
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": render_notes(notes[:MAX_NOTES])},
    ]
    try:
        answer, _ = chat.complete_json(messages, LLMSummary, max_tokens=400)
    except MemstrataError as exc:
        log.warning("LLM summary failed (%s); the extractive summary stands until the next organise", exc)
        return None
    return answer
