"""Cancelling pending replies inside the person's message transaction (chat's in-transaction hook)."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from django.db import transaction
from django.utils import timezone

from chat import realtime
from chat.models import Message
from scheduling.models import ScheduledReply

State = ScheduledReply.State


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
    locked = list(
        ScheduledReply.objects.select_for_update()
        .filter(conversation_id=conversation_id, state=State.PENDING)
        .values_list("id", "typing_started_at")
    )
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
