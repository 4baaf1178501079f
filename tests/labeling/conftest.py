"""Helpers for the labeling tests: chat logs with planted trigger conversations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chat.models import Conversation, Message
from tests.factories import MessageFactory, UserFactory

SEOUL_NOON = datetime(2026, 3, 2, 3, 30, tzinfo=UTC)  # 12:30 in Asia/Seoul


def chat_log(conversation: Conversation, start: datetime, lines: list[tuple[int, str, str]]) -> list[Message]:
    """Store ``(minutes after start, role, text)`` lines as messages; returns them in order."""
    return [
        MessageFactory.create(
            conversation=conversation, role=role, text=text, created_at=start + timedelta(minutes=minutes)
        )
        for minutes, role, text in lines
    ]


@pytest.fixture
def reviewer(db):
    return UserFactory(username="reviewer", is_staff=True)
