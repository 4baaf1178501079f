"""Reads of the messenger, with the access rule in one place: a person sees only their own
conversations, staff see all; anything else looks exactly like a missing conversation."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from chat.models import Companion, Conversation, Message


def companion_list() -> QuerySet[Companion]:
    return Companion.objects.all()


def conversation_list(*, user: User | AnonymousUser) -> QuerySet[Conversation]:
    """Conversations ``user`` may see, newest first."""
    conversations = Conversation.objects.select_related("companion", "person")
    if not user.is_authenticated:
        return conversations.none()
    if user.is_staff:
        return conversations
    return conversations.filter(person=user)


def conversation_get(*, user: User | AnonymousUser, conversation_id: int) -> Conversation | None:
    """The conversation if ``user`` may see it, else ``None`` (callers answer 404 / close 4404)."""
    return conversation_list(user=user).filter(pk=conversation_id).first()


def message_list(*, conversation: Conversation, after: int | None = None) -> QuerySet[Message]:
    """Messages of the conversation (``id > after`` when given), in id order."""
    messages = Message.objects.filter(conversation=conversation)
    if after is not None:
        messages = messages.filter(pk__gt=after)
    return messages.order_by("id")
