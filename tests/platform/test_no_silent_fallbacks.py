"""Embedded engines start only in development; elsewhere a missing URL stops the process at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from companion.stack import worker_commands

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEVELOPMENT_SWITCHES = (
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_DEBUG",
    "COMPANION_EMBEDDED",
    "COMPANION_DEV_SECRET",
)


def start_django(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``django.setup()`` with the production settings in a fresh process; prints REDIS_URL."""
    child_env = {key: value for key, value in os.environ.items() if key not in DEVELOPMENT_SWITCHES}
    child_env.update(
        DJANGO_SETTINGS_MODULE="companion.settings",
        DJANGO_SECRET_KEY="a-production-secret-for-this-test-only-" + "x" * 20,
        COMPANION_DATA_DIR=str(data_dir),
        **env,
    )
    script = "import django; django.setup(); from django.conf import settings; print(settings.REDIS_URL)"
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}, "REDIS_URL"),
        ({"DJANGO_DEBUG": "0", "COMPANION_EMBEDDED": "0"}, "DATABASE_URL"),
    ],
)
def test_production_without_a_url_stops_with_one_line_and_starts_nothing(tmp_path, given, missing):
    result = start_django(tmp_path, **given)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"companion: {missing} is not set. Point it at your server, or set DJANGO_DEBUG=1 or "
        "COMPANION_EMBEDDED=1 to start the embedded development engines under the data folder."
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_companion_embedded_starts_the_embedded_redis_under_the_data_folder(tmp_path):
    result = start_django(tmp_path, COMPANION_EMBEDDED="1", DATABASE_URL="postgres://nobody@127.0.0.1:1/none")
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert (url.startswith("unix://"), url.endswith("/redis.socket")) == (True, True)
    assert sorted(path.name for path in (tmp_path / "redis").iterdir()) == ["redis.db"]


def test_make_run_runs_planning_and_delivery_in_separate_workers():
    workers = {name: command for name, command in worker_commands()}
    queues = {name: [arg for arg in argv if arg.startswith("--queues=")] for name, argv in workers.items()}
    assert queues == {"worker-delivery": ["--queues=delivery,celery"], "worker-plan": ["--queues=plan"]}
    assert [command[command.index("-n") + 1] for command in workers.values()] == ["delivery@%h", "plan@%h"]
