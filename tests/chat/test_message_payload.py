"""The socket's message payload is the REST serializer's, field for field."""

from __future__ import annotations

import datetime as dt

import pytest

from chat.models import Message
from chat.serializers import MessageSerializer, message_payload
from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db


def test_message_payload_equals_the_rest_serializer() -> None:
    # given: a stored message with a microsecond timestamp
    conversation = ConversationFactory.create()
    message = Message.objects.create(
        conversation=conversation,
        role=Message.Role.PERSON,
        text="안녕 👋\nhi",
        client_id="c-1",
        created_at=dt.datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=dt.UTC),
    )
    # when / then
    assert message_payload(message) == dict(MessageSerializer(message).data)
    assert message_payload(message)["created_at"] == "2026-03-01T12:30:05.123456Z"
