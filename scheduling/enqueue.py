"""Queueing the reply loop's Celery tasks by name, so that services never import the tasks module.

``scheduling.tasks`` imports the services (a task is a thin wrapper around one); the services
queue tasks through this module instead of importing them back. Routing is keyed by these
names (``CELERY_TASK_ROUTES``), so a message sent by name lands on the same queue as one sent
through the task object.
"""

from __future__ import annotations

from datetime import datetime

from celery import current_app

PLAN_REPLY = "scheduling.plan_reply"
WAKE_REPLY = "scheduling.wake_reply"
DISPATCH_DUE_REPLIES = "scheduling.dispatch_due_replies"
PLAN_FOLLOW_UPS = "scheduling.plan_follow_ups"
PLAN_FOLLOW_UP = "scheduling.plan_follow_up"


def plan_reply_enqueue(
    *, conversation_id: int, trigger_message_id: int, countdown: float | None = None
) -> None:
    """Queue the plan of the companion's answer to one person message."""
    current_app.send_task(PLAN_REPLY, args=[conversation_id, trigger_message_id], countdown=countdown)


def wake_reply_enqueue(*, reply_id: int, eta: datetime) -> None:
    """Queue the wake-up that advances every reply whose time has come by ``eta``."""
    current_app.send_task(WAKE_REPLY, args=[reply_id], eta=eta)


def follow_up_plans_enqueue(*, message_ids: list[int], countdown: float) -> None:
    """Queue one task that plans the follow-ups of delivered companion messages (fanned out there).

    ``argsrepr`` is given because Celery's own (a ``saferepr`` of a batch's hundreds of ids, for
    monitoring) costs more than the publish itself."""
    current_app.send_task(
        PLAN_FOLLOW_UPS,
        args=[message_ids],
        countdown=countdown,
        argsrepr=f"[<{len(message_ids)} message ids from {message_ids[0]}>]" if message_ids else "[[]]",
    )


def follow_up_plan_enqueue(*, message_id: int) -> None:
    """Queue the follow-up plan of one companion message."""
    current_app.send_task(PLAN_FOLLOW_UP, args=[message_id])
