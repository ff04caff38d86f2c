"""Organise ("sleep time"): consolidation steps run over one scope, idempotent and bounded.

Each step reads the store, decides what should exist, and writes only the
difference, so a second run with nothing new changes nothing, and a run killed
midway is finished by the next one. `max_work` bounds how many records one
run may write per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Protocol

from ..config import Settings
from ..embed.base import Embedder
from ..model import Scope
from ..store.base import Store


@dataclass
class OrganiseContext:
    """What a step may use."""

    store: Store
    embedder: Embedder
    scope: Scope
    clock: Callable[[], datetime]
    #: Records one step may write in this run (None: no bound).
    max_work: int | None = None
    #: Thresholds and policies (lifecycle: half-life, archive threshold, TTL, merge threshold).
    settings: Settings | None = None
    #: A chat client (`llm.openai_compat.OpenAIChat`) when summaries are written by an LLM; else None.
    llm: Any = None


#: Report counts that are not writes: work left for a later run, records looked at.
NOT_WRITES = frozenset({"pending", "compared"})


class Step(Protocol):
    """One consolidation step."""

    name: str

    def run(self, ctx: OrganiseContext) -> dict:
        """Do the step's work in `ctx.scope`; return counts of what changed (and 'pending' if bounded)."""
        ...


@dataclass
class OrganiseReport:
    """What one organise run changed, per step."""

    scope: Scope
    steps: dict[str, dict] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        """Total records written (created, updated, closed, archived, linked) by the run."""
        return sum(v for counts in self.steps.values() for k, v in counts.items()
                   if k not in NOT_WRITES and isinstance(v, int))

    @property
    def complete(self) -> bool:
        """True when no step left work for a later run."""
        return not any(counts.get("pending") for counts in self.steps.values())


def run_steps(ctx: OrganiseContext, steps: list[Step]) -> OrganiseReport:
    """Run `steps` in order over `ctx.scope`."""
    report = OrganiseReport(scope=ctx.scope)
    for step in steps:
        report.steps[step.name] = step.run(ctx)
    return report
