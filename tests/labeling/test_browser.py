"""The labeling tool in a real headless Chromium against a real daphne: label, review, export."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from labeling.mining import mine_delay_candidates
from labeling.models import DelayLabel, DelayTask
from tests.factories import ConversationFactory, UserFactory
from tests.labeling.conftest import SEOUL_NOON, chat_log

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "correct horse battery"


def staff_member(username: str):
    """A staff user who logs in with PASSWORD (the factory's; its cheap PBKDF2 hash is one
    the daphne child, running the production hashers, can check)."""
    return UserFactory(username=username, is_staff=True)


def log_in(page: Page, base_url: str, username: str, then: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base_url}{then}")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(f"{base_url}{then}")


def test_label_in_the_browser_approve_as_a_second_person_and_export(
    transactional_db, live_asgi_server, browser_page, conversation, tmp_path: Path
) -> None:
    page: Page = browser_page
    base = live_asgi_server
    staff_member("annotator")
    staff_member("reviewer")
    going, instant, *_ = chat_log(
        conversation,
        SEOUL_NOON,
        [
            (2, "person", "나 진짜 가야해, 회의 있어"),  # 12:32 in Seoul
            (2, "companion", "회의 뭐에 대한 거야?"),
            (3, "person", "..."),
        ],
    )
    elsewhere = ConversationFactory.create(
        person=UserFactory(username="jun"), companion=conversation.companion
    )
    chat_log(elsewhere, SEOUL_NOON, [(0, "person", "stop replying")])
    mine_delay_candidates()
    task, other_task = DelayTask.objects.order_by("conversation_id")

    # Given the annotator logged in on the queue; Enter opens the selected task
    log_in(page, base, "annotator", "/labeling/")
    selected = page.locator("#queue .task-row.selected")
    expect(selected).to_have_attribute("data-task-id", str(task.pk))
    page.keyboard.press("j")
    expect(selected).to_have_attribute("data-task-id", str(other_task.pk))
    page.keyboard.press("k")
    expect(selected).to_have_attribute("data-task-id", str(task.pk))
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/labeling/tasks/{task.pk}/")
    expect(page.locator(f'[data-turn-id="{going.pk}"] time')).to_have_text("2026-03-02 12:32 (UTC+0900)")

    # When they cut after "I have to go": later turns are struck through, not removed
    page.locator(f'.cut-choice[value="{going.pk}"]').check()
    later = page.locator(f'[data-turn-id="{instant.pk}"]')
    expect(later).to_have_class(re.compile(r"\bcut\b"))
    expect(later.locator(".text")).to_have_css("text-decoration-line", "line-through")
    expect(page.locator(f'[data-turn-id="{going.pk}"]')).not_to_have_class(re.compile(r"\bcut\b"))

    # And set "1 h 30 min later": the absolute date and clock follow
    page.fill("#delay-hours", "1")
    page.fill("#delay-minutes", "30")
    expect(page.locator("#reply-clock")).to_have_value("14:02")
    expect(page.locator("#reply-date")).to_have_value("2026-03-02")
    expect(page.locator("#relative-text")).to_have_text("1 h 30 min later")
    # (and the other way round: an absolute clock time moves the relative fields)
    page.fill("#reply-clock", "15:00")
    expect(page.locator("#delay-hours")).to_have_value("2")
    expect(page.locator("#delay-minutes")).to_have_value("28")
    page.fill("#delay-minutes", "30")
    page.fill("#delay-hours", "1")
    expect(page.locator("#reply-clock")).to_have_value("14:02")

    page.fill("#reply-text", "회의 잘 끝났어? 고생했어!")
    page.click("#submit")
    expect(page.locator("#status")).to_have_text("Submitted for review.")
    expect(page.locator("#label-state")).to_have_text("Submitted")

    # The annotator's own label is not offered for review to them
    page.goto(f"{base}/labeling/review/")
    expect(page.locator("#nothing-to-review")).to_be_visible()

    # Then a second person logs in and approves it
    log_in(page, base, "reviewer", "/labeling/review/")
    item = page.locator(".review-item")
    expect(item).to_have_count(1)
    expect(item.locator(".absolute")).to_have_text("2026-03-02 14:02 (UTC+0900)")
    item.locator(".approve").click()
    expect(item.locator(".review-status")).to_have_text("Approved")

    label = DelayLabel.objects.select_related("annotator", "reviewer").get()
    assert label.reviewer is not None, "the approval recorded no reviewer"
    assert (label.state, label.annotator.username, label.reviewer.username) == (
        "approved",
        "annotator",
        "reviewer",
    )

    # And the export contains exactly that example
    call_command(
        "export_delay_dataset", "--out", str(tmp_path / "d.jsonl"), "--val-fraction", "0", stdout=StringIO()
    )
    rows = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert len(rows) == 1
    assert rows[0]["prompt"].endswith("[user] [12:32] 나 진짜 가야해, 회의 있어\n[luda] [")
    assert rows[0]["completion"] == "14:02] 회의 잘 끝났어? 고생했어!"
    assert rows[0]["meta"] == {
        "label_id": label.pk,
        "task_id": task.pk,
        "rule": "person_pushes_away",
        "conversation_id": conversation.pk,
    }
