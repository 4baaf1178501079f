"""``manage.py readiness``: /readyz's checks from a shell, plus a Celery worker ping (compose healthchecks).

Prints the JSON report; exits 0 when ready, 1 otherwise. ``--celery-worker NAME`` adds
``celery inspect ping`` for that worker (``%h`` is this host's name, as in ``--hostname``);
``--generator`` adds "a planner process on this host has loaded the model".
"""

from __future__ import annotations

import json
import socket
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from companion.ops import health


class Command(BaseCommand):
    help = "Report readiness (database, migrations, Redis; optionally a Celery worker and the generator)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--celery-worker", default="", help="worker node name to ping, e.g. planner@%%h")
        parser.add_argument("--generator", action="store_true", help="require a loaded generator here")
        parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the ping")

    def handle(self, *args: Any, **options: Any) -> None:
        extra = {}
        worker = options["celery_worker"].replace("%h", socket.gethostname())
        if worker:
            extra["celery_worker"] = lambda: _ping(worker, timeout=options["timeout"])
        report = health.readiness(generator=options["generator"], extra=extra)
        self.stdout.write(json.dumps(report))
        if report["status"] != "ready":
            raise CommandError("not ready", returncode=1)


def _ping(worker: str, *, timeout: float) -> str:
    from companion.celery import app

    replies = app.control.ping(destination=[worker], timeout=timeout) or []
    if not any(worker in reply for reply in replies):
        raise WorkerSilent(f"no pong from {worker} within {timeout:.0f}s")
    return "pong"


class WorkerSilent(health.CheckFailed):
    """The named Celery worker did not answer ``inspect ping``."""
