"""Request and response bodies of the REST API (they are the OpenAPI schema).

Bodies are checked twice: shape here (pydantic, 422 on a wrong type), meaning in
`Memory` (its typed errors: 413 for size limits, 422 for bad values). Text limits
are described here but enforced by `Memory`, so an oversize text is a 413, not a 422.
"""

from __future__ import annotations

from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from .. import limits
from ..model import ContextBlock, HistoryEvent, Record

# strict: a JSON true/false is not a time (lax float would take it as 0.0)
Timestamp = Union[StrictStr, StrictInt, StrictFloat]
_SCOPE_ID = "a user id; ids are per tenant. Needs user_id or agent_id (or both)."

# Limits written into the schema for clients and fuzzers, but enforced by `Memory` (so an oversize
# text answers 413 content_too_large, not a schema 422). Ids: no control characters, not blank,
# at most 256 characters including the tenant name and a separator (191 is safe for any tenant).
_ID_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
_TEXT_PATTERN = r"^[^\x00]*\S[^\x00]*$"
ID_SCHEMA: dict[str, Any] = {"minLength": 1, "maxLength": 191, "pattern": _ID_PATTERN}


def text_schema(max_chars: int) -> dict[str, Any]:
    """Schema-only constraints of a text: not blank, no NUL, at most `max_chars` characters."""
    return {"minLength": 1, "maxLength": max_chars, "pattern": _TEXT_PATTERN}


def _reject_surrogates(value: Any, depth: int = 0) -> None:
    """Lone UTF-16 surrogates survive JSON decoding but cannot be stored as UTF-8: refuse them here."""
    if depth > 64:
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text contains a lone UTF-16 surrogate; send valid Unicode") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _reject_surrogates(k, depth + 1)
            _reject_surrogates(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _reject_surrogates(v, depth + 1)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        _reject_surrogates(data)
        return data


class ScopeBody(_Body):
    user_id: str | None = Field(None, description=_SCOPE_ID, examples=["ana"], json_schema_extra=ID_SCHEMA)
    agent_id: str | None = Field(
        None, description="an agent id; reads match records of this agent", json_schema_extra=ID_SCHEMA
    )
    session_id: str | None = Field(
        None, description="narrows to one session (reads) or labels the session (add)",
        json_schema_extra={**ID_SCHEMA, "maxLength": 256},
    )


class Message(_Body):
    """One message; `content` is required."""

    content: str = Field(
        description=f"the text, at most {limits.MAX_CONTENT_CHARS:,} characters (413 above)",
        json_schema_extra=text_schema(limits.MAX_CONTENT_CHARS),
    )
    role: str | None = Field(
        None, description="user, assistant, system, tool, ... (default: user for a message, none for another kind)")
    name: str | None = Field(None, description="speaker name (alias of speaker)")
    speaker: str | None = None
    timestamp: Timestamp | None = Field(None, description="when it was said: ISO 8601 or epoch seconds")
    metadata: dict[str, Any] | None = None
    kind: str | None = Field(None, description="message (default), event, document, ...")


class AddRequest(ScopeBody):
    messages: Union[str, Message, list[Union[str, Message]]] = Field(
        description=f"a text, a message, or a list of them (at most {limits.MAX_ITEMS_PER_ADD:,}; 413 above)",
        json_schema_extra={"minItems": 1, "maxItems": limits.MAX_ITEMS_PER_ADD, **text_schema(limits.MAX_CONTENT_CHARS)},
    )
    timestamp: Timestamp | None = Field(None, description="default event time for every message")
    metadata: dict[str, Any] | None = Field(
        None, description=f"metadata for every message, at most {limits.MAX_METADATA_BYTES:,} bytes as JSON"
    )
    importance: StrictFloat | None = Field(
        None, ge=0, le=1, description="0..1: how slowly these memories (and notes drawn from them) fade; default 0.5"
    )


class _QueryBody(ScopeBody):
    query: str = Field(
        description=f"what to look for, at most {limits.MAX_QUERY_CHARS:,} characters (413 above)",
        json_schema_extra=text_schema(limits.MAX_QUERY_CHARS),
    )
    time_from: Timestamp | None = Field(None, description="earliest event time (ISO 8601 or epoch seconds)")
    time_to: Timestamp | None = Field(None, description="latest event time")
    filters: dict[str, Union[str, int, float, bool]] | None = Field(
        None, description="exact match on metadata keys (keys: 1-64 of A-Z a-z 0-9 _ . -)"
    )
    recipe: str | None = Field(None, description="retrieval recipe: hybrid (default), bm25, dense")
    as_of: Timestamp | None = Field(
        None, description="answer from what was valid then (superseded memories included); default now"
    )
    reference_time: Timestamp | None = Field(
        None, description="when the query is asked, for the time it names ('last week'); default as_of, else now"
    )
    include_archived: StrictBool = Field(False, description="also return archived (faded, expired) memories")


class SearchRequest(_QueryBody):
    limit: StrictInt = Field(10, ge=1, le=limits.MAX_LIMIT, description="how many hits")
    layers: list[StrictInt] | None = Field(None, description="0 episodes, 1 notes, 2 topics, 3 profile; default all")
    reinforce: StrictBool = Field(True, description="returned memories fade more slowly (retrieval is use); false to just look")

    @model_validator(mode="after")
    def _layers(self) -> "SearchRequest":
        if self.layers is not None and any(not 0 <= x <= 3 for x in self.layers):
            raise ValueError("layers are 0 (episodes), 1 (notes), 2 (topics), 3 (profile)")
        return self


class ContextRequest(_QueryBody):
    budget_tokens: StrictInt = Field(1000, ge=1, le=limits.MAX_BUDGET_TOKENS, description="size of the block (whitespace tokens)")
    reinforce: StrictBool = Field(True, description="memories the block shows fade more slowly (retrieval is use); false to just look")


class UpdateRequest(_Body):
    user_id: str | None = Field(None, description=_SCOPE_ID, json_schema_extra=ID_SCHEMA)
    agent_id: str | None = Field(None, description="an agent id", json_schema_extra=ID_SCHEMA)
    content: str | None = Field(
        None, description="new text (the old one stays in history)", json_schema_extra=text_schema(limits.MAX_CONTENT_CHARS)
    )
    metadata: dict[str, Any] | None = Field(None, description="new metadata (replaces the old)")


class ScopeOnly(_Body):
    """Whose memory a call on one memory acts in."""

    user_id: str | None = Field(None, description=_SCOPE_ID, json_schema_extra=ID_SCHEMA)
    agent_id: str | None = Field(None, description="an agent id", json_schema_extra=ID_SCHEMA)


class PinRequest(ScopeOnly):
    pinned: StrictBool = Field(True, description="true pins (the memory never fades or expires); false unpins")


class OrganiseRequest(ScopeOnly):
    """One scope; or, with an admin key, no scope: every scope of the tenant acted for."""

    max_work: StrictInt | None = Field(
        None, ge=1, le=10**9, description="records each step may write per scope in this run; a later run goes on"
    )


class ReembedRequest(ScopeOnly):
    """No scope: every record in the store (admin only either way)."""

    batch_size: StrictInt = Field(256, ge=1, le=limits.MAX_LIMIT, description="records embedded per batch")


Step = Union[str, dict[str, Any]]


class ExperienceRequest(ScopeBody):
    task: str = Field(
        description="what the agent set out to do", json_schema_extra=text_schema(limits.MAX_CONTENT_CHARS)
    )
    steps: list[Step] | None = Field(
        None, max_length=limits.MAX_ITEMS_PER_ADD,
        description="what was done, in order: texts or objects (action, observation, ...)",
    )
    outcome: str = Field(description="how it ended", json_schema_extra=text_schema(limits.MAX_CONTENT_CHARS))
    feedback: str | None = Field(
        None, description="what a user or a check said about it", json_schema_extra=text_schema(limits.MAX_CONTENT_CHARS)
    )
    success: StrictBool | None = Field(None, description="whether it worked; inferred from the outcome's wording if omitted")
    timestamp: Timestamp | None = Field(None, description="when it happened: ISO 8601 or epoch seconds (default now)")
    importance: StrictFloat | None = Field(None, ge=0, le=1, description="0..1: how slowly it fades; default 0.5")
    metadata: dict[str, Any] | None = Field(
        None, description=f"metadata, at most {limits.MAX_METADATA_BYTES:,} bytes as JSON with the trajectory"
    )


class ExperienceSearchRequest(_Body):
    user_id: str | None = Field(None, description=_SCOPE_ID, json_schema_extra=ID_SCHEMA)
    agent_id: str | None = Field(None, description="an agent id", json_schema_extra=ID_SCHEMA)
    task: str = Field(
        description=f"the task at hand, at most {limits.MAX_QUERY_CHARS:,} characters (413 above)",
        json_schema_extra=text_schema(limits.MAX_QUERY_CHARS),
    )
    limit: StrictInt = Field(5, ge=1, le=limits.MAX_LIMIT, description="how many past tasks")
    include_failed: StrictBool = Field(True, description="failed attempts too (they say what to avoid)")
    as_of: Timestamp | None = Field(None, description="answer from what was known then; default now")


# ---------------------------------------------------------------------- responses


class RecordOut(Record):
    """A memory of any layer; `layer` says which (0 episode, 1 note, 2 topic, 3 profile)."""

    layer: int = Field(ge=0, le=3)


class AddResponse(BaseModel):
    episodes: list[RecordOut] = Field(description="the episodes stored (L0)")
    notes: list[RecordOut] = Field(default_factory=list, description="notes newly derived from them (L1)")
    merged: list[str] = Field(default_factory=list, description="ids of stored notes the episodes repeated")


class SearchHitOut(BaseModel):
    record: RecordOut
    score: float
    ranks: dict[str, int] = Field(default_factory=dict)
    provenance: list[str] = Field(default_factory=list)


class SearchResponse(BaseModel):
    hits: list[SearchHitOut]


class PageOut(BaseModel):
    items: list[RecordOut]
    next_cursor: str | None = Field(None, description="pass back as `cursor` for the next page; null on the last")


class HistoryResponse(BaseModel):
    events: list[HistoryEvent]


class DeletedResponse(BaseModel):
    deleted: int


class ScopeOut(BaseModel):
    user_id: str | None = None
    agent_id: str | None = None


class ScopesResponse(BaseModel):
    scopes: list[ScopeOut] = Field(description="the (user_id, agent_id) pairs the caller's tenant holds memories for, sorted")
    truncated: bool = Field(False, description="true when there were more than `limit`")


class OrganiseReportOut(BaseModel):
    scope: ScopeOut
    steps: dict[str, dict[str, Any]] = Field(description="per step, counts of what it changed; 'pending': work left")
    changed: int = Field(description="records written by the run in this scope")
    complete: bool = Field(description="false when a step left work for a later run (max_work)")


class OrganiseResponse(BaseModel):
    reports: list[OrganiseReportOut] = Field(description="one per scope organised")


class ExperienceHitOut(BaseModel):
    record: RecordOut
    score: float
    task: str
    steps: list[Any] = Field(default_factory=list)
    outcome: str
    feedback: str | None = None
    success: bool | None = Field(None, description="true: it worked; false: it failed; null: unknown")
    lesson: str | None = Field(None, description="the lesson organise distilled from it (null until it has run)")


class ExperienceSearchResponse(BaseModel):
    hits: list[ExperienceHitOut]


class ReembedResponse(BaseModel):
    reembedded: int = Field(description="records that got a vector from the current model")


class OkResponse(BaseModel):
    ok: bool = True


class HealthResponse(BaseModel):
    status: str
    version: str


class VersionResponse(BaseModel):
    version: str
    api: str


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. not_found, content_too_large")
    message: str = Field(description="what went wrong and what to do")
    field: str | None = Field(None, description="the argument at fault, when there is one")


class ErrorResponse(BaseModel):
    error: ErrorDetail


__all__ = [
    "AddRequest", "AddResponse", "ContextBlock", "ContextRequest", "DeletedResponse", "ErrorResponse",
    "ExperienceHitOut", "ExperienceRequest", "ExperienceSearchRequest", "ExperienceSearchResponse",
    "HealthResponse", "HistoryResponse", "Message", "OkResponse", "OrganiseReportOut", "OrganiseRequest",
    "OrganiseResponse", "PageOut", "PinRequest", "RecordOut", "ReembedRequest", "ReembedResponse", "ScopeOnly",
    "SearchHitOut", "SearchRequest", "SearchResponse", "UpdateRequest", "VersionResponse",
]
