"""Parsing and formatting of timestamps. Times are stored as UTC epoch seconds."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Union

from .errors import InvalidTimestamp

TimeLike = Union[str, datetime, date, int, float]

#: Month names, lower-cased, January first (English whatever the locale, unlike `calendar.month_name`).
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")


def to_epoch(value: TimeLike, *, field: str = "timestamp") -> float:
    """Convert an ISO 8601 string, a datetime/date or epoch seconds to UTC epoch seconds.

    Naive datetimes and strings without an offset are taken as UTC.
    """
    if isinstance(value, bool):
        raise InvalidTimestamp(f"{field}: expected an ISO 8601 string, datetime or epoch seconds, got a bool", field=field)
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidTimestamp(f"{field}: {value!r} is not a finite number of seconds", field=field)
        if not -62135596800 <= value <= 253402300799:
            raise InvalidTimestamp(f"{field}: {value!r} is outside years 1-9999", field=field)
        return float(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        try:
            return to_epoch(dt.timestamp(), field=field)
        except (OverflowError, ValueError):
            raise InvalidTimestamp(f"{field}: {value.isoformat()} is outside years 1-9999 in UTC", field=field) from None
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise InvalidTimestamp(f"{field}: empty string; give an ISO 8601 time such as 2026-03-02T10:00:00Z", field=field)
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InvalidTimestamp(
                f"{field}: {value!r} is not an ISO 8601 time; use e.g. 2026-03-02T10:00:00Z or 2026-03-02",
                field=field,
            ) from None
        return to_epoch(dt, field=field)
    raise InvalidTimestamp(
        f"{field}: expected an ISO 8601 string, datetime or epoch seconds, got {type(value).__name__}", field=field
    )


def to_datetime(epoch: float) -> datetime:
    """UTC datetime for epoch seconds."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def iso(epoch: float | None) -> str | None:
    """ISO 8601 UTC string (seconds precision) for epoch seconds."""
    if epoch is None:
        return None
    return to_datetime(epoch).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> float:
    """Current UTC epoch seconds."""
    return datetime.now(tz=timezone.utc).timestamp()
