"""The dispatcher: the beat-driven recovery path for every wake-up that Celery may have lost.

It delivers every due reply, queues wake-ups for replies whose typing starts within the ETA
horizon (again, when an earlier one got lost), and re-queues plans (answers and follow-ups)
that never ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.core.cache import cache
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from chat.models import Message
from scheduling import conf
from scheduling.enqueue import plan_reply_enqueue
from scheduling.models import ScheduledReply
from scheduling.services.delivery import deliver_due, dispatch_batch_size, dispatch_time_budget
from scheduling.services.follow_ups import lost_follow_up_plans_requeue
from scheduling.services.wake_slots import reply_wakes_queue

State = ScheduledReply.State


@dataclass(frozen=True)
class DispatchReport:
    """What one dispatcher run did: replies delivered, wake-ups queued, lost plans queued again."""

    delivered: int
    wakeups_queued: int
    plans_requeued: int
    follow_up_plans_requeued: int = 0


def due_replies_dispatch(
    *,
    now: datetime | None = None,
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
) -> DispatchReport:
    """The recovery path: deliver every due pending reply, queue wake-ups for the next minute.

    Claims batches with ``FOR UPDATE SKIP LOCKED`` until none is due or the time budget is
    spent, so any number of dispatchers (and wake-ups) can run at once. Also re-queues plans
    that a lost Celery message never ran (the newest person message of a conversation without
    a row).
    """
    delivered = deliver_due(
        now=now,
        batch_size=batch_size or dispatch_batch_size(),
        time_budget_seconds=time_budget_seconds
        if time_budget_seconds is not None
        else dispatch_time_budget(),
    )
    current = now or timezone.now()
    return DispatchReport(
        delivered=len(delivered),
        wakeups_queued=_queue_upcoming_wakeups(now=current),
        plans_requeued=_requeue_lost_plans(now=current),
        follow_up_plans_requeued=lost_follow_up_plans_requeue(now=current),
    )


def _queue_upcoming_wakeups(*, now: datetime) -> int:
    """ETA wake-ups for replies whose typing starts within the horizon, re-queued when one got lost."""
    horizon = timedelta(seconds=float(conf.setting("SCHEDULING_ETA_HORIZON_SECONDS")))
    with transaction.atomic():
        upcoming = list(
            ScheduledReply.objects.select_for_update(skip_locked=True)
            .filter(state=State.PENDING, typing_at__lte=now + horizon, due_at__gt=now)
            .filter(Q(wake_queued_at__isnull=True) | Q(wake_queued_at__lt=now - horizon))
            .values_list("id", "typing_at")
        )
        # typing_at__lte above: never None (the column is nullable for failed plans)
        wakes = [(reply_id, typing_at) for reply_id, typing_at in upcoming if typing_at is not None]
        if upcoming:
            ScheduledReply.objects.filter(id__in=[reply_id for reply_id, _ in upcoming]).update(
                wake_queued_at=now
            )
            transaction.on_commit(partial(reply_wakes_queue, wakes=wakes), robust=True)
    return len(upcoming)


def _requeue_lost_plans(*, now: datetime) -> int:
    """Plan tasks are wake-ups too: a person message with no plan row after the grace gets one again."""
    debounce = float(conf.setting("SCHEDULING_PLAN_DEBOUNCE_SECONDS"))
    grace = timedelta(seconds=debounce + 60)
    newer = Message.objects.filter(
        conversation_id=OuterRef("conversation_id"), role=Message.Role.PERSON, id__gt=OuterRef("id")
    )
    lost = list(
        Message.objects.filter(
            role=Message.Role.PERSON,
            created_at__gte=now - timedelta(days=1),
            created_at__lte=now - grace,
            planned_reply__isnull=True,
            # Imported history (chat.log_import) is never answered, however recent.
            log_external_id__isnull=True,
        )
        .exclude(Exists(newer))
        .values_list("conversation_id", "id")[:500]
    )
    queued = 0
    for conversation_id, message_id in lost:
        # The cache only damps repeats while a slow plan runs; losing it costs a duplicate, not a reply.
        if cache.add(f"scheduling:plan-requeued:{message_id}", 1, timeout=int(grace.total_seconds())):
            plan_reply_enqueue(conversation_id=conversation_id, trigger_message_id=message_id)
            queued += 1
    return queued
