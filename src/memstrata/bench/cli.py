"""`memstrata bench ...`: the benchmark commands (mounted by the main CLI as ``memstrata bench``).

Progress bars go to stderr; the Markdown table goes to stdout; the full report
goes to ``--out`` as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import MemstrataError

bench_app = typer.Typer(
    help="Benchmarks: evidence recall on LoCoMo against flat baselines, and scale (throughput, latency, size).",
    no_args_is_help=True,
    add_completion=False,
)


def _progress(quiet: bool) -> Progress | None:
    if quiet:
        return None
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )


def _ints(text: str, name: str, minimum: int = 1) -> list[int]:
    """``"100000,1000000"`` or ``"100k,1m"`` -> ints, each at least `minimum`."""
    out = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        if not part:
            continue
        mult = 1
        if part.endswith("k"):
            mult, part = 1_000, part[:-1]
        elif part.endswith("m"):
            mult, part = 1_000_000, part[:-1]
        try:
            value = int(float(part) * mult)
        except ValueError:
            raise typer.BadParameter(f"{name}: {part!r} is not a number (e.g. 250,500 or 100k,1m)") from None
        if value < minimum:
            raise typer.BadParameter(f"{name}: values must be at least {minimum}, got {value}")
        out.append(value)
    if not out:
        raise typer.BadParameter(f"{name}: give at least one value")
    return out


def _write(out: Optional[Path], report: dict) -> None:
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    Console(stderr=True).print(f"wrote {out}")


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)  # one line, never wrapped
    raise typer.Exit(code=2)


@bench_app.command("locomo")
def locomo_cmd(
    data: Path = typer.Option(..., "--data", help="LoCoMo JSON (a list of samples), e.g. locomo_dev.json"),
    budgets: str = typer.Option("250,500,1000,2000", help="Token budgets (whitespace tokens), comma-separated"),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the JSON report here (parent dirs are created)"),
    limit_conversations: Optional[int] = typer.Option(None, "--limit-conversations", min=1, help="Only the first N conversations"),
    recipes: str = typer.Option(
        "default,bm25-turns,dense-turns,hybrid-turns",
        help="Recipes to score: 'default' is memstrata's configured recipe; the baselines bm25-turns, dense-turns and "
        "hybrid-turns (reciprocal-rank fusion of the two) read turns only",
    ),
    db: Optional[Path] = typer.Option(None, "--db", help="Directory for the benchmark databases (default: a temporary one)"),
    batch_session: bool = typer.Option(False, "--batch-session", help="Add a whole session per add() call"),
    organise: bool = typer.Option(True, "--organise/--no-organise", help="Run organise() on each conversation after ingesting it"),
    answer: bool = typer.Option(False, "--answer", help="LLM answers from the block and from the full conversation; an LLM judge scores both"),
    answer_budget: Optional[int] = typer.Option(None, "--answer-budget", min=1, help="Budget of the block the LLM answers from (default: the largest)"),
    answer_limit: Optional[int] = typer.Option(None, "--answer-limit", min=1, help="Answer at most N questions per conversation"),
    per_question: bool = typer.Option(True, "--per-question/--no-per-question", help="Keep per-question results in the JSON"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars"),
) -> None:
    """Evidence recall of memory blocks on LoCoMo at each token budget, beside BM25 and dense baselines.

    The configured store is measured: SQLite files under --db, or, with MEMSTRATA_STORE=postgres,
    schemas memstrata_locomo_<name> of MEMSTRATA_POSTGRES_URL's database (dropped unless --db is given).
    """
    from .locomo import LocomoConfig, locomo_markdown, run_locomo

    llm = None
    if answer:
        from ..llm.openai_compat import llm_from_env

        try:
            llm = llm_from_env()
        except MemstrataError as exc:
            _fail(exc)
    cfg = LocomoConfig(
        data=data,
        budgets=_ints(budgets, "--budgets"),
        recipes=[r.strip() for r in recipes.split(",") if r.strip()],
        limit_conversations=limit_conversations,
        db_dir=db,
        batch_session=batch_session,
        organise=organise,
        answer=answer,
        answer_budget=answer_budget,
        answer_limit=answer_limit,
        per_question=per_question,
    )
    progress = _progress(quiet)
    try:
        if progress is not None:
            with progress:
                report = run_locomo(cfg, llm=llm, progress=progress)
        else:
            report = run_locomo(cfg, llm=llm)
    except MemstrataError as exc:
        _fail(exc)
    finally:
        if llm is not None:
            llm.close()
    _write(out, report)
    typer.echo(locomo_markdown(report))


@bench_app.command("scale")
def scale_cmd(
    memories: str = typer.Option("2000,10000", help="Memory counts N, comma-separated (100k and 1m are accepted)"),
    scopes: str = typer.Option("1,100", help="Scope counts S: N memories spread over S scopes, comma-separated"),
    queries: int = typer.Option(200, min=1, help="Search queries timed per configuration"),
    repeats: int = typer.Option(3, min=1, help="Timed passes over the queries (figures are medians of the passes)"),
    embed_sample: int = typer.Option(500, "--embed-sample", min=0, help="Memories ingested with the real embedder to time it (0: skip)"),
    pool: int = typer.Option(4000, min=10, help="Distinct sentences embedded once; memories pair them (see docs/benchmarks.md)"),
    seed: int = typer.Option(7, help="Seed of the synthetic text"),
    batch: int = typer.Option(5000, min=1, help="Records per store.put when ingesting precomputed vectors"),
    vector_cache_mb: Optional[int] = typer.Option(None, "--vector-cache-mb", help="Settings.vector_cache_mb for the runs (default: the setting's default)"),
    blas_threads: int = typer.Option(1, "--blas-threads", min=0, help="BLAS threads for the searches, store and numpy alike (0: library default)"),
    ann_ef: str = typer.Option("128", "--ann-ef", help="HNSW search beams (ef) at which the ANN path is measured, comma-separated (0: skip it)"),
    ann_cache_mb: Optional[int] = typer.Option(None, "--ann-cache-mb", help="Settings.ann_cache_mb for the ANN measurement (default: the setting's default)"),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Skip a configuration whose estimated ingest time exceeds this"),
    db: Optional[Path] = typer.Option(None, "--db", help="Directory for the benchmark's files and SQLite databases (default: a temporary one; "
                                    "on Postgres the databases are schemas memstrata_scale_*)"),
    keep: bool = typer.Option(False, "--keep", help="Keep the databases (with --db)"),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the JSON report here (parent dirs are created)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars"),
) -> None:
    """Ingest throughput, search latency, size on disk and memory at N memories, beside an exact numpy scan."""
    from .scale import ScaleConfig, run_scale, scale_markdown

    cfg = ScaleConfig(
        memories=_ints(memories, "--memories"),
        scopes=_ints(scopes, "--scopes"),
        queries=queries,
        repeats=repeats,
        embed_sample=embed_sample,
        pool=pool,
        seed=seed,
        batch=batch,
        vector_cache_mb=vector_cache_mb,
        max_minutes=max_minutes,
        blas_threads=blas_threads or None,
        ann_expansion_search=[ef for ef in _ints(ann_ef, "--ann-ef", minimum=0) if ef > 0],
        ann_cache_mb=ann_cache_mb,
        db_dir=db,
        keep=keep,
        progress=not quiet,
    )
    try:
        report = run_scale(cfg)
    except MemstrataError as exc:
        _fail(exc)
    _write(out, report)
    typer.echo(scale_markdown(report))


def main() -> Any:  # pragma: no cover - `python -m memstrata.bench.cli`
    return bench_app()



def _mount_serve() -> None:
    """`memstrata bench serve`, when the server extra is installed."""
    try:
        from ..server.cli import bench_serve_command
    except ImportError:  # fastapi/uvicorn missing: the other benchmarks still work
        return
    bench_app.command("serve", help="Load test of the REST server on loopback (requests/s, p50/p95/p99).")(
        bench_serve_command
    )


_mount_serve()

if __name__ == "__main__":  # pragma: no cover
    main()
