"""`bench serve`: a tiny bounded run end to end, and the docs section it writes (and only that)."""

from __future__ import annotations

from memstrata.server.bench import SECTION, bench_serve, percentile, render_markdown, write_section


def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile(values, 99) == 99
    assert percentile([3.0], 99) == 3.0


def test_tiny_bench_run_and_markdown(tmp_path):
    report = bench_serve(levels=[1, 3], requests=6, workers=1, seed_memories=20, time_cap=30)
    rows = {(r["op"], r["concurrency"]): r for r in report["rows"]}
    assert set(rows) == {("search", 1), ("add", 1), ("search", 3), ("add", 3)}
    for row in rows.values():
        assert row["ok"] == 6 and not row["errors"] and row["rps"] > 0
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    md = render_markdown(report)
    assert md.startswith(SECTION) and "| add | 3 |" in md


def test_write_section_appends_then_replaces_only_its_own_section(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\n\n## LoCoMo\n\nrecall 0.5\n")
    write_section(path, f"{SECTION}\n\nfirst\n")
    assert path.read_text() == f"# Benchmarks\n\n## LoCoMo\n\nrecall 0.5\n\n{SECTION}\n\nfirst\n"
    # Someone adds a section after ours; a rerun replaces ours and keeps theirs.
    path.write_text(path.read_text() + "\n## Scale\n\n1M vectors\n")
    write_section(path, f"{SECTION}\n\nsecond\n")
    text = path.read_text()
    assert "first" not in text and "second" in text and text.count(SECTION) == 1
    assert text.startswith("# Benchmarks\n\n## LoCoMo\n\nrecall 0.5\n") and text.endswith("## Scale\n\n1M vectors\n")
    missing = tmp_path / "new.md"
    write_section(missing, f"{SECTION}\n\nx\n")
    assert missing.read_text() == f"{SECTION}\n\nx\n"
