"""Rows <-> records, shared by the backends (both store times as epoch seconds and JSON as text)."""

from __future__ import annotations

import json

from ..model import RECORD_TYPES, Record, Scope
from ..timeutil import to_datetime


def record_from_row(row: tuple, sources: list[str]) -> Record:
    """A record from a row of `_RECORD_COLUMNS` (rid first) and its sources in order."""
    (_, rid_id, layer, kind, user_id, agent_id, session_id, role, speaker, content, event_time, created_at,
     updated_at, valid_from, valid_to, status, importance, keywords, entities, metadata, dedup_key, slot,
     strength, last_access, pinned) = row
    cls = RECORD_TYPES[layer]
    # Rows were validated on the way in; constructing without re-validation keeps reads fast.
    return cls.model_construct(
        id=rid_id, kind=kind, user_id=user_id, agent_id=agent_id, session_id=session_id, role=role,
        speaker=speaker, content=content, event_time=to_datetime(event_time), created_at=to_datetime(created_at),
        updated_at=to_datetime(updated_at),
        valid_from=to_datetime(valid_from) if valid_from is not None else None,
        valid_to=to_datetime(valid_to) if valid_to is not None else None,
        status=status, importance=importance, keywords=json.loads(keywords), entities=json.loads(entities),
        metadata=json.loads(metadata), sources=sources, dedup_key=dedup_key, slot=slot,
        strength=strength, last_access=to_datetime(last_access) if last_access is not None else None,
        pinned=bool(pinned),
    )


def state_key(scope: Scope) -> str:
    """The organise-state key of one user/agent pair (sessions share their user's organise state)."""
    return json.dumps([scope.user_id, scope.agent_id])
