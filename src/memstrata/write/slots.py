"""Slots: what a statement is about ("Ana|lives_in"), so a newer statement can supersede an older one.

Offline rules recognise a small set of attributes that hold one value at a time
(where someone lives, works, their job, age, favourites, contact details, budget). Two
active notes with the same slot and different text contradict: the one that
happened later stays current. Statements outside these patterns never
supersede anything (they accumulate, which is the safe failure).
"""

from __future__ import annotations

import re
from typing import Sequence

from ..model import without_speaker

_NAME = r"(?P<s>[Tt]he (?:user|assistant)|[\w'’-]+(?: [A-Z][\w'’-]+)?)"
#: Attributes with one value at a time, named after an owner: "Ana's address is ...", "Ana raised her budget".
_ATTRS = ("address|email|e-mail|phone number|phone|birthday|job|partner|boyfriend|girlfriend|husband|wife|hometown|"
          "employer|name|nickname|commute|salary|rent|major|school|university|college|car|manager|boss|budget|"
          "deadline|weight|diet|title|role|team|office|landlord|doctor|dentist|therapist")
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"^{_NAME} (?:now |just |recently |still )?(?:lives|live|is living|has lived|resides|"
                rf"is (?:now |currently )?based) in\b"), "lives_in"),
    (re.compile(rf"^{_NAME} (?:has )?(?:just |recently )?(?:moved|relocated|is moving) (?:back )?to\b"), "lives_in"),
    (re.compile(rf"^{_NAME} (?:now |currently )?(?:works|is working|has started working|started working) (?:at|for)\b"),
     "works_at"),
    # a new job named by its employer: "started a new job at", "got a job with", "accepted an offer from"
    (re.compile(rf"^{_NAME} (?:just |recently |has )*(?:started|starts|is starting|got|landed) "
                r"(?:(?:the )?[\w'’]+['’]s |a |an |the )?(?:new )?(?:job|position|role) (?:at|with)\b"), "works_at"),
    # "left Brightline and joined Northwind"
    (re.compile(rf"^{_NAME} (?:just |recently |has )*left (?:[A-Z][\w'’&.-]* ){{1,4}}(?:and|to) (?:join|joined|start at|"
                r"started at|work at|works at) [A-Z]"), "works_at"),
    (re.compile(rf"^{_NAME} (?:just |recently |has )*accepted (?:a |an |the )?(?:job )?offer (?:at|with|from)\b"),
     "works_at"),
    (re.compile(rf"^{_NAME} (?:now |currently )?(?:works|is working) as\b"), "job"),
    (re.compile(rf"^{_NAME} (?:just |recently |has )*(?:started|starts|is starting|took|got|landed) "
                r"(?:(?:the )?[\w'’]+['’]s |a |an |the )?(?:new )?(?:job|role|position) as\b"), "job"),
    # a change of job said as what one is now: "Ana is now a nurse practitioner at Riverside Clinic"
    (re.compile(rf"^{_NAME} is now an? (?:[\w-]+ ){{1,3}}(?:at|for|with)\b"), "job"),
    (re.compile(rf"^{_NAME} is (?:now )?\d+ years old\b"), "age"),
    (re.compile(rf"^{_NAME} (?:just |recently )?turned \d+\b"), "age"),
    (re.compile(rf"^{_NAME}['’]s favou?rite (?P<a>[a-z]+(?: [a-z]+)?) (?:is|are)\b"), "favorite"),
    (re.compile(rf"^{_NAME} (?:has |just |recently )*(?:bumped|raised|increased|upped|lowered|cut|reduced|changed|"
                rf"updated) (?:the user['’]s |the assistant['’]s |[\w'’]+['’]s |their |his |her )(?P<a>{_ATTRS})\b"),
     "attr"),
    (re.compile(
        rf"^{_NAME}['’]s (?:new |current )?(?P<a>{_ATTRS}) (?:is|was changed to)\b"), "attr"),
    (re.compile(rf"^{_NAME}['’]s (?P<a>{_ATTRS}) (?:(?:just |has |have )?(?:went|gone|goes|is going) (?:up|down)|rose|"
                r"has risen|dropped|fell|increased|decreased|changed|was (?:raised|increased|cut|lowered|reduced)) "
                r"(?:to|from|by)\b"), "attr"),
]


#: Who someone is, what they have or like: worth a note however short ("Ana is vegetarian", "Ana's
#: daughter is 5", "Ana hates cilantro"). An exclamation ("Ana is so excited!") is a reaction instead.
_DESCRIBES = re.compile(
    rf"^{_NAME}(?:['’]s [a-z]+)? (?:is|are|was|has|have|owns?|works|lives|loves?|likes?|hates?|prefers?|enjoys?|dislikes?|adores?|"
    r"doesn['’]t|does not|never|always|usually)\b"
)
DESCRIBING_VERBS = frozenset(
    "has have owns own works lives loves love likes like hates hate prefers prefer enjoys enjoy dislikes dislike adores adore "
    "doesn't doesn’t never always usually".split()
)


def describes(text: str, subjects: Sequence[str]) -> bool:
    """Whether `text` says who one of `subjects` is, or what they have or like (see `_DESCRIBES`)."""
    body = without_speaker(text)
    m = _DESCRIBES.match(body)
    return bool(m) and m.group("s").lower() in {s.lower() for s in subjects} and not body.endswith("!")


#: A time adverb before the subject, which says the statement is an update.
_SINCE = re.compile(r"^(?:now|these days|currently|nowadays|since then),? ", re.I)


_PAIR_VERB = r"(?:now |just |recently |still |currently )?(?:live|lives|moved|relocated|are moving|reside|are based)\b"


def _with_partner(body: str, subjects: Sequence[str]) -> str:
    """A compound subject that includes one of `subjects` as theirs: "The user's partner and the user moved
    to Austin" and "Ana and her sister live in Porto" are about the user and Ana (the pair shares the home)."""
    for subject in subjects:
        s = re.escape(subject)
        m = re.match(rf"^(?:{s} and (?:[\w'’]+ ){{1,3}}?|(?:[\w'’]+ ){{1,3}}?and {s} )(?={_PAIR_VERB})", body, flags=re.I)
        if m:
            return f"{subject} {body[m.end():]}"
    return body


def slot_of(text: str, subjects: Sequence[str]) -> str | None:
    """``"ana|lives_in"`` for "Ana moved to Porto last week.", or None.

    Only statements whose subject is one of `subjects` (the scope's participants) get a slot; a
    statement opening with "We" is taken as the first subject's (the speaker's).
    """
    body = without_speaker(text)
    body = _SINCE.sub("", body)  # "Now the user's commute is ..."
    if subjects and body.startswith("We "):  # "We moved to Porto": the speaker did (a home is shared)
        body = f"{subjects[0]} {body[3:]}"
    elif subjects and body.startswith("Our "):  # "Our rent went up": the speaker's
        body = f"{subjects[0]}'s {body[4:]}"
    body = _with_partner(body, subjects)
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
