"""Blocks of a text: its paragraphs, list items and headings, as plain text.

The write path splits them into sentences (notes); the read path picks the block of a document that
best answers a query (an excerpt) when the whole document would not fit in a memory block.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

#: A paragraph break, or a line break before a list item or a heading, ends a block of text.
_BLOCK_BREAK = re.compile(r"\n\s*\n|\n(?=[ \t]*(?:[-*•>]|#{1,6}|\d{1,2}[.)])\s)")
_LIST_MARKER = re.compile(r"^(?:[-*•>]|\d{1,2}[.)])\s+")
_HEADING_MARKER = re.compile(r"^#{1,6}\s+")
_HEADING_LINE = re.compile(r"^(#{1,6}[ \t].*)$", re.M)  # a heading ends its block at its line's end
_EMPHASIS = re.compile(r"(\*\*|__|`)(.+?)\1")


def sections(text: str) -> list[tuple[str | None, str]]:
    """(heading over it or None, block) for each block of `text`: paragraphs, list items and headings as plain
    text (markers and emphasis taken off). A short list item ("milk") joins the item, the "...:" line or the
    heading before it ("Shopping list: milk, eggs", "Agenda: Launch readiness, Billing migration")."""
    out: list[tuple[str | None, str]] = []
    heading: str | None = None
    listing = False  # the last block ends a "...:" line, is a heading, or is a list of short items
    for raw in _BLOCK_BREAK.split(_HEADING_LINE.sub("\\1\n", text.strip())):
        item = bool(_LIST_MARKER.match(raw.strip()))
        is_heading = bool(_HEADING_MARKER.match(raw.strip()))
        bare = _HEADING_MARKER.sub("", _LIST_MARKER.sub("", raw.strip()))
        block = " ".join(_EMPHASIS.sub(r"\2", bare).split())
        if not block:
            continue
        short = item and len(block.split()) <= 3 and not block.endswith((".", "!", "?"))
        if out and short and (listing or out[-1][1].endswith(":")):
            last_heading, last = out[-1]
            joiner = " " if last.endswith(":") else ": " if last == last_heading else ", "
            out[-1] = (last_heading, last + joiner + block)
            listing = True
        else:
            if is_heading:
                heading = block
            out.append((heading, block))
            listing = is_heading
    return out


def blocks(text: str) -> list[str]:
    """The blocks of `text` (see `sections`)."""
    return [block for _, block in sections(text)]


def best_block(text: str, wanted: set[str], words: Callable[[str], Iterable[str]], max_words: int) -> str:
    """The block of `text` that, with its heading, best matches `wanted` (by `words`; each word counts 1 over
    the number of blocks holding it; the first block on a tie), shown after its heading ("License: MIT"),
    cut to `max_words` words."""
    found = sections(text)
    bodies = [(h, b) for h, b in found if b != h] or found  # a heading alone says little; its blocks say it
    if not bodies:
        return ""
    found_words = [wanted & set(words(f"{h or ''} {b}")) for h, b in bodies]
    # a query word in every block (the document's name) tells them apart less than one in a single block
    spread = {w: sum(w in f for f in found_words) for w in wanted}
    best = max(range(len(bodies)), key=lambda i: sum(1.0 / spread[w] for w in found_words[i]))
    heading, block = bodies[best]
    prefix = "" if heading is None or block.startswith(heading) else f"{heading}: "
    return prefix + _window(block, wanted, words, max(1, max_words - len(prefix.split())))


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _window(block: str, wanted: set[str], words: Callable[[str], Iterable[str]], max_words: int) -> str:
    """`block` if it has at most `max_words` words, else its sentence sharing the most of `wanted` with the
    sentences around it that still fit, ending in "…" where text was left out."""
    if len(block.split()) <= max_words:
        return block
    max_words = max(1, max_words - 2)  # room for the two "…"
    sentences = _SENTENCE.split(block)
    best = max(range(len(sentences)), key=lambda i: len(wanted & set(words(sentences[i]))))
    first = last = best
    size = len(sentences[best].split())
    grew = True
    while grew:
        grew = False
        for i in (last + 1, first - 1):  # the sentence after first: it often finishes the thought
            if 0 <= i < len(sentences) and size + len(sentences[i].split()) <= max_words:
                size += len(sentences[i].split())
                first, last, grew = min(first, i), max(last, i), True
                break
    shown = " ".join(sentences[first:last + 1])
    cut = len(shown.split()) > max_words  # one sentence longer than the window
    if cut:
        shown = " ".join(shown.split()[:max_words])
    return ("… " if first > 0 else "") + shown + (" …" if cut or last < len(sentences) - 1 else "")
