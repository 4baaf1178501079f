"""Shared harness of the reply-loop benchmarks: private engines, a throwaway database, child workers.

Each benchmark starts (or joins) the embedded PostgreSQL under ``var/`` exactly as the settings
do, but in its own database ``bench_<name>_<pid>``, and its own embedded Redis in a temporary
folder, so it never touches development data or a concurrent test run. Everything it started
is stopped and the database dropped when it ends, whatever happens.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from companion.stack import celery_command  # noqa: E402  (needs the repo on sys.path)


@contextmanager
def bench_environment(name: str) -> Iterator[dict[str, str]]:
    """Django set up against a fresh, migrated database; yields the environment for child processes."""
    os.environ.setdefault("COMPANION_DEV_SECRET", "1")
    os.environ["DJANGO_SETTINGS_MODULE"] = "companion.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL"):
        raise SystemExit(
            "the benchmarks create their own database and Redis: unset DATABASE_URL and REDIS_URL"
        )
    from companion import embedded

    data_dir = Path(os.environ.get("COMPANION_DATA_DIR", REPO_ROOT / "var"))
    database = f"bench_{name}_{os.getpid()}"
    embedded.ensure_postgres(data_dir, database=database)
    embedded.ensure_redis(Path(tempfile.mkdtemp(prefix=f"bench-{name}-redis-")))
    try:
        import django

        django.setup()
        from django.core.management import call_command

        print(f"[{name}] migrating {database} ...", flush=True)
        call_command("migrate", verbosity=0)
        yield dict(os.environ)
    finally:
        from django.db import connections

        connections.close_all()
        server = embedded._running.get("postgres")
        if server is not None:
            server.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE);')
        print(f"[{name}] dropped {database}", flush=True)


def spawn(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        list(args), cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def start_worker(
    env: dict[str, str], *, concurrency: int, log: Path, queues: str | None = None
) -> subprocess.Popen[bytes]:
    """A Celery worker; ``queues`` as its ``--queues`` (every queue when None)."""
    process = spawn(
        celery_command(
            "worker",
            f"--concurrency={concurrency}",
            *([f"--queues={queues}"] if queues else []),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            loglevel="WARNING",
        ),
        env,
        log,
    )
    wait_until(lambda: b"ready" in log.read_bytes() or process.poll() is not None, timeout=90)
    if process.poll() is not None:
        raise SystemExit(f"the worker exited:\n{log.read_text()[-2000:]}")
    return process


def start_beat(env: dict[str, str], *, log: Path, pidfile: Path) -> subprocess.Popen[bytes]:
    return spawn(
        celery_command("beat", f"--pidfile={pidfile}"),
        env,
        log,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def wait_until(condition: Callable[[], bool], *, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def describe(values: Sequence[float], unit: str = "ms", scale: float = 1000.0) -> str:
    return (
        f"n={len(values)} p50={percentile(values, 0.5) * scale:.1f}{unit} "
        f"p99={percentile(values, 0.99) * scale:.1f}{unit} max={max(values) * scale:.1f}{unit} "
        f"mean={statistics.fmean(values) * scale:.1f}{unit}"
    )


def summary(values: Sequence[float], scale: float = 1000.0) -> dict[str, float]:
    """:func:`describe`'s figures for the JSON line: count, p50, p99, max and mean (ms by default)."""
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.5) * scale, 2),
        "p99": round(percentile(values, 0.99) * scale, 2),
        "max": round(max(values) * scale, 2) if values else float("nan"),
        "mean": round(statistics.fmean(values) * scale, 2) if values else float("nan"),
    }


def make_conversations(count: int) -> list[int]:
    """``count`` conversations (one person each, one companion), created in bulk."""
    from django.contrib.auth import get_user_model

    from chat.models import Companion, Conversation

    companion, _ = Companion.objects.get_or_create(slug="bench", defaults={"name": "Luda"})
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"bench{i}", password="!") for i in range(count)], batch_size=5000
    )
    conversations = Conversation.objects.bulk_create(
        [Conversation(person=user, companion=companion, time_zone="Asia/Seoul") for user in users],
        batch_size=5000,
    )
    return [conversation.pk for conversation in conversations]


def make_pending_replies(
    conversation_ids: Sequence[int], due_ats: Sequence, *, text: str = "back~"
) -> list[int]:
    """One person message and one pending reply per (conversation, due time), in bulk."""
    from chat.models import Message
    from scheduling.models import ScheduledReply

    triggers = Message.objects.bulk_create(
        [Message(conversation_id=cid, role="person", text="gotta go") for cid in conversation_ids],
        batch_size=5000,
    )
    replies = ScheduledReply.objects.bulk_create(
        [
            ScheduledReply(
                conversation_id=cid,
                trigger_message=trigger,
                state="pending",
                text=text,
                final_at=due_at,
                due_at=due_at,
                typing_at=due_at - timedelta(seconds=1),
                is_delayed=True,
            )
            for cid, trigger, due_at in zip(conversation_ids, triggers, due_ats, strict=True)
        ],
        batch_size=5000,
    )
    return [reply.pk for reply in replies]


def reset_to_pending() -> None:
    """Undo a dispatch run: companion messages removed, every reply pending again, statistics fresh."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM chat_message WHERE role = 'companion'")
        cursor.execute(
            "UPDATE scheduling_scheduledreply SET state = 'pending', sent_at = NULL, message_id = NULL"
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE scheduling_scheduledreply")
        cursor.execute("VACUUM ANALYZE chat_message")
