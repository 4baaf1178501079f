"""Celery tasks of the reply loop: thin, id-only, idempotent wake-ups around the services.

Every task may be lost (the dispatcher recovers from PostgreSQL) or run twice (the services
decide from the row's state). ``revoke()`` is never used.
"""

from __future__ import annotations

import logging

from celery import shared_task

from scheduling import services
from scheduling.enqueue import DISPATCH_DUE_REPLIES, PLAN_FOLLOW_UP, PLAN_FOLLOW_UPS, PLAN_REPLY, WAKE_REPLY

logger = logging.getLogger(__name__)


@shared_task(name=PLAN_REPLY)
def plan_reply(conversation_id: int, trigger_message_id: int) -> None:
    """Plan the answer to one person message (after chat's debounce)."""
    try:
        services.reply_plan(conversation_id=conversation_id, trigger_message_id=trigger_message_id)
    except services.ReplyPlanInvalid as exc:
        # The message is gone (conversation deleted) or the ids were wrong: nothing to answer.
        logger.warning("plan_reply skipped: %s", exc)


@shared_task(name=PLAN_FOLLOW_UPS)
def plan_follow_ups(message_ids: list[int]) -> int:
    """Fan out the follow-up plans of delivered messages that still end their conversation."""
    return services.follow_up_plans_fan_out(message_ids=message_ids)


@shared_task(name=PLAN_FOLLOW_UP)
def plan_follow_up(message_id: int) -> None:
    """Plan whether and when the companion writes again after one of its messages."""
    try:
        services.follow_up_plan(message_id=message_id)
    except services.ReplyPlanInvalid as exc:
        logger.warning("plan_follow_up skipped: %s", exc)


@shared_task(name=WAKE_REPLY)
def wake_reply(reply_id: int) -> str:
    """Advance every reply whose time has come (this one included); the service queues the next wake-up."""
    return services.reply_wake(reply_id=reply_id).action


@shared_task(name=DISPATCH_DUE_REPLIES)
def dispatch_due_replies() -> dict[str, int]:
    """The beat-driven dispatcher: due replies, near-term wake-ups, lost plans."""
    report = services.due_replies_dispatch()
    if report.delivered or report.plans_requeued or report.follow_up_plans_requeued:
        logger.info("dispatcher: %s", report)
    return {
        "delivered": report.delivered,
        "wakeups_queued": report.wakeups_queued,
        "plans_requeued": report.plans_requeued,
        "follow_up_plans_requeued": report.follow_up_plans_requeued,
    }
