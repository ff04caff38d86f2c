"""The HNSW (usearch) path for large scopes, through the real SQLite store at small sizes: agreement with
the exact scan, filters never losing results, writes reflected at once, and the threshold respected."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from memstrata.config import Settings
from memstrata.ids import new_id
from memstrata.model import Episode, Scope, SearchFilters
from memstrata.store import ann as ann_module
from memstrata.store.ann import fingerprints
from memstrata.store.sqlite import SQLiteStore

MODEL = "test-vectors"
DIM = 48
N = 3000
SCOPE = Scope(user_id="ann-user")
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _vectors(seed: int = 11) -> np.ndarray:
    """Clustered unit vectors (real embeddings cluster; uniform random ones are the hardest case for HNSW)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, DIM))
    return _unit(centres[rng.integers(0, 30, N)] + 0.8 * rng.standard_normal((N, DIM)))


def _records(n: int, start: int = 0) -> list[Episode]:
    return [
        Episode(id=new_id("episode"), user_id=SCOPE.user_id, content=f"memory {start + i}",
                kind="question" if (start + i) % 20 == 0 else "message",
                event_time=START + timedelta(hours=start + i), created_at=START, updated_at=START)
        for i in range(n)
    ]


def _queries(vectors: np.ndarray, count: int = 30, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = vectors[rng.integers(0, len(vectors), count)]
    return _unit(picks + 0.5 * rng.standard_normal(picks.shape) / np.sqrt(DIM))


def _exact(vectors: np.ndarray, ids: list[str], query: np.ndarray, k: int, admit: np.ndarray | None = None) -> list[str]:
    scores = vectors @ query
    if admit is not None:
        scores = np.where(admit, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")[:k]
    return [ids[i] for i in order if np.isfinite(scores[i])]


@pytest.fixture
def loaded(tmp_path: Path):
    """A store whose one scope holds N vectors, with ANN from 200 vectors and its index built."""
    vectors = _vectors()
    records = _records(N)
    store = SQLiteStore(tmp_path / "ann.db", ann_min_vectors=200)
    store.put(records, vectors, MODEL)
    store.vector_search(vectors[0], MODEL, SCOPE, SearchFilters(), 10)  # schedules the build
    assert store.ann is not None and store.ann.wait(timeout=120)
    try:
        yield store, vectors, [r.id for r in records]
    finally:
        store.close()


def _search(store: SQLiteStore, query: np.ndarray, k: int = 10, **filters) -> list[tuple[str, float]]:
    return store.vector_search(query, MODEL, SCOPE, SearchFilters(**filters), k)


def test_ann_top10_agrees_with_the_exact_scan(loaded) -> None:
    store, vectors, ids = loaded
    queries = _queries(vectors)
    before = store.ann.paths["ann"]
    overlap = []
    for q in queries:
        hits = _search(store, q)
        got = [i for i, _ in hits]
        want = _exact(vectors, ids, q, 10)
        overlap.append(len(set(got) & set(want)) / 10)
        scores = [s for _, s in hits]
        assert scores == sorted(scores, reverse=True)
        assert np.allclose(scores, [float(vectors[ids.index(i)] @ q) for i in got], atol=1e-5)  # exact dot products
    assert store.ann.paths["ann"] - before == len(queries)  # every query went through the index
    assert np.mean(overlap) >= 0.9, overlap
    [stats] = store.ann.stats()
    assert stats["rows"] == N and stats["builds"] == 1 and stats["nbytes"] > N * DIM * 4


def test_a_restrictive_filter_returns_the_exact_results(loaded) -> None:
    store, vectors, ids = loaded
    times = np.array([(START + timedelta(hours=i)).timestamp() for i in range(N)])
    lo, hi = START + timedelta(hours=1000), START + timedelta(hours=1150)  # 151 of 3000 rows
    admit = (times >= lo.timestamp()) & (times <= hi.timestamp())
    kinds = np.array([i % 20 == 0 for i in range(N)])  # "question": 5% of the rows
    for q in _queries(vectors, 10):
        got = [i for i, _ in _search(store, q, time_from=lo, time_to=hi)]
        assert got == _exact(vectors, ids, q, 10, admit)
        got = [i for i, _ in _search(store, q, 25, kinds=["question"])]
        assert got == _exact(vectors, ids, q, 25, kinds)
    assert store.ann.paths["exact_filtered"] == 20


def test_a_filter_that_starves_the_index_falls_back_to_the_exact_scan(loaded, monkeypatch) -> None:
    store, vectors, ids = loaded
    monkeypatch.setattr(ann_module, "MIN_FETCH", 1)
    monkeypatch.setattr(ann_module, "OVERFETCH", 0.1)  # fewer candidates than the limit: always short
    upto = START + timedelta(hours=999)  # the first third of the rows
    admit = np.arange(N) < 1000
    for q in _queries(vectors, 5):
        got = [i for i, _ in _search(store, q, 10, time_to=upto)]
        assert got == _exact(vectors, ids, q, 10, admit)
    assert store.ann.paths["ann_fallback"] == 5


def test_writes_are_seen_at_once_and_the_index_follows_them(loaded) -> None:
    store, vectors, ids = loaded
    query = _queries(vectors, 1)[0]
    first = [i for i, _ in _search(store, query)]
    assert store.ann.paths["ann"] >= 1
    doomed = first[0]
    assert store.delete([doomed], SCOPE) == 1
    [new] = _records(1, start=N)
    store.put([new], query[None, :], MODEL)
    moved = ids[int(np.argmin(vectors @ query))]  # the farthest row gets a vector next to the query
    store.put_vectors([(moved, _unit(query + 0.01 * vectors[0]))], MODEL)

    def check() -> None:
        got = [i for i, _ in _search(store, query)]
        assert got[0] == new.id and got[1] == moved and doomed not in got

    ann_before = store.ann.paths["ann"]
    check()  # the index is behind the writes: the exact scan answers
    assert store.ann.paths["ann"] == ann_before and store.ann.paths["exact_unready"] >= 1
    assert store.ann.wait(timeout=60)
    check()  # the index caught up in place (no rebuild) and answers again
    assert store.ann.paths["ann"] == ann_before + 1
    [stats] = store.ann.stats()
    assert stats["builds"] == 1 and stats["updates"] >= 1 and stats["rows"] == N
    live = [i for i in ids if i not in (doomed, moved)]
    for round_ in range(3):  # a twelfth of the scope deleted at a time: updated twice, then rebuilt
        gone, live = live[: N // 12], live[N // 12 :]
        assert store.delete(gone, SCOPE) == len(gone)
        _search(store, query)
        assert store.ann.wait(timeout=60)
        got = [i for i, _ in _search(store, query)]
        assert got[:2] == [new.id, moved] and set(got).isdisjoint(gone)
        assert store.ann.stats()[0]["builds"] == (1 if round_ < 2 else 2)
    assert store.ann.paths["ann"] == ann_before + 4


def test_below_the_threshold_the_exact_scan_answers(tmp_path: Path) -> None:
    vectors = _vectors()
    store = SQLiteStore(tmp_path / "small.db", ann_min_vectors=N + 1)
    off = SQLiteStore(tmp_path / "off.db", ann_min_vectors=0)
    try:
        records = _records(N)
        store.put(records, vectors, MODEL)
        q = _queries(vectors, 1)[0]
        got = [i for i, _ in _search(store, q)]
        assert got == _exact(vectors, [r.id for r in records], q, 10)
        assert store.ann.wait(timeout=5)
        assert store.ann.paths["exact_small"] == 1 and store.ann.stats() == []  # no index was built
        assert off.ann is None
    finally:
        store.close()
        off.close()


def test_settings_and_fingerprints() -> None:
    s = Settings()
    assert (s.ann_min_vectors, s.ann_expansion_search) == (50_000, 128)
    rows = _vectors()[:100]
    prints = fingerprints(rows)
    changed = rows.copy()
    changed[7, 3] = np.nextafter(changed[7, 3], np.float32(2))
    assert (fingerprints(changed) != prints).tolist() == [i == 7 for i in range(100)]
    assert (fingerprints(rows.copy()) == prints).all()
