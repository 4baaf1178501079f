"""``make run``: the whole stack in one terminal — web (ASGI), two Celery workers and Celery beat.

Steps, in order:

1. settings start the embedded PostgreSQL and Redis under ``var/`` unless ``DATABASE_URL`` /
   ``REDIS_URL`` are set, and export their URLs so that every child joins the same servers;
2. migrate, seed the demo person, companion and labeling staff, import the demo chat logs and
   mine them (so the labeling queue has work), register the reply dispatcher's beat schedule,
   and build the default generator model when none is there yet (progress shown);
3. start web (uvicorn, :func:`web_command`), two Celery workers (``plan``; ``delivery,celery``)
   and beat as children, prefixing their output with their name.

Ctrl-C (or SIGTERM) stops every child, then the embedded servers; if one child dies, the
others are stopped too and the exit status is non-zero. A second run reuses ``var/``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

REPO_ROOT = Path(__file__).resolve().parent.parent
# The shipped demo chat logs (labeling/data/demo/README.md); the holdout file is never imported.
DEMO_LOGS = REPO_ROOT / "labeling" / "data" / "demo" / "logs.jsonl"

PREPARE_COMMANDS: Sequence[tuple[str, Sequence[str]]] = (
    ("migrate", ("--no-input",)),
    ("seed_demo", ()),
    # Idempotent: a later start reports the demo logs as "skipped" and mining adds no duplicates.
    ("import_chat_logs", (str(DEMO_LOGS),)),
    ("mine_delay_candidates", ()),
    ("ensure_reply_dispatcher", ()),
    ("ensure_generator_model", ()),
)


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]


def celery_command(program: str, *options: str, loglevel: str = "INFO") -> list[str]:
    """``python -m celery -A companion.celery <program>`` with this interpreter: worker or beat.

    The one place the Celery command line is spelled; tests and benchmarks start theirs with it.
    """
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "companion.celery",
        program,
        f"--loglevel={loglevel}",
        *options,
    ]


def web_command(host: str, port: str, *options: str) -> list[str]:
    """The web process: uvicorn serving ``companion.asgi`` with this interpreter.

    uvicorn[standard]'s fast paths: uvloop's event loop, httptools' HTTP parser and websockets'
    sans-I/O protocol (measured against daphne on the same app and load: README, "Benchmark").
    ``--no-proxy-headers``: ``chat.client_address`` alone decides which ``X-Forwarded-For`` to
    believe (``TRUSTED_PROXIES``); uvicorn would otherwise rewrite the peer address itself. No
    lifespan protocol: the app has no startup or shutdown to run.
    """
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "companion.asgi:application",
        *("--host", host, "--port", port),
        *("--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio"),
        *("--no-proxy-headers", "--lifespan", "off"),
        *options,
    ]


def worker_commands() -> list[tuple[str, list[str]]]:
    """The stack's Celery workers: planning (the model, seconds) apart from delivery (milliseconds).

    Two processes, so that a delivery never waits behind a generation (the README's promise).
    """
    return [
        (
            "worker-delivery",
            celery_command("worker", "--queues=delivery,celery", "--concurrency=1", "-n", "delivery@%h"),
        ),
        ("worker-plan", celery_command("worker", "--queues=plan", "--concurrency=1", "-n", "plan@%h")),
    ]


def _prepare_environment() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "companion.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    # A development stack gets a per-checkout random key under var/ when none is given.
    os.environ.setdefault("COMPANION_DEV_SECRET", "1")


def _prepare_database() -> None:
    import django
    from django.core.management import call_command

    django.setup()  # starts (or joins) the embedded engines when the URLs are unset
    for command, args in PREPARE_COMMANDS:
        print(f"[stack] manage.py {command} {' '.join(args)}".rstrip(), flush=True)
        call_command(command, *args)


def _pump(name: str, stream: IO[bytes]) -> None:
    for raw_line in iter(stream.readline, b""):
        sys.stdout.write(f"[{name}] {raw_line.decode(errors='replace')}")
        sys.stdout.flush()


def _start(name: str, args: Sequence[str], *, extra_env: dict[str, str] | None = None) -> Child:
    popen = subprocess.Popen(
        list(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(extra_env or {})},
        start_new_session=True,  # Ctrl-C reaches us; we decide how children stop
    )
    if popen.stdout is None:  # stdout=PIPE above; Popen always gives it then
        raise RuntimeError(f"{name}: no output pipe")
    threading.Thread(target=_pump, args=(name, popen.stdout), daemon=True).start()
    return Child(name=name, popen=popen)


def _stop_all(children: Sequence[Child], *, timeout: float = 20.0) -> None:
    for child in children:
        if child.popen.poll() is None:
            os.killpg(child.popen.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            child.popen.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            os.killpg(child.popen.pid, signal.SIGKILL)
            child.popen.wait()


def main() -> int:
    _prepare_environment()
    _prepare_database()
    host = os.environ.get("COMPANION_HOST", "127.0.0.1")
    port = os.environ.get("COMPANION_PORT", "8000")
    # Before the first child starts: a Ctrl-C from here on stops the children already started.
    stop_signals = catch_stop_signals()
    children = [
        _start(
            "web",
            web_command(host, port),
            extra_env={"DATABASE_POOL": os.environ.get("DATABASE_POOL", "1")},
        ),
        *(_start(name, command) for name, command in worker_commands()),
        _start("beat", celery_command("beat")),
    ]
    print(f"[stack] serving http://{host}:{port}/  (Ctrl-C stops everything)", flush=True)
    return supervise(children, stop_signals)


def catch_stop_signals() -> list[int]:
    """From now on SIGINT and SIGTERM are only recorded, in the returned list, for :func:`supervise`."""
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        # Only a list append, no lock: the handler runs in the main thread between two bytecodes
        # of whatever it was doing, such as supervise's wait. It used to call
        # threading.Event.set(), whose lock the interrupted Event.wait() can hold, and a SIGTERM
        # to `make run` once left the supervisor blocked in its own handler, every child running.
        received.append(signum)

    signal.signal(signal.SIGINT, record)
    signal.signal(signal.SIGTERM, record)
    return received


def supervise(children: Sequence[Child], stop_signals: Sequence[int], *, poll_seconds: float = 0.5) -> int:
    """Wait until ``stop_signals`` (from :func:`catch_stop_signals`) holds one, or a child exits;
    then stop every child. Returns 0 when stopped by a signal, 1 when a child died first."""
    exit_code = 0
    while not stop_signals:
        dead = [child for child in children if child.popen.poll() is not None]
        if dead:
            for child in dead:
                print(f"[stack] {child.name} exited with {child.popen.returncode}; stopping", flush=True)
            exit_code = 1
            break
        time.sleep(poll_seconds)
    print("[stack] stopping web, workers and beat…", flush=True)
    _stop_all(children)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
