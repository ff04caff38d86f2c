"""Packing search hits into a token budget and rendering them as a prompt block."""

from __future__ import annotations

from typing import Sequence

from ..model import ContextBlock, ContextLine, SearchHit

HEADER = "Relevant memories (oldest first; [id] = source):"


def count_tokens(text: str) -> int:
    """Whitespace tokens: the unit budgets are measured in."""
    return len(text.split())


def render_line(hit: SearchHit) -> str:
    """``- 2023-05-08 Caroline: text [ep_...]``; derived records cite their source episodes."""
    rec = hit.record
    who = rec.speaker or (rec.role if rec.layer_value == 0 else None)
    body = " ".join(rec.content.split())
    text = f"{who}: {body}" if who else body
    sources = hit.provenance if rec.layer_value > 0 and hit.provenance else [rec.id]
    return f"- {rec.event_time:%Y-%m-%d} {text} [{', '.join(sources)}]"


def pack(query: str, hits: Sequence[SearchHit], budget_tokens: int) -> ContextBlock:
    """Take hits best-first while they fit in `budget_tokens`, then render them in time order.

    A hit that does not fit is skipped and smaller ones after it may still be taken.
    """
    header_tokens = count_tokens(HEADER)
    used = header_tokens
    chosen: list[tuple[SearchHit, str, int]] = []
    for hit in hits:
        line = render_line(hit)
        n = count_tokens(line)
        if used + n > budget_tokens:
            continue
        chosen.append((hit, line, n))
        used += n
    if not chosen:
        return ContextBlock(query=query, text="", lines=[], tokens=0, budget_tokens=budget_tokens)
    chosen.sort(key=lambda c: (c[0].record.event_time, c[0].record.id))
    lines = [
        ContextLine(text=line, record_id=h.record.id, layer=h.record.layer_value, tokens=n, provenance=h.provenance)
        for h, line, n in chosen
    ]
    text = "\n".join([HEADER, *(l.text for l in lines)])
    return ContextBlock(query=query, text=text, lines=lines, tokens=used, budget_tokens=budget_tokens)
