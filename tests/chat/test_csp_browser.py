"""The chat page and the labeling pages run under the Content-Security-Policy in a real Chromium."""

from __future__ import annotations

import re

import pytest

from labeling.models import DelayTask
from tests.factories import CompanionFactory, ConversationFactory, MessageFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, base_url: str, username: str, then: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}{then}")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    page.fill("#id_username", username)
    page.fill("#id_password", "correct horse battery")
    page.click("#login-submit")


def test_the_chat_and_labeling_pages_work_without_a_policy_violation(live_asgi_server, browser_page):
    from playwright.sync_api import expect

    UserFactory(username="mina")
    UserFactory(username="annotator", is_staff=True)
    luda = CompanionFactory(slug="luda", name="Luda", default_time_zone="Asia/Seoul")
    logged = ConversationFactory(person=UserFactory(username="jun"), companion=luda)
    going, answered = (MessageFactory(conversation=logged, text=text) for text in ("gotta go", "wait"))
    task = DelayTask.objects.create(
        conversation=logged, rule="person_left", trigger_message=going, suspected_message=answered
    )
    page = browser_page
    refused: list[str] = []
    page.on(
        "console",
        lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None,
    )
    # the chat page: its script runs (the socket connects) and a message round-trips
    log_in(page, live_asgi_server, "mina", "/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")
    page.fill("#message-input", "csp check")
    page.press("#message-input", "Enter")
    expect(page.locator('#messages .message[data-role="person"]')).to_have_count(1)
    # the labeling queue and a task, as staff, under script-src 'self' alone: labeling.js starts
    # each page from its data-page (the queue selects its first row, Enter opens it, the task
    # page converts a delay to a clock time through the server)
    page.context.clear_cookies()
    log_in(page, live_asgi_server, "annotator", "/labeling/")
    expect(page).to_have_url(re.compile(r"/labeling/$"))
    expect(page.locator(".task-row.selected")).to_have_attribute("data-task-id", str(task.pk))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/labeling/tasks/{task.pk}/$"))
    page.check(".cut-choice >> nth=0")
    page.fill("#delay-hours", "1")
    expect(page.locator("#relative-text")).not_to_have_text("")
    page.wait_for_load_state("networkidle")
    assert refused == []
