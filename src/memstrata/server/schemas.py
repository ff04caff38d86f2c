"""Request and response bodies of the REST API (they are the OpenAPI schema).

Bodies are checked twice: shape here (pydantic, 422 on a wrong type), meaning in
`Memory` (its typed errors: 413 for size limits, 422 for bad values). Text limits
are described here but enforced by `Memory`, so an oversize text is a 413, not a 422.
"""

from __future__ import annotations

from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import limits
from ..model import ContextBlock, HistoryEvent, Record

Timestamp = Union[str, float]
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
    role: str | None = Field(None, description="user, assistant, system, tool, ... (default user)")
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


class SearchRequest(_QueryBody):
    limit: int = Field(10, ge=1, le=limits.MAX_LIMIT, description="how many hits")
    layers: list[int] | None = Field(None, description="0 episodes, 1 notes, 2 topics, 3 profile; default all")

    @model_validator(mode="after")
    def _layers(self) -> "SearchRequest":
        if self.layers is not None and any(not 0 <= x <= 3 for x in self.layers):
            raise ValueError("layers are 0 (episodes), 1 (notes), 2 (topics), 3 (profile)")
        return self


class ContextRequest(_QueryBody):
    budget_tokens: int = Field(1000, ge=1, le=limits.MAX_BUDGET_TOKENS, description="size of the block (whitespace tokens)")


class UpdateRequest(_Body):
    user_id: str | None = Field(None, description=_SCOPE_ID, json_schema_extra=ID_SCHEMA)
    agent_id: str | None = Field(None, description="an agent id", json_schema_extra=ID_SCHEMA)
    content: str | None = Field(
        None, description="new text (the old one stays in history)", json_schema_extra=text_schema(limits.MAX_CONTENT_CHARS)
    )
    metadata: dict[str, Any] | None = Field(None, description="new metadata (replaces the old)")


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
    "HealthResponse", "HistoryResponse", "Message", "OkResponse", "PageOut", "RecordOut", "SearchHitOut", "SearchRequest",
    "SearchResponse", "UpdateRequest", "VersionResponse",
]
