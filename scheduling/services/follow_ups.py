"""Follow-up plans after delivery: the fan-out of a delivered batch, and recovery of lost plans.

Delivery queues one fan-out task per batch (``delivery._after_delivery``) after
``SCHEDULING_FOLLOW_UP_PLAN_DELAY_SECONDS``; the fan-out keeps only the messages that still end
their conversation, so a person who wrote back costs no model time, and queues one plan task per
message (the model runs there, :func:`~scheduling.services.planning.follow_up_plan`). Both are
wake-ups that may be lost or doubled: the plan is idempotent per message, and the dispatcher
re-queues the plans a lost task never ran (:func:`lost_follow_up_plans_requeue`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import Exists, OuterRef, QuerySet

from chat.models import Message
from scheduling import conf
from scheduling.enqueue import follow_up_plan_enqueue
from scheduling.models import ScheduledReply


def _awaiting_follow_up_plan() -> QuerySet[Message]:
    """Companion messages that end their conversation, with follow-ups on, no plan and nothing pending."""
    newer = Message.objects.filter(
        conversation_id=OuterRef("conversation_id"),
        role__in=[Message.Role.PERSON, Message.Role.COMPANION],
        id__gt=OuterRef("id"),
    )
    pending = ScheduledReply.objects.filter(
        conversation_id=OuterRef("conversation_id"), state=ScheduledReply.State.PENDING
    )
    return (
        Message.objects.filter(
            role=Message.Role.COMPANION,
            conversation__companion__follow_ups_enabled=True,
            planned_reply__isnull=True,
            # Only messages the reply loop delivered: imported history is never followed up.
            scheduled_reply_id__isnull=False,
        )
        .exclude(Exists(newer))
        .exclude(Exists(pending))
    )


def follow_up_plans_fan_out(*, message_ids: Iterable[int]) -> int:
    """Queue the follow-up plan of each message that still awaits one; return how many were queued."""
    ids = list(_awaiting_follow_up_plan().filter(id__in=list(message_ids)).values_list("id", flat=True))
    for message_id in ids:
        follow_up_plan_enqueue(message_id=message_id)
    return len(ids)


def lost_follow_up_plans_requeue(*, now: datetime) -> int:
    """The dispatcher's part: a delivered message still awaiting its plan well after the delay gets one."""
    grace = timedelta(
        seconds=float(conf.setting("SCHEDULING_FOLLOW_UP_PLAN_DELAY_SECONDS")) * conf.time_scale() + 60
    )
    lost = list(
        _awaiting_follow_up_plan()
        .filter(created_at__gte=now - timedelta(days=1), created_at__lte=now - grace)
        .values_list("id", flat=True)[:500]
    )
    queued = 0
    for message_id in lost:
        # The cache only damps repeats while a slow plan runs; losing it costs a duplicate plan task.
        if cache.add(f"scheduling:follow-up-requeued:{message_id}", 1, timeout=int(grace.total_seconds())):
            follow_up_plan_enqueue(message_id=message_id)
            queued += 1
    return queued
