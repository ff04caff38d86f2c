"""`memstrata bench locomo`: evidence recall of memory blocks on LoCoMo, against flat baselines.

Protocol (see docs/benchmarks.md):

- each conversation is one scope (``user_id`` = its sample id), ingested turn by
  turn through `Memory.add` with its session date as the event time; the
  authors' summaries and observations are never read (`formats.locomo` skips them);
- every question of categories 1-4 is asked; category 5 is counted and skipped
  (LoCoMo's own numbering: 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop);
- for each budget, ``Memory.context(question, budget_tokens=B, recipe=R)`` gives the
  block a prompt would carry at that budget; its evidence recall is the share of
  the question's evidence turns carried by its lines' provenance (`metrics`), and a
  strict reading counts a turn only when it is shown verbatim or through all of its notes;
- one ingestion serves every recipe: memstrata's default recipe and the flat
  baselines over turns (``bm25-turns``, ``dense-turns``, ``hybrid-turns``) read
  copies of the same database, so no recipe profits from another's caches; the
  configured store is measured (SQLite files, or schemas of a Postgres database).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterator, Sequence

from pydantic import BaseModel

from ..config import Settings
from ..embed import make_embedder
from ..embed.base import Embedder
from ..formats.locomo import CATEGORY_NAMES, Conversation, Question, load_locomo
from ..memory import Memory
from ..model import ContextBlock
from ..read.pack import count_tokens
from ..read.query import lexical_terms
from ..read.recipes import get_recipe
from .databases import BenchDatabases
from .metrics import (
    EvidenceScore,
    MeanAggregate,
    RecallAggregate,
    answer_words,
    evidence_recall,
    evidence_recall_strict,
    latency_summary,
    machine_info,
    peak_rss_mb,
    ratio,
)

#: Categories that are asked; 5 (adversarial) is counted and skipped.
ASKED_CATEGORIES = (1, 2, 3, 4)
#: Flat retrieval over turns (one unit per turn, no derived layers, no rescoring), as in the literature:
#: BM25, dense cosine, and their reciprocal-rank fusion.
BASELINES = ("bm25-turns", "dense-turns", "hybrid-turns")
DEFAULT_BUDGETS = (250, 500, 1000, 2000)
#: How deep the search list is read to find where an evidence turn missed by the largest block ranks.
MISS_DEPTH_LIMIT = 500
#: Rank buckets of that diagnostic: (label, last rank in it); a turn not in the first MISS_DEPTH_LIMIT is "beyond".
MISS_DEPTH_BUCKETS = (("1-100", 100), ("101-200", 200), (f"201-{MISS_DEPTH_LIMIT}", MISS_DEPTH_LIMIT))


@dataclass
class LocomoConfig:
    """What `run_locomo` runs."""

    data: Path
    budgets: Sequence[int] = DEFAULT_BUDGETS
    #: Recipe names; "default" means memstrata's configured default recipe.
    recipes: Sequence[str] = ("default", *BASELINES)
    limit_conversations: int | None = None
    #: Directory for the benchmark's databases (default: a temporary directory, removed afterwards).
    db_dir: Path | None = None
    #: Add one session per `add` call instead of one turn per call.
    batch_session: bool = False
    #: Run `organise()` on each conversation after ingesting it (topics, profile, links).
    organise: bool = True
    #: Ask an LLM to answer from the block and from the whole conversation, and judge both.
    answer: bool = False
    answer_budget: int | None = None
    #: Answer at most this many questions per conversation (None: all).
    answer_limit: int | None = None
    #: Keep per-question results in the report.
    per_question: bool = True


@dataclass
class _Ingested:
    conv: Conversation
    episode_to_turn: dict[str, str] = field(default_factory=dict)
    #: Turn id -> ids of the active notes derived from it (for the strict reading of recall).
    turn_notes: dict[str, set[str]] = field(default_factory=dict)


class _NullProgress:
    """Stand-in for `rich.progress.Progress` when progress bars are off."""

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass


# ---------------------------------------------------------------------- evidence audit


def evidence_audit(conversations: Sequence[Conversation]) -> dict:
    """Counts of questions and of repaired / unresolved evidence ids, with every case listed."""
    by_cat: dict[int, int] = defaultdict(int)
    repaired: list[dict] = []
    unresolved: list[dict] = []
    no_evidence: list[dict] = []
    raw_ids = 0
    for conv in conversations:
        for qi, q in enumerate(conv.questions):
            by_cat[q.category] += 1
            if q.category not in ASKED_CATEGORIES:
                continue
            raw_ids += len(q.raw_evidence)
            where = {"sample_id": conv.sample_id, "question_index": qi, "question": q.question}
            for raw, mapped in q.repaired:
                repaired.append({**where, "raw": raw, "mapped_to": mapped.split("; ")})
            for raw in q.unresolved:
                unresolved.append({**where, "raw": raw, "treated_as": "reported; left out of the denominator"})
            if not q.evidence:
                no_evidence.append({**where, "raw_evidence": q.raw_evidence})
    asked = sum(n for c, n in by_cat.items() if c in ASKED_CATEGORIES)
    return {
        "questions_total": sum(by_cat.values()),
        "questions_asked": asked,
        "questions_scored": asked - len(no_evidence),
        "skipped_category_5": by_cat.get(5, 0),
        "by_category": {str(c): by_cat[c] for c in sorted(by_cat)},
        "evidence_ids_asked": raw_ids,
        "repaired": repaired,
        "unresolved": unresolved,
        "no_resolvable_evidence": no_evidence,
    }


# ---------------------------------------------------------------------- scoring


def score_block(
    block: ContextBlock,
    evidence: Sequence[str],
    episode_to_turn: dict[str, str],
    layers: Sequence[int] | None = None,
) -> EvidenceScore:
    """Evidence recall of one rendered block (each line counts for every turn its provenance names).

    `layers` restricts the credit to lines of those layers (``(0,)``: turns shown verbatim).
    """
    lines = block.lines if layers is None else [line for line in block.lines if line.layer in layers]
    return evidence_recall((line.provenance for line in lines), evidence, episode_to_turn)


def _copy_db(src: Path, dst: Path) -> None:
    """A consistent copy of a (WAL-mode) SQLite database into `dst`, which must not exist yet."""
    with sqlite3.connect(str(src)) as a, sqlite3.connect(str(dst)) as b:
        a.backup(b)
    # closing both connections ends the backup; `with` only commits
    a.close()
    b.close()


class _Databases(BenchDatabases):
    """The benchmark's databases (`BenchDatabases`, prefix ``locomo``), and copies of one into another.

    A Postgres copy goes through the lossless export (`transfer`): records, history, links and vectors.
    """

    def __init__(self, settings: Settings, workdir: Path, embedder: Embedder) -> None:
        super().__init__(settings, workdir, "locomo")
        self.embedder = embedder
        self._exported: set[str] = set()  # databases whose export files this run wrote

    def copy(self, src: str, dst: str, scopes: Sequence[str]) -> Settings:
        """Database `dst` as a copy of `src` (which no `Memory` holds open)."""
        target = self.fresh(dst)
        if not self.postgres:
            _copy_db(self.settings_for(src).db, target.db)
            return target
        from ..transfer import export_jsonl, import_jsonl

        paths = [self.workdir / f"locomo-{src}-{scope}.jsonl" for scope in scopes]
        if src not in self._exported:
            with Memory(settings=self.settings_for(src), embedder=self.embedder) as mem:
                for scope, path in zip(scopes, paths):
                    export_jsonl(mem, path, user_id=scope)
            self._exported.add(src)
        with Memory(settings=target, embedder=self.embedder) as mem:
            for path in paths:
                import_jsonl(mem, path)
        return target


def _recipe_plan(names: Sequence[str], default_name: str) -> list[tuple[str, str]]:
    """(label, recipe name) pairs: "default" is memstrata's configured recipe, labelled "memstrata"."""
    plan: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name in names:
        name = name.strip()
        label, recipe = ("memstrata", default_name) if name == "default" else (name, name)
        get_recipe(recipe)  # raises InvalidInput on an unknown name
        if label not in seen:
            seen.add(label)
            plan.append((label, recipe))
    return plan


def _layers(recipe: str) -> str:
    layers = get_recipe(recipe).layers
    if layers is None:
        return "all"
    return "turns (L0) only" if tuple(layers) == (0,) else "layers " + ",".join(map(str, layers))


# ---------------------------------------------------------------------- the run


def run_locomo(
    cfg: LocomoConfig,
    *,
    embedder: Embedder | None = None,
    llm: Any = None,
    progress: Any = None,
    settings: Settings | None = None,
) -> dict:
    """Run the benchmark and return the report (a JSON-ready dict).

    One ingestion serves every recipe; each recipe then reads its own copy of the database, so no
    recipe profits from what an earlier one left in caches.

    `embedder` defaults to the one settings name; `llm` (an `OpenAIChat`) is needed
    only with ``cfg.answer``; `progress` is a `rich.progress.Progress` (or None).
    """
    budgets = sorted({int(b) for b in cfg.budgets})
    if not budgets or budgets[0] < 1:
        raise ValueError("budgets must be positive integers")
    if cfg.answer and llm is None:
        raise ValueError("answer=True needs an llm")
    prog = progress or _NullProgress()
    started = time.time()
    machine = machine_info()  # before the work, so its load average is the machine's, not the run's

    conversations = load_locomo(cfg.data)
    if cfg.limit_conversations is not None:
        conversations = conversations[: cfg.limit_conversations]
    audit = evidence_audit(conversations)

    workdir_owned = cfg.db_dir is None
    workdir = Path(tempfile.mkdtemp(prefix="memstrata-locomo-")) if workdir_owned else Path(cfg.db_dir)  # type: ignore[arg-type]
    workdir.mkdir(parents=True, exist_ok=True)
    base_settings = settings or Settings.load()
    inner = embedder or make_embedder(base_settings)
    plan = _recipe_plan(cfg.recipes, base_settings.recipe)

    dbs = _Databases(base_settings, workdir, inner)
    scopes = [c.sample_id for c in conversations]
    try:
        ingested, ingest_report = _ingest(conversations, dbs.fresh("ingest"), inner, cfg.batch_session, prog,
                                          organise=cfg.organise)

        results: dict[str, dict] = {}
        per_question: dict[tuple[str, int], dict] = {}
        for label, recipe in plan:
            mem = Memory(settings=dbs.copy("ingest", label, scopes), embedder=inner)
            try:
                results[label] = _evaluate_recipe(mem, recipe, ingested, budgets, prog, per_question, label)
            finally:
                mem.close()

        answer_report = None
        if cfg.answer:
            label, recipe = next((p for p in plan if p[0] == "memstrata"), plan[0])
            answer_budget = cfg.answer_budget or budgets[-1]
            mem = Memory(settings=dbs.settings_for(label), embedder=inner)
            try:
                answer_report = _answer(mem, label, recipe, ingested, answer_budget, llm, cfg.answer_limit, prog)
            finally:
                mem.close()
    finally:
        if workdir_owned:
            dbs.drop()
            shutil.rmtree(workdir, ignore_errors=True)

    latency = {label: r.pop("_latency") for label, r in results.items()}
    report: dict[str, Any] = {
        "benchmark": "locomo",
        "date": date.today().isoformat(),
        "data": str(cfg.data),
        "conversations": [c.sample_id for c in conversations],
        "turns": sum(len(c.turns) for c in conversations),
        "budgets": budgets,
        "token_unit": "whitespace tokens of the rendered block, header and date lines included",
        "embedder": getattr(inner, "name", type(inner).__name__),
        "default_recipe": base_settings.recipe,
        "recipes": {label: {"recipe": recipe, "layers": _layers(recipe)} for label, recipe in plan},
        "extractor": base_settings.extractor,
        "store": base_settings.store,
        "questions": audit,
        "results": results,
        "ratios": _ratios(results, budgets),
        "timing": {
            "ingest": ingest_report,
            "search": latency,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "wall_seconds": round(time.time() - started, 1),
        },
        "machine": machine,
    }
    if answer_report is not None:
        report["answer"] = answer_report
    if cfg.per_question:
        report["per_question"] = list(per_question.values())
    return report


def _ingest(
    conversations: Sequence[Conversation],
    settings: Settings,
    embedder: Embedder,
    batch_session: bool,
    prog: Any,
    organise: bool = False,
) -> tuple[list[_Ingested], dict]:
    """Add every turn through `Memory.add`; returns the episode -> turn maps and throughput."""
    mem = Memory(settings=settings, embedder=embedder)
    ingested: list[_Ingested] = []
    per_call: list[float] = []
    total_turns = sum(len(c.turns) for c in conversations)
    task = prog.add_task("ingest", total=total_turns)
    wall = 0.0
    organise_s = 0.0
    try:
        for conv in conversations:
            item = _Ingested(conv)
            prog.update(task, description=f"ingest {conv.sample_id}")
            for batch in _batches(conv, batch_session):
                session = batch[0].session
                t0 = time.perf_counter()
                result = mem.add(
                    [t.message() for t in batch], user_id=conv.sample_id, session_id=conv.session_id(session)
                )
                dt = time.perf_counter() - t0
                wall += dt
                per_call.append(dt)
                for ep in result.episodes:
                    item.episode_to_turn[ep.id] = str(ep.metadata["dia_id"])
                prog.advance(task, len(batch))
            if organise:
                t0 = time.perf_counter()
                mem.organise(user_id=conv.sample_id)
                organise_s += time.perf_counter() - t0
            item.turn_notes = _turn_notes(mem, conv.sample_id, item.episode_to_turn)
            ingested.append(item)
    finally:
        mem.close()
    return ingested, {
        "organise_seconds": round(organise_s, 3) if organise else None,
        "mode": "one session per add" if batch_session else "one turn per add",
        "turns": total_turns,
        "adds": len(per_call),
        "seconds": round(wall, 3),
        "turns_per_s": round(total_turns / wall, 1) if wall else None,
        "add_latency": latency_summary(per_call),
    }


def _turn_notes(mem: Memory, user_id: str, episode_to_turn: dict[str, str]) -> dict[str, set[str]]:
    """Turn id -> the active notes (L1) of the scope that name it as a source."""
    out: dict[str, set[str]] = defaultdict(set)
    cursor = None
    while True:
        page = mem.list(user_id=user_id, layers=[1], limit=1000, cursor=cursor)
        for note in page.items:
            if note.status != "active":
                continue
            for source in note.sources:
                turn = episode_to_turn.get(source)
                if turn is not None:
                    out[turn].add(note.id)
        cursor = page.next_cursor
        if not cursor:
            return dict(out)


def _batches(conv: Conversation, by_session: bool) -> Iterator[list]:
    if not by_session:
        for t in conv.turns:
            yield [t]
        return
    current: list = []
    for t in conv.turns:
        if current and t.session != current[0].session:
            yield current
            current = []
        current.append(t)
    if current:
        yield current


def _asked(conv: Conversation) -> Iterator[tuple[int, Question]]:
    for qi, q in enumerate(conv.questions):
        if q.category in ASKED_CATEGORIES:
            yield qi, q


def _evaluate_recipe(
    mem: Memory,
    recipe: str,
    ingested: Sequence[_Ingested],
    budgets: Sequence[int],
    prog: Any,
    per_question: dict[tuple[str, int], dict],
    label: str,
) -> dict:
    """Ask every question at every budget; aggregate recall per category and overall."""
    overall = {b: RecallAggregate() for b in budgets}
    verbatim = {b: RecallAggregate() for b in budgets}  # credit from turns shown verbatim (L0 lines) only
    strict = {b: RecallAggregate() for b in budgets}  # a turn counts verbatim or through all of its notes
    strict_cat: dict[int, dict[int, RecallAggregate]] = {
        c: {b: RecallAggregate() for b in budgets} for c in ASKED_CATEGORIES
    }
    by_cat: dict[int, dict[int, RecallAggregate]] = {c: {b: RecallAggregate() for b in budgets} for c in ASKED_CATEGORIES}
    # share of the reference answer's words the block's text holds (a reader's view, beside provenance)
    answers = {b: MeanAggregate() for b in budgets}
    answers_cat = {c: {b: MeanAggregate() for b in budgets} for c in ASKED_CATEGORIES}
    # per conversation: does a gain hold on each, or come from one?
    by_conv: dict[str, dict[int, RecallAggregate]] = {
        item.conv.sample_id: {b: RecallAggregate() for b in budgets} for item in ingested
    }
    # where the evidence the largest block missed ranks in a deeper search list (memstrata only)
    depth: dict[int, dict[str, int]] = {c: defaultdict(int) for c in ASKED_CATEGORIES}
    cold: list[float] = []
    every: list[float] = []
    violations: list[dict] = []
    lines_total = 0
    lines_no_turn = 0  # lines whose provenance names no turn of the conversation (earn no credit)
    total = sum(1 for item in ingested for _ in _asked(item.conv))
    task = prog.add_task(f"search {label}", total=total)
    for item in ingested:
        conv = item.conv
        for qi, q in _asked(conv):
            key = (conv.sample_id, qi)
            entry = per_question.setdefault(
                key,
                {"sample_id": conv.sample_id, "question_index": qi, "category": q.category,
                 "question": q.question, "evidence": q.evidence, "found": {}},
            )
            found_at: dict[str, list[str]] = {}
            # Largest budget first: its call is the one that meets the query cold.
            for i, budget in enumerate(sorted(budgets, reverse=True)):
                t0 = time.perf_counter()
                block = mem.context(q.question, user_id=conv.sample_id, budget_tokens=budget, recipe=recipe)
                dt = time.perf_counter() - t0
                every.append(dt)
                if i == 0:
                    cold.append(dt)
                rendered = count_tokens(block.text)
                if rendered != block.tokens or rendered > budget:
                    violations.append({"sample_id": conv.sample_id, "question_index": qi, "budget": budget,
                                       "reported_tokens": block.tokens, "rendered_tokens": rendered})
                score = score_block(block, q.evidence, item.episode_to_turn)
                lines_total += len(block.lines)
                lines_no_turn += sum(
                    1 for line in block.lines if not any(p in item.episode_to_turn for p in line.provenance)
                )
                overall[budget].add(score, rendered)
                verbatim[budget].add(score_block(block, q.evidence, item.episode_to_turn, layers=(0,)), rendered)
                strict_score = evidence_recall_strict(
                    ((line.layer, line.record_id, line.provenance) for line in block.lines),
                    q.evidence, item.episode_to_turn, item.turn_notes,
                )
                strict[budget].add(strict_score, rendered)
                strict_cat[q.category][budget].add(strict_score, rendered)
                by_cat[q.category][budget].add(score, rendered)
                words = answer_words(lexical_terms(block.text, max_terms=len(block.text)), lexical_terms(q.answer))
                answers[budget].add(words)
                answers_cat[q.category][budget].add(words)
                by_conv[conv.sample_id][budget].add(score, rendered)
                found_at[str(budget)] = sorted(score.found)
            entry["found"][label] = found_at
            if label == "memstrata":
                missed = set(q.evidence) - set(found_at[str(max(budgets))])
                for bucket in miss_depth(mem, q.question, conv.sample_id, recipe, missed, item.episode_to_turn):
                    depth[q.category][bucket] += 1
            prog.advance(task)
    return {
        "recipe": recipe,
        "overall": {
            str(b): {
                **overall[b].as_dict(),
                "recall_strict": strict[b].as_dict()["recall"],
                "all_found_strict": strict[b].as_dict()["all_found"],
                "recall_verbatim_turns": verbatim[b].as_dict()["recall"],
                "answer_words": answers[b].mean,
            }
            for b in budgets
        },
        "by_category": {
            str(c): {
                "name": CATEGORY_NAMES[c],
                **{str(b): {**by_cat[c][b].as_dict(), "recall_strict": strict_cat[c][b].as_dict()["recall"],
                            "answer_words": answers_cat[c][b].mean}
                   for b in budgets},
            }
            for c in ASKED_CATEGORIES
        },
        "by_conversation": {
            sample: {str(b): by_conv[sample][b].as_dict()["recall"] for b in budgets} for sample in by_conv
        },
        **({"miss_depth": {str(c): dict(depth[c]) for c in ASKED_CATEGORIES}} if label == "memstrata" else {}),
        "budget_violations": violations,
        "lines": {"total": lines_total, "without_turn_provenance": lines_no_turn},
        "_latency": {
            "cold_query": {**latency_summary(cold),
                           "what": f"first context() call of each question (budget {max(budgets)}) on its own database"},
            "all_calls": {**latency_summary(every), "what": "every context() call, all budgets"},
        },
    }


def miss_depth(
    mem: Memory, question: str, user_id: str, recipe: str, missed: set[str], episode_to_turn: dict[str, str]
) -> list[str]:
    """For each evidence turn a block missed, the rank bucket where the search list (read to
    `MISS_DEPTH_LIMIT`) first carries it: whether it was lost to the budget or to ranking."""
    if not missed:
        return []
    hits = mem.search(question, user_id=user_id, limit=MISS_DEPTH_LIMIT, recipe=recipe, reinforce=False)
    first: dict[str, int] = {}
    for rank, hit in enumerate(hits, start=1):
        for episode in hit.provenance:
            turn = episode_to_turn.get(episode)
            if turn in missed:
                first.setdefault(turn, rank)
    out = []
    for turn in sorted(missed):
        rank = first.get(turn)
        out.append("beyond" if rank is None else next(b for b, last in MISS_DEPTH_BUCKETS if rank <= last))
    return out


def _ratios(results: dict[str, dict], budgets: Sequence[int]) -> dict:
    """memstrata's recall and all-found share over each baseline's, per budget."""
    mine = results.get("memstrata")
    if mine is None:
        return {}
    out: dict[str, dict] = {}
    for label, res in results.items():
        if label == "memstrata":
            continue
        out[f"memstrata/{label}"] = {
            str(b): {
                "recall": ratio(mine["overall"][str(b)]["recall"], res["overall"][str(b)]["recall"]),
                "all_found": ratio(mine["overall"][str(b)]["all_found"], res["overall"][str(b)]["all_found"]),
                "recall_strict": ratio(mine["overall"][str(b)]["recall_strict"], res["overall"][str(b)]["recall_strict"]),
                "answer_words": ratio(mine["overall"][str(b)]["answer_words"], res["overall"][str(b)]["answer_words"]),
            }
            for b in budgets
        }
    return out


# ---------------------------------------------------------------------- --answer


class Verdict(BaseModel):
    """The judge's decision on one answer."""

    correct: bool
    reason: str = ""


_ANSWER_SYSTEM = (
    "You answer questions about a long conversation between {a} and {b}. Use only the {source} below. "
    "Answer with a short phrase (a name, a date, a few words). Resolve relative dates (\"yesterday\", "
    "\"last week\") against the date of the turn that says them. If the {source} do not contain the answer, "
    "reply \"unknown\"."
)
_JUDGE_SYSTEM = (
    "You grade answers to questions about a conversation. The candidate is correct when it states the same "
    "fact as the gold answer: wording, length and date format may differ, and extra detail is fine if it does "
    "not contradict the gold answer; a different or missing fact is wrong. Reply with a JSON object "
    '{"correct": true or false, "reason": "one short sentence"}.'
)


def render_conversation(conv: Conversation) -> str:
    """The whole dialogue as a prompt would carry it: sessions with their dates, one line per turn."""
    lines: list[str] = []
    session = None
    for t in conv.turns:
        if t.session != session:
            session = t.session
            lines.append(f"Session {session} ({conv.session_times[session]:%Y-%m-%d %H:%M}):")
        content = t.message()["content"]
        lines.append(f"{t.speaker}: {' '.join(content.split())}")
    return "\n".join(lines)


def _answer(
    mem: Memory,
    label: str,
    recipe: str,
    ingested: Sequence[_Ingested],
    budget: int,
    llm: Any,
    limit: int | None,
    prog: Any,
) -> dict:
    """LLM answers from the block and from the full conversation; an LLM judge grades both."""
    modes = ("block", "full")
    stats = {m: {"correct": 0, "n": 0, "prompt_tokens": 0, "context_tokens": 0, "judge_tokens": 0,
                 "by_category": defaultdict(lambda: [0, 0])} for m in modes}
    items: list[dict] = []
    todo = [(item, qi, q) for item in ingested for n, (qi, q) in enumerate(_asked(item.conv))
            if limit is None or n < limit]
    task = prog.add_task("answer", total=len(todo))
    full_cache: dict[str, str] = {}
    for item, qi, q in todo:
        conv = item.conv
        if conv.sample_id not in full_cache:
            full_cache[conv.sample_id] = render_conversation(conv)
        block = mem.context(q.question, user_id=conv.sample_id, budget_tokens=budget, recipe=recipe)
        contexts = {"block": block.text or "(no memories)", "full": full_cache[conv.sample_id]}
        row: dict[str, Any] = {"sample_id": conv.sample_id, "question_index": qi, "category": q.category,
                               "question": q.question, "gold": q.answer}
        for mode in modes:
            source = "memories" if mode == "block" else "conversation"
            system = _ANSWER_SYSTEM.format(a=conv.speaker_a, b=conv.speaker_b, source=source)
            user = f"{contexts[mode]}\n\nQuestion: {q.question}\nAnswer:"
            reply = llm.complete([{"role": "system", "content": system}, {"role": "user", "content": user}],
                                 max_tokens=100)
            answer = reply.text.strip()
            verdict, judge_replies = llm.complete_json(
                [{"role": "system", "content": _JUDGE_SYSTEM},
                 {"role": "user", "content": f"Question: {q.question}\nGold answer: {q.answer}\n"
                                             f"Candidate answer: {answer}"}],
                Verdict, max_tokens=150,
            )
            s = stats[mode]
            s["n"] += 1
            s["correct"] += int(verdict.correct)
            s["prompt_tokens"] += reply.prompt_tokens if reply.prompt_tokens is not None else count_tokens(system + " " + user)
            s["context_tokens"] += count_tokens(contexts[mode]) if mode == "full" else block.tokens
            s["judge_tokens"] += sum((r.prompt_tokens or 0) + (r.completion_tokens or 0) for r in judge_replies)
            s["by_category"][q.category][0] += int(verdict.correct)
            s["by_category"][q.category][1] += 1
            row[mode] = {"answer": answer, "correct": verdict.correct, "reason": verdict.reason}
        items.append(row)
        prog.advance(task)
    out: dict[str, Any] = {"model": getattr(llm, "name", "llm"), "block_from": label, "recipe": recipe, "budget": budget,
                           "questions": len(todo)}
    for mode in modes:
        s = stats[mode]
        n = s["n"] or 1
        out[mode] = {
            "accuracy": s["correct"] / n if s["n"] else None,
            "mean_prompt_tokens": s["prompt_tokens"] / n,
            "mean_context_tokens": s["context_tokens"] / n,
            "judge_tokens": s["judge_tokens"],
            "by_category": {str(c): {"name": CATEGORY_NAMES[c], "accuracy": v[0] / v[1], "n": v[1]}
                            for c, v in sorted(s["by_category"].items())},
        }
    out["items"] = items
    return out


# ---------------------------------------------------------------------- Markdown


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _category_table(results: dict, labels: Sequence[str], budgets: Sequence[int], metric: str, title: str) -> list[str]:
    """One Markdown table of `metric` per category and recipe, a column per budget."""
    head = ["category", "recipe", *[str(b) for b in budgets]]
    out = [f"### {title}\n", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in ASKED_CATEGORIES:
        for l in labels:
            cat = results[l]["by_category"][str(c)]
            n = cat[str(budgets[0])]["questions"]
            row = [f"{c} {cat['name']} ({n})", l, *[_f(cat[str(b)].get(metric)) for b in budgets]]
            out.append("| " + " | ".join(row) + " |")
    return out + [""]


def locomo_markdown(report: dict) -> str:
    """The report as Markdown tables (recall, all-found, tokens, per category, timing)."""
    budgets = report["budgets"]
    results = report["results"]
    labels = list(results)
    baselines = [l for l in labels if l != "memstrata"]
    has_mine = "memstrata" in results
    q = report["questions"]
    out: list[str] = []
    out.append(f"## LoCoMo evidence recall ({', '.join(report['conversations'])})\n")
    out.append(
        f"{q['questions_asked']} questions asked (categories 1-4), {q['questions_scored']} scored, "
        f"{q['skipped_category_5']} of category 5 skipped; {len(q['repaired'])} evidence ids repaired, "
        f"{len(q['unresolved'])} unresolved (reported, left out). memstrata = recipe "
        f"`{report['default_recipe']}` ({(report['recipes'].get('memstrata') or {}).get('layers', 'all')}; "
        f"extractor `{report.get('extractor')}`; store {report.get('store', 'sqlite')}); "
        f"{', '.join(f'`{l}`' for l, r in report['recipes'].items() if r['layers'] == 'turns (L0) only') or 'no recipe'} "
        f"over turns only; embedder {report['embedder']}.\n"
    )
    for metric, title in (
        ("recall", "Evidence recall"),
        ("all_found", "Questions with all evidence found"),
        ("recall_strict", "Evidence recall, strict (a turn counts when shown verbatim or through all of its notes)"),
        ("answer_words", "Answer words in the block (share of the reference answer's content words the block's text holds)"),
    ):
        head = ["budget", *[f"{l}" for l in labels]]
        if has_mine:
            head += [f"memstrata / {b}" for b in baselines]
        out.append(f"### {title}\n")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for b in budgets:
            row = [str(b)] + [_f(results[l]["overall"][str(b)][metric]) for l in labels]
            if has_mine:
                row += [_f(report["ratios"][f"memstrata/{l}"][str(b)][metric], 2) + "x" for l in baselines]
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    if has_mine:
        out.append("Of memstrata's recall, the part carried by turns shown verbatim (the rest by notes only): "
                   + ", ".join(f"{_f(results['memstrata']['overall'][str(b)].get('recall_verbatim_turns'))} at {b}"
                               for b in budgets) + ".\n")
    for metric, title in (("recall", "Recall by category"), ("answer_words", "Answer words in the block, by category")):
        out += _category_table(results, labels, budgets, metric, title)
    depth = (results.get("memstrata") or {}).get("miss_depth")
    if depth:
        buckets = [b for b, _ in MISS_DEPTH_BUCKETS] + ["beyond"]
        out.append(f"### Where memstrata's misses rank (evidence turns missed at {budgets[-1]} tokens)\n")
        out.append("Rank of the first hit carrying the turn in the same search read "
                   f"{MISS_DEPTH_LIMIT} deep; 'beyond' = not in it.\n")
        head = ["category", *buckets]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for c in ASKED_CATEGORIES:
            row = depth.get(str(c), {})
            name = results["memstrata"]["by_category"][str(c)]["name"]
            out.append("| " + " | ".join([f"{c} {name}", *[str(row.get(b, 0)) for b in buckets]]) + " |")
        out.append("")
    out.append("### Recall by conversation\n")
    head = ["conversation", "budget", *labels]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for sample in report["conversations"]:
        for b in budgets:
            row = [sample, str(b), *[_f(results[l].get("by_conversation", {}).get(sample, {}).get(str(b))) for l in labels]]
            out.append("| " + " | ".join(row) + " |")
    out.append("")
    out.append("### Mean tokens returned\n")
    head = ["budget", *labels]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for b in budgets:
        out.append("| " + " | ".join([str(b), *[_f(results[l]["overall"][str(b)]["mean_tokens"], 0) for l in labels]]) + " |")
    out.append("")
    t = report["timing"]
    ing = t["ingest"]
    out.append("### Timing\n")
    out.append(f"Ingest: {ing['turns']} turns, {ing['mode']}, {_f(ing['turns_per_s'], 1)} turns/s "
               f"(add p50 {_f(ing['add_latency']['p50_ms'], 1)} ms, p95 {_f(ing['add_latency']['p95_ms'], 1)} ms).\n")
    head = ["recipe", "cold p50 ms", "cold p95 ms", "cold p99 ms", "all-calls p50 ms", "all-calls p99 ms"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for l in labels:
        s = t["search"][l]
        out.append("| " + " | ".join([l, _f(s["cold_query"]["p50_ms"], 1), _f(s["cold_query"]["p95_ms"], 1),
                                      _f(s["cold_query"]["p99_ms"], 1), _f(s["all_calls"]["p50_ms"], 1),
                                      _f(s["all_calls"]["p99_ms"], 1)]) + " |")
    out.append("")
    out.append(f"Peak RSS {t['peak_rss_mb']:.0f} MiB; wall {t['wall_seconds']:.0f} s; "
               f"{report['machine']['cores']} cores, {report['machine']['memory_gib']} GiB.")
    for l in labels:
        ln = results[l].get("lines") or {}
        if ln.get("without_turn_provenance"):
            out.append(f"\n{l}: {ln['without_turn_provenance']} of {ln['total']} block lines name no turn "
                       "in their provenance and earn no credit.")
    viol = sum(len(r.get("budget_violations", [])) for r in results.values())
    if viol:
        out.append(f"\n**{viol} blocks exceeded their budget or miscounted their tokens** (see JSON).")
    if "answer" in report:
        a = report["answer"]
        out.append(f"\n### Answers ({a['model']}, {a['questions']} questions, block budget {a['budget']})\n")
        out.append("| context | accuracy | mean context tokens | mean prompt tokens |")
        out.append("|---|---|---|---|")
        for mode, name in (("block", "memstrata block"), ("full", "full conversation")):
            m = a[mode]
            out.append(f"| {name} | {_f(m['accuracy'])} | {_f(m['mean_context_tokens'], 0)} | "
                       f"{_f(m['mean_prompt_tokens'], 0)} |")
    return "\n".join(out) + "\n"
