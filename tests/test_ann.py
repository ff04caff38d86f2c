"""The HNSW (usearch) path for large scopes, through the real SQLite store at small sizes: agreement with
the exact scan, filters never losing results, writes reflected at once, the threshold respected, and
saved indexes loaded instead of rebuilt, reconciled with the rows, never trusted when damaged, and
deleted with the data."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from memstrata.config import Settings
from memstrata.ids import new_id
from memstrata.model import Episode, Scope, SearchFilters
from memstrata.store import ann as ann_module
from memstrata.store import ann_dir
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
    assert stats["nbytes"] < 3 * N * DIM * 4  # what the index holds, not the capacity usearch reserved


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
        unready = store.ann.paths["exact_unready"]
        _search(store, query)
        # The search saw the delete (its matrix is new), so it scheduled exactly one sync, which wait() covers.
        assert store.ann.paths["exact_unready"] == unready + 1, dict(store.ann.paths)
        assert store.ann.wait(timeout=60)
        assert store.ann.last_error is None, store.ann.last_error
        got = [i for i, _ in _search(store, query)]
        assert got[:2] == [new.id, moved] and set(got).isdisjoint(gone)
        assert store.ann.stats()[0]["builds"] == (1 if round_ < 2 else 2), store.ann.stats()
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


# ---------------------------------------------------------------- saved indexes


def _saving(tmp_path: Path, **kwargs) -> SQLiteStore:
    """A store on tmp_path's database whose indexes are saved in tmp_path / 'ann'."""
    return SQLiteStore(tmp_path / "ann.db", ann_min_vectors=200, ann_dir=tmp_path / "ann", **kwargs)


def _ready(store: SQLiteStore, query: np.ndarray) -> list[tuple[str, float]]:
    """Search once (scheduling the index), wait for the background thread, search again."""
    _search(store, query)
    assert store.ann.wait(timeout=120) and store.ann.last_error is None
    return _search(store, query)


def _files(tmp_path: Path) -> list[str]:
    return sorted(p.suffix for p in (tmp_path / "ann").glob("*.*"))


@pytest.fixture
def saved(tmp_path: Path):
    """N vectors in the database and their index saved (by a store now closed); the ids and the first store's
    top 10 for each of a few queries."""
    vectors, records = _vectors(), _records(N)
    store = _saving(tmp_path)
    try:
        store.put(records, vectors, MODEL)
        queries = _queries(vectors, 10)
        _ready(store, queries[0])
        [stats] = store.ann.stats()
        assert (stats["builds"], stats["saves"], stats["loads"]) == (1, 1, 0)
        tops = [_search(store, q) for q in queries]
    finally:
        store.close()
    assert _files(tmp_path) == [".npz", ".usearch"]
    return vectors, [r.id for r in records], queries, tops


def test_a_second_store_loads_the_saved_index_instead_of_building_it(tmp_path: Path, saved) -> None:
    vectors, ids, queries, tops = saved
    store = _saving(tmp_path)
    try:
        assert store.ann.stats() == [] and not store.ann.files.events  # nothing is loaded eagerly
        got = [i for i, _ in _search(store, queries[0])]
        assert got == _exact(vectors, ids, queries[0], 10)  # the exact scan answers until the file is loaded
        assert store.ann.paths["exact_unready"] == 1
        assert store.ann.wait(timeout=60)
        [stats] = store.ann.stats()
        assert (stats["builds"], stats["loads"], stats["updates"], stats["rows"]) == (0, 1, 0, N)
        assert stats["load_seconds"] is not None and store.ann.files.events["loaded"] == 1
        before = store.ann.paths["ann"]
        assert [_search(store, q) for q in queries] == tops  # the same graph: the same answers
        assert store.ann.paths["ann"] == before + len(queries)
    finally:
        store.close()


def test_changed_vectors_after_a_reload_are_found_exactly(tmp_path: Path, saved) -> None:
    vectors, ids, queries, _ = saved
    query = queries[0]
    # Another process, which saves nothing, re-embeds the farthest row next to the query and adds a row.
    moved, again = (ids[i] for i in np.argsort(vectors @ query)[:2])  # the two farthest rows
    [new] = _records(1, start=N)
    other = SQLiteStore(tmp_path / "ann.db", ann_min_vectors=200)
    try:
        other.put_vectors([(moved, _unit(query + 0.01 * vectors[0]))], MODEL)
        other.put([new], _unit(query + 0.02 * vectors[1])[None, :], MODEL)
    finally:
        other.close()
    store = _saving(tmp_path)
    try:
        got = [i for i, _ in _ready(store, query)]
        assert got[:2] == [moved, new.id] and store.ann.paths["ann"] == 1
        [stats] = store.ann.stats()
        # loaded, then reconciled in place: the changed row out and in again, the new one added
        assert (stats["builds"], stats["loads"], stats["updates"], stats["rows"]) == (0, 1, 1, N + 1)
        # The file held the old vector of a changed row: it was deleted, and the index saved afresh.
        assert store.ann.files.events["dropped"] == 1 and stats["saves"] == 1
        # A change made through this store is seen at once, and by the index once it caught up.
        store.put_vectors([(again, query)], MODEL)
        assert _search(store, query)[0][0] == again and store.ann.paths["exact_unready"] == 2
        assert store.ann.wait(timeout=60)
        assert [i for i, _ in _search(store, query)][:3] == [again, moved, new.id]
        assert store.ann.paths["ann"] == 2
    finally:
        store.close()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # same size, a stretch of the graph zeroed
    path.write_bytes(bytes(data))


def _foreign_version(path: Path) -> None:
    with np.load(path) as z:
        arrays = dict(z)
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, "format": meta["format"] + 1}))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("damage, suffix", [
    (_truncate, ".usearch"), (_flip, ".usearch"), (lambda p: p.write_bytes(b"not a zip"), ".npz"),
    (_foreign_version, ".npz"),
])
def test_a_damaged_or_foreign_file_is_ignored_and_rebuilt(tmp_path: Path, saved, damage, suffix, caplog) -> None:
    vectors, ids, queries, tops = saved
    [path] = (tmp_path / "ann").glob(f"*{suffix}")
    damage(path)
    store = _saving(tmp_path)
    try:
        with caplog.at_level(logging.WARNING, logger="memstrata.store.ann"):
            _ready(store, queries[0])
        assert "ignoring saved ANN index" in caplog.text
        [stats] = store.ann.stats()
        assert (stats["builds"], stats["loads"], stats["saves"]) == (1, 0, 1)
        assert store.ann.files.events["rejected"] == 1
        for q in queries:
            hits = _search(store, q)
            want = _exact(vectors, ids, q, 10)
            assert len({i for i, _ in hits} & set(want)) >= 8
            assert np.allclose([s for _, s in hits], [float(vectors[ids.index(i)] @ q) for i, _ in hits], atol=1e-5)
    finally:
        store.close()
    store = _saving(tmp_path)  # the rebuilt index was saved in the damaged file's place
    try:
        _ready(store, queries[0])
        assert store.ann.stats()[0]["loads"] == 1 and store.ann.stats()[0]["builds"] == 0
    finally:
        store.close()


def test_deleting_removes_the_saved_files(tmp_path: Path, saved) -> None:
    vectors, ids, queries, _ = saved
    ann = tmp_path / "ann"
    store = _saving(tmp_path)
    try:
        _ready(store, queries[0])
        assert store.ann.stats()[0]["loads"] == 1
        doomed = [i for i, _ in _search(store, queries[0])][:3]
        assert store.delete(doomed, SCOPE) == 3
        assert _files(tmp_path) == []  # at once, before any search
        got = [i for i, _ in _ready(store, queries[0])]
        assert set(got).isdisjoint(doomed)
        # usearch keeps removed vectors in the graph until adds reuse their slots: nothing is written till then
        assert _files(tmp_path) == [] and store.ann.stats()[0]["saves"] == 0
        store.put(_records(3, start=N), _vectors(seed=99)[:3], MODEL)
        _ready(store, queries[0])
        assert _files(tmp_path) == [".npz", ".usearch"] and store.ann.stats()[0]["saves"] == 1
        data = next(ann.glob("*.usearch")).read_bytes()
        assert not any(vectors[ids.index(i)].tobytes() in data for i in doomed)
        assert vectors[ids.index(got[0])].tobytes() in data
        # another scope's file stays when this one is deleted
        other = Scope(user_id="someone-else")
        store.put([r.model_copy(update={"user_id": other.user_id}) for r in _records(300, start=2 * N)],
                  vectors[:300], MODEL)
        store.vector_search(queries[0], MODEL, other, SearchFilters(), 10)
        assert store.ann.wait(timeout=60) and len(list(ann.glob("*.usearch"))) == 2
        assert store.delete_scope(SCOPE) > 0
        assert len(list(ann.glob("*.usearch"))) == 1
        store.reset()
        assert _files(tmp_path) == []
    finally:
        store.close()


def test_turning_the_index_off_deletes_the_saved_files(tmp_path: Path, saved) -> None:
    SQLiteStore(tmp_path / "ann.db", ann_min_vectors=0, ann_dir=tmp_path / "ann").close()
    assert _files(tmp_path) == []  # no delete would reach them while the index is off


def test_the_saved_indexes_fit_their_disk_budget(tmp_path: Path) -> None:
    vectors = _vectors()
    store = _saving(tmp_path)
    try:
        for k in range(3):
            scope = Scope(user_id=f"user-{k}")
            store.put([r.model_copy(update={"user_id": scope.user_id}) for r in _records(1000, start=k * 1000)],
                      vectors[k * 1000 : (k + 1) * 1000], MODEL)
            store.vector_search(vectors[0], MODEL, scope, SearchFilters(), 10)
            assert store.ann.wait(timeout=60)
            if k == 0:
                one = sum(p.stat().st_size for p in (tmp_path / "ann").glob("*.*"))
                store.ann.files.max_bytes = int(2.5 * one)
        assert store.ann.files.events["saved"] == 3
        assert len(list((tmp_path / "ann").glob("*.usearch"))) == 2  # the least recently used went
        assert sum(p.stat().st_size for p in (tmp_path / "ann").glob("*.*")) <= 2.5 * one
    finally:
        store.close()


def test_where_indexes_are_saved(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    assert ann_dir(Settings(db=db)) == tmp_path / "m.db.ann"
    assert ann_dir(Settings(db=db, ann_dir="")) is None and ann_dir(Settings(db=db, ann_disk_mb=0)) is None
    assert ann_dir(Settings(store="postgres", postgres_url="postgresql://u:p@h/d")) is None
    mine = ann_dir(Settings(db=db, ann_dir=str(tmp_path / "cache")))
    theirs = ann_dir(Settings(store="postgres", postgres_url="postgresql://u:p@h/d", ann_dir=str(tmp_path / "cache")))
    assert mine.parent == theirs.parent == tmp_path / "cache" and mine != theirs  # one directory per database
