"""Queueing ETA wake-ups, one per short slot: each wake-up advances every reply whose time has come.

A cache key marks a slot queued; losing it costs a duplicate wake-up, never a second message.
Used by planning, the dispatcher, wake-ups themselves and delivery (a delivered bubble wakes the
next one), so it imports none of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.utils import timezone

from scheduling import conf, metrics
from scheduling.enqueue import wake_reply_enqueue

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _wake_slot(at: datetime, *, now: datetime) -> int:
    """The slot (microseconds since the epoch) whose wake-up covers an event at ``at``.

    The end of the resolution interval holding ``at``, so every event of the slot is due when
    its wake-up runs; never ``now`` or earlier, so the wake-up runs after the caller's commit.
    """
    resolution = max(1, round(conf.wake_resolution() * 1_000_000))
    at_us = (at - _EPOCH) // _MICROSECOND
    slot = -(-at_us // resolution) * resolution
    now_us = (now - _EPOCH) // _MICROSECOND
    if slot <= now_us:
        slot = (now_us // resolution + 1) * resolution
    return slot


def reply_wakes_queue(*, wakes: Iterable[tuple[int, datetime]], now: datetime | None = None) -> int:
    """Queue ETA wake-ups for ``(reply_id, at)`` pairs, at most one per slot; return how many were queued.

    A wake-up advances every reply whose time has come, not only the one it names
    (:func:`reply_wake`), so a slot of ``SCHEDULING_WAKE_RESOLUTION_SECONDS`` needs one task,
    queued for the slot's end and naming its first reply. A cache key marks the slot queued
    until just after it has passed. Losing the key costs a duplicate wake-up; losing the task,
    a wait for the dispatcher, as with any lost wake-up.
    """
    now = now or timezone.now()
    slots: dict[int, int] = {}
    for reply_id, at in wakes:
        slots.setdefault(_wake_slot(at, now=now), reply_id)
    now_us = (now - _EPOCH) // _MICROSECOND
    queued = 0
    for slot, reply_id in sorted(slots.items()):
        key = f"scheduling:wake-slot:{slot}"
        if not cache.add(key, reply_id, timeout=math.ceil((slot - now_us) / 1_000_000) + 1):
            continue
        try:
            wake_reply_enqueue(reply_id=reply_id, eta=_EPOCH + slot * _MICROSECOND)
        except Exception:
            cache.delete(key)  # the slot is not queued: let the next caller try
            raise
        queued += 1
    metrics.wakeup_slots_queued(queued)
    return queued
