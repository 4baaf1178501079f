"""Reads of the reply loop: the history the guard rules need and the staff listing."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import QuerySet

from chat.models import Conversation, Message
from companion.generator.transcript import zone
from scheduling.guard_rules import FollowUpHistory, GuardHistory, PersonTurn
from scheduling.models import ScheduledReply


def latest_person_message_id(*, conversation_id: int) -> int | None:
    return (
        Message.objects.filter(conversation_id=conversation_id, role=Message.Role.PERSON)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )


def guard_history(
    *,
    conversation: Conversation,
    up_to_message_id: int,
    now: datetime,
    companion_turns: int,
    since: timedelta,
) -> GuardHistory:
    """The last ``companion_turns`` companion messages (delayed or not) and the person's recent messages."""
    companion_messages = list(
        Message.objects.filter(
            conversation=conversation, role=Message.Role.COMPANION, id__lte=up_to_message_id
        )
        .order_by("-id")
        .values_list("scheduled_reply_id", flat=True)[:companion_turns]
    )
    delayed_ids = set(
        ScheduledReply.objects.filter(
            id__in=[reply_id for reply_id in companion_messages if reply_id is not None], is_delayed=True
        ).values_list("id", flat=True)
    )
    person_turns = [
        PersonTurn(at=at, text=text)
        for at, text in Message.objects.filter(
            conversation=conversation,
            role=Message.Role.PERSON,
            id__lte=up_to_message_id,
            created_at__gte=now - since,
        )
        .order_by("-id")
        .values_list("created_at", "text")
    ]
    return GuardHistory(
        now=now,
        companion_turns_delayed=[reply_id in delayed_ids for reply_id in companion_messages],
        person_turns=person_turns,
    )


# The person's messages the leave-alone guard reads: the last few, within a day.
_LEAVE_ALONE_MESSAGES = 3
_LEAVE_ALONE_WITHIN = timedelta(days=1)


def unanswered_follow_ups(*, conversation_id: int) -> int:
    """Follow-ups sent or pending since the person's last message (the unanswered cap counts these)."""
    last_person = latest_person_message_id(conversation_id=conversation_id) or 0
    return ScheduledReply.objects.filter(
        conversation_id=conversation_id,
        kind=ScheduledReply.Kind.FOLLOW_UP,
        state__in=[ScheduledReply.State.SENT, ScheduledReply.State.PENDING],
        trigger_message_id__gt=last_person,
    ).count()


def follow_up_history(*, conversation: Conversation, now: datetime) -> FollowUpHistory:
    """What the follow-up guards read: the unanswered count, recent follow-up days, recent person lines."""
    tz = zone(conversation.time_zone)
    days = [
        at.astimezone(tz).date()
        for at in ScheduledReply.objects.filter(
            conversation=conversation,
            kind=ScheduledReply.Kind.FOLLOW_UP,
            state__in=[ScheduledReply.State.SENT, ScheduledReply.State.PENDING],
            final_at__gte=now - timedelta(days=2),
        ).values_list("final_at", flat=True)
        if at is not None
    ]
    person_turns = [
        PersonTurn(at=at, text=text)
        for at, text in Message.objects.filter(
            conversation=conversation, role=Message.Role.PERSON, created_at__gte=now - _LEAVE_ALONE_WITHIN
        )
        .order_by("-id")
        .values_list("created_at", "text")[:_LEAVE_ALONE_MESSAGES]
    ]
    return FollowUpHistory(
        unanswered=unanswered_follow_ups(conversation_id=conversation.pk),
        follow_up_days=days,
        person_turns=person_turns,
    )


def latest_message_id(*, conversation_id: int) -> int | None:
    """The newest person or companion message of a conversation."""
    return (
        Message.objects.filter(
            conversation_id=conversation_id, role__in=[Message.Role.PERSON, Message.Role.COMPANION]
        )
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )


def conversation_replies(
    *, conversation: Conversation, state: str | None = None, kind: str | None = None
) -> QuerySet[ScheduledReply]:
    """A conversation's scheduled replies, newest first, optionally of one state and one kind."""
    replies = ScheduledReply.objects.filter(conversation=conversation).order_by("-id")
    if state:
        replies = replies.filter(state=state)
    return replies.filter(kind=kind) if kind else replies
