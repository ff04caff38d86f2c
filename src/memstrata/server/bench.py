"""`memstrata bench serve`: a bounded load test of the REST server on loopback.

Starts a server (fresh temporary database, `workers` processes, a tenant key), stores
`seed_memories` memories, then for each concurrency level runs a fixed number of `add`
and `search` requests from that many concurrent clients and reports requests/s and
p50/p95/p99 latency. Bounded twice: a fixed request count per level, and a time cap per
operation and level. Client and server share the machine, so the figures are a floor.
"""

from __future__ import annotations

import asyncio
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import httpx

from .. import __version__

SECTION = "## REST server (bench serve)"

_WORDS = (
    "Lisbon Porto Berlin Kyoto garden hiking piano violin sister brother coffee tea marathon novel painting "
    "dentist meeting project deadline birthday wedding concert museum recipe bakery train flight hotel beach "
    "mountain river dog cat job interview promotion school course exam library guitar football tennis chess"
).split()
_VERBS = ("visited", "likes", "talked about", "plans to see", "finished", "started", "forgot", "bought", "loves")
_NAMES = ("Ana", "Ben", "Caroline", "Dev", "Eli", "Fatima", "Gus", "Hana")


def _sentence(rng: random.Random) -> str:
    return (f"{rng.choice(_NAMES)} {rng.choice(_VERBS)} the {rng.choice(_WORDS)} near the {rng.choice(_WORDS)} "
            f"with a friend from the {rng.choice(_WORDS)} club")


def _query(rng: random.Random) -> str:
    return f"what did {rng.choice(_NAMES)} say about the {rng.choice(_WORDS)}?"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


async def _run_level(
    client: httpx.AsyncClient, op: str, concurrency: int, requests: int, time_cap: float, rng: random.Random
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = 0
    deadline = time.perf_counter() + time_cap

    def next_body() -> dict[str, Any] | None:
        nonlocal issued
        if issued >= requests or time.perf_counter() > deadline:
            return None
        issued += 1
        if op == "add":
            return {"messages": [{"role": "user", "content": _sentence(rng)}], "user_id": "bench"}
        return {"query": _query(rng), "user_id": "bench", "limit": 10}

    path = "/v1/memories" if op == "add" else "/v1/search"

    async def worker() -> None:
        while (body := next_body()) is not None:
            start = time.perf_counter()
            try:
                response = await client.post(path, json=body)
                status = response.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            elapsed = time.perf_counter() - start
            if status in (200, 201):
                latencies.append(elapsed)
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - began
    ok = len(latencies)
    return {
        "op": op,
        "concurrency": concurrency,
        "requests": issued,
        "ok": ok,
        "errors": errors,
        "seconds": round(wall, 3),
        "rps": round(ok / wall, 1) if wall > 0 else 0.0,
        "p50_ms": round(percentile(latencies, 50) * 1000, 1) if ok else None,
        "p95_ms": round(percentile(latencies, 95) * 1000, 1) if ok else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 1) if ok else None,
        "capped": issued < requests,
    }


async def _bench(url: str, token: str, levels: Sequence[int], requests: int, seed_memories: int, time_cap: float,
                 log: Callable[[str], None]) -> list[dict[str, Any]]:
    rng = random.Random(7)
    limits = httpx.Limits(max_connections=max(levels) + 4, max_keepalive_connections=max(levels) + 4)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120,
                                 limits=limits) as client:
        for start in range(0, seed_memories, 100):  # seed in batches of 100 messages
            batch = [{"role": "user", "content": _sentence(rng)} for _ in range(min(100, seed_memories - start))]
            response = await client.post("/v1/memories", json={"messages": batch, "user_id": "bench"})
            response.raise_for_status()
        log(f"seeded {seed_memories} memories")
        results = []
        for concurrency in levels:
            for op in ("search", "add"):
                row = await _run_level(client, op, concurrency, requests, time_cap, rng)
                log(f"{op:6} x{concurrency:<3} {row['rps']:>7} req/s  p50 {row['p50_ms']} ms  p95 {row['p95_ms']} ms  "
                    f"p99 {row['p99_ms']} ms  errors {row['errors'] or 0}")
                results.append(row)
        return results


def bench_serve(
    *,
    levels: Sequence[int] = (1, 8, 32),
    requests: int = 200,
    workers: int = 2,
    seed_memories: int = 500,
    time_cap: float = 60.0,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Run the load test against a fresh server on 127.0.0.1; returns the report (rows per op and level)."""
    from .keys import KeyStore
    from .launch import server_process

    load = _loadavg()
    with tempfile.TemporaryDirectory(prefix="memstrata-bench-serve-") as tmp:
        db = Path(tmp) / "bench.db"
        keys = KeyStore(Path(tmp) / "bench.keys.db")
        token = keys.create(tenant="bench").token
        keys.close()
        with server_process(db=db, keys_db=Path(tmp) / "bench.keys.db", workers=workers) as server:
            log(f"server up at {server.url} with {workers} worker(s)")
            rows = asyncio.run(_bench(server.url, token, levels, requests, seed_memories, time_cap, log))
    return {
        "memstrata": __version__,
        "machine": f"{platform.machine()}, {_cpus()} CPU(s), Python {platform.python_version()}",
        "workers": workers,
        "requests_per_level": requests,
        "seed_memories": seed_memories,
        "time_cap_s": time_cap,
        "date": time.strftime("%Y-%m-%d"),
        "load_average": load,
        "cpus": _cpus(),
        "rows": rows,
    }


def _loadavg() -> float | None:
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def render_markdown(report: dict[str, Any]) -> str:
    """The section for docs/benchmarks.md: how it was run, then one row per operation and level."""
    lines = [
        SECTION,
        "",
        f"`memstrata bench serve` on {report['date']}: memstrata {report['memstrata']}, {report['machine']}"
        + (f" (load average {report['load_average']} at the start)" if report.get("load_average") is not None else "")
        + "; "
        f"{report['workers']} uvicorn worker(s) on one SQLite file (WAL, synchronous=FULL), the bundled MiniLM "
        f"embedder, {report['seed_memories']} memories stored first. Each row is {report['requests_per_level']} "
        f"requests (capped at {report['time_cap_s']:.0f} s) from that many concurrent clients over loopback "
        "keep-alive connections, the load generator running on the same machine. `add` stores one message "
        "(embedding, note extraction, one fsync'd transaction); `search` is the default hybrid recipe, limit 10.",
        "",
        "| operation | clients | requests/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        errors = sum(row["errors"].values()) if row["errors"] else 0
        capped = " (time cap)" if row.get("capped") else ""
        lines.append(
            f"| {row['op']} | {row['concurrency']} | {row['rps']}{capped} | {row['p50_ms']} | {row['p95_ms']} "
            f"| {row['p99_ms']} | {errors} |"
        )
    load, cpus = report.get("load_average"), report.get("cpus")
    if load is not None and cpus and load > cpus:
        lines += ["", f"The machine was busy with other work during this run (load average {load} on {cpus} CPUs), "
                      "so read these figures as floors."]
    levels = ",".join(str(n) for n in dict.fromkeys(r["concurrency"] for r in report["rows"]))
    lines += ["", f"Reproduce: `memstrata bench serve --levels {levels} --requests {report['requests_per_level']} "
                  f"--workers {report['workers']} --seed {report['seed_memories']} --docs docs/benchmarks.md`.", ""]
    return "\n".join(lines)


def write_section(path: str | Path, section: str) -> None:
    """Put `section` into the Markdown file: replace the existing section of that name, else append it at the end.

    The file is re-read right before writing, and only the lines from SECTION to the next
    '## ' heading change, so the rest of the file (written by others) is left as it is.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    new = section.rstrip("\n").splitlines()
    if start is None:
        out = text.rstrip("\n") + ("\n\n" if text.strip() else "") + "\n".join(new) + "\n"
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        tail = lines[end:]
        out = "\n".join(lines[:start] + new + ([""] if tail else []) + tail).rstrip("\n") + "\n"
    path.write_text(out, encoding="utf-8")
