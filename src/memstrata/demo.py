"""`memstrata demo`: one real LoCoMo conversation in, memory blocks for a few of its questions out.

For each question the demo prints the gold answer and the memory block `Memory.context` returns,
each line with the LoCoMo turn (dia_id) it came from and its layer (L0 the turn itself, L1 a note
extracted from it, ...); a ✓ marks turns the dataset lists as evidence for the question. The questions are picked by position (round-robin over the answerable
categories, first question of each, then the second, ...), never by how well memstrata does on them.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from . import limits
from . import validate as check
from .config import Settings
from .errors import InvalidInput
from .formats.locomo import CATEGORY_NAMES, Conversation, Question, load_locomo
from .memory import Memory
from .model import ContextLine, Scope
from .transfer import ProgressFn, add_items, iter_records, locomo_items

DEFAULT_SAMPLE = "conv-26"
#: Question categories shown, in this order (adversarial questions, 5, have no answer in the dialogue).
CATEGORY_ORDER = (4, 1, 2, 3)
DEMO_USER_PREFIX = "memstrata-demo/"
_REPO = Path(__file__).resolve().parents[2]
_DEFAULT_DATA = _REPO.parent / "shared" / "datasets" / "locomo" / "locomo_dev.json"


@dataclass
class QuestionResult:
    """One question's memory block and which of its evidence turns the block holds."""

    question: Question
    lines: list[tuple[ContextLine, list[str]]]
    found: list[str]


@dataclass
class DemoResult:
    """What the demo measured."""

    sample_id: str
    turns: int
    #: None when the turns were already stored (a reused --db).
    ingest_seconds: float | None
    questions: list[QuestionResult] = field(default_factory=list)

    @property
    def evidence_found(self) -> int:
        return sum(len(q.found) for q in self.questions)

    @property
    def evidence_total(self) -> int:
        return sum(len(q.question.evidence) for q in self.questions)


def find_locomo(data_path: str | Path | None = None) -> Path:
    """The LoCoMo file: `data_path`, else $MEMSTRATA_LOCOMO, else <repo>/../shared/datasets/locomo/locomo_dev.json.

    The first of these that is set is the only one tried: a wrong path is an error, not a fallback.
    """
    given = data_path or os.environ.get("MEMSTRATA_LOCOMO")
    path = Path(given).expanduser() if given else _DEFAULT_DATA
    if path.is_file():
        return path
    raise InvalidInput(
        f"LoCoMo data not found at {path}; download locomo10.json from "
        "https://github.com/snap-research/locomo (data/) and pass --data PATH or set MEMSTRATA_LOCOMO",
        field="data",
    )


def pick_questions(conversation: Conversation, n: int) -> list[Question]:
    """`n` questions by position: round-robin over `CATEGORY_ORDER`, the k-th question of each in round k."""
    by_category = {c: [q for q in conversation.questions if q.category == c and q.evidence] for c in CATEGORY_ORDER}
    picked: list[Question] = []
    for k in range(max((len(v) for v in by_category.values()), default=0)):
        for category in CATEGORY_ORDER:
            if len(picked) < n and k < len(by_category[category]):
                picked.append(by_category[category][k])
    return picked


@contextmanager
def _opened(target: Memory | Settings | None) -> Iterator[Memory]:
    """The memory to use: as given, opened from settings, or in a temporary directory."""
    if isinstance(target, Memory):
        yield target
    elif target is not None:
        with Memory(settings=target) as memory:
            yield memory
    else:
        with tempfile.TemporaryDirectory(prefix="memstrata-demo-") as tmp:
            with Memory(settings=Settings.load(db=Path(tmp) / "demo.db")) as memory:
                yield memory


def _ingest(memory: Memory, conv: Conversation, progress: ProgressFn | None) -> tuple[str, float | None]:
    """Add the conversation (one add per session) unless the demo scope holds it already.

    Returns the demo's user id and the seconds ingestion took (None when reused).
    """
    items = locomo_items([conv], DEMO_USER_PREFIX, "demo")
    user_id = items[0].scope.user_id
    assert user_id is not None
    if sum(1 for _ in iter_records(memory, Scope.of(user_id), layers=[0])) == len(items):
        return user_id, None
    memory.delete_all(user_id=user_id)  # left over from an interrupted run
    start = time.perf_counter()
    add_items(memory, items, progress)
    return user_id, time.perf_counter() - start


def _dia_ids(memory: Memory, user_id: str) -> dict[str, str]:
    """Episode id -> LoCoMo dia_id for the demo scope."""
    return {
        rec.id: str(rec.metadata["dia_id"])
        for rec in iter_records(memory, Scope.of(user_id), layers=[0])
        if "dia_id" in rec.metadata
    }


def _ask(memory: Memory, user_id: str, question: Question, dia: dict[str, str], budget: int) -> QuestionResult:
    block = memory.context(question.question, user_id=user_id, budget_tokens=budget)
    lines = [(line, [dia.get(p, p) for p in line.provenance or [line.record_id]]) for line in block.lines]
    shown = {d for _, ds in lines for d in ds}
    return QuestionResult(question, lines, [e for e in question.evidence if e in shown])


def _line_text(line: ContextLine) -> str:
    """The rendered line without its trailing ``[ep_...]`` citation (the dia_id column replaces it)."""
    suffix = f" [{', '.join(line.provenance or [line.record_id])}]"
    text = line.text[: -len(suffix)] if line.text.endswith(suffix) else line.text
    return text.removeprefix("- ")


def _show_question(console: Console, number: int, result: QuestionResult) -> None:
    q = result.question
    console.print(Rule(Text(f"Q{number} · {CATEGORY_NAMES.get(q.category, q.category)}"), style="dim"))
    console.print(Text(q.question, style="bold"))
    console.print(Text.assemble(("gold answer: ", "dim"), q.answer, ("   evidence: ", "dim"), ", ".join(q.evidence)))
    if not result.lines:
        console.print(Text("  (empty memory block)", style="yellow"))
    width = max((len(", ".join(ds)) for _, ds in result.lines), default=0)
    for line, sources in result.lines:
        hit = any(s in q.evidence for s in sources)
        console.print(
            Text.assemble(
                ("✓ " if hit else "  ", "green"),
                (", ".join(sources).ljust(width), "cyan"),
                (f"  L{line.layer} ", "dim"),
                _line_text(line),
            )
        )
    console.print(Text(f"evidence in this block: {len(result.found)}/{len(q.evidence)}", style="dim"))


def run_demo(
    target: Memory | Settings | None = None,
    data_path: str | Path | None = None,
    *,
    console: Console | None = None,
    progress: ProgressFn | None = None,
    budget: int = 250,
    questions: int = 5,
    sample: str = DEFAULT_SAMPLE,
) -> DemoResult:
    """Ingest one LoCoMo conversation and print, for a few questions, the memory block with its source turns.

    `target` is the memory to use, settings to open one with, or None for a temporary database.
    """
    check.limit(questions, "questions")
    check.limit(budget, "budget", maximum=limits.MAX_BUDGET_TOKENS)
    path = find_locomo(data_path)
    conversations = {c.sample_id: c for c in load_locomo(path)}
    conv = conversations.get(sample) if sample else next(iter(conversations.values()), None)
    if conv is None:
        raise InvalidInput(f"{path} has no conversation {sample!r}; it has {', '.join(conversations)}", field="sample")
    if not conv.turns:
        raise InvalidInput(f"{path}: conversation {conv.sample_id} has no turns", field="sample")
    console = console or Console()
    with _opened(target) as memory:
        console.print(Text.assemble(
            ("memstrata demo", "bold"),
            f": LoCoMo {conv.sample_id} ({conv.speaker_a} & {conv.speaker_b}), "
            f"{len(conv.session_times)} sessions, {len(conv.turns)} turns\n",
            ("database: ", "dim"), str(memory.settings.db),
        ))
        user_id, seconds = _ingest(memory, conv, progress)
        result = DemoResult(conv.sample_id, len(conv.turns), seconds)
        if seconds is None:
            console.print(f"reusing the {len(conv.turns)} turns already stored for {user_id}")
        else:
            rate = len(conv.turns) / max(seconds, 1e-9)
            console.print(f"stored {len(conv.turns)} turns in {seconds:.1f} s ({rate:.0f} turns/s)")
        dia = _dia_ids(memory, user_id)
        for number, question in enumerate(pick_questions(conv, questions), start=1):
            result.questions.append(_ask(memory, user_id, question, dia, budget))
            _show_question(console, number, result.questions[-1])
    console.print(Rule(style="dim"))
    console.print(
        Text(
            f"evidence turns found in the memory blocks: {result.evidence_found}/{result.evidence_total} "
            f"({len(result.questions)} question{'s' * (len(result.questions) != 1)}, {budget}-token budget each)",
            style="bold",
        ),
        soft_wrap=True,
    )
    return result
