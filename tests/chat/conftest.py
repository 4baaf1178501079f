"""Fixtures of the chat tests: hook recorders and WebSocket connections to the real ASGI app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from rest_framework.authtoken.models import Token

from chat import hooks
from chat.models import Message


@dataclass
class HookRecorder:
    """Registers real person-message hooks and records what they were called with."""

    in_transaction: list[int] = field(default_factory=list)
    after_commit: list[int] = field(default_factory=list)

    def record_in_transaction(self, message: Message) -> None:
        self.in_transaction.append(message.pk)

    def record_after_commit(self, message: Message) -> None:
        self.after_commit.append(message.pk)


@pytest.fixture
def hook_recorder() -> Iterator[HookRecorder]:
    recorder = HookRecorder()
    hooks.register_person_message_hook(
        in_transaction=recorder.record_in_transaction, after_commit=recorder.record_after_commit
    )
    yield recorder
    hooks.unregister_person_message_hook(
        in_transaction=recorder.record_in_transaction, after_commit=recorder.record_after_commit
    )


def token_key(user: Any) -> str:
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def ws_open(
    conversation_id: int | str, *, query: str = "", headers: list[tuple[bytes, bytes]] | None = None
) -> WebsocketCommunicator:
    """Open a socket on the full ASGI stack (origin check, auth middleware, routing, consumer)."""
    from companion.asgi import application

    path = f"/ws/conversations/{conversation_id}/" + (f"?{query}" if query else "")
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect(timeout=10)
    assert connected is True
    return communicator


async def close_code(communicator: WebsocketCommunicator) -> int:
    """The code of the close that the server sends next (our 4401 / 4404)."""
    output = await communicator.receive_output(timeout=10)
    assert output["type"] == "websocket.close", output
    return int(output["code"])


async def receive_event(communicator: WebsocketCommunicator) -> dict[str, Any]:
    return json.loads(await communicator.receive_from(timeout=10))
