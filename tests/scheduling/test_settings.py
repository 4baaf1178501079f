"""Every documented reply-loop setting is read from the environment, and bad command options are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

REPO_ROOT = Path(__file__).resolve().parents[2]

ENVIRONMENT = {
    "SCHEDULING_DISPATCH_TIME_BUDGET_SECONDS": "12.5",
    "SCHEDULING_TYPING_MIN_SECONDS": "0.5",
    "SCHEDULING_TYPING_SECONDS_PER_CHAR": "0.02",
    "SCHEDULING_TYPING_MAX_SECONDS": "4",
    "SCHEDULING_SAFETY_FALLBACK_TEXT": '{"en": "Let us talk about tea.", "ko": "차 얘기 하자."}',
    "SCHEDULING_REGENERATION_TEMPERATURE": "0.7",
}


def settings_in_child(extra: dict[str, str]) -> dict[str, object]:
    """The values ``scheduling.conf`` reads in a fresh process started with ``extra`` in its environment."""
    script = (
        "import json\n"
        "from scheduling import conf\n"
        f"print(json.dumps({{name: conf.setting(name) for name in {sorted(ENVIRONMENT)!r}}}))\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCHEDULING_")}
    # Named servers: importing the settings must not start the embedded ones for this check.
    env.update(
        DJANGO_SETTINGS_MODULE="companion.settings",
        COMPANION_DEV_SECRET="1",
        DATABASE_URL="postgres://nobody@127.0.0.1:1/none",
        REDIS_URL="redis://127.0.0.1:1/0",
        **extra,
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_documented_settings_are_read_from_the_environment() -> None:
    assert settings_in_child(ENVIRONMENT) == {
        "SCHEDULING_DISPATCH_TIME_BUDGET_SECONDS": 12.5,
        "SCHEDULING_TYPING_MIN_SECONDS": 0.5,
        "SCHEDULING_TYPING_SECONDS_PER_CHAR": 0.02,
        "SCHEDULING_TYPING_MAX_SECONDS": 4.0,
        "SCHEDULING_SAFETY_FALLBACK_TEXT": {"en": "Let us talk about tea.", "ko": "차 얘기 하자."},
        "SCHEDULING_REGENERATION_TEMPERATURE": 0.7,
    }


def test_unset_settings_fall_back_to_the_apps_defaults() -> None:
    assert settings_in_child({}) == {
        "SCHEDULING_DISPATCH_TIME_BUDGET_SECONDS": 30.0,
        "SCHEDULING_TYPING_MIN_SECONDS": 1.0,
        "SCHEDULING_TYPING_SECONDS_PER_CHAR": 0.08,
        "SCHEDULING_TYPING_MAX_SECONDS": 8.0,
        "SCHEDULING_SAFETY_FALLBACK_TEXT": {
            "en": "Hmm, let's talk about something else. How is your day going?",
            "ko": "음, 우리 다른 얘기 하자. 오늘 하루는 어땠어?",
        },
        "SCHEDULING_REGENERATION_TEMPERATURE": 0.9,
    }


@pytest.mark.django_db
@pytest.mark.parametrize("every", ["0", "-5"])
def test_ensure_reply_dispatcher_refuses_an_interval_below_one_second(every: str) -> None:
    from django_celery_beat.models import PeriodicTask

    with pytest.raises(CommandError) as refused:
        call_command("ensure_reply_dispatcher", "--every", every, stdout=StringIO())
    assert str(refused.value) == f"--every must be at least 1 second, not {every}."
    assert PeriodicTask.objects.filter(name="reply dispatcher").count() == 0
