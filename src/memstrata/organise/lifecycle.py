"""Strength and forgetting: a forgetting curve, reinforcement by retrieval, archiving what has faded.

Every record stores a `strength` in [0, 1] as of its last access (or its creation),
and fades from there exponentially::

    strength(t) = strength * 0.5 ** ((t - last_access) / half_life)
    half_life   = settings.half_life_days * 2 ** (4 * (importance - 0.5))

so importance 0.5 gives the configured half-life, and each 0.25 of importance above
(below) it doubles (halves) it. A retrieval brings a record back towards full
strength, ``s + reinforcement * (1 - s)``, and restarts its clock. Pinned records
never fade. `DecayStep` archives records whose strength fell below
`archive_threshold` and records older than their kind's TTL; archived records
leave default search but stay in the store and its history, and `restore` brings
them back. Decay is computed, never written, so running the step twice at the
same time changes nothing the second time.
"""

from __future__ import annotations

from datetime import datetime

from ..config import Settings
from ..model import Layer, Record, SearchFilters
from .runner import OrganiseContext

_DAY = 86_400.0
#: Names `ttl_days` accepts for layers (record kinds work too).
LAYER_NAMES = {Layer.EPISODE: "episode", Layer.NOTE: "note", Layer.TOPIC: "topic", Layer.PROFILE: "profile"}


def half_life_days(importance: float, settings: Settings) -> float:
    """Days for a record of this importance to lose half its strength when unused."""
    importance = min(1.0, max(0.0, importance))
    return settings.half_life_days * 2.0 ** (4.0 * (importance - 0.5))


def strength_at(record: Record, at: datetime, settings: Settings) -> float:
    """The record's strength at `at`: its stored strength, faded since its last access (or creation)."""
    if record.pinned:
        return record.strength
    since = record.last_access or record.created_at
    elapsed_days = max(0.0, (at - since).total_seconds() / _DAY)
    return record.strength * 0.5 ** (elapsed_days / half_life_days(record.importance, settings))


def reinforced(record: Record, at: datetime, settings: Settings) -> float:
    """Strength after a retrieval at `at`."""
    current = strength_at(record, at, settings)
    return min(1.0, current + settings.reinforcement * (1.0 - current))


def ttl_days(record: Record, settings: Settings) -> float | None:
    """The record's time to live (its kind's, else its layer's), or None."""
    ttl = settings.ttl_days
    return ttl.get(record.kind, ttl.get(LAYER_NAMES[Layer(record.layer_value)]))


def expired(record: Record, at: datetime, settings: Settings) -> bool:
    """True when the record is older (since it was stored) than its TTL; pinned records never expire."""
    days = ttl_days(record, settings)
    return days is not None and not record.pinned and (at - record.created_at).total_seconds() >= days * _DAY


def faded(record: Record, at: datetime, settings: Settings) -> bool:
    """True when a record of a decaying layer fell below the archive threshold."""
    return (
        settings.archive_threshold > 0
        and not record.pinned
        and record.layer_value in settings.decay_layers
        and strength_at(record, at, settings) < settings.archive_threshold
    )


def settings_of(ctx: OrganiseContext) -> Settings:
    """The settings the run was given (defaults and environment otherwise)."""
    return getattr(ctx, "settings", None) or Settings()


class DecayStep:
    """Archives active records that have faded below the threshold or outlived their TTL."""

    name = "decay"

    def run(self, ctx: OrganiseContext) -> dict:
        settings = settings_of(ctx)
        at = ctx.clock()
        layers = None if settings.ttl_days else list(settings.decay_layers)
        if layers == [] or (settings.archive_threshold == 0 and not settings.ttl_days):
            return {"archived": 0, "expired": 0}
        fading: list[str] = []
        expiring: list[str] = []
        cursor = None
        while True:
            page = ctx.store.list(ctx.scope, SearchFilters(layers=layers), limit=1000, cursor=cursor)
            for record in page.items:
                if expired(record, at, settings):
                    expiring.append(record.id)
                elif faded(record, at, settings):
                    fading.append(record.id)
            cursor = page.next_cursor
            if cursor is None:
                break
        budget = ctx.max_work if ctx.max_work is not None else len(fading) + len(expiring)
        expiring_now = expiring[:budget]
        fading_now = fading[: max(0, budget - len(expiring_now))]
        stamp = at.timestamp()
        done_expired = ctx.store.set_status(
            expiring_now, ctx.scope, "archived", at=stamp, event="archived", actor="organise",
            detail={"reason": "ttl"},
        ) if expiring_now else []
        done_faded = ctx.store.set_status(
            fading_now, ctx.scope, "archived", at=stamp, event="archived", actor="organise",
            detail={"reason": "faded"},
        ) if fading_now else []
        pending = len(fading) + len(expiring) - len(expiring_now) - len(fading_now)
        return {"archived": len(done_faded), "expired": len(done_expired), "pending": pending}
