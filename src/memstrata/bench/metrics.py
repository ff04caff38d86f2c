"""Pure scoring and timing helpers shared by the benchmarks (no I/O, no models).

Evidence recall of one memory block: the share of a question's evidence turns
whose content the block carries. A block line carries the turns named by its
provenance: an episode line carries its own turn, a note or summary line carries
every turn it names as a source. Provenance ids are episode ids; a map from
episode id to the benchmark's turn id (LoCoMo `dia_id`) translates them.
"""

from __future__ import annotations

import math
import resource
import sys
from dataclasses import dataclass, field
from typing import Collection, Iterable, Mapping, Sequence


@dataclass(frozen=True)
class EvidenceScore:
    """Evidence coverage of one block for one question."""

    #: Evidence turn ids the block carries.
    found: frozenset[str]
    #: Evidence turn ids scored (resolved ids only; see `evidence_recall`).
    evidence: frozenset[str]

    @property
    def total(self) -> int:
        return len(self.evidence)

    @property
    def recall(self) -> float | None:
        """Share of evidence found; None when the question has no evidence to score."""
        return len(self.found) / len(self.evidence) if self.evidence else None

    @property
    def complete(self) -> bool | None:
        """All evidence found; None when there is none."""
        return self.found == self.evidence if self.evidence else None


def turns_carried(line_provenance: Iterable[Iterable[str]], episode_to_turn: Mapping[str, str]) -> set[str]:
    """Turn ids carried by a block, given each line's provenance (episode ids).

    Provenance ids absent from `episode_to_turn` (not episodes of this benchmark) carry nothing.
    """
    carried: set[str] = set()
    for prov in line_provenance:
        for episode_id in prov:
            turn = episode_to_turn.get(episode_id)
            if turn is not None:
                carried.add(turn)
    return carried


def evidence_recall(
    line_provenance: Iterable[Iterable[str]],
    evidence: Collection[str],
    episode_to_turn: Mapping[str, str],
) -> EvidenceScore:
    """Score one block against one question's evidence.

    `evidence` holds resolved turn ids only: evidence ids that name no turn of the
    conversation ("D10:19" in a session of 18 turns, a bare "D") are reported by the
    benchmark and left out of the denominator, because no memory system could ever
    return them; repaired ids ("D:11:26" -> "D11:26") are scored like any other.
    """
    wanted = frozenset(evidence)
    carried = turns_carried(line_provenance, episode_to_turn)
    return EvidenceScore(found=frozenset(wanted & carried), evidence=wanted)


def evidence_recall_strict(
    lines: Iterable[tuple[int, str, Iterable[str]]],
    evidence: Collection[str],
    episode_to_turn: Mapping[str, str],
    turn_notes: Mapping[str, Collection[str]],
) -> EvidenceScore:
    """A stricter reading: a turn is carried when it is shown verbatim, or when *every* note derived
    from it is shown (a note is often one sentence of a longer turn, and the evidence may sit in
    another sentence).

    `lines` are (layer, record id, provenance) triples; `turn_notes` maps a turn id to the ids of the
    active notes derived from it. Lines of higher layers (topics, profile) earn no strict credit.
    """
    lines = list(lines)
    carried = turns_carried((prov for layer, _, prov in lines if layer == 0), episode_to_turn)
    shown_notes = {rid for layer, rid, _ in lines if layer == 1}
    for turn in turns_carried((prov for layer, _, prov in lines if layer == 1), episode_to_turn):
        notes = turn_notes.get(turn)
        if notes and set(notes) <= shown_notes:
            carried.add(turn)
    wanted = frozenset(evidence)
    return EvidenceScore(found=frozenset(wanted & carried), evidence=wanted)


@dataclass
class RecallAggregate:
    """Running means of recall, complete-evidence share and tokens over questions."""

    n: int = 0
    recall_sum: float = 0.0
    complete: int = 0
    tokens_sum: int = 0
    #: Questions asked but not scored (no resolvable evidence).
    unscored: int = 0

    def add(self, score: EvidenceScore, tokens: int) -> None:
        self.tokens_sum += tokens
        if score.recall is None:
            self.unscored += 1
            return
        self.n += 1
        self.recall_sum += score.recall
        self.complete += int(bool(score.complete))

    def as_dict(self) -> dict:
        asked = self.n + self.unscored
        return {
            "questions": self.n,
            "unscored": self.unscored,
            "recall": self.recall_sum / self.n if self.n else None,
            "all_found": self.complete / self.n if self.n else None,
            "mean_tokens": self.tokens_sum / asked if asked else None,
        }


def answer_words(block_words: Collection[str], answer_terms: Collection[str]) -> float | None:
    """Share of the reference answer's content words that the block's text contains (None for an answer
    with none): whether the words an answer needs are in front of the reader, beside whether the turns are."""
    wanted = set(answer_terms)
    return len(wanted & set(block_words)) / len(wanted) if wanted else None


@dataclass
class MeanAggregate:
    """A running mean that skips None."""

    n: int = 0
    total: float = 0.0

    def add(self, value: float | None) -> None:
        if value is not None:
            self.n += 1
            self.total += value

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(xs[lo])
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def latency_summary(seconds: Sequence[float]) -> dict:
    """p50/p95/p99 and mean in milliseconds, with the sample count."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "mean_ms": sum(ms) / len(ms) if ms else None,
    }


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


def median_summary(runs: Sequence[dict]) -> dict:
    """Per-key median of several `latency_summary` dicts (repeated runs of the same measurement)."""
    if not runs:
        return {}
    out: dict = {"runs": len(runs), "n": runs[0].get("n")}
    for key in ("p50_ms", "p95_ms", "p99_ms", "mean_ms"):
        vals = [r[key] for r in runs if r.get(key) is not None]
        out[key] = median(vals)
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass
class Timer:
    """Collects wall-clock samples of one named operation."""

    samples: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)

    def summary(self) -> dict:
        return latency_summary(self.samples)


def machine_info() -> dict:
    """Cores, memory, OS and library versions of the machine a benchmark ran on."""
    import os
    import platform

    import numpy as np

    mem_bytes = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_bytes = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_bytes / 2**30, 1) if mem_bytes else None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sqlite": __import__("sqlite3").sqlite_version,
        "load_average_at_start": [round(x, 2) for x in load] if load else None,
    }
