"""Lossless export / import (every layer, history, links, lifecycle fields) and re-embedding."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np

from memstrata import Memory, Settings
from memstrata.model import Scope
from memstrata.transfer import export_jsonl, import_file

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
ANA = {"user_id": "ana"}
QUERIES = ["Where does Ana live?", "Ana's dog", "deploy the service", "What does Ana love?"]


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


class TruncatedMiniLM:
    """Another embedding model for the test: MiniLM's first 192 dimensions, renormalised."""

    name = "minilm-192"
    dim = 192

    def __init__(self, inner) -> None:
        self.inner = inner

    def embed(self, texts):
        v = self.inner.embed(texts)[:, :192]
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def build(m: Memory, clock: Clock) -> None:
    turns = [
        (0, "s1", "I live in Lisbon and I love surfing."),
        (0, "s1", "I have a golden retriever named Max."),
        (1, "s1", "I love cooking seafood rice on Sundays."),
        (1, "s1", "My sister Marta works as a nurse in Coimbra."),
        (2, "s1", "I started learning the guitar on Tuesdays."),
        (30, "s2", "I moved to Porto for a new job."),
        (30, "s2", "I have a golden retriever called Max."),
        (31, "s2", "I love reading crime novels at night."),
    ]
    for day, session, text in turns:
        clock.at = T0 + timedelta(days=day)
        m.add({"role": "user", "speaker": "Ana", "content": text}, **ANA, session_id=session)
    m.add_experience("Deploy the service", ["build", "apply"], "failed: missing secret", **ANA)
    clock.at = T0 + timedelta(days=40)
    m.organise(**ANA)
    episodes = m.list(**ANA, layers=[0]).items
    m.pin(episodes[0].id, **ANA)
    m.archive(episodes[2].id, **ANA)
    m.search("golden retriever", **ANA, limit=3)  # reinforcement: strength and last access change


def snapshot(m: Memory) -> dict:
    records = m.list(**ANA, limit=1000).items
    ids = [r.id for r in records]
    return {
        "records": [r.model_dump(mode="json") for r in records],
        "history": {i: [e.model_dump(mode="json") for e in m.history(i, **ANA)] for i in ids},
        "links": sorted(m.store.neighbours(ids, Scope(user_id="ana"))),
    }


def results(m: Memory) -> list:
    out = []
    for q in QUERIES:
        for recipe in ("bm25", "dense", "hybrid"):
            for kw in ({}, {"as_of": T0 + timedelta(days=10)}, {"include_archived": True}):
                hits = m.search(q, **ANA, recipe=recipe, limit=8, reinforce=False, **kw)
                out.append(sorted((-round(h.score, 6), h.id) for h in hits))  # ties in any order
    return out


def test_export_import_roundtrip_then_reembed(tmp_path, embedder):
    clock = Clock()
    src = Memory(settings=Settings(db=tmp_path / "src.db"), embedder=embedder, clock=clock)
    build(src, clock)
    before = snapshot(src)
    layers = {r["id"][:2] for r in before["records"]}
    assert {"ep", "nt", "tp", "pf", "ex"} <= layers, "every layer and experiences are in the scope"
    assert any(r["status"] == "superseded" for r in before["records"])
    assert any(r["status"] == "archived" for r in before["records"])
    assert any(r["pinned"] for r in before["records"]) and any(r["last_access"] for r in before["records"])
    assert before["links"], "links exist"
    path = tmp_path / "ana.jsonl"
    count = export_jsonl(src, path, **ANA)
    assert count == len(before["records"])
    kinds = [json.loads(line)["type"] for line in path.read_text().splitlines()]
    assert kinds.count("link") == len(before["links"])

    dst = Memory(settings=Settings(db=tmp_path / "dst.db"), embedder=embedder, clock=clock)
    result = import_file(dst, path)
    assert result.records == count
    after = snapshot(dst)
    assert after["records"] == before["records"]
    assert after["history"] == before["history"]
    assert after["links"] == before["links"]
    assert results(dst) == results(src), "the same search results"
    assert dst.organise(**ANA)[0].changed == 0, "an imported store is already organised"

    # a new embedding model: vectors are recomputed, nothing is re-extracted
    other = Memory(settings=Settings(db=tmp_path / "dst.db"), embedder=TruncatedMiniLM(embedder), clock=clock)
    assert other.search("golden retriever", **ANA, recipe="dense", reinforce=False) == []
    assert other.reembed() == count
    assert other.reembed() == 0, "resumable: only what lacks a vector from the model"
    assert other.store.vector_models() == {"minilm-192": count}
    hits = other.search("Ana's golden retriever", **ANA, recipe="dense", limit=3, reinforce=False)
    assert "retriever" in hits[0].content
    assert [r.model_dump(mode="json") for r in other.list(**ANA, limit=1000).items] == before["records"]

    # importing under another model embeds the records with it (the file's vectors do not fit)
    third = Memory(settings=Settings(db=tmp_path / "third.db"), embedder=TruncatedMiniLM(embedder), clock=clock)
    import_file(third, path)
    assert third.store.vector_models() == {"minilm-192": count}
    assert [r.model_dump(mode="json") for r in third.list(**ANA, limit=1000).items] == before["records"]


def test_a_sqlite_import_leaves_planner_statistics(tmp_path, embedder, monkeypatch):
    """A bulk import into SQLite refreshes the planner's statistics: the records table's indexes get
    rows in sqlite_stat1. So does `analyze()` after a bulk `put` that ran no query (`PRAGMA optimize`,
    which analyses what the connection's queries asked for, left the table without any there)."""
    import sqlite3

    import memstrata.transfer as transfer

    src = Memory(settings=Settings(db=tmp_path / "src.db"), embedder=embedder)
    dst = Memory(settings=Settings(db=tmp_path / "dst.db"), embedder=embedder)
    try:
        src.add("I moved to Lisbon. My dog Bolt loves the beach.", user_id="ana", session_id="s1")
        count = export_jsonl(src, tmp_path / "ana.jsonl", user_id="ana")

        def analysed() -> set[str]:
            conn = sqlite3.connect(tmp_path / "dst.db")
            try:
                if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
                    return set()
                return {t for (t,) in conn.execute("SELECT DISTINCT tbl FROM sqlite_stat1")}
            finally:
                conn.close()

        monkeypatch.setattr(transfer, "ANALYZE_AFTER", count + 1)
        import_file(dst, tmp_path / "ana.jsonl", user_id="ben")  # below the threshold
        assert "records" not in analysed()
        monkeypatch.setattr(transfer, "ANALYZE_AFTER", count)
        import_file(dst, tmp_path / "ana.jsonl", user_id="cy", new_ids=True)
        assert "records" in analysed()
    finally:
        src.close()
        dst.close()

    from memstrata.store.sqlite import SQLiteStore
    from test_store import episode, put

    store = SQLiteStore(tmp_path / "bulk.db")
    try:
        put(store, embedder, [episode(f"bulk record {i} about tea") for i in range(50)])
        store.analyze()
        conn = sqlite3.connect(tmp_path / "bulk.db")
        assert conn.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'records'").fetchone()[0] > 0
        conn.close()
    finally:
        store.close()
