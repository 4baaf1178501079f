"""Cancelling pending replies inside the person's message transaction (chat's in-transaction hook)."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from django.db import connection, transaction
from django.utils import timezone

from chat import realtime
from chat.models import Message
from scheduling.models import ScheduledReply

State = ScheduledReply.State

# What ``select_for_update().filter(...).values_list("id", "typing_started_at")`` sends (in the
# model's order, newest first), written once: this runs inside every person message's
# transaction, and building the query was most of its CPU.
_LOCK_PENDING_SQL = f"""
SELECT id, typing_started_at FROM {ScheduledReply._meta.db_table}
WHERE conversation_id = %s AND state = %s
ORDER BY id DESC
FOR UPDATE
"""


def replies_cancel_pending(
    *, conversation_id: int, cause_message_id: int, now: datetime | None = None
) -> int:
    """Cancel every pending reply of the conversation; return how many.

    Must run inside the transaction that stores the person's message (chat's in-transaction
    hook). Locking the rows waits for a delivery that already holds one, which then is no longer
    pending and is left alone: a round ends either sent or cancelled, never both. It also waits
    for a wake-up that is starting the typing indicator, so typing it shows is always taken back.
    """
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_PENDING_SQL, [conversation_id, State.PENDING.value])
        locked: list[tuple[int, datetime | None]] = cursor.fetchall()
    if not locked:
        return 0
    cancelled = ScheduledReply.objects.filter(id__in=[reply_id for reply_id, _ in locked]).update(
        state=State.CANCELLED,
        cancelled_at=now,
        outcome_reason=f"cancelled by person message {cause_message_id}",
    )
    if any(typing_started_at is not None for _, typing_started_at in locked):
        # The person saw "typing…" for a reply that will never come: take it back.
        transaction.on_commit(
            partial(
                realtime.broadcast_typing,
                conversation_id=conversation_id,
                role=Message.Role.COMPANION,
                is_typing=False,
            ),
            robust=True,
        )
    return cancelled
