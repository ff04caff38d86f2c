"""Experience memory (procedural): an agent's task trajectory and how it ended.

`add_experience` stores two records in one transaction: the trajectory verbatim as
an L0 episode (kind "trajectory": the ground truth), and an L1 record of kind
"experience" whose text is the task and its outcome (what a search for a similar
task should match) and whose metadata holds the structured trajectory under
``"experience"``: task, steps, outcome, feedback, success (a search reads both: an
error named in the steps finds its experience). Failures are kept and
labelled (success False): they say what not to do. Lessons are distilled later,
by consolidation (organise.lessons).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Sequence

from ..errors import InvalidInput
from ..ids import new_id
from ..model import Episode, ExperienceHit, Note, Record, Scope, SearchHit

_FAILED = re.compile(
    r"\b(fail(?:ed|s|ure)?|error(?:ed|s)?|crash(?:ed)?|broke|broken|unable|could ?n[o']t|can ?n[o']t|did ?n[o']t|"
    r"does ?n[o']t|not work(?:ing)?|timed? ?out|abort(?:ed)?|wrong|rejected|unsuccessful)\b", re.I)
_WORKED = re.compile(
    r"\b(succe(?:ss|eded|ssful(?:ly)?)|worked|works|passed|pass(?:es)?|done|solved|fixed|resolved|completed?|"
    r"accepted|merged|deployed|ok|finished|shipped|released|launched|green|up and running)\b", re.I)
_TROUBLE = r"(?:fail\w*|errors?|crash\w*|bugs?|issues?|problems?|time ?outs?|downtime|regressions?)"
#: Trouble said to be absent ("no errors", "without downtime", "no more failures") or dealt with ("after
#: fixing the auth error", "Fixed the crash"): it does not make the outcome a failure, it says it worked.
_TROUBLE_GONE = re.compile(
    rf"\b(?:no|zero|0|without|free of)\s+(?:more\s+|further\s+|new\s+)?(?:[\w-]+\s+){{0,2}}?{_TROUBLE}"
    rf"|\b(?:fix(?:ed|es|ing)?|resolv(?:ed|es|ing)|solv(?:ed|es|ing)|repair(?:ed|s|ing)?|work(?:ed|ing)? around|"
    rf"address(?:ed|ing))\s+(?:the\s+|a\s+|an\s+|all\s+|every\s+)?(?:[\w-]+\s+){{0,3}}?{_TROUBLE}", re.I)


def infer_success(outcome: str) -> bool | None:
    """Success from the outcome's wording: failure words win, except trouble said to be gone ("no errors",
    "after fixing the auth error"), which counts as success; None when it says neither."""
    rest, gone = _TROUBLE_GONE.subn(" ", outcome)
    if _FAILED.search(rest):
        return False
    if gone or _WORKED.search(rest):
        return True
    return None


def _step_line(step: Any) -> str:
    return step if isinstance(step, str) else json.dumps(step, ensure_ascii=False, sort_keys=True)


def render_trajectory(task: str, steps: Sequence[Any], outcome: str, feedback: str | None, success: bool | None) -> str:
    """The trajectory as text (the episode's content)."""
    lines = [f"Task: {task}"]
    lines += [f"Step {i}: {_step_line(s)}" for i, s in enumerate(steps, start=1)]
    label = {True: "succeeded", False: "failed", None: "outcome"}[success]
    lines.append(f"Outcome ({label}): {outcome}")
    if feedback:
        lines.append(f"Feedback: {feedback}")
    return "\n".join(lines)


def summary_text(task: str, outcome: str, success: bool | None) -> str:
    """The experience record's content: the task and how it ended."""
    label = {True: "succeeded", False: "FAILED", None: "ended"}[success]
    return f"Task: {task} ({label}: {outcome})"


def check_steps(steps: Any) -> list[Any]:
    """A list of steps (strings or JSON objects)."""
    if steps is None:
        return []
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
        raise InvalidInput("steps must be a list of strings or dicts (one per action taken)", field="steps")
    return list(steps)


def build_experience(
    *,
    task: str,
    steps: list[Any],
    outcome: str,
    feedback: str | None,
    success: bool | None,
    scope: Scope,
    event_time: datetime,
    stamp: datetime,
    importance: float,
    metadata: dict[str, Any],
) -> tuple[Episode, Note]:
    """The trajectory episode and the experience record that names it as its source."""
    if success is None:
        success = infer_success(outcome)
    common = dict(
        user_id=scope.user_id, agent_id=scope.agent_id, session_id=scope.session_id, event_time=event_time,
        created_at=stamp, updated_at=stamp, importance=importance,
    )
    episode = Episode(
        id=new_id("episode"), kind="trajectory", role="agent",
        content=render_trajectory(task, steps, outcome, feedback, success), metadata=dict(metadata), **common,
    )
    trajectory = {"task": task, "steps": steps, "outcome": outcome, "feedback": feedback, "success": success}
    record = Note(
        id=new_id("experience"), kind="experience", content=summary_text(task, outcome, success),
        sources=[episode.id], valid_from=event_time, metadata={**metadata, "experience": trajectory}, **common,
    )
    return episode, record


def experiences_ranked(hits: Sequence[SearchHit], more: Sequence[Record]) -> list[SearchHit]:
    """Experience records best first, from a search over experiences and their trajectories: an
    experience scores as the better of itself and its trajectory, so one whose steps or feedback name
    the error a query describes ranks by them. `more` holds the experiences of matched trajectories the
    search missed."""
    from_trajectory = {h.id: h.score for h in hits if h.record.kind == "trajectory"}
    found = {h.id: h for h in hits if h.record.kind == "experience"}
    for rec in more:
        if rec.kind == "experience":
            found[rec.id] = SearchHit(record=rec, score=0.0, provenance=list(rec.sources))
    ranked = [h.model_copy(update={"score": max([h.score, *(from_trajectory.get(s, 0.0) for s in h.record.sources)])})
              for h in found.values()]
    return sorted(ranked, key=lambda h: -h.score)


def experience_hit(record: Record, score: float, lesson: str | None) -> ExperienceHit:
    """A search result for an experience record."""
    traj = record.metadata.get("experience", {})
    return ExperienceHit(
        record=record, score=score, task=str(traj.get("task", "")), steps=list(traj.get("steps", [])),
        outcome=str(traj.get("outcome", "")), feedback=traj.get("feedback"), success=traj.get("success"),
        lesson=lesson,
    )
