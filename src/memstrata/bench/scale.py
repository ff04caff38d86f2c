"""`memstrata bench scale`: throughput, latency, size and memory as a store grows.

For each N (memories) and S (scopes, N spread evenly over them) one fresh
database is built and measured, each in its own process (so peak RSS belongs to
that configuration alone):

- ingest throughput of the store with precomputed vectors (`store.put`, batches);
- search latency p50/p95/p99: the store's vector search and lexical search, and
  `Memory.search` (hybrid, query embedding included), with queries spread over
  the scopes;
- the same vector queries answered by an exact numpy scan over the same vectors
  in the same process: the baseline, with the agreement of the two top-10s;
- the ANN path (HNSW, store/ann.py) forced on every queried scope: index build
  time and memory, the time a second store takes to load the saved indexes
  instead, then latency and recall@10 (through that second store) against the
  exact scan at each search beam (ef) asked for;
- database size on disk and peak RSS.

The configured store is measured: SQLite files in the work directory, or, with
``store = "postgres"``, schemas ``memstrata_scale_<N>_<S>`` of the configured
Postgres database (`databases.BenchDatabases`; never the configured schema).

Once per run, the real embedder's ingest throughput through `Memory.add` is
measured on a sample (one memory per add, and batches of 100). Text and vectors
come from `synth` (realistic sentences; a memory pairs two pool sentences and
its vector sums their real embeddings).
"""

from __future__ import annotations

import multiprocessing
import random
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config import Settings
from ..embed import make_embedder
from ..embed.base import Embedder
from ..ids import new_id
from ..memory import Memory
from ..model import Episode, Scope, SearchFilters
from ..read.query import lexical_terms
from ..store import open_store
from ..store.ann import CONNECTIVITY, EXPANSION_ADD
from . import synth
from .databases import BenchDatabases
from .metrics import latency_summary, machine_info, median, median_summary, peak_rss_mb, ratio

TOP_K = 10


@dataclass
class ScaleConfig:
    """What `run_scale` runs."""

    memories: Sequence[int] = (2000, 10000)
    scopes: Sequence[int] = (1, 100)
    queries: int = 200
    #: Timed passes over the queries; figures are medians over passes.
    repeats: int = 3
    #: Memories added through `Memory.add` with the real embedder (0: skip).
    embed_sample: int = 500
    #: Distinct sentences embedded once; memories pair them.
    pool: int = 4000
    seed: int = 7
    #: Records per `store.put`.
    batch: int = 5000
    #: `Settings.vector_cache_mb` for the runs (None: the setting's default).
    vector_cache_mb: int | None = None
    #: Skip a configuration whose estimated time exceeds this many minutes.
    max_minutes: float | None = None
    db_dir: Path | None = None
    keep: bool = False
    progress: bool = True
    #: Run each configuration in its own process (peak RSS per configuration).
    isolate: bool = True
    #: BLAS threads for the searches (store and numpy alike). None: the library default (all cores);
    #: a multi-threaded matrix-vector product on a busy machine waits for a free core, so 1 is steadier.
    blas_threads: int | None = 1
    #: HNSW search beams (ef) at which the ANN path is measured (empty: not measured).
    ann_expansion_search: Sequence[int] = (128,)
    #: `Settings.ann_cache_mb` for the ANN measurement (None: the setting's default).
    ann_cache_mb: int | None = None


class _NullProgress:
    def __enter__(self) -> "_NullProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass


def _progress(enabled: bool) -> Any:
    if not enabled:
        return _NullProgress()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=Console(stderr=True),
    )


def _settings(cfg: ScaleConfig, base: Settings) -> Settings:
    """The runs' settings: the exact scan for every search (the ANN path is measured on its own)."""
    update: dict[str, Any] = {"ann_min_vectors": 0}
    if cfg.vector_cache_mb is not None:
        update["vector_cache_mb"] = cfg.vector_cache_mb
    if cfg.ann_cache_mb is not None:
        update["ann_cache_mb"] = cfg.ann_cache_mb
    return base.model_copy(update=update)


def _config_name(n: int, s: int) -> str:
    return f"{n}-{s}"


def _embed_name(mode: str) -> str:
    return f"embed-{mode}"


def _disk_bytes(mem: Memory, settings: Settings) -> dict:
    """Size of the database: the SQLite file and its WAL, or the Postgres schema's tables and indexes."""
    if settings.store == "postgres":
        size = int(mem.store.stats()["file_bytes"])
        return {"file_bytes": size, "wal_bytes": 0, "total_bytes": size}
    db = settings.db
    main = db.stat().st_size if db.exists() else 0
    wal = Path(f"{db}-wal")
    wal_bytes = wal.stat().st_size if wal.exists() else 0
    return {"file_bytes": main, "wal_bytes": wal_bytes, "total_bytes": main + wal_bytes}


# ---------------------------------------------------------------------- the run


def run_scale(cfg: ScaleConfig, *, embedder: Embedder | None = None, settings: Settings | None = None) -> dict:
    """Run every (N, S) configuration and return the report (a JSON-ready dict).

    `settings` (default: `Settings.load()`) name the store to measure and its caches; the benchmark's
    databases sit beside the configured one (`BenchDatabases`)."""
    started = time.time()
    memories = sorted(set(cfg.memories))
    scopes = sorted(set(cfg.scopes))
    if cfg.pool * cfg.pool < max(memories):
        raise ValueError(f"a pool of {cfg.pool} sentences gives {cfg.pool ** 2:,} pairs, fewer than {max(memories):,} memories")
    owned = cfg.db_dir is None
    workdir = Path(tempfile.mkdtemp(prefix="memstrata-scale-")) if owned else Path(cfg.db_dir)  # type: ignore[arg-type]
    workdir.mkdir(parents=True, exist_ok=True)
    settings = _settings(cfg, settings or Settings.load())
    dbs = BenchDatabases(settings, workdir, "scale")
    made: list[str] = [_embed_name(mode) for mode in EMBED_MODES] if cfg.embed_sample else []
    inner = embedder or make_embedder(settings)
    report: dict[str, Any] = {
        "benchmark": "scale",
        "date": date.today().isoformat(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "embedder": inner.name,
        "store": settings.store,
        "vector_cache_mb": settings.vector_cache_mb,
        "sqlite_synchronous": settings.sqlite_synchronous,
        "machine": machine_info(),
    }
    try:
        with _progress(cfg.progress) as prog:
            pool_file, model_report = _prepare_pool(cfg, inner, workdir, prog)
            report["model"] = model_report
            report["embedder_ingest"] = _embedder_ingest(cfg, inner, dbs, prog) if cfg.embed_sample else None
        runs: list[dict] = []
        seconds_per_memory: float | None = None
        for n in memories:
            for s in scopes:
                if s > n:
                    runs.append({"memories": n, "scopes": s, "skipped": "more scopes than memories"})
                    continue
                if cfg.max_minutes is not None and seconds_per_memory is not None:
                    estimate = seconds_per_memory * n / 60.0
                    if estimate > cfg.max_minutes:
                        runs.append({"memories": n, "scopes": s, "skipped":
                                     f"estimated {estimate:.0f} min > --max-minutes {cfg.max_minutes:g}",
                                     "estimated_minutes": round(estimate, 1)})
                        continue
                t0 = time.time()
                made.append(_config_name(n, s))
                if cfg.isolate:
                    ctx = multiprocessing.get_context("spawn")
                    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
                        result = ex.submit(_run_config, cfg, n, s, dbs, str(pool_file), None).result()
                else:
                    result = _run_config(cfg, n, s, dbs, str(pool_file), inner)
                result["wall_seconds"] = round(time.time() - t0, 1)
                # Time per memory grows a little with N; the estimate keeps the worst seen.
                spm = result["wall_seconds"] / n
                seconds_per_memory = max(spm, seconds_per_memory or 0.0)
                runs.append(result)
        report["runs"] = runs
        report["growth"] = _growth(runs)
    finally:
        if owned or not cfg.keep:
            dbs.drop(made)
            Path(workdir / "pool.npz").unlink(missing_ok=True)
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)
    report["peak_rss_mb_parent"] = round(peak_rss_mb(), 1)
    report["wall_seconds"] = round(time.time() - started, 1)
    return report


def _prepare_pool(cfg: ScaleConfig, inner: Embedder, workdir: Path, prog: Any) -> tuple[Path, dict]:
    """Embed the sentence pool and the queries once; save them for the configuration processes."""
    pool_sentences = synth.sentences(cfg.pool, cfg.seed)
    queries = synth.questions(cfg.queries, cfg.seed)
    task = prog.add_task("embed pool", total=cfg.pool + cfg.queries)
    vecs: list[np.ndarray] = []
    t0 = time.perf_counter()
    for i in range(0, cfg.pool, 256):
        chunk = pool_sentences[i : i + 256]
        vecs.append(inner.embed(chunk))
        prog.advance(task, len(chunk))
    pool_seconds = time.perf_counter() - t0
    qvecs = inner.embed(queries)
    prog.advance(task, len(queries))
    path = workdir / "pool.npz"
    np.savez(path, pool=np.concatenate(vecs).astype(np.float32), queries=qvecs.astype(np.float32))
    words = sum(len(s.split()) for s in pool_sentences) / len(pool_sentences)
    return path, {
        "pool_sentences": cfg.pool,
        "mean_words_per_sentence": round(words, 1),
        "embed_seconds": round(pool_seconds, 2),
        "sentences_per_s": round(cfg.pool / pool_seconds, 1),
    }


EMBED_MODES = ("one_per_add", "batch_100")


def _embedder_ingest(cfg: ScaleConfig, inner: Embedder, dbs: BenchDatabases, prog: Any) -> dict:
    """Memories per second through `Memory.add` with the real embedder (fresh texts, empty cache)."""
    pool_sentences = synth.sentences(cfg.pool, cfg.seed)
    pairs = synth.PairIndex(cfg.pool, cfg.seed)
    # Texts from the far end of the pair sequence: never the ones the configurations store.
    start = pairs.space - 2 * cfg.embed_sample
    texts = [synth.memory_text(pool_sentences, *pairs.pair(start + i)) for i in range(2 * cfg.embed_sample)]
    out: dict[str, Any] = {"memories": cfg.embed_sample,
                           "mean_words": round(sum(len(t.split()) for t in texts) / len(texts), 1)}
    for mode, per_add, chunk_texts in zip(EMBED_MODES, (1, 100), (texts[: cfg.embed_sample],
                                                                   texts[cfg.embed_sample :])):
        mem = Memory(settings=dbs.fresh(_embed_name(mode)), embedder=inner)
        task = prog.add_task(f"Memory.add ({mode.replace('_', ' ')})", total=len(chunk_texts))
        rates: list[float] = []
        # `repeats` consecutive slices, each timed on its own; the figure is their median.
        slices = np.array_split(np.arange(len(chunk_texts)), max(1, cfg.repeats))
        try:
            for idx in slices:
                if len(idx) == 0:
                    continue
                t0 = time.perf_counter()
                for j in range(idx[0], idx[-1] + 1, per_add):
                    batch = chunk_texts[j : min(j + per_add, idx[-1] + 1)]
                    mem.add([{"role": "user", "content": t} for t in batch], user_id="embed-bench")
                    prog.advance(task, len(batch))
                rates.append(len(idx) / (time.perf_counter() - t0))
        finally:
            mem.close()
            dbs.drop([_embed_name(mode)])
        out[mode] = {"memories_per_s": round(median(rates) or 0.0, 1), "runs": [round(r, 1) for r in rates]}
    return out


# ---------------------------------------------------------------------- one configuration


def _scope_of(i: np.ndarray | int, scopes: int) -> Any:
    return i % scopes


def _user(s: int) -> str:
    return f"user-{s:05d}"


def _run_config(
    cfg: ScaleConfig, n: int, s: int, dbs: BenchDatabases, pool_file: str, embedder: Embedder | None
) -> dict:
    """Build one database of `n` memories over `s` scopes and measure it (runs in its own process)."""
    if cfg.blas_threads is None:
        return _measure_config(cfg, n, s, dbs, pool_file, embedder)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=cfg.blas_threads):
        return _measure_config(cfg, n, s, dbs, pool_file, embedder)


def _measure_config(
    cfg: ScaleConfig, n: int, s: int, dbs: BenchDatabases, pool_file: str, embedder: Embedder | None
) -> dict:
    settings = dbs.fresh(_config_name(n, s))
    data = np.load(pool_file)
    pool_vecs, query_vecs = data["pool"], data["queries"]
    pool_sentences = synth.sentences(cfg.pool, cfg.seed)
    queries = synth.questions(cfg.queries, cfg.seed)
    pairs = synth.PairIndex(cfg.pool, cfg.seed)
    inner = embedder or make_embedder(settings)
    mem = Memory(settings=settings, embedder=inner)
    model = inner.name
    dim = pool_vecs.shape[1]
    ids: list[str] = []
    put_seconds: list[float] = []
    result: dict[str, Any] = {"memories": n, "scopes": s, "memories_per_scope": n / s}
    with _progress(cfg.progress) as prog:
        task = prog.add_task(f"store.put N={n:,} S={s:,}", total=n)
        stamp = datetime.now(timezone.utc)
        for start in range(0, n, cfg.batch):
            stop = min(n, start + cfg.batch)
            a, b = pairs.pairs(start, stop)
            vectors = synth.pair_vectors(pool_vecs, a, b)
            times = synth.event_times(start, stop, cfg.seed)
            records = []
            for j, i in enumerate(range(start, stop)):
                scope = _scope_of(i, s)
                rec_id = new_id("episode")
                ids.append(rec_id)
                records.append(Episode.model_construct(
                    id=rec_id, kind="message", user_id=_user(scope), agent_id=None,
                    session_id=f"session-{(i // s) // 20}", role="user", speaker=None,
                    content=synth.memory_text(pool_sentences, int(a[j]), int(b[j])),
                    event_time=datetime.fromtimestamp(float(times[j]), timezone.utc),
                    created_at=stamp, updated_at=stamp, status="active", importance=0.5, sources=[], keywords=[],
                    entities=[], metadata={}, valid_from=None, valid_to=None,
                ))
            t0 = time.perf_counter()
            mem.store.put(records, vectors, model)
            put_seconds.append(time.perf_counter() - t0)
            prog.advance(task, stop - start)
        rates = [min(cfg.batch, n - k * cfg.batch) / t for k, t in enumerate(put_seconds)]
        result["ingest"] = {
            "seconds": round(sum(put_seconds), 2),
            "memories_per_s": round(n / sum(put_seconds), 1),
            "median_batch_memories_per_s": round(median(rates) or 0.0, 1),
            "first_batch_memories_per_s": round(rates[0], 1),
            "last_batch_memories_per_s": round(rates[-1], 1),
            "batch": cfg.batch,
        }
        # planner statistics, as an import leaves them (`Store.analyze`; autovacuum would get there later)
        mem.store.analyze()
        result["disk"] = _disk_bytes(mem, settings)
        result["disk"]["bytes_per_memory"] = round(result["disk"]["total_bytes"] / n, 1)

        rng = random.Random(f"memstrata-scale-queries-{cfg.seed}-{s}")
        q_scopes = [0 if s == 1 else rng.randrange(s) for _ in queries]
        filters = SearchFilters()
        q_terms = [lexical_terms(q) for q in queries]
        matrix_mb = n / s * dim * 4 / 2**20
        result["vector_matrix_mb_per_scope"] = round(matrix_mb, 1)
        result["matrix_fits_cache"] = matrix_mb <= settings.vector_cache_mb

        # First query of a scope loads its vectors from the database into memory.
        t0 = time.perf_counter()
        mem.store.vector_search(query_vecs[0], model, Scope(user_id=_user(q_scopes[0])), filters, TOP_K)
        result["first_vector_search_s"] = round(time.perf_counter() - t0, 3)

        task = prog.add_task("store searches", total=cfg.repeats * len(queries) * 2 + len(queries))
        vec_runs, lex_runs = [], []
        store_top: list[list[str]] = []
        for r in range(cfg.repeats):
            vt, lt = [], []
            for qi, q in enumerate(queries):
                scope = Scope(user_id=_user(q_scopes[qi]))
                t0 = time.perf_counter()
                hits = mem.store.vector_search(query_vecs[qi], model, scope, filters, TOP_K)
                vt.append(time.perf_counter() - t0)
                if r == 0:
                    store_top.append([h for h, _ in hits])
                t0 = time.perf_counter()
                mem.store.lexical_search(q_terms[qi], scope, filters, TOP_K)
                lt.append(time.perf_counter() - t0)
                prog.advance(task, 2)
            vec_runs.append(latency_summary(vt))
            lex_runs.append(latency_summary(lt))
        # Memory.search (hybrid: BM25 + dense, fused, records fetched); each query is new to this database,
        # so its embedding is computed by the model inside the timed call.
        ht = []
        for qi, q in enumerate(queries):
            t0 = time.perf_counter()
            mem.search(q, user_id=_user(q_scopes[qi]), limit=TOP_K)
            ht.append(time.perf_counter() - t0)
            prog.advance(task)
        result["search"] = {
            "store_vector": median_summary(vec_runs),
            "store_lexical": median_summary(lex_runs),
            "memory_search_hybrid": {**latency_summary(ht), "runs": 1, "note": "query embedding included"},
            **_after_writes(mem, model, n, q_scopes, q_terms, query_vecs, pool_vecs, pool_sentences, pairs, prog),
        }
        result["peak_rss_mb_store"] = round(peak_rss_mb(), 1)
        mem.close()
        if cfg.ann_expansion_search:
            result["ann"] = _measure_ann(cfg, settings, model, query_vecs, q_scopes, store_top, prog)
            for row in result["ann"]["by_ef"]:
                row["ann_over_store_exact_p50"] = ratio(row["vector"].get("p50_ms"), result["search"]["store_vector"]["p50_ms"])

        # Baseline: exact numpy scan over the same vectors, grouped by scope, in this process.
        order = np.concatenate([np.arange(k, n, s, dtype=np.int64) for k in range(s)])
        counts = np.array([len(range(k, n, s)) for k in range(s)])
        offsets = np.concatenate([[0], np.cumsum(counts)])
        matrix = np.empty((n, dim), dtype=np.float32)
        for lo in range(0, n, 100_000):
            rows = order[lo : lo + 100_000]
            matrix[lo : lo + len(rows)] = synth.pair_vectors(pool_vecs, *pairs.pairs_at(rows))
        base_runs = []
        agree: list[float] = []
        task = prog.add_task("numpy exact scan", total=cfg.repeats * len(queries))
        for r in range(cfg.repeats):
            bt = []
            for qi in range(len(queries)):
                k = q_scopes[qi]
                t0 = time.perf_counter()
                top = exact_top_k(matrix[offsets[k] : offsets[k + 1]], query_vecs[qi], TOP_K)
                bt.append(time.perf_counter() - t0)
                if r == 0:
                    want = {ids[int(order[offsets[k] + t])] for t in top}
                    agree.append(len(want & set(store_top[qi])) / max(1, len(want)))
                prog.advance(task)
            base_runs.append(latency_summary(bt))
        result["search"]["numpy_exact"] = median_summary(base_runs)
        result["search"]["store_vector_over_numpy_p50"] = ratio(
            result["search"]["store_vector"]["p50_ms"], result["search"]["numpy_exact"]["p50_ms"]
        )
        result["topk_agreement"] = round(float(np.mean(agree)), 4) if agree else None
        if "ann" in result:
            for row in result["ann"]["by_ef"]:
                row["ann_over_numpy_p50"] = ratio(row["vector"].get("p50_ms"), result["search"]["numpy_exact"]["p50_ms"])
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if not cfg.keep:
        dbs.drop([_config_name(n, s)])
    return result


def _after_writes(
    mem: Memory, model: str, n: int, q_scopes: list[int], q_terms: list[list[str]], query_vecs: np.ndarray,
    pool_vecs: np.ndarray, pool_sentences: list[str], pairs: synth.PairIndex, prog: Any,
) -> dict:
    """An agent's loop: one memory stored into the query's scope, then the store's searches of that scope
    (the first search after a write cannot use what was cached under the scope's previous version).
    The memories written are deleted afterwards."""
    put_t, vec_t, lex_t = [], [], []
    written: list[tuple[Scope, str]] = []
    filters = SearchFilters()
    task = prog.add_task("write, then search", total=len(q_scopes))
    stamp = datetime.now(timezone.utc)
    for qi in range(len(q_scopes)):
        i = n + qi  # beyond the ingested memories: new text pairs, new ids
        a, b = pairs.pairs(i, i + 1)
        scope = Scope(user_id=_user(q_scopes[qi]))
        record = Episode.model_construct(
            id=new_id("episode"), kind="message", user_id=scope.user_id, agent_id=None, session_id="session-new",
            role="user", speaker=None, content=synth.memory_text(pool_sentences, int(a[0]), int(b[0])),
            event_time=stamp, created_at=stamp, updated_at=stamp, status="active", importance=0.5, sources=[],
            keywords=[], entities=[], metadata={}, valid_from=None, valid_to=None,
        )
        t0 = time.perf_counter()
        mem.store.put([record], synth.pair_vectors(pool_vecs, a, b), model)
        t1 = time.perf_counter()
        mem.store.vector_search(query_vecs[qi], model, scope, filters, TOP_K)
        t2 = time.perf_counter()
        mem.store.lexical_search(q_terms[qi], scope, filters, TOP_K)
        t3 = time.perf_counter()
        put_t.append(t1 - t0)
        vec_t.append(t2 - t1)
        lex_t.append(t3 - t2)
        written.append((scope, record.id))
        prog.advance(task)
    for scope, rec_id in written:  # the store holds the N memories again for what is measured next
        mem.store.delete([rec_id], scope)
    return {
        "store_put_one": {**latency_summary(put_t), "runs": 1},
        "store_vector_after_write": {**latency_summary(vec_t), "runs": 1},
        "store_lexical_after_write": {**latency_summary(lex_t), "runs": 1},
    }


def _measure_ann(
    cfg: ScaleConfig, settings: Settings, model: str, query_vecs: np.ndarray, q_scopes: list[int],
    exact_top: list[list[str]], prog: Any,
) -> dict:
    """The store's ANN path forced on every queried scope (`ann_min_vectors=1`): build the indexes, load them
    from disk in a second store (when `ann_dir` saves them), then time the same vector queries at each ef,
    with recall@10 against the exact store's top 10."""
    ann_settings = settings.model_copy(update={"ann_min_vectors": 1,
                                               "ann_expansion_search": cfg.ann_expansion_search[0]})
    store = open_store(ann_settings)
    ann = store.ann  # type: ignore[attr-defined]
    filters = SearchFilters()
    out: dict[str, Any] = {"connectivity": CONNECTIVITY, "expansion_add": EXPANSION_ADD, "threads": ann.threads,
                           "ann_cache_mb": settings.ann_cache_mb, "by_ef": []}

    def index_all() -> tuple[float, float]:
        """Seconds of the first search of each scope (loads its matrix, schedules its index), then of the wait."""
        t0 = time.perf_counter()
        for k in sorted(set(q_scopes)):
            store.vector_search(query_vecs[0], model, Scope(user_id=_user(k)), filters, TOP_K)
        t1 = time.perf_counter()
        ann.wait()
        return round(t1 - t0, 2), round(time.perf_counter() - t1, 2)

    try:
        out["load_seconds"], out["wait_seconds"] = index_all()  # the build runs in the background
        stats = ann.stats()
        rows = sum(st["rows"] for st in stats)
        out.update({
            "indexes": len(stats), "rows": rows,
            "build_seconds": round(sum(st["build_seconds"] or 0.0 for st in stats), 3),
            "index_mb": round(sum(st["nbytes"] for st in stats) / 2**20, 1),
            "index_bytes_per_vector": round(sum(st["nbytes"] for st in stats) / rows, 1) if rows else None,
            "last_error": ann.last_error,
        })
        if ann.files is not None and ann.files.events["saved"]:  # a second store loads what the first saved
            out["saved_mb"] = round(sum(p.stat().st_size for p in ann.files.dir.iterdir()) / 2**20, 1)
            store.close()
            store = open_store(ann_settings)
            ann = store.ann  # type: ignore[attr-defined]
            out["reload_matrix_seconds"], out["reload_wait_seconds"] = index_all()
            stats = ann.stats()
            out.update({"reload_seconds": round(sum(st["load_seconds"] or 0.0 for st in stats), 3),
                        "loads": sum(st["loads"] for st in stats),
                        "builds_after_reload": sum(st["builds"] for st in stats), "reload_error": ann.last_error})
        task = prog.add_task("ANN searches", total=len(cfg.ann_expansion_search) * cfg.repeats * len(q_scopes))
        for ef in cfg.ann_expansion_search:
            ann.expansion_search = ef
            before = Counter(ann.paths)
            runs, recall = [], []
            for r in range(cfg.repeats):
                at = []
                for qi, k in enumerate(q_scopes):
                    t0 = time.perf_counter()
                    hits = store.vector_search(query_vecs[qi], model, Scope(user_id=_user(k)), filters, TOP_K)
                    at.append(time.perf_counter() - t0)
                    if r == 0:
                        recall.append(len({h for h, _ in hits} & set(exact_top[qi])) / max(1, len(exact_top[qi])))
                    prog.advance(task)
                runs.append(latency_summary(at))
            out["by_ef"].append({
                "expansion_search": ef, "vector": median_summary(runs),
                "recall_at_10": round(float(np.mean(recall)), 4) if recall else None,
                "paths": dict(Counter(ann.paths) - before),
            })
        out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    finally:
        store.close()
    return out


def exact_top_k(matrix: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the k largest dot products, best first (argpartition, then sort the k)."""
    scores = matrix @ query
    if k >= scores.size:
        return np.argsort(-scores, kind="stable")
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


def _growth(runs: list[dict]) -> list[dict]:
    """How each figure grows between consecutive N at the same S (ratio larger / smaller)."""
    done = [r for r in runs if "skipped" not in r]
    out = []
    for s in sorted({r["scopes"] for r in done}):
        rs = sorted((r for r in done if r["scopes"] == s), key=lambda r: r["memories"])
        for small, big in zip(rs, rs[1:]):
            out.append({
                "scopes": s,
                "from": small["memories"],
                "to": big["memories"],
                "memories": big["memories"] / small["memories"],
                "ingest_memories_per_s": ratio(big["ingest"]["memories_per_s"], small["ingest"]["memories_per_s"]),
                "disk_bytes": ratio(big["disk"]["total_bytes"], small["disk"]["total_bytes"]),
                "store_vector_p50": ratio(big["search"]["store_vector"]["p50_ms"], small["search"]["store_vector"]["p50_ms"]),
                "store_vector_p99": ratio(big["search"]["store_vector"]["p99_ms"], small["search"]["store_vector"]["p99_ms"]),
                "store_lexical_p50": ratio(big["search"]["store_lexical"]["p50_ms"], small["search"]["store_lexical"]["p50_ms"]),
                "memory_search_p50": ratio(big["search"]["memory_search_hybrid"]["p50_ms"],
                                           small["search"]["memory_search_hybrid"]["p50_ms"]),
                "numpy_exact_p50": ratio(big["search"]["numpy_exact"]["p50_ms"], small["search"]["numpy_exact"]["p50_ms"]),
                "peak_rss_mb": ratio(big["peak_rss_mb"], small["peak_rss_mb"]),
            })
    return out


# ---------------------------------------------------------------------- Markdown


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def scale_markdown(report: dict) -> str:
    """The report as Markdown tables."""
    out: list[str] = ["## Scale\n"]
    m = report.get("model") or {}
    out.append(f"Embedder {report['embedder']}: {_f(m.get('sentences_per_s'), 1)} sentences/s embedding the pool "
               f"({m.get('pool_sentences')} sentences, batches of 256).")
    e = report.get("embedder_ingest")
    if e:
        out.append(f"`Memory.add` with the real embedder ({e['memories']} memories of ~{e['mean_words']} words, "
                   f"medians of {len(e['one_per_add']['runs'])} runs): {_f(e['one_per_add']['memories_per_s'], 1)}/s "
                   f"one per add, {_f(e['batch_100']['memories_per_s'], 1)}/s in adds of 100.")
    store = ("Postgres (schemas memstrata_scale_*)" if report.get("store") == "postgres"
             else f"SQLite synchronous={report['sqlite_synchronous']}")
    out.append(f"Vector cache {report['vector_cache_mb']} MB; store: {store}; "
               f"BLAS threads for searches: {report['config'].get('blas_threads') or 'library default'}.\n")
    head = ["N", "scopes", "ingest /s", "disk MB", "B/memory", "vector p50/p95/p99 ms", "numpy p50/p95/p99 ms",
            "vector / numpy", "lexical p50/p99 ms", "Memory.search p50/p99 ms", "after a write: vector / lexical p50 ms",
            "top-10 agree", "peak RSS MB"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for r in report["runs"]:
        if "skipped" in r:
            out.append(f"| {r['memories']:,} | {r['scopes']:,} | skipped: {r['skipped']} |" + " |" * (len(head) - 3))
            continue
        sr = r["search"]
        v, nx, lx, h = sr["store_vector"], sr["numpy_exact"], sr["store_lexical"], sr["memory_search_hybrid"]
        out.append("| " + " | ".join([
            f"{r['memories']:,}", f"{r['scopes']:,}", _f(r["ingest"]["memories_per_s"], 0),
            _f(r["disk"]["total_bytes"] / 2**20, 1), _f(r["disk"]["bytes_per_memory"], 0),
            f"{_f(v['p50_ms'])} / {_f(v['p95_ms'])} / {_f(v['p99_ms'])}",
            f"{_f(nx['p50_ms'])} / {_f(nx['p95_ms'])} / {_f(nx['p99_ms'])}",
            _f(sr["store_vector_over_numpy_p50"]) + "x",
            f"{_f(lx['p50_ms'])} / {_f(lx['p99_ms'])}", f"{_f(h['p50_ms'])} / {_f(h['p99_ms'])}",
            f"{_f(sr.get('store_vector_after_write', {}).get('p50_ms'))} / "
            f"{_f(sr.get('store_lexical_after_write', {}).get('p50_ms'))}",
            _f(r["topk_agreement"], 3), _f(r["peak_rss_mb"], 0),
        ]) + " |")
    ann_rows = [(r, a) for r in report["runs"] if "ann" in r for a in r["ann"]["by_ef"]]
    if ann_rows:
        out.append("\n### ANN path (HNSW, usearch; forced on every queried scope)\n")
        head = ["N", "scopes", "ef", "ANN p50/p95/p99 ms", "exact store p50 ms", "numpy p50 ms", "ANN / numpy",
                "recall@10", "build s", "load from disk s", "index MB", "B/vector", "answered by"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for r, a in ann_rows:
            v, ix = a["vector"], r["ann"]
            out.append("| " + " | ".join([
                f"{r['memories']:,}", f"{r['scopes']:,}", str(a["expansion_search"]),
                f"{_f(v.get('p50_ms'))} / {_f(v.get('p95_ms'))} / {_f(v.get('p99_ms'))}",
                _f(r["search"]["store_vector"]["p50_ms"]), _f(r["search"]["numpy_exact"]["p50_ms"]),
                _f(a.get("ann_over_numpy_p50")) + "x", _f(a["recall_at_10"], 3), _f(ix["build_seconds"], 1),
                _f(ix.get("reload_seconds"), 1), _f(ix["index_mb"], 1), _f(ix["index_bytes_per_vector"], 0),
                ", ".join(f"{k} {n}" for k, n in sorted(a["paths"].items())),
            ]) + " |")
    if report.get("growth"):
        out.append("\n### Growth (larger N / smaller N, same scopes)\n")
        head = ["scopes", "N", "ingest /s", "disk", "vector p50", "vector p99", "lexical p50", "Memory.search p50",
                "numpy p50", "peak RSS"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for g in report["growth"]:
            out.append("| " + " | ".join([
                f"{g['scopes']:,}", f"{g['from']:,} -> {g['to']:,}", _f(g["ingest_memories_per_s"]) + "x",
                _f(g["disk_bytes"]) + "x", _f(g["store_vector_p50"]) + "x", _f(g["store_vector_p99"]) + "x",
                _f(g["store_lexical_p50"]) + "x", _f(g["memory_search_p50"]) + "x", _f(g["numpy_exact_p50"]) + "x",
                _f(g["peak_rss_mb"]) + "x",
            ]) + " |")
    mc = report["machine"]
    out.append(f"\n{mc['cores']} cores, {mc['memory_gib']} GiB; wall {report['wall_seconds']:.0f} s. Latencies are "
               f"medians over {report['config']['repeats']} passes of {report['config']['queries']} queries "
               "(Memory.search: one pass, every query new).")
    return "\n".join(out) + "\n"
