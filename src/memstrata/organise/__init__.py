"""Consolidation ("sleep time"): steps that organise a scope's memories, run by `Memory.organise()`."""

from __future__ import annotations

from .lessons import LessonStep
from .lifecycle import DecayStep
from .links import LinkStep
from .merge import MergeStep
from .profile import ProfileStep
from .runner import OrganiseContext, OrganiseReport, Step, run_steps
from .topics import TopicStep

#: The steps `organise()` runs, in order: decay first (what has faded leaves before anything is built
#: on it), then near-duplicates merge (so nothing links or summarises a note about to close), then
#: links, topics and profile over what remains, and lessons from experiences.
DEFAULT_STEPS: list[Step] = [DecayStep(), MergeStep(), LinkStep(), TopicStep(), ProfileStep(), LessonStep()]

__all__ = ["DEFAULT_STEPS", "OrganiseContext", "OrganiseReport", "Step", "run_steps"]
