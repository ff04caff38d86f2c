"""Identifiers that sort by creation time (ULID layout, with a kind prefix)."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0

PREFIXES = {"episode": "ep", "note": "nt", "topic": "tp", "profile": "pf", "experience": "ex"}


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID; monotonic within one process even inside one millisecond."""
    global _last_ms, _last_rand
    with _lock:
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # leave room to increment
        _last_ms, _last_rand = ms, rand
    return _encode(ms, 10) + _encode(rand, 16)


def new_id(kind: str) -> str:
    """A new id for a record of `kind` (episode, note, topic, profile, experience)."""
    return f"{PREFIXES[kind]}_{new_ulid()}"


def kind_of(item_id: str) -> str | None:
    """The record kind an id names, or None if the prefix is unknown."""
    prefix = item_id.split("_", 1)[0]
    for kind, p in PREFIXES.items():
        if p == prefix:
            return kind
    return None
