"""Wake-ups: ETA tasks coalesced per short slot, each advancing every reply whose time has come.

A wake-up first starts the typing indicator of replies whose typing time came, then delivers
every due reply, so the number of tasks follows the clock, not the number of replies. Queueing
them per slot lives in :mod:`.wake_slots` (delivery queues the next bubble's wake-up too).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import NamedTuple

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from chat import realtime
from chat.models import Message
from scheduling.models import ScheduledReply
from scheduling.services.delivery import deliver_due, dispatch_batch_size, dispatch_time_budget
from scheduling.services.errors import ReplyInvariantViolated
from scheduling.services.wake_slots import reply_wakes_queue

State = ScheduledReply.State


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
                # A bubble is typed once the message before it is out (delivery wakes it then).
                .exclude(
                    Exists(ScheduledReply.objects.filter(pk=OuterRef("after_reply_id"), state=State.PENDING))
                )
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
