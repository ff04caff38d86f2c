"""L3 profile: durable facts about each participant (identity, relations, preferences, routines).

Offline, a profile fact is a current note whose subject is the participant and
whose wording marks something lasting ("Ana is a nurse", "Ana's sister Marta",
"Ana loves hiking", "Ana goes swimming every week"). Each fact names the note
that supports it; when that note is superseded or deleted, the fact goes too.
"""

from __future__ import annotations

import re

from ..ids import new_id
from ..model import ProfileFact, text_hash, without_speaker
from .runner import OrganiseContext
from .topics import load_layer

_DURABLE = [
    ("identity", re.compile(r"^{s} (?:is|identifies as|was born|grew up|comes from|is from) ", re.I)),
    ("relation", re.compile(
        r"\b{s}['’]s (?:husband|wife|partner|kids?|children|son|daughter|sister|brother|mom|mother|dad|father|"
        r"family|friends?|parents|grandma|grandmother|grandpa|dog|cat|pets?)\b", re.I)),
    ("preference", re.compile(r"^{s} (?:really |absolutely )?(?:loves?|likes?|enjoys?|prefers?|adores?|hates?) ", re.I)),
    ("preference", re.compile(r"\b{s}['’]s favou?rite\b", re.I)),
    # what someone does not eat, drink or stand: "Ana stopped eating meat", "Ana doesn't drink", "Ana avoids gluten"
    ("preference", re.compile(
        r"^{s} (?:(?:no longer|never|doesn['’]t|does not|can['’]t|cannot|won['’]t) (?:eats?|drinks?|stand)|"
        r"(?:stopped|quit|gave up|cut out|is cutting out) (?:eating|drinking|smoking)|(?:really )?(?:dislikes?|avoids?|"
        r"can['’]t stand))\b", re.I)),
    ("routine", re.compile(r"^{s} (?:usually|always|often|regularly|\w+s every) ", re.I)),
]


#: What holds on a day, not for good: a statement dated to a day, week or weekend ("Tom is flying to Dublin on
#: Tuesday (30 April 2024)", "Lena went hiking last weekend (the weekend of 20 April 2024)") or a plan ("is going
#: to"). An ongoing activity without a date stays ("Ana is learning Spanish").
_PASSING = re.compile(r"^{s} is going to\b|\((?:the (?:week|weekend) of )?\d{1,2} [A-Z][a-z]+ \d{4}\)")


def durable_kind(text: str, subject: str) -> str | None:
    """Which kind of lasting fact `text` states about `subject`, if any (none for what is only passing)."""
    body = without_speaker(text)
    if re.search(_PASSING.pattern.replace("{s}", re.escape(subject)), body, re.I):
        return None
    for kind, pattern in _DURABLE:
        if re.search(pattern.pattern.replace("{s}", re.escape(subject)), body, pattern.flags):
            return kind
    return None


class ProfileStep:
    """Keeps one profile fact per durable current note of each participant."""

    name = "profile"

    def run(self, ctx: OrganiseContext) -> dict:
        notes, _ = load_layer(ctx, 1)
        existing, _ = load_layer(ctx, 3)
        existing = [f for f in existing if f.kind != "lesson"]  # lessons belong to organise.lessons
        have = {f.dedup_key: f for f in existing}
        wanted: dict[str, ProfileFact] = {}
        for n in notes:
            if not n.entities or n.kind != "fact":
                continue
            kind = durable_kind(n.content, n.entities[0])
            if kind is None:
                continue
            key = text_hash(f"profile:{n.id}")
            fact = have.get(key)
            if fact is None:
                stamp = ctx.clock()
                fact = ProfileFact(
                    id=new_id("profile"), kind=kind, user_id=ctx.scope.user_id, agent_id=ctx.scope.agent_id,
                    content=n.content, event_time=n.event_time, created_at=stamp, updated_at=stamp,
                    valid_from=n.valid_from, sources=[n.id], dedup_key=key, entities=n.entities[:1],
                    keywords=n.keywords,
                )
            wanted[key] = fact
        new = [f for k, f in wanted.items() if k not in have]
        stale = [f.id for k, f in have.items() if k not in wanted]
        pending = 0
        if ctx.max_work is not None and len(new) > ctx.max_work:
            new, pending = new[: ctx.max_work], len(new) - ctx.max_work
        if new:
            ctx.store.put(new, ctx.embedder.embed([f.embedding_text for f in new]), ctx.embedder.name, actor="organise")
        removed = ctx.store.delete(stale, ctx.scope) if stale else 0
        return {"created": len(new), "removed": removed, "pending": pending}
