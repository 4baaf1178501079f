"""Delivering due replies: claim rows with ``FOR UPDATE SKIP LOCKED``, create the messages, mark them sent.

Every claim is one statement over the reply and its conversation, and every batch is one
transaction: chat's messages and the ``sent`` marks commit together or not at all, and a
duplicate wake-up finds nothing left to claim.

A batch costs the database the claim, chat's one multi-row INSERT and one
UPDATE, each statement with a handful of parameters however many rows it carries; no model
instance is built on the way (the claim reads seven columns into tuples: what delivery writes,
and what it does after the commit: the next bubble to wake, whether follow-ups are planned).

A run of batches (:func:`deliver_due`) keeps the Redis work off the database's path: each batch's
``message.created`` pushes go out while the next batch is claimed (chat's
``pushes_overlapped``), and the follow-up plans of every message it delivered are queued as one
Celery task a second rather than one a batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from chat import realtime
from chat.models import Companion, Conversation, Message
from chat.services import (
    CompanionDelivery,
    DuplicateScheduledReply,
    companion_message_create,
    companion_messages_store,
)
from chat.text_rules import ChatInputInvalid, validate_message_text
from scheduling import conf, metrics
from scheduling.enqueue import follow_up_plans_enqueue
from scheduling.models import ScheduledReply
from scheduling.services.errors import DeliveryConflict
from scheduling.services.wake_slots import reply_wakes_queue

logger = logging.getLogger(__name__)
State = ScheduledReply.State

_REPLIES = ScheduledReply._meta.db_table
_CONVERSATIONS = Conversation._meta.db_table
_COMPANIONS = Companion._meta.db_table

# The reply and its conversation locked in one statement, skipping both when either is taken
# (the lock order of scheduling.services); only the columns delivery reads, with the pending
# bubble after the reply (unlocked: its wake-up is only a hint) and the companion's follow-up
# switch. A bubble waits until the message before it is no longer pending, so a reply's bubbles
# arrive in order.
_CLAIM_SQL = f"""
SELECT reply.id, reply.conversation_id, reply.text, date_part('epoch', %s - reply.due_at),
       next.id, next.typing_at, companion.follow_ups_enabled
FROM {_REPLIES} AS reply
  JOIN {_CONVERSATIONS} AS conversation ON conversation.id = reply.conversation_id
  JOIN {_COMPANIONS} AS companion ON companion.id = conversation.companion_id
  LEFT JOIN {_REPLIES} AS next ON next.after_reply_id = reply.id AND next.state = 'pending'
WHERE reply.state = %s AND reply.due_at <= %s {{only_one}}
  AND (reply.after_reply_id IS NULL OR NOT EXISTS (
    SELECT 1 FROM {_REPLIES} AS before WHERE before.id = reply.after_reply_id AND before.state = 'pending'))
ORDER BY reply.due_at
LIMIT %s
FOR UPDATE OF reply, conversation SKIP LOCKED
"""
_CLAIM_DUE_SQL = _CLAIM_SQL.format(only_one="")
_CLAIM_ONE_SQL = _CLAIM_SQL.format(only_one="AND reply.id = %s")

# Conditional on pending: a row that stopped being pending is not counted (see DeliveryConflict).
_MARK_SENT_SQL = f"""
UPDATE {_REPLIES} AS reply SET state = %s, sent_at = %s, message_id = sent.message_id
FROM unnest(%s::bigint[], %s::bigint[]) AS sent(reply_id, message_id)
WHERE reply.id = sent.reply_id AND reply.state = %s
"""


def _bigint_array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers: one string parameter, not one quoted per element."""
    return "{" + ",".join(map(str, values)) + "}"


class ClaimedReply(NamedTuple):
    """The columns of a claimed reply that delivery reads."""

    id: int
    conversation_id: int
    text: str
    # How long after its due time it was claimed (a float8: cheaper to read than a timestamp).
    lag_seconds: float
    next_bubble_id: int | None  # the pending bubble that waits for this one
    next_bubble_typing_at: datetime | None
    follow_ups_enabled: bool


def _claim(*, now: datetime, batch_size: int, reply_id: int | None = None) -> list[ClaimedReply]:
    """Lock up to ``batch_size`` due pending replies (or only ``reply_id``) with their conversations."""
    with connection.cursor() as cursor:
        if reply_id is None:
            cursor.execute(_CLAIM_DUE_SQL, [now, State.PENDING.value, now, batch_size])
        else:
            cursor.execute(_CLAIM_ONE_SQL, [now, State.PENDING.value, now, reply_id, batch_size])
        return [ClaimedReply(*row) for row in cursor.fetchall()]


def _deliver_locked(reply: ClaimedReply, *, now: datetime) -> int | None:
    """Create the message and mark the row sent; the caller holds the reply and conversation locks.

    The one-row path, through chat's ``companion_message_create``: :func:`_deliver_claimed`
    falls back to it when its bulk insert meets an existing message.
    """
    try:
        message = companion_message_create(
            conversation=Conversation.objects.get(pk=reply.conversation_id),
            text=reply.text,
            scheduled_reply_id=reply.id,
        )
    except DuplicateScheduledReply:
        # Only reachable if a writer bypassed the state check: the message exists, so the reply is sent.
        message_id = Message.objects.filter(scheduled_reply_id=reply.id).values_list("id", flat=True).get()
        ScheduledReply.objects.filter(pk=reply.id).update(
            state=State.SENT, sent_at=now, message_id=message_id
        )
        return None
    except ChatInputInvalid as exc:
        _mark_refused(reply, exc)
        return None
    ScheduledReply.objects.filter(pk=reply.id, state=State.PENDING).update(
        state=State.SENT, sent_at=now, message_id=message.pk
    )
    return message.pk


def _mark_refused(reply: ClaimedReply, exc: ChatInputInvalid) -> None:
    ScheduledReply.objects.filter(pk=reply.id).update(
        state=State.FAILED, outcome_reason=f"chat refused the text: {exc}"
    )


def _deliver_claimed(replies: list[ClaimedReply], *, now: datetime) -> dict[int, int]:
    """Deliver claimed rows in three statements however many there are; return the ids this call
    sent, each with its message's id.

    The caller's transaction holds every row's reply and conversation locks (one claim
    statement). Chat's ``companion_messages_store`` checks every text (``validate_message_text``)
    and stores the messages with one INSERT (``scheduled_reply_id`` is unique: a message that
    already exists sends the batch through the one-row path, which records it), and pushes
    ``message.created`` after commit. If it refuses a text, nothing is stored: each refused row is
    marked ``failed`` and the others go out in a second INSERT. One UPDATE, conditional on
    ``pending``, marks the rows sent with their message ids.
    """
    try:
        stored = _store(replies)
    except ChatInputInvalid:
        # Chat refused some text (rare: a generated text too long or with control characters):
        # mark those rows, store the others.
        deliverable = []
        for reply in replies:
            try:
                validate_message_text(reply.text)
            except ChatInputInvalid as exc:
                _mark_refused(reply, exc)
            else:
                deliverable.append(reply)
        try:
            stored = _store(deliverable)
        except DuplicateScheduledReply:
            return _deliver_one_by_one(deliverable, now=now)
    except DuplicateScheduledReply:
        return _deliver_one_by_one(replies, now=now)
    if not stored:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            _MARK_SENT_SQL,
            [
                State.SENT.value,
                now,
                _bigint_array(stored),
                _bigint_array(stored.values()),
                State.PENDING.value,
            ],
        )
        sent = cursor.rowcount
    if sent != len(stored):
        # Unreachable while every writer locks or checks the state: better no delivery than a
        # message for a row that is not sent.
        raise DeliveryConflict(f"{len(stored) - sent} of {len(stored)} claimed replies stopped being pending")
    return stored


def _store(replies: list[ClaimedReply]) -> dict[int, int]:
    """Chat's one INSERT for the batch (it checks every text first, and stores none if one fails)."""
    return companion_messages_store(
        deliveries=[
            CompanionDelivery(
                conversation_id=reply.conversation_id, scheduled_reply_id=reply.id, text=reply.text
            )
            for reply in replies
        ]
    )


def _deliver_one_by_one(replies: list[ClaimedReply], *, now: datetime) -> dict[int, int]:
    """The one-row path for each reply, once a batch met a message that already exists."""
    one_by_one = {reply.id: _deliver_locked(reply, now=now) for reply in replies}
    return {reply_id: message_id for reply_id, message_id in one_by_one.items() if message_id is not None}


def deliver_due(*, now: datetime | None, batch_size: int, time_budget_seconds: float) -> set[int]:
    """Claim and deliver due pending rows, a batch per transaction, until none is due or the budget is spent.

    ``FOR UPDATE SKIP LOCKED``: any number of callers (dispatchers, wake-ups) run at once, each
    on other rows. Without an injected ``now``, every batch reads the clock again. Returns the
    ids this call sent, once their pushes have gone out and their follow-up plans are queued.
    """
    started = time.monotonic()
    delivered: set[int] = set()
    follow_ups = _FollowUpPlans()
    with realtime.pushes_overlapped():
        try:
            while True:
                current = now or timezone.now()
                batch_started = time.monotonic()
                with transaction.atomic():
                    batch = _claim(now=current, batch_size=batch_size)
                    sent = _deliver_claimed(batch, now=current)
                _report_delivered(batch, sent=sent, seconds=time.monotonic() - batch_started)
                follow_ups.extend(_after_delivery(batch, sent, now=current))
                follow_ups.queue_if_older_than(FOLLOW_UP_QUEUE_SECONDS)
                delivered |= sent.keys()
                if len(batch) < batch_size or time.monotonic() - started > time_budget_seconds:
                    return delivered
        finally:  # what was committed is delivered: its follow-ups are planned even if a later batch failed
            follow_ups.queue()


# How long a run holds the follow-up plans of delivered messages before queueing them as one
# task: a few seconds are nothing beside the plan delay (30 s by default), and each task saved
# is a Celery publish (about as long as a batch's claim) off the delivery path.
FOLLOW_UP_QUEUE_SECONDS = 1.0


class _FollowUpPlans:
    """The messages of one delivery run whose follow-ups are to be planned, not queued yet."""

    def __init__(self) -> None:
        self._message_ids: list[int] = []
        self._since = 0.0

    def extend(self, message_ids: list[int]) -> None:
        if message_ids and not self._message_ids:
            self._since = time.monotonic()
        self._message_ids.extend(message_ids)

    def queue_if_older_than(self, seconds: float) -> None:
        if self._message_ids and time.monotonic() - self._since >= seconds:
            self.queue()

    def queue(self) -> None:
        """One task for every message held (its countdown counts from now: at most a second late)."""
        if self._message_ids:
            message_ids, self._message_ids = self._message_ids, []
            _queue_follow_up_plans(message_ids)


def _after_delivery(replies: Iterable[ClaimedReply], sent: dict[int, int], *, now: datetime) -> list[int]:
    """Once a batch is committed: wake the next bubble of each delivered message; return the
    delivered messages that end their reply and whose companion has follow-ups on (the caller
    queues their follow-up plans). Both are wake-ups: losing them costs a wait, never a wrong
    message.

    ``sent`` maps each reply this call sent to its message. What to do comes from the claim's
    own columns: no query here."""
    wakes: list[tuple[int, datetime]] = []
    follow: list[int] = []
    for reply in replies:
        message_id = sent.get(reply.id)
        if message_id is None:
            continue
        if reply.next_bubble_id is not None:
            wakes.append((reply.next_bubble_id, max(now, reply.next_bubble_typing_at or now)))
        elif reply.follow_ups_enabled:
            follow.append(message_id)
    if wakes:
        reply_wakes_queue(wakes=wakes, now=now)
    return follow


def _queue_follow_up_plans(message_ids: list[int]) -> None:
    """One fan-out task for the follow-up plans of these delivered messages, after the plan delay."""
    follow_up_plans_enqueue(message_ids=message_ids, countdown=follow_up_plan_delay())


def follow_up_plan_delay() -> float:
    """Seconds after a delivery before its follow-up is planned (REPLY_TIME_SCALE applied): a
    person who answers within them costs no model time."""
    return float(conf.setting("SCHEDULING_FOLLOW_UP_PLAN_DELAY_SECONDS")) * conf.time_scale()


def _report_delivered(replies: Iterable[ClaimedReply], *, sent: Collection[int], seconds: float) -> None:
    """Once the batch's transaction is left: the lag histogram and one log line per delivered reply."""
    if not sent:
        return
    delivered = [(reply, reply.lag_seconds) for reply in replies if reply.id in sent]
    metrics.replies_delivered(lag for _, lag in delivered)
    if not logger.isEnabledFor(logging.INFO):
        return
    for reply, lag in delivered:
        logger.info(
            "reply %s delivered %.3fs after its due time",
            reply.id,
            lag,
            extra={
                "event": "reply_delivered",
                "conversation_id": reply.conversation_id,
                "reply_id": reply.id,
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
        claimed = _claim(now=now, batch_size=1, reply_id=reply_id)
        if not claimed:
            return False
        sent = _deliver_claimed(claimed, now=now)
    _report_delivered(claimed, sent=sent, seconds=time.monotonic() - started)
    if follow := _after_delivery(claimed, sent, now=now):
        _queue_follow_up_plans(follow)
    return reply_id in sent
