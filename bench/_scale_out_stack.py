"""The processes of ``bench/scale_out.py``: engines, a bench database, web and Celery children.

Engines as ``bench/ws_ingest.py`` gets them: ``DATABASE_URL`` / ``REDIS_URL`` when set, else the
embedded PostgreSQL under the data folder (``var/``) with a database of the bench's own, dropped
and created again at the start and dropped at the end, and a private embedded Redis in a
temporary folder. Children start in their own process groups and are stopped (SIGTERM, then
SIGKILL past a deadline) whatever happens; :func:`tree_cpu_seconds` reads a child's CPU with its
descendants (a prefork Celery worker's pool processes) from ``/proc``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from companion.stack import celery_command, web_command  # noqa: E402  (needs the repo on sys.path)

START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 20.0
BENCH_DATABASE = "companion_scale_out"


@dataclass
class Child:
    """One process the bench started, with its log file and, for web, the port it serves."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Engines:
    """Where the bench's PostgreSQL and Redis are, and what the bench itself created on them."""

    env: dict[str, str]
    redis_url: str
    created_database: str | None = None
    postgres_pid: int | None = None
    redis_pid: int | None = None
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-scale-out-")))


@contextmanager
def bench_engines(child_settings: dict[str, str]) -> Iterator[Engines]:
    """Django set up against a fresh, migrated bench database; the dispatcher's beat schedule registered.

    ``child_settings`` are environment variables for every child (and this process): the reply
    source, the time scale and the like. The bench database is dropped on the way out, even after
    an error.
    """
    from companion import embedded

    os.environ.setdefault("COMPANION_DEV_SECRET", "1")
    os.environ["DJANGO_SETTINGS_MODULE"] = "companion.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.update(child_settings)
    created_database: str | None = None
    postgres_pid: int | None = None
    data_dir = Path(os.environ.get("COMPANION_DATA_DIR", REPO_ROOT / "var"))
    if not os.environ.get("DATABASE_URL"):
        embedded.ensure_postgres(data_dir, database="postgres")
        server = embedded._running["postgres"]
        server.psql(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE);')
        server.psql(f'CREATE DATABASE "{BENCH_DATABASE}";')
        embedded.ensure_postgres(data_dir, database=BENCH_DATABASE)
        created_database = BENCH_DATABASE
        postgres_pid = _postmaster_pid(data_dir / "pgdata")
    redis_pid: int | None = None
    if not os.environ.get("REDIS_URL"):
        embedded.ensure_redis(Path(tempfile.mkdtemp(prefix="bench-scale-out-redis-")))
        redis_pid = int(embedded._running["redis"].pid)
    try:
        import django

        django.setup()
        from django.core.management import call_command

        print(f"[scale_out] migrating {created_database or 'DATABASE_URL'} ...", flush=True)
        call_command("migrate", verbosity=0)
        call_command("ensure_reply_dispatcher", "--every", "1", stdout=StringIO())
        yield Engines(
            env=dict(os.environ),
            redis_url=os.environ["REDIS_URL"],
            created_database=created_database,
            postgres_pid=postgres_pid,
            redis_pid=redis_pid,
        )
    finally:
        from django.db import connections

        connections.close_all()
        server = embedded._running.get("postgres")
        if server is not None and created_database is not None:
            server.psql(f'DROP DATABASE IF EXISTS "{created_database}" WITH (FORCE);')
            print(f"[scale_out] dropped {created_database}", flush=True)


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


# --- children ------------------------------------------------------------------------------------


def spawn(name: str, args: Sequence[str], env: dict[str, str], logs: Path, port: int | None = None) -> Child:
    log = logs / f"{name}.log"
    with log.open("wb") as handle:
        popen = subprocess.Popen(
            list(args),
            cwd=REPO_ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name=name, popen=popen, log=log, port=port)


def spawn_web(name: str, port: int, env: dict[str, str], logs: Path) -> Child:
    """uvicorn serving ``companion.asgi`` exactly as ``make run`` starts it, with the pool on."""
    command = web_command("127.0.0.1", str(port), "--no-access-log", "--log-level", "warning")
    return spawn(name, command, {**env, "DATABASE_POOL": env.get("DATABASE_POOL", "1")}, logs, port)


def spawn_worker(name: str, queues: str, concurrency: int, env: dict[str, str], logs: Path) -> Child:
    """A Celery worker on ``queues`` (``companion.stack``'s command line), named ``name@host``."""
    command = celery_command(
        "worker",
        f"--queues={queues}",
        f"--concurrency={concurrency}",
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        loglevel="INFO",
    )
    return spawn(name, command, env, logs)


def spawn_beat(env: dict[str, str], logs: Path) -> Child:
    return spawn(
        "beat", celery_command("beat", f"--pidfile={logs / 'beat.pid'}", loglevel="WARNING"), env, logs
    )


def wait_ready(children: Sequence[Child], *, timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Until every web child listens on its port and every worker logged ``ready``; else stop."""
    import socket

    def ready(child: Child) -> bool:
        if child.port is not None:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", child.port)) == 0
        if child.name == "beat":
            return True
        return b" ready." in child.log.read_bytes()

    waiting = list(children)
    deadline = time.monotonic() + timeout
    while waiting:
        for child in waiting:
            if not child.alive:
                raise SystemExit(f"{child.name} exited with {child.popen.returncode}:\n{tail(child.log)}")
        waiting = [child for child in waiting if not ready(child)]
        if waiting and time.monotonic() > deadline:
            names = ", ".join(child.name for child in waiting)
            raise SystemExit(f"not ready within {timeout:.0f}s: {names}")
        if waiting:
            time.sleep(0.2)


def kill_now(child: Child) -> None:
    """SIGKILL the child's whole process group: no shutdown, sockets reset, as a crashed machine."""
    os.killpg(child.popen.pid, signal.SIGKILL)
    child.popen.wait(timeout=STOP_TIMEOUT_SECONDS)


def stop_all(children: Sequence[Child]) -> None:
    """SIGTERM every live child's process group, then SIGKILL what is left at the deadline."""
    for child in children:
        if child.alive:
            _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for child in children:
        try:
            child.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.popen.wait(timeout=STOP_TIMEOUT_SECONDS)


def _signal_group(child: Child, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(child.popen.pid, signum)


def tail(log: Path, characters: int = 2000) -> str:
    try:
        return log.read_text(errors="replace")[-characters:]
    except OSError:
        return ""


# --- CPU from /proc ----------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (Linux ``/proc``).

    Each live process counts its own time and its reaped children's (``cutime``, ``cstime``), so a
    PostgreSQL backend that served one Celery task and exited still counts, in the postmaster.
    """
    parents: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
        times[int(entry)] = sum(int(value) for value in fields[11:15]) / ticks
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        total += times.get(current, 0.0)
        stack.extend(parents.get(current, []))
    return total


def cpu_snapshot(named_pids: dict[str, int], last_known: dict[str, float] | None = None) -> dict[str, float]:
    """CPU seconds so far of each named process tree, and of this process as ``bench``.

    A process that is gone (the killed web process) reads as its ``last_known`` figure.
    """
    snapshot = {
        name: tree_cpu_seconds(pid) if Path(f"/proc/{pid}").exists() else (last_known or {}).get(name, 0.0)
        for name, pid in named_pids.items()
    }
    own = os.times()
    snapshot["bench"] = own.user + own.system
    return snapshot
