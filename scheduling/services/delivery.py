"""Delivering due replies: claim rows with ``FOR UPDATE SKIP LOCKED``, create the messages, mark them sent.

Every claim is one statement over the reply and its conversation, and every batch is one
transaction: chat's messages and the ``sent`` marks commit together or not at all, and a
duplicate wake-up finds nothing left to claim.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from chat.models import Message
from chat.services import (
    CompanionDelivery,
    DuplicateScheduledReply,
    companion_message_create,
    companion_messages_create,
)
from chat.text_rules import ChatInputInvalid, validate_message_text
from scheduling import conf, metrics
from scheduling.models import ScheduledReply
from scheduling.services.errors import DeliveryConflict

logger = logging.getLogger(__name__)
State = ScheduledReply.State


def _claimable() -> Any:
    # Delivery reads only these columns; the rest (the plan's JSON records, the conversation's
    # fields) would be fetched and parsed for every claimed row for nothing.
    return (
        ScheduledReply.objects.select_for_update(skip_locked=True, of=("self", "conversation"))
        .select_related("conversation")
        .only("id", "conversation_id", "text", "due_at", "conversation__id")
    )


def _deliver_locked(reply: ScheduledReply, *, now: datetime) -> bool:
    """Create the message and mark the row sent; the caller holds the reply and conversation locks.

    The one-row path, through chat's ``companion_message_create``: :func:`_deliver_claimed`
    falls back to it when its bulk insert meets an existing message.
    """
    try:
        message = companion_message_create(
            conversation=reply.conversation, text=reply.text, scheduled_reply_id=reply.pk
        )
    except DuplicateScheduledReply:
        # Only reachable if a writer bypassed the state check: the message exists, so the reply is sent.
        message_id = Message.objects.filter(scheduled_reply_id=reply.pk).values_list("id", flat=True).get()
        ScheduledReply.objects.filter(pk=reply.pk).update(
            state=State.SENT, sent_at=now, message_id=message_id
        )
        return False
    except ChatInputInvalid as exc:
        _mark_refused(reply, exc)
        return False
    ScheduledReply.objects.filter(pk=reply.pk, state=State.PENDING).update(
        state=State.SENT, sent_at=now, message_id=message.pk
    )
    return True


def _mark_refused(reply: ScheduledReply, exc: ChatInputInvalid) -> None:
    ScheduledReply.objects.filter(pk=reply.pk).update(
        state=State.FAILED, outcome_reason=f"chat refused the text: {exc}"
    )


def _deliver_claimed(replies: list[ScheduledReply], *, now: datetime) -> set[int]:
    """Deliver claimed rows in four statements however many there are; return the ids this call sent.

    The caller's transaction holds every row's reply and conversation locks (one claim
    statement). Each text goes through chat's ``validate_message_text`` first: a refused one
    marks its row ``failed`` and the others still go out. Then chat's ``companion_messages_create``
    stores the messages with one INSERT in a savepoint (``scheduled_reply_id`` is unique: a
    message that already exists sends the batch through the one-row path, which records it) and
    pushes ``message.created`` after commit; one UPDATE, conditional on ``pending``, marks the
    rows sent with their message ids.
    """
    deliverable: list[tuple[ScheduledReply, str]] = []
    for reply in replies:
        try:
            deliverable.append((reply, validate_message_text(reply.text)))
        except ChatInputInvalid as exc:
            _mark_refused(reply, exc)
    if not deliverable:
        return set()
    try:
        messages = companion_messages_create(
            deliveries=[
                CompanionDelivery(
                    conversation_id=reply.conversation_id, scheduled_reply_id=reply.pk, text=text
                )
                for reply, text in deliverable
            ]
        )
    except DuplicateScheduledReply:
        return {reply.pk for reply, _ in deliverable if _deliver_locked(reply, now=now)}
    sent = ScheduledReply.objects.filter(
        pk__in=[reply.pk for reply, _ in deliverable], state=State.PENDING
    ).update(
        state=State.SENT,
        sent_at=now,
        message_id=Subquery(Message.objects.filter(scheduled_reply_id=OuterRef("pk")).values("id")),
    )
    if sent != len(messages):
        # Unreachable while every writer locks or checks the state: better no delivery than a
        # message for a row that is not sent.
        raise DeliveryConflict(
            f"{len(messages) - sent} of {len(messages)} claimed replies stopped being pending"
        )
    return {reply.pk for reply, _ in deliverable}


def deliver_due(*, now: datetime | None, batch_size: int, time_budget_seconds: float) -> set[int]:
    """Claim and deliver due pending rows, a batch per transaction, until none is due or the budget is spent.

    ``FOR UPDATE SKIP LOCKED``: any number of callers (dispatchers, wake-ups) run at once, each
    on other rows. Without an injected ``now``, every batch reads the clock again. Returns the
    ids this call sent.
    """
    started = time.monotonic()
    delivered: set[int] = set()
    while True:
        current = now or timezone.now()
        batch_started = time.monotonic()
        with transaction.atomic():
            batch = list(
                _claimable().filter(state=State.PENDING, due_at__lte=current).order_by("due_at")[:batch_size]
            )
            sent = _deliver_claimed(batch, now=current)
        _report_delivered(batch, sent=sent, now=current, seconds=time.monotonic() - batch_started)
        delivered |= sent
        if len(batch) < batch_size or time.monotonic() - started > time_budget_seconds:
            return delivered


def _report_delivered(
    replies: Iterable[ScheduledReply], *, sent: set[int], now: datetime, seconds: float
) -> None:
    """Once the batch's transaction is left: the lag histogram and one log line per delivered reply."""
    if not sent:
        return
    delivered = [
        (reply, (now - reply.due_at).total_seconds())
        for reply in replies
        if reply.pk in sent and reply.due_at
    ]
    metrics.replies_delivered(lag for _, lag in delivered)
    if not logger.isEnabledFor(logging.INFO):
        return
    for reply, lag in delivered:
        logger.info(
            "reply %s delivered %.3fs after its due time",
            reply.pk,
            lag,
            extra={
                "event": "reply_delivered",
                "conversation_id": reply.conversation_id,
                "reply_id": reply.pk,
                "state": State.SENT,
                "lag_seconds": round(lag, 4),
                "batch_size": len(sent),
                "batch_seconds": round(seconds, 4),
            },
        )


def dispatch_batch_size() -> int:
    return int(conf.setting("SCHEDULING_DISPATCH_BATCH_SIZE"))


def dispatch_time_budget() -> float:
    return float(conf.setting("SCHEDULING_DISPATCH_TIME_BUDGET_SECONDS"))


def reply_deliver(*, reply_id: int, now: datetime | None = None) -> bool:
    """Deliver one due reply if it is still pending and nobody else holds it; True when this call sent it."""
    now = now or timezone.now()
    started = time.monotonic()
    with transaction.atomic():
        reply = _claimable().filter(pk=reply_id, state=State.PENDING, due_at__lte=now).first()
        if reply is None:
            return False
        sent = _deliver_claimed([reply], now=now)
    _report_delivered([reply], sent=sent, now=now, seconds=time.monotonic() - started)
    return reply.pk in sent
