"""How chat objects look on the wire: one serialization for REST, the socket and Celery pushes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rest_framework import serializers

from chat.models import Companion, Conversation, Message


class MessageSerializer(serializers.ModelSerializer[Message]):
    """``{"id", "conversation", "role", "text", "created_at", "client_id"}``; created_at is ISO 8601 UTC."""

    class Meta:
        model = Message
        fields = ["id", "conversation", "role", "text", "created_at", "client_id"]
        read_only_fields = fields


# DRF's own field, so created_at renders exactly as in MessageSerializer (ISO 8601, "Z").
_created_at_field = serializers.DateTimeField()


def message_payload(message: Message) -> dict[str, Any]:
    """The plain-dict form of a message (what ``message.created`` carries under ``"message"``).

    Equal to ``MessageSerializer(message).data``, built by hand: every socket push serializes
    one message, and a ModelSerializer builds its fields anew for each instance.
    """
    return message_payload_of(
        message_id=message.pk,
        conversation_id=message.conversation_id,
        role=str(message.role),
        text=message.text,
        created_at=render_created_at(message.created_at),
        client_id=message.client_id,
    )


def render_created_at(created_at: datetime) -> str:
    """``created_at`` as MessageSerializer renders it (ISO 8601 UTC, "Z")."""
    return str(_created_at_field.to_representation(created_at))


def message_payload_of(
    *, message_id: int, conversation_id: int, role: str, text: str, created_at: str, client_id: str
) -> dict[str, Any]:
    """:func:`message_payload` from a message's values (``created_at`` rendered), without an instance."""
    return {
        "id": message_id,
        "conversation": conversation_id,
        "role": role,
        "text": text,
        "created_at": created_at,
        "client_id": client_id,
    }


class CompanionSerializer(serializers.ModelSerializer[Companion]):
    # The model's URLField is blank=True: "" is a valid answer, and a "format: uri" schema would
    # call it a violation.
    avatar_url = serializers.CharField(
        read_only=True, help_text='An http(s) URL of the avatar image, or "" when the companion has none.'
    )

    class Meta:
        model = Companion
        fields = ["id", "slug", "name", "description", "speaking_style", "avatar_url", "default_time_zone"]
        read_only_fields = fields


class ConversationSerializer(serializers.ModelSerializer[Conversation]):
    companion = CompanionSerializer(read_only=True)
    person = serializers.CharField(source="person.username", read_only=True)

    class Meta:
        model = Conversation
        fields = [
            "id",
            "person",
            "companion",
            "time_zone",
            "person_age_group",
            "person_read_up_to",
            "companion_read_up_to",
            "created_at",
        ]
        read_only_fields = fields
