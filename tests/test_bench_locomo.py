"""`memstrata bench locomo`: the metric against hand-computed recall, end to end on a small conversation,
and `--answer` against a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from memstrata.bench.cli import bench_app
from memstrata.bench.locomo import LocomoConfig, evidence_audit, miss_depth, run_locomo, score_block
from memstrata.bench.metrics import RecallAggregate, evidence_recall, latency_summary, percentile
from memstrata.config import Settings
from memstrata.formats.locomo import load_locomo
from memstrata.ids import new_id
from memstrata.llm.openai_compat import LLMRequestFailed, OpenAIChat, llm_from_env
from memstrata.model import ContextBlock, ContextLine, Note

# --------------------------------------------------------------------------- the metric, by hand


def test_recall_counts_a_note_for_every_source_turn() -> None:
    to_turn = {"ep_a": "D1:1", "ep_b": "D1:2", "ep_c": "D2:1", "ep_d": "D2:3"}
    lines = [["ep_a"], ["ep_d"], ["ep_b", "ep_c"], ["ep_unknown"]]  # third line: a note with two sources
    score = evidence_recall(lines, ["D1:2", "D2:1", "D3:4"], to_turn)
    assert score.found == {"D1:2", "D2:1"}
    assert score.recall == pytest.approx(2 / 3)
    assert score.complete is False
    # The same note alone covers both of its sources.
    assert evidence_recall([["ep_b", "ep_c"]], ["D1:2", "D2:1"], to_turn).complete is True
    # No evidence: not scored.
    assert evidence_recall(lines, [], to_turn).recall is None


def test_strict_recall_needs_the_turn_verbatim_or_all_of_its_notes() -> None:
    to_turn = {"ep_a": "D1:1", "ep_b": "D1:2", "ep_c": "D2:1"}
    turn_notes = {"D1:1": {"nt_1", "nt_2"}, "D1:2": {"nt_3"}, "D2:1": {"nt_4"}}
    evidence = ["D1:1", "D1:2", "D2:1"]
    # one of D1:1's two notes, D1:2's only note, D2:1 verbatim, and a topic (layer 2) naming D1:1
    lines = [(1, "nt_1", ["ep_a"]), (1, "nt_3", ["ep_b"]), (0, "ep_c", ["ep_c"]), (2, "tp_1", ["ep_a"])]
    from memstrata.bench.metrics import evidence_recall_strict

    strict = evidence_recall_strict(lines, evidence, to_turn, turn_notes)
    assert strict.found == {"D1:2", "D2:1"} and strict.recall == pytest.approx(2 / 3)
    loose = evidence_recall([prov for _, _, prov in lines], evidence, to_turn)
    assert loose.recall == pytest.approx(1.0)  # the usual reading credits every named source
    lines.append((1, "nt_2", ["ep_a"]))  # now both of D1:1's notes are shown
    assert evidence_recall_strict(lines, evidence, to_turn, turn_notes).complete is True


def test_aggregate_and_percentiles() -> None:
    agg = RecallAggregate()
    to_turn = {"e1": "D1:1", "e2": "D1:2"}
    agg.add(evidence_recall([["e1"]], ["D1:1"], to_turn), tokens=10)  # 1.0
    agg.add(evidence_recall([["e1"]], ["D1:1", "D1:2"], to_turn), tokens=20)  # 0.5
    agg.add(evidence_recall([["e1"]], [], to_turn), tokens=30)  # unscored, tokens still count
    d = agg.as_dict()
    assert d == {"questions": 2, "unscored": 1, "recall": 0.75, "all_found": 0.5, "mean_tokens": 20.0}
    xs = [0.3, 0.1, 0.7, 0.2, 0.9, 0.5]
    for q in (50, 95, 99):
        assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))
    assert latency_summary([0.001, 0.003])["p50_ms"] == pytest.approx(2.0)


# --------------------------------------------------------------------------- a small conversation

# Every turn is six words and names no relative time (a turn shown verbatim gets "today (8 May 2023)"),
# so each rendered line is eight whitespace tokens ("Ana: w1 .. w6 [ep_...]"),
# each day's date line one ("2023-05-08:") and the header seven: a budget of 16 holds exactly one
# line, a budget of 200 holds them all (7 + 2 days + 7 x 8 = 65).
TINY_BUDGET, BIG_BUDGET = 16, 200


def _conversation() -> dict:
    return {
        "sample_id": "conv-test",
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Ben",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ana", "dia_id": "D1:1", "text": "My grandmother taught me origami folding."},
                {"speaker": "Ben", "dia_id": "D1:2", "text": "We adopted a greyhound named Pixel."},
                {"speaker": "Ana", "dia_id": "D1:3", "text": "The marathon in Lisbon was tough."},
                {"speaker": "Ana", "dia_id": "D1:4", "text": "I bought a red kayak finally."},
            ],
            "session_2_date_time": "10:00 am on 20 May, 2023",
            "session_2": [
                {"speaker": "Ben", "dia_id": "D2:1", "text": "Work has been busy at school."},
                {"speaker": "Ben", "dia_id": "D2:2", "text": "My violin lessons are going well."},
                {"speaker": "Ana", "dia_id": "D2:3", "text": "Let us cook dinner together soon."},
            ],
        },
        "qa": [
            {"question": "Who taught Ana origami?", "answer": "her grandmother", "evidence": ["D1:1"], "category": 4},
            # malformed id, repaired to D1:2
            {"question": "What is the name of the greyhound?", "answer": "Pixel", "evidence": ["D:1:2"], "category": 2},
            # D99:1 names no turn: reported, left out of the denominator
            {"question": "Where was the marathon?", "answer": "Lisbon", "evidence": ["D1:3", "D99:1"], "category": 1},
            # two ids in one string; at the tiny budget only one of the two turns fits
            {"question": "Which kayak and violin plans?", "answer": "a red kayak; violin lessons",
             "evidence": ["D1:4; D2:2"], "category": 1},
            {"question": "What is Ben's favourite colour?", "adversarial_answer": "blue", "evidence": ["D2:1"],
             "category": 5},
            {"question": "Is Ben a musician?", "answer": "likely", "evidence": [], "category": 3},
        ],
        # The authors' summaries must never reach the memory.
        "session_summary": {"session_1_summary": "ZEBRA summary"},
        "event_summary": {"events_session_1": {"Ana": ["ZEBRA event"]}},
        "observation": {"session_1_observation": {"Ana": [["ZEBRA observation", "D1:1"]]}},
    }


@pytest.fixture
def tiny_locomo(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_locomo.json"
    path.write_text(json.dumps([_conversation()]))
    return path


def test_evidence_audit_reports_repairs_and_unresolved(tiny_locomo: Path) -> None:
    audit = evidence_audit(load_locomo(tiny_locomo))
    assert audit["questions_asked"] == 5 and audit["questions_scored"] == 4 and audit["skipped_category_5"] == 1
    assert {(r["raw"], tuple(r["mapped_to"])) for r in audit["repaired"]} == {
        ("D:1:2", ("D1:2",)), ("D1:4; D2:2", ("D1:4", "D2:2"))
    }
    assert [u["raw"] for u in audit["unresolved"]] == ["D99:1"]
    assert [q["question"] for q in audit["no_resolvable_evidence"]] == ["Is Ben a musician?"]


def test_bench_locomo_cli_matches_hand_computed_recall(tiny_locomo: Path, tmp_path: Path) -> None:
    out = tmp_path / "results" / "locomo.json"
    dbdir = tmp_path / "dbs"
    result = CliRunner().invoke(
        bench_app,
        ["locomo", "--data", str(tiny_locomo), "--budgets", f"{BIG_BUDGET},{TINY_BUDGET}", "--out", str(out),
         "--db", str(dbdir), "--quiet"],
    )
    assert result.exit_code == 0, result.output
    assert "Evidence recall" in result.stdout and "memstrata / bm25-turns" in result.stdout
    report = json.loads(out.read_text())
    assert report["budgets"] == [TINY_BUDGET, BIG_BUDGET]
    assert set(report["results"]) == {"memstrata", "bm25-turns", "dense-turns", "hybrid-turns"}
    assert report["recipes"]["bm25-turns"]["layers"] == "turns (L0) only"
    assert report["recipes"]["memstrata"]["layers"] != "turns (L0) only"

    # BM25 at a budget of one line: q0, q1, q2 find their single (resolved) evidence turn, q3 finds one of two.
    bm25 = report["results"]["bm25-turns"]
    tiny = bm25["overall"][str(TINY_BUDGET)]
    assert tiny["questions"] == 4 and tiny["unscored"] == 1
    assert tiny["recall_verbatim_turns"] == tiny["recall"] == tiny["recall_strict"]  # turns-only: all verbatim
    assert tiny["recall"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert tiny["all_found"] == pytest.approx(3 / 4)
    # answer words: q0-q2's one-line blocks hold their whole answer, q3's half of "red kayak; violin lessons"
    assert tiny["answer_words"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert bm25["overall"][str(BIG_BUDGET)]["answer_words"] == pytest.approx(1.0)
    assert "Answer words in the block" in result.stdout
    assert tiny["mean_tokens"] == pytest.approx(TINY_BUDGET)
    cats = bm25["by_category"]
    assert cats["1"][str(TINY_BUDGET)]["recall"] == pytest.approx(0.75)  # (1.0 + 0.5) / 2
    assert cats["2"][str(TINY_BUDGET)]["recall"] == pytest.approx(1.0)
    assert cats["4"][str(TINY_BUDGET)]["recall"] == pytest.approx(1.0)
    assert cats["3"][str(TINY_BUDGET)]["recall"] is None and cats["3"][str(TINY_BUDGET)]["unscored"] == 1
    # one conversation: its per-conversation recall is the overall recall
    assert bm25["by_conversation"] == {"conv-test": {str(TINY_BUDGET): tiny["recall"], str(BIG_BUDGET): 1.0}}
    assert "Recall by conversation" in result.stdout
    # Everything fits in the big budget: every recipe finds all resolvable evidence.
    for label in ("memstrata", "bm25-turns", "dense-turns", "hybrid-turns"):
        big = report["results"][label]["overall"][str(BIG_BUDGET)]
        assert big["recall"] == pytest.approx(1.0) and big["all_found"] == pytest.approx(1.0)
        assert report["results"][label]["budget_violations"] == []
        if label == "dense-turns":  # every turn is a dense candidate: the header, two days, seven lines
            assert big["mean_tokens"] == pytest.approx(7 + 2 + 7 * 8)
    assert report["ratios"]["memstrata/bm25-turns"][str(BIG_BUDGET)]["recall"] == pytest.approx(1.0)
    # nothing was missed at the largest budget, so no miss needed a deeper look
    assert report["results"]["memstrata"]["miss_depth"] == {"1": {}, "2": {}, "3": {}, "4": {}}
    assert "Where memstrata's misses rank" in result.stdout

    q3 = next(q for q in report["per_question"] if q["question_index"] == 3)
    assert q3["evidence"] == ["D1:4", "D2:2"] and len(q3["found"]["bm25-turns"][str(TINY_BUDGET)]) == 1

    t = report["timing"]
    assert t["ingest"]["turns"] == 7 and t["ingest"]["adds"] == 7 and t["ingest"]["turns_per_s"] > 0
    assert t["search"]["bm25-turns"]["cold_query"]["n"] == 5 and t["search"]["bm25-turns"]["all_calls"]["n"] == 10
    assert t["peak_rss_mb"] > 0 and report["machine"]["cores"] >= 1

    # Session dates became event times; the authors' summaries were never stored.
    from memstrata import Memory, Settings

    with Memory(settings=Settings(db=dbdir / "locomo-ingest.db")) as m:
        everything = m.list(user_id="conv-test", limit=1000).items
        items = m.list(user_id="conv-test", layers=[0], limit=100).items
    assert len(items) == 7
    assert not any("ZEBRA" in r.content for r in everything)
    by_turn = {r.metadata["dia_id"]: r for r in items}
    assert by_turn["D2:2"].event_time == datetime(2023, 5, 20, 10, 0, tzinfo=timezone.utc)
    assert by_turn["D2:2"].session_id == "conv-test/session-2"


def test_a_note_line_counts_for_each_source_through_the_read_path(memory, tiny_locomo: Path) -> None:
    conv = load_locomo(tiny_locomo)[0]
    to_turn: dict[str, str] = {}
    for turn in conv.turns:
        ep = memory.add(turn.message(), user_id=conv.sample_id).episodes[0]
        to_turn[ep.id] = turn.dia_id
    by_turn = {v: k for k, v in to_turn.items()}
    stamp = datetime(2023, 5, 20, tzinfo=timezone.utc)
    note = Note(
        id=new_id("note"), user_id=conv.sample_id, content="Ana paddles a kayak, Ben practises violin",
        event_time=stamp, created_at=stamp, updated_at=stamp, sources=[by_turn["D1:4"], by_turn["D2:2"]],
    )
    memory.store.put([note], memory.embedder.embed([note.embedding_text]), memory.embedder.name)
    block = memory.context("paddles practises", user_id=conv.sample_id, budget_tokens=40, recipe="bm25")
    assert [line.record_id for line in block.lines] == [note.id]
    score = score_block(block, ["D1:4", "D2:2", "D1:1"], to_turn)
    assert score.found == {"D1:4", "D2:2"} and score.recall == pytest.approx(2 / 3)

    # And on a hand-built block: an episode line plus a note line with several sources.
    lines = [
        ContextLine(text="x", record_id=by_turn["D1:1"], layer=0, tokens=1, provenance=[by_turn["D1:1"]]),
        ContextLine(text="y", record_id=note.id, layer=1, tokens=1, provenance=[by_turn["D1:4"], by_turn["D2:2"]]),
    ]
    block = ContextBlock(query="q", text="x\ny", lines=lines, tokens=2, budget_tokens=10)
    assert score_block(block, ["D1:1", "D1:4", "D2:2", "D2:3"], to_turn).recall == pytest.approx(3 / 4)
    # Credit from verbatim turns only: the episode line alone.
    assert score_block(block, ["D1:1", "D1:4", "D2:2", "D2:3"], to_turn, layers=(0,)).recall == pytest.approx(1 / 4)


def test_miss_depth_finds_where_a_missed_turn_ranks(memory, tiny_locomo: Path) -> None:
    conv = load_locomo(tiny_locomo)[0]
    to_turn = {}
    for turn in conv.turns:
        to_turn[memory.add(turn.message(), user_id=conv.sample_id).episodes[0].id] = turn.dia_id
    # The kayak turn is the only BM25 match: rank 1. D9:9 is no turn at all: beyond any depth.
    assert miss_depth(memory, "red kayak", conv.sample_id, "bm25-turns", {"D1:4", "D9:9"}, to_turn) == [
        "1-100", "beyond"]
    assert miss_depth(memory, "red kayak", conv.sample_id, "bm25-turns", set(), to_turn) == []


def test_run_locomo_batch_session_and_recipe_selection(tiny_locomo: Path, embedder) -> None:
    report = run_locomo(
        LocomoConfig(data=tiny_locomo, budgets=[BIG_BUDGET], recipes=["bm25-turns"], batch_session=True,
                     per_question=False),
        embedder=embedder,
    )
    assert list(report["results"]) == ["bm25-turns"] and report["ratios"] == {}
    assert report["timing"]["ingest"]["adds"] == 2 and "per_question" not in report


def test_run_locomo_on_postgres_scores_as_on_sqlite(tiny_locomo: Path, embedder, pg_schema) -> None:
    """The configured store is what is measured: each recipe reads its own schema, copied from the ingest
    schema through the lossless export, and the figures are those of the same run on SQLite."""
    import psycopg

    url, _ = pg_schema
    cfg = LocomoConfig(data=tiny_locomo, budgets=[TINY_BUDGET, BIG_BUDGET], recipes=["default", "bm25-turns"],
                       per_question=False)
    lite = run_locomo(cfg, embedder=embedder, settings=Settings())
    pg = run_locomo(cfg, embedder=embedder, settings=Settings(store="postgres", postgres_url=url))
    assert (lite["store"], pg["store"]) == ("sqlite", "postgres")
    assert pg["timing"]["ingest"]["adds"] == lite["timing"]["ingest"]["adds"] == 7
    for label in ("memstrata", "bm25-turns"):
        for budget in ("16", "200"):
            mine, theirs = pg["results"][label]["overall"][budget], lite["results"][label]["overall"][budget]
            assert (mine["recall"], mine["all_found"], mine["recall_strict"]) == (
                theirs["recall"], theirs["all_found"], theirs["recall_strict"]), (label, budget)
    assert pg["results"]["memstrata"]["overall"]["200"]["recall"] > pg["results"]["memstrata"]["overall"]["16"]["recall"]
    with psycopg.connect(url) as conn:  # the run's schemas are gone with it
        left = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'memstrata_locomo_%'").fetchall()
    assert left == []


# --------------------------------------------------------------------------- --answer, scripted LLM


class _ScriptedLLM(BaseHTTPRequestHandler):
    """OpenAI-compatible /chat/completions: answers from the prompt's context, judges by substring."""

    calls: list[dict] = []
    fail_first: list[int] = []  # HTTP statuses to return before answering normally
    bad_judge_once: list[bool] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(body)
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": "not found"})
        if type(self).fail_first:
            return self._send(type(self).fail_first.pop(0), {"error": "try again"})
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]  # not the repair request
        if "grade answers" in system:
            if type(self).bad_judge_once:
                type(self).bad_judge_once.pop()
                content = "I think it is right"
            else:
                gold = user.split("Gold answer: ")[1].split("\n")[0].lower()
                cand = user.split("Candidate answer: ")[1].lower()
                content = json.dumps({"correct": cand in gold or gold in cand, "reason": "scripted"})
        else:
            context, question = user.rsplit("Question: ", 1)
            # (question word, words the context must hold, the answer given then)
            script = [("origami", ["grandmother"], "her grandmother"), ("greyhound", ["Pixel"], "Pixel"),
                      ("marathon", ["Lisbon"], "Lisbon"), ("kayak", ["kayak", "violin"], "a red kayak; violin lessons"),
                      ("musician", [], "likely")]
            content = "unknown"
            for key, needed, answer in script:
                if key in question:
                    if all(w in context for w in needed):
                        content = answer
                    elif any(w in context for w in needed):
                        content = "only part of it"
                    break
        self._send(200, {"choices": [{"message": {"role": "assistant", "content": content}}],
                         "usage": {"prompt_tokens": len(user.split()), "completion_tokens": 3}})

    def _send(self, status: int, doc: dict) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def llm_server():
    _ScriptedLLM.calls = []
    _ScriptedLLM.fail_first = []
    _ScriptedLLM.bad_judge_once = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_chat_client_retries_and_repairs_json(llm_server: str) -> None:
    from pydantic import BaseModel

    class Verdict(BaseModel):
        correct: bool

    _ScriptedLLM.fail_first = [503]
    _ScriptedLLM.bad_judge_once = [True]
    with OpenAIChat(llm_server, "scripted", backoff=(0.0,)) as llm:
        messages = [{"role": "system", "content": "You grade answers."},
                    {"role": "user", "content": "Question: q\nGold answer: Pixel\nCandidate answer: pixel"}]
        verdict, replies = llm.complete_json(messages, Verdict)
    assert verdict.correct is True and len(replies) == 2  # one invalid reply, repaired on the second
    assert len(_ScriptedLLM.calls) == 3  # the 503, the invalid reply, the valid one
    assert _ScriptedLLM.calls[1]["response_format"] == {"type": "json_object"}
    with OpenAIChat(llm_server, "scripted", max_tries=1) as llm:
        _ScriptedLLM.fail_first = [400]
        with pytest.raises(LLMRequestFailed, match="HTTP 400"):
            llm.complete([{"role": "user", "content": "hi"}])


def test_answer_needs_a_configured_llm(tiny_locomo: Path, monkeypatch) -> None:
    monkeypatch.delenv("MEMSTRATA_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("MEMSTRATA_LLM_MODEL", raising=False)
    result = CliRunner().invoke(bench_app, ["locomo", "--data", str(tiny_locomo), "--answer", "--quiet"])
    assert result.exit_code == 2
    assert "no LLM configured" in result.output and "MEMSTRATA_LLM_BASE_URL" in result.output
    with pytest.raises(Exception, match="MEMSTRATA_LLM_MODEL"):
        llm_from_env({"MEMSTRATA_LLM_BASE_URL": "http://x"})


def test_bench_locomo_answer_with_scripted_llm(tiny_locomo: Path, tmp_path: Path, llm_server: str, monkeypatch) -> None:
    monkeypatch.setenv("MEMSTRATA_LLM_BASE_URL", llm_server)
    monkeypatch.setenv("MEMSTRATA_LLM_MODEL", "scripted")
    out = tmp_path / "answer.json"
    result = CliRunner().invoke(
        bench_app,
        ["locomo", "--data", str(tiny_locomo), "--budgets", f"{TINY_BUDGET},{BIG_BUDGET}", "--recipes", "default",
         "--answer", "--answer-budget", str(TINY_BUDGET), "--out", str(out), "--quiet"],
    )
    assert result.exit_code == 0, result.output
    a = json.loads(out.read_text())["answer"]
    assert a["questions"] == 5 and a["budget"] == TINY_BUDGET
    # The full conversation holds every answer; the one-line block holds only part of q3's.
    assert a["full"]["accuracy"] == pytest.approx(1.0)
    assert a["block"]["accuracy"] == pytest.approx(4 / 5)  # q3's block holds only one of its two turns
    assert [i["block"]["correct"] for i in a["items"]] == [True, True, True, False, True]
    assert a["block"]["mean_context_tokens"] <= TINY_BUDGET < a["full"]["mean_context_tokens"]
    assert a["full"]["mean_prompt_tokens"] > a["block"]["mean_prompt_tokens"] > 0
    assert {i["question_index"] for i in a["items"]} == {0, 1, 2, 3, 5}
    assert "Answers (openai:scripted" in result.stdout
