"""The records memstrata stores and returns.

Layers (strata): L0 `Episode` (verbatim turns/events/documents), L1 `Note`
(atomic facts), L2 `Topic` (summaries), L3 `ProfileFact` (durable knowledge).
All share one shape (`Record`) so one store table, one lexical index and one
vector index serve every layer; each subclass fixes its layer.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import IntEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import InvalidInput, ScopeRequired

MAX_SCOPE_ID_CHARS = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Layer(IntEnum):
    """The strata, from raw to abstract."""

    EPISODE = 0
    NOTE = 1
    TOPIC = 2
    PROFILE = 3


Status = Literal["active", "superseded", "archived"]


def _check_scope_id(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string, got {type(value).__name__}", field=name)
    if not value.strip():
        raise InvalidInput(f"{name} must not be empty", field=name)
    if len(value) > MAX_SCOPE_ID_CHARS:
        raise InvalidInput(f"{name} is {len(value)} characters; the limit is {MAX_SCOPE_ID_CHARS}", field=name)
    if _CONTROL.search(value):
        raise InvalidInput(f"{name} contains control characters", field=name)
    return value


class Scope(BaseModel):
    """Whose memory: a user, an agent, or both; optionally one session.

    Every read and write needs a user_id or an agent_id. A read matches the
    fields that are given: `Scope(user_id="ana")` sees Ana's memories from all
    agents and sessions; adding `session_id` narrows to one session.
    """

    model_config = ConfigDict(frozen=True)

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None

    def __init__(self, **data: Any) -> None:
        # Validate before pydantic does, so callers get our typed errors, not ValidationError.
        for key in ("user_id", "agent_id", "session_id"):
            _check_scope_id(key, data.get(key))
        if data.get("user_id") is None and data.get("agent_id") is None:
            raise ScopeRequired("a scope is required: pass user_id=... or agent_id=... (or both)", field="user_id")
        super().__init__(**data)

    @classmethod
    def of(cls, user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None) -> "Scope":
        """Build a scope, raising `ScopeRequired` / `InvalidInput` with a clear message."""
        return cls(user_id=user_id, agent_id=agent_id, session_id=session_id)

    def label(self) -> str:
        """Short human-readable form, e.g. ``user=ana agent=bot``."""
        parts = [f"{k}={v}" for k, v in (("user", self.user_id), ("agent", self.agent_id), ("session", self.session_id)) if v]
        return " ".join(parts)


class Record(BaseModel):
    """Fields every layer shares. Times are timezone-aware UTC datetimes."""

    model_config = ConfigDict(validate_assignment=False)

    layer: ClassVar[Layer]
    id: str
    kind: str
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    content: str
    #: When it happened or was said (the caller's timestamp, else ingestion time).
    event_time: datetime
    #: When memstrata stored it.
    created_at: datetime
    updated_at: datetime
    status: Status = "active"
    importance: float = 0.5
    #: Memory strength in [0, 1] at `last_access` (or `created_at`); it decays from there (see docs/lifecycle.md).
    strength: float = 1.0
    #: When a search last returned it (None: never).
    last_access: datetime | None = None
    #: Pinned memories never fade or expire.
    pinned: bool = False
    #: Ids of the records this one was derived from (empty for episodes).
    sources: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    entities: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    #: Speaker or author (episodes); empty for derived layers.
    role: str | None = None
    speaker: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    #: Identity of the statement for merging repeats (derived layers).
    dedup_key: str | None = None
    #: What the statement is about, e.g. "Ana|lives_in"; a newer one with the same slot supersedes.
    slot: str | None = None

    @property
    def scope(self) -> Scope:
        return Scope(user_id=self.user_id, agent_id=self.agent_id, session_id=self.session_id)

    @property
    def layer_value(self) -> int:
        return int(type(self).layer)

    @property
    def embedding_text(self) -> str:
        """The text this record is embedded and cached under: speaker (if any), then content."""
        return embedding_text(self.speaker, self.content)


#: Who "I" is in a message that names no speaker: notes say "The user moved to Lisbon", and a query in the
#: first person ("Where did I ...?") is about the user.
USER_LABEL = "the user"
ASSISTANT_LABEL = "the assistant"


def speaker_label(role: str | None, speaker: str | None) -> str | None:
    """The speaker's name, or for an unnamed turn the user or the assistant by its role."""
    if speaker:
        return speaker
    if role == "user":
        return USER_LABEL
    if role in ("assistant", "agent"):
        return ASSISTANT_LABEL
    return None


_SPEAKER_PREFIX = re.compile(r"^(?:[Tt]he (?:user|assistant)|[\w'’-]+): ")


def without_speaker(text: str) -> str:
    """A note's statement without the "Speaker: " a note opens with when it does not name its speaker
    ("Ana: It was great.", "The user: Our rent went up.")."""
    return _SPEAKER_PREFIX.sub("", text.strip())


def embedding_text(speaker: str | None, content: str) -> str:
    """``"Speaker: content"``, or the content alone when there is no speaker."""
    return f"{speaker}: {content}" if speaker else content


def text_hash(text: str) -> str:
    """Hex SHA-256 of a text (a record's `content_hash` is that of its embedding text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_key(user_id: str | None, agent_id: str | None, content_hash: str) -> str:
    """The embedding cache's key for a text one user/agent stored: vectors are cached per owner, so a
    fast (cached) add never tells one tenant what another has stored."""
    return text_hash(f"cache\x1f{user_id or ''}\x1f{agent_id or ''}\x1f{content_hash}")


class Episode(Record):
    """L0: one turn, event or document chunk, verbatim. Never rewritten by organising."""

    layer: ClassVar[Layer] = Layer.EPISODE
    kind: str = "message"


class Note(Record):
    """L1: an atomic fact or observation, with the episodes it came from and a validity interval."""

    layer: ClassVar[Layer] = Layer.NOTE
    kind: str = "fact"


class Topic(Record):
    """L2: a summary of a session, event or cluster; `sources` are its children."""

    layer: ClassVar[Layer] = Layer.TOPIC
    kind: str = "topic"


class ProfileFact(Record):
    """L3: durable knowledge about a user or agent, with supporting notes as sources."""

    layer: ClassVar[Layer] = Layer.PROFILE
    kind: str = "profile"


RECORD_TYPES: dict[int, type[Record]] = {
    Layer.EPISODE: Episode,
    Layer.NOTE: Note,
    Layer.TOPIC: Topic,
    Layer.PROFILE: ProfileFact,
}


class SearchFilters(BaseModel):
    """Restrictions applied inside the store, before ranking."""

    time_from: datetime | None = None
    time_to: datetime | None = None
    #: Exact-match filters on metadata keys (strings, numbers, booleans).
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)
    #: Layers to search; None means all.
    layers: list[int] | None = None
    #: Include superseded and archived records.
    include_inactive: bool = False
    #: Answer from what was valid at this time: valid_from (else event_time) <= as_of < valid_to,
    #: any status but archived. None: what is active now.
    as_of: datetime | None = None
    #: Also return archived (faded or expired) records.
    include_archived: bool = False
    #: Record kinds to search (e.g. ["experience"]); None means all.
    kinds: list[str] | None = None

    @field_validator("metadata")
    @classmethod
    def _keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", key):
                raise InvalidInput(
                    f"metadata filter key {key!r} must be 1-64 letters, digits, '_', '.' or '-'", field="filters"
                )
        return value

    def admits(self, record: "Record") -> bool:
        """Whether `record` passes these filters (the store applies the same rules in its queries)."""
        if self.layers is not None and record.layer_value not in self.layers:
            return False
        if self.kinds is not None and record.kind not in self.kinds:
            return False
        if self.time_from is not None and record.event_time < self.time_from:
            return False
        if self.time_to is not None and record.event_time > self.time_to:
            return False
        if not self.include_inactive:
            allowed = {"active", "superseded"} if self.as_of is not None else {"active"}
            if self.include_archived:
                allowed.add("archived")
            if record.status not in allowed:
                return False
        if self.as_of is not None and not valid_at(record, self.as_of):
            return False
        return all(record.metadata.get(k) == v for k, v in self.metadata.items())


def valid_at(record: "Record", at: datetime) -> bool:
    """valid_from (else event_time) <= at < valid_to; a superseded record without valid_to is never valid."""
    start = record.valid_from or record.event_time
    if start > at:
        return False
    if record.valid_to is None:
        return record.status != "superseded"
    return at < record.valid_to


class SlotState(BaseModel):
    """One state of a slot ("ana|lives_in"): the note that held it and when (resolution's view)."""

    id: str
    valid_from: datetime
    valid_to: datetime | None = None
    active: bool = True


class HistoryEvent(BaseModel):
    """One change to a record: created, updated, superseded, merged, archived, restored."""

    record_id: str
    event: str
    at: datetime
    old_content: str | None = None
    new_content: str | None = None
    actor: str = "api"
    detail: dict[str, Any] = Field(default_factory=dict)


class SearchHit(BaseModel):
    """One result of a search: the record, its fused score, and where it came from."""

    record: Record
    score: float
    #: Rank (1-based) of the record in each retriever that found it.
    ranks: dict[str, int] = Field(default_factory=dict)
    #: Episode ids the record traces back to (itself, for an episode).
    provenance: list[str] = Field(default_factory=list)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def content(self) -> str:
        return self.record.content


class ContextLine(BaseModel):
    """One line of a rendered memory block and the records behind it."""

    text: str
    record_id: str
    layer: int
    tokens: int
    provenance: list[str] = Field(default_factory=list)


class ContextBlock(BaseModel):
    """A memory block packed into a token budget, ready to put in a prompt."""

    query: str
    text: str
    lines: list[ContextLine]
    tokens: int
    budget_tokens: int

    def __str__(self) -> str:
        return self.text


class AddResult(BaseModel):
    """What an `add` stored."""

    episodes: list[Episode]
    #: Notes newly derived from the episodes.
    notes: list[Note] = Field(default_factory=list)
    #: Ids of stored notes the episodes repeated (their sources grew instead of a duplicate appearing).
    merged: list[str] = Field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        """Ids of the stored episodes."""
        return [e.id for e in self.episodes]


class Page(BaseModel):
    """One page of a listing; pass `next_cursor` back to get the next page."""

    items: list[Record]
    next_cursor: str | None = None


class ExperienceHit(BaseModel):
    """A past task like the one asked about: what was done, how it ended, and the lesson drawn from it."""

    #: The stored experience (an L1 record of kind "experience"; its source is the trajectory episode).
    record: Record
    score: float
    task: str
    steps: list[Any] = Field(default_factory=list)
    outcome: str
    feedback: str | None = None
    #: True: it worked; False: it failed (failures are kept: they teach what to avoid); None: unknown.
    success: bool | None = None
    #: The lesson consolidation distilled from it (None until `organise()` has run).
    lesson: str | None = None

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def label(self) -> str:
        """"succeeded", "failed" or "unknown"."""
        return {True: "succeeded", False: "failed", None: "unknown"}[self.success]
