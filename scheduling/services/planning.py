"""Planning a reply and storing it: the plan task's service, idempotent per trigger message.

The model runs before any lock is taken; the row is inserted under the conversation lock only if
its trigger is still the newest person message, otherwise it is recorded ``superseded``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from chat.models import Conversation, Message
from chat.services import conversation_mark_read
from scheduling import conf, metrics
from scheduling.generation import GeneratorUnavailable, ReplySource, reply_source
from scheduling.guard_rules import typing_lead
from scheduling.models import ScheduledReply
from scheduling.selectors import latest_person_message_id
from scheduling.services.drafting import PlanRecord, ReplyDraft, reply_draft
from scheduling.services.errors import ReplyInvariantViolated, ReplyPlanInvalid
from scheduling.services.wakeups import reply_wakes_queue

logger = logging.getLogger(__name__)
State = ScheduledReply.State


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
    started: float,
    draft: ReplyDraft | None = None,
    reason: str = "",
    failure_code: str | None = None,
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
                if draft is None:
                    raise ReplyInvariantViolated(f"a pending reply to message {trigger.pk} needs a draft")
                typing_at, due_at = _timing(draft, now=now)
                fields.update(typing_at=typing_at, due_at=due_at)
                horizon = now + timedelta(seconds=float(conf.setting("SCHEDULING_ETA_HORIZON_SECONDS")))
                if typing_at <= horizon:
                    fields["wake_queued_at"] = now
            reply = ScheduledReply.objects.create(
                conversation_id=trigger.conversation_id, trigger_message=trigger, state=state, **fields
            )
            if reply.wake_queued_at is not None and reply.typing_at is not None:
                transaction.on_commit(
                    partial(reply_wakes_queue, wakes=[(reply.pk, reply.typing_at)]), robust=True
                )
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
    conversation = trigger.conversation
    record = PlanRecord()
    if latest_person_message_id(conversation_id=conversation_id) != trigger.pk:
        # A burst: the plan of the newest message answers them all; no model time spent here.
        return _store(
            trigger=trigger,
            state=State.SUPERSEDED,
            record=record,
            started=started,
            now=now or timezone.now(),
            reason="a newer person message arrived before planning started",
        )
    # The read receipt comes at plan time: the person sees "read" and waits, as with a friend.
    conversation_mark_read(conversation=conversation, reader_role=Message.Role.COMPANION, up_to=trigger.pk)
    plan_now = now or timezone.now()

    def unavailable(why: str) -> ScheduledReply:
        return _store(
            trigger=trigger,
            state=State.FAILED,
            record=record,
            now=plan_now,
            started=started,
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
        draft = reply_draft(
            source=source, conversation=conversation, trigger=trigger, now=plan_now, record=record
        )
    except GeneratorUnavailable as exc:
        return unavailable(str(exc))
    except Exception as exc:
        # A conversation the transcript cannot render (say, a companion name that is no speaker
        # label) must still end with a recorded outcome, not a task retried forever.
        logger.exception("planning the reply to message %s failed", trigger.pk)
        return _store(
            trigger=trigger,
            state=State.FAILED,
            record=record,
            now=plan_now,
            started=started,
            reason=f"planning failed: {type(exc).__name__}: {exc}",
            failure_code="planning_error",
        )
    if draft is None:
        return _store(
            trigger=trigger,
            state=State.FAILED,
            record=record,
            now=plan_now,
            started=started,
            reason="generation failed for the proposal and for the instant fallback",
            failure_code="generation_failed",
        )
    # Model time has passed: timing starts from when the row is stored, unless time is injected.
    return _store(
        trigger=trigger,
        state=State.PENDING,
        record=record,
        started=started,
        now=now or timezone.now(),
        draft=draft,
    )
