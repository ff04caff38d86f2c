"""Slots: what a statement is about ("Ana|lives_in"), so a newer statement can supersede an older one.

Offline rules recognise a small set of attributes that hold one value at a time
(where someone lives, works, their job, age, favourites, contact details). Two
active notes with the same slot and different text contradict: the one that
happened later stays current. Statements outside these patterns never
supersede anything (they accumulate, which is the safe failure).
"""

from __future__ import annotations

import re
from typing import Sequence

_NAME = r"(?P<s>[Tt]he (?:user|assistant)|[\w'’-]+(?: [A-Z][\w'’-]+)?)"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"^{_NAME} (?:now |just |recently |still )?(?:lives|live|is living|has lived|resides|is based) in\b"), "lives_in"),
    (re.compile(rf"^{_NAME} (?:has )?(?:just |recently )?(?:moved|relocated|is moving) (?:back )?to\b"), "lives_in"),
    (re.compile(rf"^{_NAME} (?:now |currently )?(?:works|is working|has started working) (?:at|for)\b"), "works_at"),
    (re.compile(rf"^{_NAME} (?:now |currently )?(?:works|is working) as\b"), "job"),
    (re.compile(rf"^{_NAME} is (?:now )?\d+ years old\b"), "age"),
    (re.compile(rf"^{_NAME}['’]s favou?rite (?P<a>[a-z]+(?: [a-z]+)?) (?:is|are)\b"), "favorite"),
    (re.compile(
        rf"^{_NAME}['’]s (?:new |current )?(?P<a>address|email|e-mail|phone number|phone|birthday|job|partner|boyfriend|"
        r"girlfriend|husband|wife|hometown|employer|name|nickname|commute|salary|rent|major|school|university|"
        r"college|car|manager|boss) (?:is|was changed to)\b"), "attr"),
]


def slot_of(text: str, subjects: Sequence[str]) -> str | None:
    """``"ana|lives_in"`` for "Ana moved to Porto last week.", or None.

    Only statements whose subject is one of `subjects` (the scope's participants) get a slot.
    """
    body = re.sub(r"^[\w'’-]+: ", "", text.strip())  # drop a "Speaker: " prefix
    allowed = {s.lower() for s in subjects}
    for pattern, kind in _PATTERNS:
        m = pattern.match(body)
        if not m:
            continue
        subject = m.group("s").lower()
        if subject not in allowed:
            return None
        if kind == "favorite":
            return f"{subject}|favorite {m.group('a')}"
        if kind == "attr":
            return f"{subject}|{m.group('a').replace('e-mail', 'email')}"
        return f"{subject}|{kind}"
    return None
