"""Checks on what callers pass in; each failure is a typed error naming the field and the fix."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping

from . import limits
from .errors import ContentTooLarge, EmptyContent, InvalidInput
from .timeutil import TimeLike, to_datetime, to_epoch


def text(value: Any, field: str, *, max_chars: int = limits.MAX_CONTENT_CHARS) -> str:
    """A non-empty string within `max_chars`."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, got {type(value).__name__}", field=field)
    if not value.strip():
        raise EmptyContent(f"{field} is empty; give some text to remember or search for", field=field)
    if len(value) > max_chars:
        raise ContentTooLarge(
            f"{field} is {len(value):,} characters; the limit is {max_chars:,} (split it into several items)",
            field=field,
        )
    if "\x00" in value:
        raise InvalidInput(f"{field} contains a NUL character", field=field)
    return value


def optional_name(value: Any, field: str) -> str | None:
    """None or a short non-empty string (role, speaker)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must be a non-empty string or None", field=field)
    if len(value) > limits.MAX_NAME_CHARS:
        raise ContentTooLarge(f"{field} is {len(value)} characters; the limit is {limits.MAX_NAME_CHARS}", field=field)
    return value.strip()


def metadata(value: Any, field: str = "metadata") -> dict[str, Any]:
    """A JSON-serialisable dict with string keys, at most `MAX_METADATA_BYTES` as JSON."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field} must be a dict, got {type(value).__name__}", field=field)
    for key in value:
        if not isinstance(key, str):
            raise InvalidInput(f"{field} keys must be strings, got {key!r}", field=field)
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field} must be JSON-serialisable: {exc}", field=field) from None
    if len(encoded.encode()) > limits.MAX_METADATA_BYTES:
        raise ContentTooLarge(
            f"{field} is {len(encoded.encode()):,} bytes as JSON; the limit is {limits.MAX_METADATA_BYTES:,}",
            field=field,
        )
    return dict(value)


def metadata_filter(value: Any) -> dict[str, str | int | float | bool]:
    """Exact-match metadata filters: keys of letters/digits/_.-, scalar values."""
    import re

    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"filters must be a dict of metadata key -> value, got {type(value).__name__}", field="filters")
    out: dict[str, str | int | float | bool] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", key):
            raise InvalidInput(f"filter key {key!r} must be 1-64 letters, digits, '_', '.' or '-'", field="filters")
        if isinstance(item, int) and not isinstance(item, bool) and not -(2**63) <= item < 2**63:
            raise InvalidInput(f"filter value for {key!r} is outside the 64-bit integer range", field="filters")
        if not isinstance(item, (str, int, float, bool)):
            raise InvalidInput(
                f"filter value for {key!r} must be a string, number or boolean, got {type(item).__name__}",
                field="filters",
            )
        out[key] = item
    return out


def timestamp(value: TimeLike | None, field: str) -> datetime | None:
    """None, or an aware UTC datetime from any accepted time form."""
    if value is None:
        return None
    return to_datetime(to_epoch(value, field=field))


def limit(value: Any, field: str = "limit", *, maximum: int = limits.MAX_LIMIT) -> int:
    """An int in 1..maximum."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer, got {type(value).__name__}", field=field)
    if not 1 <= value <= maximum:
        raise InvalidInput(f"{field} must be between 1 and {maximum:,}, got {value}", field=field)
    return value


def record_id(value: Any, field: str = "id") -> str:
    """A non-empty id string."""
    if not isinstance(value, str) or not value.strip() or len(value) > 128:
        raise InvalidInput(f"{field} must be a memory id such as 'ep_01J...', got {value!r}"[:200], field=field)
    return value
