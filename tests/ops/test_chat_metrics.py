"""Chat's metrics through the real socket stack: sockets open and messages posted, as /metrics shows them."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from tests.chat.conftest import close_code, receive_event, token_key, ws_open
from tests.ops.conftest import METRICS_TOKEN, sample, scrape

pytestmark = pytest.mark.django_db(transaction=True)
OPEN = "companion_websocket_connections_open"
POSTED = "companion_messages_posted_total"


async def current() -> tuple[float, float]:
    samples = await database_sync_to_async(lambda: scrape(Client()))()
    return sample(samples, OPEN), sample(samples, POSTED, role="person")


async def test_open_sockets_and_posted_messages_are_counted(person, conversation, settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    open_before, posted_before = await current()
    # when: two sockets open, and one refused for want of a token
    key = await database_sync_to_async(token_key)(person)
    phone = await ws_open(conversation.pk, query=f"token={key}")
    laptop = await ws_open(conversation.pk, query=f"token={key}")
    stranger = await ws_open(conversation.pk)
    assert await close_code(stranger) == 4401
    # then: two more open sockets
    assert await current() == (open_before + 2, posted_before)
    # when: a message is sent, then resent with the same client id (a retry stores nothing)
    for _ in range(2):
        await phone.send_json_to({"type": "message.send", "text": "hi", "client_id": "m-1"})
        await receive_event(phone)
    # then: one message posted
    assert await current() == (open_before + 2, posted_before + 1)
    # when: both sockets close
    await phone.disconnect()
    await laptop.disconnect()
    # then: back where it started
    assert await current() == (open_before, posted_before + 1)
