"""Wake-ups: ETA tasks coalesced per short slot, each advancing every reply whose time has come.

A wake-up first starts the typing indicator of replies whose typing time came, then delivers
every due reply, so the number of tasks follows the clock, not the number of replies. A cache
key marks a slot queued; losing it costs a duplicate wake-up, never a second message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import NamedTuple

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from chat import realtime
from chat.models import Message
from scheduling import conf, metrics
from scheduling.enqueue import wake_reply_enqueue
from scheduling.models import ScheduledReply
from scheduling.services.delivery import deliver_due, dispatch_batch_size, dispatch_time_budget
from scheduling.services.errors import ReplyInvariantViolated

State = ScheduledReply.State

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


def _start_due_typing(*, now: datetime, batch_size: int) -> None:
    """Start typing for every pending reply whose typing time came and that is not due yet.

    Rows another transaction holds are skipped: a delivery or a cancellation makes typing moot,
    another wake-up types them itself, the dispatcher queues them a wake-up. After each commit,
    one ``typing`` push per conversation and the wake-ups of the replies' due times.
    """
    while True:
        with transaction.atomic():
            batch = list(
                ScheduledReply.objects.select_for_update(skip_locked=True)
                .filter(state=State.PENDING, typing_started_at__isnull=True)
                .filter(typing_at__lte=now, due_at__gt=now)
                .order_by("typing_at")
                .values_list("id", "conversation_id", "due_at")[:batch_size]
            )
            if batch:
                ScheduledReply.objects.filter(id__in=[reply_id for reply_id, _, _ in batch]).update(
                    typing_started_at=now
                )
                transaction.on_commit(
                    partial(
                        realtime.broadcast_typing_each,
                        conversation_ids=sorted({conversation_id for _, conversation_id, _ in batch}),
                        role=Message.Role.COMPANION,
                        is_typing=True,
                    ),
                    robust=True,
                )
                transaction.on_commit(
                    partial(
                        reply_wakes_queue,
                        # due_at__gt above: never None (the column is nullable for failed plans)
                        wakes=[(reply_id, due_at) for reply_id, _, due_at in batch if due_at is not None],
                    ),
                    robust=True,
                )
        if len(batch) < batch_size:
            return


class WakeOutcome(NamedTuple):
    """What a wake-up did to its reply (delivered, typing, waiting, done, busy), and its next wake-up."""

    action: str
    requeue_at: datetime | None = None


def reply_wake(*, reply_id: int, now: datetime | None = None) -> WakeOutcome:
    """Advance every reply whose time has come, then report on ``reply_id`` and queue its next wake-up.

    Wake-ups are coalesced per slot (:func:`reply_wakes_queue`), so each one starts typing for
    every reply whose typing time came (queueing wake-ups for their due times) and delivers every
    due reply, in batches, as the dispatcher does. Rows are claimed with ``SKIP LOCKED``: wake-ups
    that run together share the work, and a later duplicate finds nothing left. Safe to run any
    number of times, early or late: only the rows' states decide.
    """
    now = now or timezone.now()
    # Typing first: it only touches rows not yet due, and its pushes should not wait on deliveries.
    _start_due_typing(now=now, batch_size=dispatch_batch_size())
    delivered = deliver_due(
        now=now, batch_size=dispatch_batch_size(), time_budget_seconds=dispatch_time_budget()
    )
    if reply_id in delivered:
        return WakeOutcome("delivered")
    reply = (
        ScheduledReply.objects.filter(pk=reply_id, state=State.PENDING)
        .only("typing_at", "due_at", "typing_started_at")
        .first()
    )
    if reply is None:
        return WakeOutcome("done")
    if reply.due_at is None or reply.typing_at is None:
        raise ReplyInvariantViolated(f"pending reply {reply_id} has no typing or due time")
    if now >= reply.due_at or (now >= reply.typing_at and reply.typing_started_at is None):
        # Held by another deliverer, another wake-up or the person's message: look again shortly.
        action, again = "busy", now + timedelta(seconds=1)
    elif now < reply.typing_at:
        action, again = "waiting", reply.typing_at
    else:
        action, again = "typing", reply.due_at
    reply_wakes_queue(wakes=[(reply_id, again)])
    return WakeOutcome(action, again)
