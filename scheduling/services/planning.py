"""Planning a reply or a follow-up and storing it: the plan tasks' services, idempotent per trigger.

The model runs before any lock is taken; the rows are inserted under the conversation lock only
if the plan still applies (an answer's trigger is still the newest person message; a follow-up's
companion message is still the newest message, nothing else is pending and the unanswered cap
holds), otherwise the row is recorded ``superseded`` (or ``declined``).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from django.db import IntegrityError, transaction
from django.utils import timezone

from chat.models import Conversation, Message
from chat.services import conversation_mark_read
from scheduling import conf, metrics
from scheduling.generation import GeneratorUnavailable, ReplySource, reply_source
from scheduling.guard_rules import typing_lead
from scheduling.models import ScheduledReply
from scheduling.selectors import latest_message_id, latest_person_message_id, unanswered_follow_ups
from scheduling.services.drafting import (
    FollowUpDeclined,
    PlanRecord,
    ReplyDraft,
    follow_up_draft,
    reply_draft,
)
from scheduling.services.errors import ReplyInvariantViolated, ReplyPlanInvalid
from scheduling.services.wake_slots import reply_wakes_queue

logger = logging.getLogger(__name__)
State = ScheduledReply.State
Kind = ScheduledReply.Kind


def _lead(text: str) -> timedelta:
    """How long the companion types ``text``, in real time (REPLY_TIME_SCALE applied)."""
    return (
        typing_lead(
            text,
            min_seconds=float(conf.setting("SCHEDULING_TYPING_MIN_SECONDS")),
            seconds_per_char=float(conf.setting("SCHEDULING_TYPING_SECONDS_PER_CHAR")),
            max_seconds=float(conf.setting("SCHEDULING_TYPING_MAX_SECONDS")),
        )
        * conf.time_scale()
    )


def _timing(draft: ReplyDraft, *, now: datetime) -> list[tuple[datetime, datetime]]:
    """``(typing_at, due_at)`` in real time for each bubble of the draft, in order.

    The delay and the typing lead are scaled by REPLY_TIME_SCALE. A further bubble is typed after
    the one before it is due, and comes no earlier than its own time in the transcript.
    """
    scale = conf.time_scale()
    lead = _lead(draft.text)
    if not draft.is_delayed:
        # Instant: the companion starts typing now; the message comes when it would be typed.
        times = [(now, now + lead)]
    else:
        due_at = max(now, draft.base_at + (draft.final_at - draft.base_at) * scale)
        times = [(max(now, due_at - lead), due_at)]
    for at, text in draft.more:
        previous_due, bubble_lead = times[-1][1], _lead(text)
        due_at = max(previous_due + bubble_lead, draft.base_at + (at - draft.base_at) * scale)
        times.append((max(previous_due, due_at - bubble_lead), due_at))
    return times


def _superseded_by(trigger: Message, kind: str) -> str | None:
    """Why the plan no longer applies (the caller holds the conversation lock), or None.

    An answer stands while its trigger is the newest person message. A follow-up stands while
    the companion message it follows is the newest message and nothing else is pending.
    """
    if kind == Kind.ANSWER:
        newest = latest_person_message_id(conversation_id=trigger.conversation_id)
        if newest != trigger.pk:
            return f"person message {newest} arrived while the reply was planned"
        return None
    newest = latest_message_id(conversation_id=trigger.conversation_id)
    if newest != trigger.pk:
        return f"message {newest} came after the companion message this follow-up follows"
    if ScheduledReply.objects.filter(conversation_id=trigger.conversation_id, state=State.PENDING).exists():
        return "another reply of the conversation is pending"
    return None


def _store(
    *,
    trigger: Message,
    state: str,
    record: PlanRecord,
    now: datetime,
    started: float,
    draft: ReplyDraft | None = None,
    reason: str = "",
    failure_code: str | None = None,
    kind: str = Kind.ANSWER,
) -> ScheduledReply:
    """Insert the plan's rows under the conversation lock; superseded when the plan no longer applies.

    A pending draft with further bubbles stores one row per bubble, each after the one before.
    A follow-up that would exceed the unanswered cap, counted under the lock, is declined.
    """
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
            companion = (
                Conversation.objects.select_for_update(of=("self",))
                .select_related("companion")
                .get(pk=trigger.conversation_id)
                .companion
            )
            superseded = _superseded_by(trigger, kind) if state == State.PENDING else None
            if superseded is not None:
                state = State.SUPERSEDED
                fields["outcome_reason"] = superseded
            if state == State.PENDING and kind == Kind.FOLLOW_UP:
                unanswered = unanswered_follow_ups(conversation_id=trigger.conversation_id)
                if unanswered >= companion.follow_up_max_unanswered:
                    state = State.DECLINED
                    fields["outcome_reason"] = (
                        f"{unanswered} follow-up(s) since the person last wrote; "
                        f"at most {companion.follow_up_max_unanswered}"
                    )
            times: list[tuple[datetime, datetime]] = []
            if state == State.PENDING:
                if draft is None:
                    raise ReplyInvariantViolated(f"a pending reply to message {trigger.pk} needs a draft")
                times = _timing(draft, now=now)
                fields.update(typing_at=times[0][0], due_at=times[0][1])
            horizon = now + timedelta(seconds=float(conf.setting("SCHEDULING_ETA_HORIZON_SECONDS")))
            if times and times[0][0] <= horizon:
                fields["wake_queued_at"] = now
            reply = ScheduledReply.objects.create(
                conversation_id=trigger.conversation_id,
                trigger_message=trigger,
                state=state,
                kind=kind,
                **fields,
            )
            wakes = [(reply.pk, times[0][0])] if reply.wake_queued_at is not None else []
            previous = reply
            for index, ((at, text), (typing_at, due_at)) in enumerate(
                zip(draft.more if draft else (), times[1:], strict=True), start=1
            ):
                previous = ScheduledReply.objects.create(
                    conversation_id=trigger.conversation_id,
                    kind=Kind.BUBBLE,
                    after_reply=previous,
                    bubble_index=index,
                    state=State.PENDING,
                    text=text,
                    proposed_at=at,
                    final_at=at,
                    is_delayed=reply.is_delayed,
                    typing_at=typing_at,
                    due_at=due_at,
                    planned_at=now,
                    wake_queued_at=now if typing_at <= horizon else None,
                )
                if typing_at <= horizon:
                    wakes.append((previous.pk, typing_at))
            if wakes:
                transaction.on_commit(partial(reply_wakes_queue, wakes=wakes), robust=True)
    except IntegrityError:
        # A duplicate plan task stored this trigger's row first: that row is the outcome.
        return ScheduledReply.objects.get(trigger_message=trigger)
    _report(
        reply, trigger=trigger, record=record, seconds=time.monotonic() - started, failure_code=failure_code
    )
    return reply


def _report(
    reply: ScheduledReply, *, trigger: Message, record: PlanRecord, seconds: float, failure_code: str | None
) -> None:
    """The plan's metrics and its one log line (JSON with ``LOG_FORMAT=json``)."""
    metrics.plan_recorded(
        outcome=reply.state,
        failure_reason=failure_code if reply.state == State.FAILED else None,
        seconds=seconds,
        attempts=record.attempts,
        decisions=record.decisions,
        safety_hits=record.safety_hits,
    )
    delay = (
        (reply.final_at - trigger.created_at).total_seconds()
        if reply.final_at is not None and trigger.created_at is not None
        else None
    )
    due_in = (reply.due_at - reply.planned_at).total_seconds() if reply.due_at is not None else None
    logger.info(
        "reply %s for message %s: %s %s",
        reply.pk,
        trigger.pk,
        reply.state,
        reply.due_at or "",
        extra={
            "event": "reply_planned",
            "conversation_id": reply.conversation_id,
            "reply_id": reply.pk,
            "trigger_message_id": trigger.pk,
            "kind": reply.kind,
            "state": reply.state,
            "failure_code": failure_code if reply.state == State.FAILED else None,
            "is_delayed": reply.is_delayed,
            "delay_seconds": delay,
            "due_in_seconds": due_in,
            "plan_seconds": round(seconds, 4),
            "generation_attempts": len(record.attempts),
            "guard_changes": sum(1 for decision in record.decisions if decision.get("changed")),
            "safety_hits": len(record.safety_hits),
        },
    )


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
    started = time.monotonic()
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
    if latest_person_message_id(conversation_id=conversation_id) != trigger.pk:
        # A burst: the plan of the newest message answers them all; no model time spent here.
        return _store(
            trigger=trigger,
            state=State.SUPERSEDED,
            record=PlanRecord(),
            started=started,
            now=now or timezone.now(),
            reason="a newer person message arrived before planning started",
        )
    # The read receipt comes at plan time: the person sees "read" and waits, as with a friend.
    conversation_mark_read(
        conversation=trigger.conversation, reader_role=Message.Role.COMPANION, up_to=trigger.pk
    )
    return _draft_and_store(
        trigger=trigger, kind=Kind.ANSWER, drafter=reply_draft, source=source, now=now, started=started
    )


def follow_up_plan(
    *, message_id: int, source: ReplySource | None = None, now: datetime | None = None
) -> ScheduledReply | None:
    """Plan whether and when the companion writes again after its own message; idempotent per message.

    ``None`` when there is nothing to follow up: the person (or another message) came after it,
    or a reply is pending. Otherwise the message's follow-up row: ``pending``, ``declined`` (the
    follow-up guards said no; their decisions are on the row), ``superseded`` or ``failed``.
    Raises :class:`ReplyPlanInvalid` for an id that names no companion message.
    """
    started = time.monotonic()
    existing = ScheduledReply.objects.filter(trigger_message_id=message_id).first()
    if existing is not None:
        return existing
    trigger = (
        Message.objects.select_related("conversation__companion")
        .filter(pk=message_id, role=Message.Role.COMPANION)
        .first()
    )
    if trigger is None:
        raise ReplyPlanInvalid(f"message {message_id} is not a companion message")
    if _superseded_by(trigger, Kind.FOLLOW_UP) is not None:
        return None
    return _draft_and_store(
        trigger=trigger, kind=Kind.FOLLOW_UP, drafter=follow_up_draft, source=source, now=now, started=started
    )


class _Drafter(Protocol):
    def __call__(
        self,
        *,
        source: ReplySource,
        conversation: Conversation,
        trigger: Message,
        now: datetime,
        record: PlanRecord,
    ) -> ReplyDraft | FollowUpDeclined | None: ...


def _draft_and_store(
    *,
    trigger: Message,
    kind: str,
    drafter: _Drafter,
    source: ReplySource | None,
    now: datetime | None,
    started: float,
) -> ScheduledReply:
    """Load the source, draft, and store the outcome: every path ends with a recorded row."""
    record = PlanRecord()
    plan_now = now or timezone.now()
    store = partial(_store, trigger=trigger, record=record, started=started, kind=kind)

    def unavailable(why: str) -> ScheduledReply:
        return store(
            state=State.FAILED,
            now=plan_now,
            reason=f"the reply generator is unavailable: {why}",
            failure_code="generator_unavailable",
        )

    try:
        source = source or reply_source()
    except Exception as exc:
        logger.exception("the reply generator could not be loaded")
        record.attempts.append({"purpose": "load", "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return unavailable(f"{type(exc).__name__}: {exc}")
    try:
        draft = drafter(
            source=source, conversation=trigger.conversation, trigger=trigger, now=plan_now, record=record
        )
    except GeneratorUnavailable as exc:
        return unavailable(str(exc))
    except Exception as exc:
        # A conversation the transcript cannot render (say, a companion name that is no speaker
        # label) must still end with a recorded outcome, not a task retried forever.
        logger.exception("planning the %s to message %s failed", kind, trigger.pk)
        return store(
            state=State.FAILED,
            now=plan_now,
            reason=f"planning failed: {type(exc).__name__}: {exc}",
            failure_code="planning_error",
        )
    if draft is None:
        reason = (
            "generation failed for the proposal and for the instant fallback"
            if kind == Kind.ANSWER
            else "generation failed for the follow-up"
        )
        return store(state=State.FAILED, now=plan_now, reason=reason, failure_code="generation_failed")
    if isinstance(draft, FollowUpDeclined):
        return store(state=State.DECLINED, now=plan_now, reason=f"declined: {draft.reason}")
    # Model time has passed: timing starts from when the row is stored, unless time is injected.
    return store(state=State.PENDING, now=now or timezone.now(), draft=draft)
