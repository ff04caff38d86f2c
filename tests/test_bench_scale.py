"""`memstrata bench scale` at tiny sizes: report fields, determinism, and the exact-scan baseline
agreeing with the store's vector search on the same vectors."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from memstrata.bench import synth
from memstrata.bench.cli import bench_app
from memstrata.bench.scale import ScaleConfig, exact_top_k, run_scale, scale_markdown
from memstrata.ids import new_id
from memstrata.model import Episode, Scope, SearchFilters
from memstrata.store.sqlite import SQLiteStore


def test_synthetic_text_is_deterministic_varied_and_pairs_are_distinct() -> None:
    a = synth.sentences(200, seed=3)
    assert a == synth.sentences(200, seed=3) != synth.sentences(200, seed=4)
    assert len(set(a)) == 200
    assert len({s.split()[0] for s in a}) > 20  # many people, not one template
    assert any(ch.isdigit() for s in a for ch in s)  # dates and numbers
    assert synth.questions(5, seed=3) == synth.questions(5, seed=3)
    pairs = synth.PairIndex(30, seed=3)
    ks = {pairs.pair(i) for i in range(900)}
    assert len(ks) == 900  # a bijection onto the 30 x 30 pairs
    va, vb = pairs.pairs(10, 20)
    assert [(int(x), int(y)) for x, y in zip(va, vb)] == [pairs.pair(i) for i in range(10, 20)]
    t = synth.event_times(0, 1000)
    assert t.min() >= 1546300800 and t.max() <= 1546300800 + 7 * 365 * 86400


def test_exact_scan_agrees_with_store_vector_search(tmp_path: Path, embedder) -> None:
    pool = synth.sentences(40, seed=1)
    pool_vecs = embedder.embed(pool)
    pairs = synth.PairIndex(40, seed=1)
    n = 300
    a, b = pairs.pairs(0, n)
    vectors = synth.pair_vectors(pool_vecs, a, b)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    stamp = datetime(2024, 1, 1, tzinfo=timezone.utc)
    records = [
        Episode(id=new_id("episode"), user_id="u" + str(i % 2), content=synth.memory_text(pool, int(a[i]), int(b[i])),
                event_time=stamp, created_at=stamp, updated_at=stamp)
        for i in range(n)
    ]
    store = SQLiteStore(tmp_path / "s.db")
    try:
        store.put(records, vectors, embedder.name)
        queries = embedder.embed(synth.questions(8, seed=1))
        for scope_no in (0, 1):
            rows = np.arange(scope_no, n, 2)
            for q in queries:
                got = [i for i, _ in store.vector_search(q, embedder.name, Scope(user_id=f"u{scope_no}"), SearchFilters(), 10)]
                top = exact_top_k(vectors[rows], q, 10)
                assert got == [records[int(rows[t])].id for t in top]
    finally:
        store.close()
    assert list(exact_top_k(np.eye(3, dtype=np.float32), np.array([0.1, 0.9, 0.5], dtype=np.float32), 5)) == [1, 2, 0]


def test_run_scale_reports_every_figure(tmp_path: Path, embedder) -> None:
    cfg = ScaleConfig(memories=[300, 600], scopes=[1, 3], queries=10, repeats=2, embed_sample=10, pool=40, batch=250,
                      isolate=False, progress=False)
    report = run_scale(cfg, embedder=embedder)
    assert report["embedder"] == embedder.name and report["machine"]["cores"] >= 1
    assert report["model"]["sentences_per_s"] > 0
    for mode in ("one_per_add", "batch_100"):
        assert report["embedder_ingest"][mode]["memories_per_s"] > 0
    runs = report["runs"]
    assert [(r["memories"], r["scopes"]) for r in runs] == [(300, 1), (300, 3), (600, 1), (600, 3)]
    for r in runs:
        assert r["ingest"]["memories_per_s"] > 0 and r["disk"]["total_bytes"] > 0 and r["peak_rss_mb"] > 0
        for key in ("store_vector", "store_lexical", "memory_search_hybrid", "numpy_exact", "store_put_one",
                    "store_vector_after_write", "store_lexical_after_write"):
            s = r["search"][key]
            assert s["n"] == 10 and 0 <= s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"]
        assert r["search"]["store_vector"]["runs"] == 2
        assert r["search"]["store_vector_over_numpy_p50"] > 0
        assert r["topk_agreement"] == 1.0  # the baseline and the store rank the same vectors alike
        ann = r["ann"]
        assert ann["indexes"] == r["scopes"] and ann["rows"] == r["memories"]  # every scope was queried
        assert ann["build_seconds"] >= 0 and ann["index_mb"] > 0 and ann["last_error"] is None
        assert ann["loads"] == r["scopes"] and ann["builds_after_reload"] == 0  # a second store loaded them
        [at] = ann["by_ef"]
        assert at["paths"] == {"ann": 20}  # every timed query went through an index
        assert 0.9 <= at["recall_at_10"] <= 1 and at["ann_over_numpy_p50"] > 0
    growth = report["growth"]
    assert [(g["scopes"], g["from"], g["to"]) for g in growth] == [(1, 300, 600), (3, 300, 600)]
    assert all(g["disk_bytes"] > 1 for g in growth)
    md = scale_markdown(report)
    assert "| 600 | 3 |" in md and "Growth" in md
    assert "ANN path" in md and "| 600 | 3 | 128 |" in md


def test_bench_scale_cli_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "scale.json"
    result = CliRunner().invoke(
        bench_app,
        ["scale", "--memories", "200", "--scopes", "1,500", "--queries", "5", "--repeats", "1", "--embed-sample", "0",
         "--pool", "30", "--out", str(out), "--quiet", "--max-minutes", "60", "--ann-ef", "0"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["runs"][0]["memories"] == 200 and report["runs"][0]["topk_agreement"] == 1.0
    assert report["runs"][1]["skipped"] == "more scopes than memories"
    assert "ann" not in report["runs"][0]  # --ann-ef 0: the ANN path is not measured
    assert "| 200 | 1 |" in result.stdout


def test_run_scale_on_postgres_measures_its_own_schemas(tmp_path: Path, embedder, pg_schema) -> None:
    """With store = "postgres" the configurations are built in schemas beside the configured one, which keeps
    what it held, and the run drops them when it ends."""
    import psycopg

    from memstrata import Memory
    from memstrata.config import Settings

    url, schema = pg_schema
    settings = Settings(store="postgres", postgres_url=url, postgres_schema=schema)
    with Memory(settings=settings, embedder=embedder) as mem:
        mem.add("Ana keeps bees on the roof.", user_id="owner")
    cfg = ScaleConfig(memories=[200], scopes=[1, 2], queries=5, repeats=1, embed_sample=10, pool=30, batch=150,
                      isolate=False, progress=False, db_dir=tmp_path)
    report = run_scale(cfg, embedder=embedder, settings=settings)
    assert report["store"] == "postgres" and "store: Postgres" in scale_markdown(report)
    assert report["embedder_ingest"]["batch_100"]["memories_per_s"] > 0
    for run in report["runs"]:
        assert run["disk"]["total_bytes"] > 0 and run["topk_agreement"] == 1.0
        assert run["ann"]["rows"] == 200 and run["ann"]["by_ef"][0]["recall_at_10"] >= 0.9
    with psycopg.connect(url) as conn:
        left = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)",
                            [["memstrata_scale_200_1", "memstrata_scale_200_2", "memstrata_scale_embed_one_per_add",
                              "memstrata_scale_embed_batch_100"]]).fetchall()
    assert left == []  # the run's schemas are gone with it
    with Memory(settings=settings, embedder=embedder) as mem:  # the configured schema holds what it held
        assert [r.content for r in mem.list(user_id="owner", layers=[0]).items] == ["Ana keeps bees on the roof."]
        assert mem.store.scopes() == [Scope(user_id="owner")]
