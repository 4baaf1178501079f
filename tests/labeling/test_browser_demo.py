"""The seeded annotator labels a semantically mined task of the shipped demo logs, in Chromium."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from chat.models import Message
from labeling.models import DelayLabel, DelayTask

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEMO_LOGS = Path(__file__).resolve().parents[2] / "labeling" / "data" / "demo" / "logs.jsonl"
# Three demo logs: the companion says it is hurt in words no regular expression names (log-0036),
# a log that needed no delay, and one whose leaving message a regular expression catches.
CHOSEN = ("log-0036", "log-0002", "log-0026")


def test_seeded_annotator_labels_a_semantically_mined_demo_task(
    transactional_db, live_asgi_server, browser_page, settings, tmp_path: Path
) -> None:
    page: Page = browser_page
    base = live_asgi_server
    # Given the demo accounts (generated passwords, kept in the data folder) and three demo logs
    settings.DATA_DIR = tmp_path
    call_command("seed_demo", stdout=StringIO())
    password = (tmp_path / "annotator_password.txt").read_text().strip()
    lines = [line for line in DEMO_LOGS.read_text(encoding="utf-8").splitlines() if line.strip()]
    chosen = [line for line in lines if json.loads(line)["external_id"] in CHOSEN]
    (tmp_path / "logs.jsonl").write_text("\n".join(chosen) + "\n", encoding="utf-8")
    call_command("import_chat_logs", str(tmp_path / "logs.jsonl"), stdout=StringIO())
    call_command("mine_delay_candidates", stdout=StringIO())
    task = DelayTask.objects.select_related("trigger_message").get(rule="companion_hurt")
    assert task.trigger_message.log_external_id == "log-0036"
    assert task.trigger_message.text == "..그 말 좀 아프다. 그래도 네가 힘든 건 알겠어"
    assert (task.matched_example, task.similarity) == ("그 말 들으니까 마음 아프다", 0.7915)

    # When the annotator logs in with the seeded password and opens that task from the queue
    page.goto(f"{base}/labeling/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    page.fill("#id_username", "annotator")
    page.fill("#id_password", password)
    page.click("#login-submit")
    expect(page).to_have_url(f"{base}/labeling/")
    page.click(f'#queue .task-row[data-task-id="{task.pk}"] a')
    expect(page).to_have_url(f"{base}/labeling/tasks/{task.pk}/")

    # Then the page says which rule, which example phrase and what similarity matched
    expect(page.locator("#match .rule")).to_have_text("companion_hurt")
    expect(page.locator("#match .example")).to_have_text("그 말 들으니까 마음 아프다")
    expect(page.locator("#match .similarity")).to_have_text("0.792")
    # and the suggested cut is the companion's "that hurt" turn
    expect(page.locator(f'.cut-choice[value="{task.trigger_message_id}"]')).to_be_checked()

    # When they set "1 h 5 min later" (the clock follows: 23:11 + 65 min, past midnight), and submit
    page.fill("#delay-hours", "1")
    page.fill("#delay-minutes", "5")
    expect(page.locator("#relative-text")).to_have_text("1 h 5 min later")
    expect(page.locator("#reply-clock")).to_have_value("00:16")
    expect(page.locator("#reply-date")).to_have_value("2026-02-07")
    page.fill("#reply-text", "아까는 좀 속상했어.. 이제 괜찮아?")
    page.click("#submit")
    expect(page.locator("#status")).to_have_text("Submitted for review.")
    expect(page.locator("#label-state")).to_have_text("Submitted")

    label = DelayLabel.objects.select_related("annotator", "cut_after").get()
    assert (label.state, label.annotator.username, label.cut_after_id, label.reply_text) == (
        "submitted",
        "annotator",
        task.trigger_message_id,
        "아까는 좀 속상했어.. 이제 괜찮아?",
    )
    assert label.delay is not None and label.delay.total_seconds() == 65 * 60
    # The logs themselves are untouched by labeling
    assert Message.objects.filter(log_external_id="log-0036").count() == 10
