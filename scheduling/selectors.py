"""Reads of the reply loop: the history the guard rules need and the staff listing."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import QuerySet

from chat.models import Conversation, Message
from scheduling.guard_rules import GuardHistory, PersonTurn
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


def conversation_replies(*, conversation: Conversation, state: str | None = None) -> QuerySet[ScheduledReply]:
    """A conversation's scheduled replies, newest first, optionally in one state."""
    replies = ScheduledReply.objects.filter(conversation=conversation).order_by("-id")
    return replies.filter(state=state) if state else replies
