"""Reading LoCoMo conversations (Maharana et al., ACL 2024) into messages and questions.

Only the dialogue, its session dates and the QA are read. The authors'
`session_summary`, `event_summary` and `observation` fields are never read:
a memory system under test builds its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..timeutil import MONTHS

_SESSION_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*([ap]m)\s+on\s+(\d{1,2})\s+([A-Za-z]+),?\s+(\d{4})\s*$", re.I)
_MONTHS = {m: i for i, m in enumerate(MONTHS, start=1)}
_DIA_ID = re.compile(r"^D(\d+):(\d+)$")

CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


@dataclass
class Turn:
    """One dialogue turn."""

    dia_id: str
    session: int
    speaker: str
    text: str
    timestamp: datetime
    image_caption: str | None = None

    def message(self) -> dict[str, Any]:
        """The turn as a message dict for `Memory.add` (the shared photo's caption appended)."""
        content = self.text
        if self.image_caption:
            content = f"{content} [shares a photo: {self.image_caption}]".strip()
        return {
            "role": "user",
            "speaker": self.speaker,
            "content": content,
            "timestamp": self.timestamp,
            "metadata": {"dia_id": self.dia_id, "session": self.session},
        }


@dataclass
class Question:
    """One QA item; `evidence` holds well-formed turn ids that exist in the conversation."""

    question: str
    answer: str
    category: int
    evidence: list[str]
    #: Evidence ids as written in the data.
    raw_evidence: list[str] = field(default_factory=list)
    #: Raw ids that were repaired, as (raw, repaired) pairs.
    repaired: list[tuple[str, str]] = field(default_factory=list)
    #: Raw ids that name no turn of the conversation.
    unresolved: list[str] = field(default_factory=list)


@dataclass
class Conversation:
    """One LoCoMo sample."""

    sample_id: str
    speaker_a: str
    speaker_b: str
    turns: list[Turn]
    questions: list[Question]
    session_times: dict[int, datetime]

    def session_id(self, session: int) -> str:
        return f"{self.sample_id}/session-{session}"


def parse_session_time(text: str) -> datetime:
    """``"1:56 pm on 8 May, 2023"`` -> an aware UTC datetime (LoCoMo dates carry no zone)."""
    m = _SESSION_TIME.match(text)
    if not m:
        raise InvalidInput(f"LoCoMo session time {text!r} is not like '1:56 pm on 8 May, 2023'")
    hour, minute, ampm, day, month, year = m.groups()
    month_no = _MONTHS.get(month.lower())
    if month_no is None:
        raise InvalidInput(f"LoCoMo session time {text!r} has an unknown month {month!r}")
    h = int(hour) % 12 + (12 if ampm.lower() == "pm" else 0)
    return datetime(int(year), month_no, int(day), h, int(minute), tzinfo=timezone.utc)


def normalise_evidence(raw: str, known: set[str]) -> tuple[list[str], list[str]]:
    """Map one raw evidence string to known turn ids; returns (ids, unresolved parts).

    Repairs seen in the data: several ids in one string ("D8:6; D9:17"), a stray
    colon ("D:11:26"), zero-padded numbers ("D30:05").
    """
    ids: list[str] = []
    bad: list[str] = []
    for part in re.split(r"[;,\s]+", raw.strip()):
        if not part:
            continue
        nums = re.findall(r"\d+", part)
        if part.startswith("D") and len(nums) == 2:
            candidate = f"D{int(nums[0])}:{int(nums[1])}"
            if candidate in known:
                ids.append(candidate)
                continue
        bad.append(part)
    return ids, bad


def _turns(conv: dict[str, Any]) -> tuple[list[Turn], dict[int, datetime]]:
    turns: list[Turn] = []
    times: dict[int, datetime] = {}
    sessions = sorted(
        int(k.split("_")[1]) for k in conv if re.fullmatch(r"session_\d+", k) and isinstance(conv[k], list)
    )
    for n in sessions:
        when = parse_session_time(conv[f"session_{n}_date_time"])
        times[n] = when
        for turn in conv[f"session_{n}"]:
            turns.append(
                Turn(
                    dia_id=turn["dia_id"],
                    session=n,
                    speaker=turn["speaker"],
                    text=turn.get("text", ""),
                    timestamp=when,
                    image_caption=turn.get("blip_caption"),
                )
            )
    return turns, times


def parse_sample(sample: dict[str, Any]) -> Conversation:
    """One LoCoMo sample dict -> `Conversation` (summaries and observations are ignored)."""
    try:
        return _parse_sample(sample)
    except InvalidInput:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        name = sample.get("sample_id", "?") if isinstance(sample, dict) else "?"
        raise InvalidInput(f"LoCoMo sample {name}: malformed ({type(exc).__name__}: {exc})") from None


def _parse_sample(sample: dict[str, Any]) -> Conversation:
    conv = sample["conversation"]
    turns, times = _turns(conv)
    known = {t.dia_id for t in turns}
    questions: list[Question] = []
    for qa in sample.get("qa", []):
        raw = [str(e) for e in qa.get("evidence", [])]
        ids: list[str] = []
        repaired: list[tuple[str, str]] = []
        unresolved: list[str] = []
        for r in raw:
            got, bad = normalise_evidence(r, known)
            for g in got:
                if g not in ids:
                    ids.append(g)
            if got and (len(got) > 1 or got[0] != r):
                repaired.append((r, "; ".join(got)))
            unresolved += bad
        questions.append(
            Question(
                question=qa["question"],
                answer=str(qa.get("answer", qa.get("adversarial_answer", ""))),
                category=int(qa["category"]),
                evidence=ids,
                raw_evidence=raw,
                repaired=repaired,
                unresolved=unresolved,
            )
        )
    return Conversation(
        sample_id=str(sample.get("sample_id", "conv")),
        speaker_a=conv.get("speaker_a", ""),
        speaker_b=conv.get("speaker_b", ""),
        turns=turns,
        questions=questions,
        session_times=times,
    )


def load_locomo(path: str | Path) -> list[Conversation]:
    """Read a LoCoMo JSON file (a list of samples, or one sample)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{p} does not exist") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{p} is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(s, dict) and "conversation" in s for s in data):
        raise InvalidInput(f"{p} is not in LoCoMo format (a list of samples with a 'conversation' key)")
    return [parse_sample(s) for s in data]
