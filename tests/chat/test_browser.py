"""The chat page in a real headless Chromium against a real daphne, PostgreSQL and Redis."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest
from django.db import connections

from chat import realtime, services
from chat.models import Message
from tests.factories import CompanionFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def off_the_page_thread(action: Callable[[], object]) -> None:
    """Playwright's sync API keeps an event loop in this thread; pushes need a plain thread."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # re-raised below, in the test's thread
            failures.append(exc)
        finally:
            connections.close_all()  # this thread's own connection, or the test database lingers

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=30)
    if failures:
        raise failures[0]


def test_log_in_send_a_message_and_see_the_companion_type_reply_and_read(live_asgi_server, browser_page):
    from playwright.sync_api import expect

    # given
    UserFactory(username="mina")  # password "correct horse battery"
    CompanionFactory(slug="luda", name="Luda", default_time_zone="Asia/Seoul")
    page = browser_page
    # when: log in through the session login page
    page.goto(f"{live_asgi_server}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.fill("#id_username", "mina")
    page.fill("#id_password", "correct horse battery")
    page.click("#login-submit")
    # then: the only companion's conversation opens and the socket connects
    expect(page.locator("#conversation-title")).to_have_text("Luda · Asia/Seoul")
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")
    # when: the person sends a message
    page.fill("#message-input", "hi luda, lunch?")
    page.press("#message-input", "Enter")
    # then: it appears, stored once, with its time in Seoul's clock
    person_message = page.locator('#messages .message[data-role="person"]')
    expect(person_message).to_have_count(1)
    expect(person_message.locator(".text")).to_have_text("hi luda, lunch?")
    stored = Message.objects.get()
    assert (stored.role, stored.text) == ("person", "hi luda, lunch?")
    seoul_time = stored.created_at.astimezone(ZoneInfo("Asia/Seoul")).strftime("%H:%M")
    expect(person_message.locator("time")).to_have_text(seoul_time)
    expect(page.locator("#typing-indicator")).to_be_hidden()
    # when: the companion types, reads and replies (what scheduling does)
    conversation = stored.conversation
    off_the_page_thread(
        lambda: realtime.broadcast_typing(conversation_id=conversation.pk, role="companion", is_typing=True)
    )
    expect(page.locator("#typing-indicator")).to_be_visible()
    off_the_page_thread(
        lambda: services.conversation_mark_read(
            conversation=conversation, reader_role="companion", up_to=stored.pk
        )
    )
    expect(page.locator('.message[data-role="person"] .read-receipt')).to_have_text("Read")
    off_the_page_thread(
        lambda: services.companion_message_create(
            conversation=conversation, text="yes!! tteokbokki?", scheduled_reply_id=None
        )
    )
    # then
    expect(page.locator('#messages .message[data-role="companion"] .text')).to_have_text("yes!! tteokbokki?")
    expect(page.locator("#typing-indicator")).to_be_hidden()
    # and the page marked the companion's message read (the person saw it)
    reply = Message.objects.get(role="companion")
    for _ in range(100):  # bounded: the read event travels browser -> socket -> database
        conversation.refresh_from_db()
        if conversation.person_read_up_to == reply.pk:
            break
        page.wait_for_timeout(100)
    assert conversation.person_read_up_to == reply.pk
