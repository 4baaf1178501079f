"""Writes of the reply loop: cancel, plan, wake, deliver, dispatch.

PostgreSQL is the single source of truth. Every transition out of ``pending`` is a write
conditional on ``state = 'pending'`` in the same transaction as its effect, and every
Celery message is a wake-up that may be lost or arrive twice:

* :func:`replies_cancel_pending` runs inside chat's ``message_post`` transaction (which holds
  the conversation row lock), so a person's message and the cancellation commit together;
* :func:`reply_plan` generates outside any transaction (seconds of model time), then locks
  the conversation row and inserts ``pending`` only if its trigger is still the newest
  person message; otherwise the row is recorded ``superseded``;
* :func:`reply_deliver`, :func:`reply_wake` and :func:`due_replies_dispatch` claim due rows
  with ``SELECT ... FOR UPDATE OF reply, conversation SKIP LOCKED`` and, in one transaction,
  create the chat messages (one INSERT per claimed batch; ``scheduled_reply_id`` is unique)
  and mark the rows ``sent`` (one UPDATE, conditional on ``pending``);
* :func:`reply_wakes_queue` queues ETA wake-ups, one per short slot: each wake-up advances
  every reply whose time has come (typing, then delivery), so their number follows the clock,
  not the number of replies.

Lock order: the conversation row, then reply rows. ``message_post`` takes the conversation
lock before it cancels; delivery locks the reply and its conversation in one statement and
skips both when either is taken, so a person writing and a delivery never wait on each other
in a cycle: whichever locks the conversation first wins, the other sees the result.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone

from chat import realtime
from chat.models import Conversation, Message
from chat.services import (
    CompanionDelivery,
    DuplicateScheduledReply,
    companion_message_create,
    companion_messages_create,
    conversation_mark_read,
)
from chat.text_rules import ChatInputInvalid, validate_message_text
from scheduling import conf, safety
from scheduling.generation import ReplySource, dialogue_for, reply_source
from scheduling.guard_rules import (
    GuardSettings,
    apply_guard_rules,
    typing_lead,
)
from scheduling.lexicon import complaint_phrases
from scheduling.models import ScheduledReply
from scheduling.selectors import guard_history, latest_person_message_id

logger = logging.getLogger(__name__)
State = ScheduledReply.State


class ReplyPlanInvalid(ValueError):
    """The plan task got ids that do not name a person message of that conversation."""


# --- Cancel (inside the person's message transaction) ---------------------------------------


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


# --- Plan --------------------------------------------------------------------------------------


@dataclass
class PlanRecord:
    """What the plan did, stored on the row whatever the outcome."""

    attempts: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    safety_hits: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ReplyDraft:
    text: str
    proposed_at: datetime | None
    final_at: datetime
    is_delayed: bool
    base_at: datetime


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _generate(
    source: ReplySource,
    dialogue: Any,
    record: PlanRecord,
    *,
    purpose: str,
    max_delay: timedelta,
    forced_at: datetime | None = None,
    sampling: Any = None,
) -> Any | None:
    """One generation attempt, recorded; ``None`` when it failed (the reason is in the record)."""
    started = time.monotonic()
    entry: dict[str, Any] = {"purpose": purpose, "forced_at": _iso(forced_at)}
    try:
        reply = source.generate(dialogue, sampling=sampling, forced_at=forced_at, max_delay=max_delay)
    except Exception as exc:  # a model bug must still leave a recorded outcome, never a stuck plan
        logger.warning("reply generation (%s) failed: %s", purpose, exc, exc_info=True)
        entry.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        completion = getattr(exc, "completion", None)
        if completion:
            entry["completion"] = completion
        reply = None
    else:
        entry.update(
            ok=True,
            at=_iso(reply.at),
            text=reply.text,
            completion=reply.completion,
            constrained=reply.constrained,
        )
    entry["seconds"] = round(time.monotonic() - started, 3)
    record.attempts.append(entry)
    return reply


def _regeneration_sampling(attempt: int) -> Any:
    from companion.generator import SamplingConfig

    # Greedy decoding would write the rejected text again; a seeded sample keeps it reproducible.
    return SamplingConfig(
        temperature=float(conf.setting("SCHEDULING_REGENERATION_TEMPERATURE")), seed=attempt
    )


def _draft(
    *,
    source: ReplySource,
    conversation: Conversation,
    trigger: Message,
    now: datetime,
    record: PlanRecord,
) -> ReplyDraft | None:
    """Generate, guard, re-time and filter one reply; ``None`` when no reply could be produced."""
    companion = conversation.companion
    guard_settings = GuardSettings.from_companion(companion)
    dialogue = dialogue_for(conversation=conversation, up_to_message_id=trigger.pk)
    base_at = dialogue.last_at
    # The model may propose beyond the companion's maximum (the max_delay rule clamps it); the
    # generator's own limit is the transcript grammar's, never below the companion's.
    model_max = max(guard_settings.max_delay, timedelta(days=7))
    proposal = _generate(source, dialogue, record, purpose="propose", max_delay=model_max)

    if proposal is None:
        # Fall back to an instant reply written for "now" rather than leaving the person unanswered.
        forced = _generate(
            source, dialogue, record, purpose="fallback_instant", max_delay=model_max, forced_at=now
        )
        if forced is None:
            return None
        record.decisions.append(
            {
                "rule": "generation_fallback",
                "changed": True,
                "before_seconds": None,
                "after_seconds": 0.0,
                "reason": "the proposal failed; an instant reply was generated instead",
            }
        )
        text, proposed_at, outcome = forced.text, None, None
        final_at = now
    else:
        proposed_at = proposal.at.astimezone(UTC)  # the model answers in the conversation's zone
        outcome = apply_guard_rules(
            proposed_delay=proposal.at - base_at,
            settings=guard_settings,
            history=guard_history(
                conversation=conversation,
                up_to_message_id=trigger.pk,
                now=now,
                companion_turns=guard_settings.delay_ration_turns,
                since=guard_settings.complaint_cooldown,
            ),
            complaints=complaint_phrases(),
        )
        record.decisions.extend(decision.as_record() for decision in outcome.decisions)
        final_at = max(now, base_at) if outcome.is_instant else base_at + outcome.final_delay
        text = proposal.text
        # Within the same minute the proposal's words still fit (the transcript has minute resolution).
        if outcome.changed and abs(final_at - proposal.at) >= timedelta(minutes=1):
            # The words must fit the moment they are sent ("good morning" must not go out at 23:10).
            retimed = _generate(
                source, dialogue, record, purpose="guard_retime", max_delay=model_max, forced_at=final_at
            )
            if retimed is not None:
                text = retimed.text
            else:
                record.decisions.append(
                    {
                        "rule": "guard_retime",
                        "changed": False,
                        "before_seconds": None,
                        "after_seconds": None,
                        "reason": "regeneration for the new time failed; the proposal's text is kept",
                    }
                )

    text = _filter_unsafe(
        source=source,
        dialogue=dialogue,
        record=record,
        text=text,
        final_at=final_at,
        model_max=model_max,
        context_text=trigger.text,
    )
    return ReplyDraft(
        text=text,
        proposed_at=proposed_at,
        final_at=final_at,
        is_delayed=outcome is not None and not outcome.is_instant,
        base_at=base_at,
    )


def _filter_unsafe(
    *,
    source: ReplySource,
    dialogue: Any,
    record: PlanRecord,
    text: str,
    final_at: datetime,
    model_max: timedelta,
    context_text: str,
) -> str:
    """Regenerate on a safety hit; after the allowed regenerations, the civil fallback."""
    allowed = int(conf.setting("SCHEDULING_SAFETY_MAX_REGENERATIONS"))
    for attempt in range(allowed + 1):
        verdict = safety.check_text(text)
        if verdict.is_safe:
            return text
        record.safety_hits.append({"attempt": attempt, "text": text, "reasons": list(verdict.reasons)})
        if attempt == allowed:
            break
        regenerated = _generate(
            source,
            dialogue,
            record,
            purpose="safety_regenerate",
            max_delay=model_max,
            forced_at=final_at,
            sampling=_regeneration_sampling(attempt + 1),
        )
        if regenerated is not None:
            text = regenerated.text
    fallback = safety.fallback_text(context_text=context_text)
    record.safety_hits.append({"attempt": allowed + 1, "text": fallback, "reasons": [], "fallback": True})
    return fallback


def _timing(draft: ReplyDraft, *, now: datetime) -> tuple[datetime, datetime]:
    """``(typing_at, due_at)`` in real time: the delay and the typing lead scaled by REPLY_TIME_SCALE."""
    scale = conf.time_scale()
    lead = (
        typing_lead(
            draft.text,
            min_seconds=float(conf.setting("SCHEDULING_TYPING_MIN_SECONDS")),
            seconds_per_char=float(conf.setting("SCHEDULING_TYPING_SECONDS_PER_CHAR")),
            max_seconds=float(conf.setting("SCHEDULING_TYPING_MAX_SECONDS")),
        )
        * scale
    )
    if not draft.is_delayed:
        # Instant: the companion starts typing now; the message comes when it would be typed.
        return now, now + lead
    due_at = max(now, draft.base_at + (draft.final_at - draft.base_at) * scale)
    return max(now, due_at - lead), due_at


def _store(
    *,
    trigger: Message,
    state: str,
    record: PlanRecord,
    now: datetime,
    draft: ReplyDraft | None = None,
    reason: str = "",
) -> ScheduledReply:
    """Insert the plan's row under the conversation lock; superseded when a newer person message exists."""
    fields: dict[str, Any] = {
        "guard_decisions": record.decisions,
        "generation_attempts": record.attempts,
        "safety_hits": record.safety_hits,
        "planned_at": now,
        "outcome_reason": reason,
    }
    if draft is not None:
        fields.update(
            text=draft.text,
            proposed_at=draft.proposed_at,
            final_at=draft.final_at,
            is_delayed=draft.is_delayed,
        )
    try:
        with transaction.atomic():
            Conversation.objects.select_for_update().filter(pk=trigger.conversation_id).values_list(
                "pk"
            ).get()
            newest = latest_person_message_id(conversation_id=trigger.conversation_id)
            if state == State.PENDING and newest != trigger.pk:
                state = State.SUPERSEDED
                fields["outcome_reason"] = f"person message {newest} arrived while the reply was planned"
            if state == State.PENDING:
                assert draft is not None
                typing_at, due_at = _timing(draft, now=now)
                fields.update(typing_at=typing_at, due_at=due_at)
                horizon = now + timedelta(seconds=float(conf.setting("SCHEDULING_ETA_HORIZON_SECONDS")))
                if typing_at <= horizon:
                    fields["wake_queued_at"] = now
            reply = ScheduledReply.objects.create(
                conversation_id=trigger.conversation_id, trigger_message=trigger, state=state, **fields
            )
            if reply.wake_queued_at is not None:
                transaction.on_commit(
                    partial(reply_wakes_queue, wakes=[(reply.pk, reply.typing_at)]), robust=True
                )
    except IntegrityError:
        # A duplicate plan task stored this trigger's row first: that row is the outcome.
        return ScheduledReply.objects.get(trigger_message=trigger)
    logger.info("reply %s for message %s: %s %s", reply.pk, trigger.pk, reply.state, reply.due_at or "")
    return reply


def reply_plan(
    *,
    conversation_id: int,
    trigger_message_id: int,
    source: ReplySource | None = None,
    now: datetime | None = None,
) -> ScheduledReply:
    """Plan the companion's answer to a person message; idempotent per trigger.

    Returns the trigger's row: ``pending`` (to be delivered at ``due_at``), ``superseded``
    (a newer person message exists), or ``failed`` (no reply could be generated; the reason
    and every attempt are on the row). Raises :class:`ReplyPlanInvalid` for ids that do not
    name a person message of that conversation.
    """
    existing = ScheduledReply.objects.filter(trigger_message_id=trigger_message_id).first()
    if existing is not None:
        return existing
    trigger = (
        Message.objects.select_related("conversation__companion")
        .filter(pk=trigger_message_id, conversation_id=conversation_id, role=Message.Role.PERSON)
        .first()
    )
    if trigger is None:
        raise ReplyPlanInvalid(
            f"message {trigger_message_id} is not a person message of conversation {conversation_id}"
        )
    conversation = trigger.conversation
    record = PlanRecord()
    if latest_person_message_id(conversation_id=conversation_id) != trigger.pk:
        # A burst: the plan of the newest message answers them all; no model time spent here.
        return _store(
            trigger=trigger,
            state=State.SUPERSEDED,
            record=record,
            now=now or timezone.now(),
            reason="a newer person message arrived before planning started",
        )
    # The read receipt comes at plan time: the person sees "read" and waits, as with a friend.
    conversation_mark_read(conversation=conversation, reader_role=Message.Role.COMPANION, up_to=trigger.pk)
    plan_now = now or timezone.now()
    try:
        source = source or reply_source()
    except Exception as exc:
        logger.exception("the reply generator could not be loaded")
        record.attempts.append({"purpose": "load", "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return _store(
            trigger=trigger,
            state=State.FAILED,
            record=record,
            now=plan_now,
            reason=f"the reply generator is unavailable: {type(exc).__name__}: {exc}",
        )
    try:
        draft = _draft(source=source, conversation=conversation, trigger=trigger, now=plan_now, record=record)
    except Exception as exc:
        # A conversation the transcript cannot render (say, a companion name that is no speaker
        # label) must still end with a recorded outcome, not a task retried forever.
        logger.exception("planning the reply to message %s failed", trigger.pk)
        return _store(
            trigger=trigger,
            state=State.FAILED,
            record=record,
            now=plan_now,
            reason=f"planning failed: {type(exc).__name__}: {exc}",
        )
    if draft is None:
        return _store(
            trigger=trigger,
            state=State.FAILED,
            record=record,
            now=plan_now,
            reason="generation failed for the proposal and for the instant fallback",
        )
    # Model time has passed: timing starts from when the row is stored, unless time is injected.
    return _store(trigger=trigger, state=State.PENDING, record=record, now=now or timezone.now(), draft=draft)


# --- Deliver -----------------------------------------------------------------------------------


def _claimable() -> Any:
    # Delivery reads only these columns; the rest (the plan's JSON records, the conversation's
    # fields) would be fetched and parsed for every claimed row for nothing.
    return (
        ScheduledReply.objects.select_for_update(skip_locked=True, of=("self", "conversation"))
        .select_related("conversation")
        .only("id", "conversation_id", "text", "conversation__id")
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


class DeliveryConflict(RuntimeError):
    """A claimed row stopped being pending under our lock: a writer bypassed it; the batch rolls back."""


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


def _deliver_due(*, now: datetime | None, batch_size: int, time_budget_seconds: float) -> set[int]:
    """Claim and deliver due pending rows, a batch per transaction, until none is due or the budget is spent.

    ``FOR UPDATE SKIP LOCKED``: any number of callers (dispatchers, wake-ups) run at once, each
    on other rows. Without an injected ``now``, every batch reads the clock again. Returns the
    ids this call sent.
    """
    started = time.monotonic()
    delivered: set[int] = set()
    while True:
        current = now or timezone.now()
        with transaction.atomic():
            batch = list(
                _claimable().filter(state=State.PENDING, due_at__lte=current).order_by("due_at")[:batch_size]
            )
            delivered |= _deliver_claimed(batch, now=current)
        if len(batch) < batch_size or time.monotonic() - started > time_budget_seconds:
            return delivered


def _batch_size() -> int:
    return int(conf.setting("SCHEDULING_DISPATCH_BATCH_SIZE"))


def _time_budget() -> float:
    return float(conf.setting("SCHEDULING_DISPATCH_TIME_BUDGET_SECONDS"))


def reply_deliver(*, reply_id: int, now: datetime | None = None) -> bool:
    """Deliver one due reply if it is still pending and nobody else holds it; True when this call sent it."""
    now = now or timezone.now()
    with transaction.atomic():
        reply = _claimable().filter(pk=reply_id, state=State.PENDING, due_at__lte=now).first()
        if reply is None:
            return False
        return reply.pk in _deliver_claimed([reply], now=now)


# --- Wake-ups ----------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _wake_slot(at: datetime, *, now: datetime) -> int:
    """The slot (microseconds since the epoch) whose wake-up covers an event at ``at``.

    The end of the resolution interval holding ``at``, so every event of the slot is due when
    its wake-up runs; never ``now`` or earlier, so the wake-up runs after the caller's commit.
    """
    resolution = max(1, round(conf.wake_resolution() * 1_000_000))
    at_us = (at - _EPOCH) // _MICROSECOND
    slot = -(-at_us // resolution) * resolution
    now_us = (now - _EPOCH) // _MICROSECOND
    if slot <= now_us:
        slot = (now_us // resolution + 1) * resolution
    return slot


def reply_wakes_queue(*, wakes: Iterable[tuple[int, datetime]], now: datetime | None = None) -> int:
    """Queue ETA wake-ups for ``(reply_id, at)`` pairs, at most one per slot; return how many were queued.

    A wake-up advances every reply whose time has come, not only the one it names
    (:func:`reply_wake`), so a slot of ``SCHEDULING_WAKE_RESOLUTION_SECONDS`` needs one task,
    queued for the slot's end and naming its first reply. A cache key marks the slot queued
    until just after it has passed. Losing the key costs a duplicate wake-up; losing the task,
    a wait for the dispatcher, as with any lost wake-up.
    """
    from scheduling.tasks import wake_reply

    now = now or timezone.now()
    slots: dict[int, int] = {}
    for reply_id, at in wakes:
        slots.setdefault(_wake_slot(at, now=now), reply_id)
    now_us = (now - _EPOCH) // _MICROSECOND
    queued = 0
    for slot, reply_id in sorted(slots.items()):
        key = f"scheduling:wake-slot:{slot}"
        if not cache.add(key, reply_id, timeout=math.ceil((slot - now_us) / 1_000_000) + 1):
            continue
        try:
            wake_reply.apply_async(args=[reply_id], eta=_EPOCH + slot * _MICROSECOND)
        except Exception:
            cache.delete(key)  # the slot is not queued: let the next caller try
            raise
        queued += 1
    return queued


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
                    partial(reply_wakes_queue, wakes=[(reply_id, due_at) for reply_id, _, due_at in batch]),
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
    _start_due_typing(now=now, batch_size=_batch_size())
    delivered = _deliver_due(now=now, batch_size=_batch_size(), time_budget_seconds=_time_budget())
    if reply_id in delivered:
        return WakeOutcome("delivered")
    reply = (
        ScheduledReply.objects.filter(pk=reply_id, state=State.PENDING)
        .only("typing_at", "due_at", "typing_started_at")
        .first()
    )
    if reply is None:
        return WakeOutcome("done")
    assert reply.due_at is not None and reply.typing_at is not None
    if now >= reply.due_at or (now >= reply.typing_at and reply.typing_started_at is None):
        # Held by another deliverer, another wake-up or the person's message: look again shortly.
        action, again = "busy", now + timedelta(seconds=1)
    elif now < reply.typing_at:
        action, again = "waiting", reply.typing_at
    else:
        action, again = "typing", reply.due_at
    reply_wakes_queue(wakes=[(reply_id, again)])
    return WakeOutcome(action, again)


# --- Dispatch ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DispatchReport:
    delivered: int
    wakeups_queued: int
    plans_requeued: int


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
    delivered = _deliver_due(
        now=now,
        batch_size=batch_size or _batch_size(),
        time_budget_seconds=time_budget_seconds if time_budget_seconds is not None else _time_budget(),
    )
    current = now or timezone.now()
    return DispatchReport(
        delivered=len(delivered),
        wakeups_queued=_queue_upcoming_wakeups(now=current),
        plans_requeued=_requeue_lost_plans(now=current),
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
        if upcoming:
            ScheduledReply.objects.filter(id__in=[reply_id for reply_id, _ in upcoming]).update(
                wake_queued_at=now
            )
            transaction.on_commit(partial(reply_wakes_queue, wakes=upcoming), robust=True)
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
            from scheduling.tasks import plan_reply

            plan_reply.apply_async(args=[conversation_id, message_id])
            queued += 1
    return queued


# --- Chat hooks (registered in SchedulingConfig.ready) -----------------------------------------


def on_person_message_in_transaction(message: Message) -> None:
    """Chat's in-transaction hook: the new message cancels every pending reply with it."""
    replies_cancel_pending(conversation_id=message.conversation_id, cause_message_id=message.pk)


def on_person_message_committed(message: Message) -> None:
    """Chat's after-commit hook: plan after the debounce, so a burst is answered once, from all of it."""
    from scheduling.tasks import plan_reply

    plan_reply.apply_async(
        args=[message.conversation_id, message.pk],
        countdown=float(conf.setting("SCHEDULING_PLAN_DEBOUNCE_SECONDS")),
    )
