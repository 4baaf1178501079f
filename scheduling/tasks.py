"""Celery tasks of the reply loop: thin, id-only, idempotent wake-ups around the services.

Every task may be lost (the dispatcher recovers from PostgreSQL) or run twice (the services
decide from the row's state). ``revoke()`` is never used.
"""

from __future__ import annotations

import logging

from celery import shared_task

from scheduling import services
from scheduling.enqueue import DISPATCH_DUE_REPLIES, PLAN_REPLY, WAKE_REPLY

logger = logging.getLogger(__name__)


@shared_task(name=PLAN_REPLY)
def plan_reply(conversation_id: int, trigger_message_id: int) -> None:
    """Plan the answer to one person message (after chat's debounce)."""
    try:
        services.reply_plan(conversation_id=conversation_id, trigger_message_id=trigger_message_id)
    except services.ReplyPlanInvalid as exc:
        # The message is gone (conversation deleted) or the ids were wrong: nothing to answer.
        logger.warning("plan_reply skipped: %s", exc)


@shared_task(name=WAKE_REPLY)
def wake_reply(reply_id: int) -> str:
    """Advance every reply whose time has come (this one included); the service queues the next wake-up."""
    return services.reply_wake(reply_id=reply_id).action


@shared_task(name=DISPATCH_DUE_REPLIES)
def dispatch_due_replies() -> dict[str, int]:
    """The beat-driven dispatcher: due replies, near-term wake-ups, lost plans."""
    report = services.due_replies_dispatch()
    if report.delivered or report.plans_requeued:
        logger.info("dispatcher: %s", report)
    return {
        "delivered": report.delivered,
        "wakeups_queued": report.wakeups_queued,
        "plans_requeued": report.plans_requeued,
    }
