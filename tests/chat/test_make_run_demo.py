"""``make run``'s prepare steps seed the demo, import the demo logs and mine them, once."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from chat.models import ImportedLog, Message
from companion.stack import DEMO_LOGS, PREPARE_COMMANDS
from labeling.models import DelayTask

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
