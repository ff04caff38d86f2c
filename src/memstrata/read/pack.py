"""Packing search hits into a token budget and rendering them as a prompt block.

The block is grouped by day (one date line per day, oldest first) and every
memory line ends with the ids of the episodes it came from:

    Relevant memories (oldest first; [id] = source):
    2023-05-08:
    Caroline went to a LGBTQ support group yesterday (7 May 2023). [ep_01H...]
    Melanie: I'm swamped with the kids & work. [ep_01H...]
"""

from __future__ import annotations

from typing import AbstractSet as Set, Sequence

from ..model import ContextBlock, ContextLine, Episode, Record, SearchHit, speaker_label
from ..text.blocks import best_block
from ..text.timeexpr import annotate_times
from .query import lexical_terms

HEADER = "Relevant memories (oldest first; [id] = source):"


def count_tokens(text: str) -> int:
    """Whitespace tokens: the unit budgets are measured in."""
    return len(text.split())


def render_line(hit: SearchHit) -> str:
    """``Caroline: text [ep_...]``; derived records cite their source episodes."""
    rec = hit.record
    who = rec.speaker
    if not who and rec.layer_value == 0:  # an unnamed turn says whose it is as its notes do: "The user: ..."
        label = speaker_label(rec.role, None)
        who = label[:1].upper() + label[1:] if label else rec.role  # a tool's or system's turn: its role
    body = " ".join(rec.content.split())
    if rec.layer_value == 0:  # a turn verbatim, its relative times made absolute: "yesterday (7 May 2023)"
        body = annotate_times(body, rec.event_time)[0]
    text = f"{who}: {body}" if who else body
    sources = hit.provenance if rec.layer_value > 0 and hit.provenance else [rec.id]
    return f"{text} [{', '.join(sources)}]"


def with_turns(hits: Sequence[SearchHit], turns: Sequence[Episode], top: int, max_tokens: int) -> list[SearchHit]:
    """`hits` with each of the first `top` that is a note drawn from one turn replaced, in its place, by that
    turn (from `turns`) when the turn has at most `max_tokens` words; a turn is listed once. A note is one
    sentence; its turn says more, but a long turn (a document chunk, an assistant's essay) would crowd out
    the rest."""
    by_id = {t.id: t for t in turns if count_tokens(t.content) <= max_tokens}
    shown: set[str] = set()
    out: list[SearchHit] = []
    for rank, hit in enumerate(hits):
        rec = hit.record
        turn = by_id.get(hit.provenance[0]) if rank < top and rec.layer_value == 1 and len(hit.provenance) == 1 else None
        if turn is not None:
            hit = SearchHit(record=turn, score=hit.score, ranks=hit.ranks, provenance=[turn.id])
        if hit.record.layer_value == 0:
            if hit.record.id in shown:
                continue
            shown.add(hit.record.id)
        out.append(hit)
    return out


def excerpted(record: Record, max_tokens: int) -> bool:
    """Whether an episode is shown by an excerpt rather than whole: a document (stored whole, read by the
    passage), or any episode longer than `max_tokens` words (an assistant's essay)."""
    return record.layer_value == 0 and (record.kind == "document" or count_tokens(record.content) > max_tokens)


def excerpts(hits: Sequence[SearchHit], max_tokens: int, query_terms: Sequence[str]) -> tuple[list[SearchHit], set[str]]:
    """`hits` with each episode that is `excerpted` cut, in its place, to its block (paragraph, list item)
    sharing the most `query_terms`, after the block's heading, at most `max_tokens` words: a whole document
    would crowd the rest of the block out. Also the ids of the episodes so cut (`pack` takes them as parts)."""
    wanted = set(query_terms)
    out: list[SearchHit] = []
    cut: set[str] = set()
    for hit in hits:
        rec = hit.record
        if excerpted(rec, max_tokens):
            part = best_block(rec.content, wanted, lexical_terms, max_tokens)
            if part:
                hit = SearchHit(record=rec.model_copy(update={"content": part}), score=hit.score, ranks=hit.ranks,
                                provenance=hit.provenance)
                cut.add(rec.id)
        out.append(hit)
    return out, cut


def day_label(hit: SearchHit) -> str:
    return f"{hit.record.event_time:%Y-%m-%d}:"


def pack(query: str, hits: Sequence[SearchHit], budget_tokens: int, parts: Set[str] = frozenset()) -> ContextBlock:
    """Take hits best-first while they fit in `budget_tokens`, then render them by day, oldest first.

    A hit that does not fit is skipped and smaller ones after it may still be taken. Layers mix
    without duplication: a turn is not spent when a note from it is in, nor a note when its turn is.
    A second note from a turn already represented waits until every other candidate had a chance,
    so a small budget covers more of what happened. A line that says what a chosen line of the same day
    says (a profile fact restating its note) is not spent again. A day's date line is counted once.
    An episode in `parts` is shown by an excerpt (`excerpts`) and counts as a note of itself.
    """
    used = count_tokens(HEADER)
    chosen: list[tuple[SearchHit, str, int]] = []
    days: set[str] = set()
    whole_turns: set[str] = set()  # episodes shown verbatim
    noted_turns: set[str] = set()  # episodes a chosen note already speaks for
    deferred: list[SearchHit] = []
    said: set[tuple[str, str]] = set()  # (day, line without its sources) of the chosen lines
    for pass_no, candidates in enumerate((hits, deferred)):
        for hit in candidates:
            prov = set(hit.provenance)
            whole = hit.record.layer_value == 0 and hit.record.id not in parts
            if whole:
                if hit.record.id in whole_turns or hit.record.id in noted_turns:
                    continue  # a note from this turn is in; the rest of the turn is small talk or its other notes
            elif prov and prov <= whole_turns:
                continue  # the turns it came from are already shown verbatim
            elif pass_no == 0 and prov and prov <= noted_turns:
                deferred.append(hit)  # another note of the same turn: after the other turns had their turn
                continue
            line = render_line(hit)
            day = day_label(hit)
            statement = (day, line.rsplit(" [", 1)[0])
            if statement in said:
                continue
            n = count_tokens(line)
            cost = n + (0 if day in days else count_tokens(day))
            if used + cost > budget_tokens:
                continue
            chosen.append((hit, line, n))
            said.add(statement)
            days.add(day)
            used += cost
            if whole:
                whole_turns.add(hit.record.id)
            else:
                noted_turns.update(prov)
    if not chosen:
        return ContextBlock(query=query, text="", lines=[], tokens=0, budget_tokens=budget_tokens)
    chosen.sort(key=lambda c: (c[0].record.event_time, c[0].record.id))
    lines = [
        ContextLine(text=line, record_id=h.record.id, layer=h.record.layer_value, tokens=n, provenance=h.provenance)
        for h, line, n in chosen
    ]
    out = [HEADER]
    current = None
    for (hit, _, _), line in zip(chosen, lines):
        day = day_label(hit)
        if day != current:
            out.append(day)
            current = day
        out.append(line.text)
    text = "\n".join(out)
    return ContextBlock(query=query, text=text, lines=lines, tokens=count_tokens(text), budget_tokens=budget_tokens)
