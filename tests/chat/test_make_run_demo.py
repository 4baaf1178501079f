"""``make run``'s prepare steps seed the demo, import the demo logs and mine them, once."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from chat.models import ImportedLog, Message
from companion.stack import DEMO_LOGS, PREPARE_COMMANDS
from labeling.models import DelayLabel, DelayTask

pytestmark = pytest.mark.django_db

DEMO_STEPS = ("seed_demo", "import_chat_logs", "mine_delay_candidates")


def run_demo_steps() -> dict[str, str]:
    """The stack's own commands and arguments for the demo steps, in the stack's order."""
    outputs: dict[str, str] = {}
    for command, args in PREPARE_COMMANDS:
        if command in DEMO_STEPS:
            out = StringIO()
            call_command(command, *args, stdout=out, stderr=StringIO())
            outputs[command] = out.getvalue()
    return outputs


def test_the_stack_imports_the_demo_logs_after_seed_demo_and_mines_them(monkeypatch, settings, tmp_path):
    # given
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    settings.DATA_DIR = tmp_path
    demo_lines = len(DEMO_LOGS.read_text(encoding="utf-8").splitlines())
    # when
    first = run_demo_steps()
    tasks_after_first = DelayTask.objects.count()
    second = run_demo_steps()
    # then
    assert [command for command, _ in PREPARE_COMMANDS if command in DEMO_STEPS] == list(DEMO_STEPS)
    assert ImportedLog.objects.count() == demo_lines
    assert f"{demo_lines} lines: imported {demo_lines} logs" in first["import_chat_logs"]
    assert f"skipped {demo_lines} already imported; refused 0." in second["import_chat_logs"]
    assert Message.objects.filter(log_external_id__isnull=True).count() == 0
    # How many depends on the mining rules (labeling's data, tuned separately): some, then no more.
    assert tasks_after_first > 0
    assert DelayTask.objects.count() == tasks_after_first
    assert "created 0 new tasks." in second["mine_delay_candidates"]


def password_login(username: str, password: str) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": password})
    assert (response.status_code, response["Location"]) == (302, "/")
    return client


def test_the_seeded_annotator_labels_a_mined_demo_task_and_the_seeded_reviewer_approves_it(
    monkeypatch, settings, tmp_path
):
    # given: make run's demo steps, and the passwords seed_demo printed (and kept)
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    settings.DATA_DIR = tmp_path
    run_demo_steps()
    annotator = password_login("annotator", (tmp_path / "annotator_password.txt").read_text().strip())
    reviewer = password_login("reviewer", (tmp_path / "reviewer_password.txt").read_text().strip())
    task = DelayTask.objects.order_by("id").first()
    assert task is not None
    # when
    submitted = annotator.post(
        f"/labeling/api/tasks/{task.pk}/label/",
        {
            "action": "submit",
            "cut_after_id": task.suspected_message_id,
            "delay_minutes": 45,
            "reply_text": "나 왔어~",
        },
        content_type="application/json",
    )
    label = DelayLabel.objects.get()
    reviewed = reviewer.post(
        f"/labeling/api/labels/{label.pk}/review/", {"decision": "approve"}, content_type="application/json"
    )
    # then
    assert (submitted.status_code, submitted.json()["state"]) == (200, "submitted")
    assert (reviewed.status_code, reviewed.json()["state"], reviewed.json()["reviewer"]) == (
        200,
        "approved",
        "reviewer",
    )
    assert label.annotator.get_username() == "annotator"
