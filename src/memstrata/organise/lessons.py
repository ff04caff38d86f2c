"""Lessons from experience: one L3 record (kind "lesson") distilled from each stored task trajectory.

An experience is an L1 record of kind "experience" whose metadata holds the
trajectory (task, steps, outcome, feedback, success). Offline, its lesson is a
rule: how it ended, what was done last, and the feedback. With an LLM, pass
`LessonStep(distil=...)` a function that writes a short lesson instead. The
lesson names the experience as its source, so deleting the experience (or its
trajectory episode) deletes the lesson too. Idempotent: a lesson's identity is
its experience's id, and an experience that already has one is skipped.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from ..ids import new_id
from ..model import ProfileFact, Record, SearchFilters, text_hash
from .runner import OrganiseContext

#: Steps the offline lesson repeats (the last ones: what was done right before the outcome).
LAST_STEPS = 2
_STEP_CHARS = 160


def lesson_key(experience_id: str) -> str:
    """The dedup_key of the lesson drawn from an experience."""
    return text_hash("lesson:" + experience_id)


def step_text(step: Any) -> str:
    """One trajectory step as a line: a string as is; a dict by its action/thought/observation."""
    if isinstance(step, str):
        text = step
    elif isinstance(step, dict):
        parts = [str(step[k]) for k in ("action", "tool", "input", "content", "text", "thought", "observation", "result")
                 if step.get(k) not in (None, "")]
        text = " - ".join(parts) if parts else json.dumps(step, ensure_ascii=False, sort_keys=True)
    else:
        text = json.dumps(step, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= _STEP_CHARS else text[: _STEP_CHARS - 1] + "…"


def offline_lesson(experience: Record) -> str:
    """The outcome and the last steps, worded as a lesson; failures say what to avoid."""
    traj = experience.metadata.get("experience", {})
    task = " ".join(str(traj.get("task", "")).split())
    outcome = " ".join(str(traj.get("outcome", "")).split())
    steps = [step_text(s) for s in traj.get("steps", [])][-LAST_STEPS:]
    tried = "; ".join(steps)
    success = traj.get("success")
    if success is False:
        text = f"Failed at \"{task}\": {outcome}."
        if tried:
            text += f" Avoid repeating: {tried}."
    elif success is True:
        text = f"Worked for \"{task}\": {tried or 'the steps taken'} -> {outcome}."
    else:
        text = f"For \"{task}\": {tried + ' -> ' if tried else ''}{outcome}."
    feedback = traj.get("feedback")
    if feedback:
        text += f" Feedback: {' '.join(str(feedback).split())}"
    return text


class LessonStep:
    """Distils a lesson (L3, kind "lesson") from every active experience that has none."""

    name = "lessons"

    def __init__(self, distil: Callable[[Record], str] = offline_lesson) -> None:
        self.distil = distil

    def run(self, ctx: OrganiseContext) -> dict:
        experiences: list[Record] = []
        cursor = None
        while True:
            page = ctx.store.list(ctx.scope, SearchFilters(layers=[1], kinds=["experience"]), limit=1000, cursor=cursor)
            experiences += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        keys = {lesson_key(e.id): e for e in experiences}
        have = ctx.store.find_by_keys(ctx.scope, list(keys))
        todo = [e for k, e in keys.items() if k not in have]
        budget = ctx.max_work if ctx.max_work is not None else len(todo)
        stamp = ctx.clock()
        lessons = [
            ProfileFact(
                id=new_id("profile"), kind="lesson", user_id=e.user_id, agent_id=e.agent_id,
                session_id=e.session_id, content=self.distil(e), event_time=e.event_time, created_at=stamp,
                updated_at=stamp, valid_from=e.event_time, importance=e.importance, sources=[e.id],
                keywords=e.keywords, entities=e.entities, dedup_key=lesson_key(e.id),
                metadata={"success": e.metadata.get("experience", {}).get("success")},
            )
            for e in todo[:budget]
        ]
        if lessons:
            vectors = ctx.embedder.embed([r.embedding_text for r in lessons])
            ctx.store.put(lessons, vectors, ctx.embedder.name, actor="organise")
        return {"created": len(lessons), "pending": len(todo) - len(lessons)}
