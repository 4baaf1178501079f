"""Liveness and readiness: what ``/healthz``, ``/readyz`` and ``manage.py readiness`` report.

Each check is cheap (one round trip, a short timeout) and its report says only ``ok`` or the
exception's type and a short reason: no URL, host, password or traceback leaves the process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

REDIS_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 4)}


def _run(name: str, check: Callable[[], str]) -> CheckResult:
    started = time.monotonic()
    try:
        detail = check()
    except CheckFailed as exc:
        return CheckResult(name, False, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
    except Exception as exc:  # a failed check is a report, never a 500
        # The type only: drivers' messages quote hosts, ports and socket paths.
        return CheckResult(name, False, f"{type(exc).__name__}", time.monotonic() - started)
    return CheckResult(name, True, detail, time.monotonic() - started)


class CheckFailed(Exception):
    """A check's own finding; its message is written by us and safe to show."""


def check_database() -> str:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


_migrations_applied = False


def check_migrations() -> str:
    """No unapplied migration; once true it is remembered (migrations are not unapplied under us)."""
    global _migrations_applied
    if _migrations_applied:
        return "ok"
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in plan[:3])
        raise MigrationsPending(f"{len(plan)} unapplied (first: {names})")
    _migrations_applied = True
    return "ok"


class MigrationsPending(CheckFailed):
    """``manage.py migrate`` has not run for this code."""


_redis_clients: dict[str, redis.Redis] = {}


def check_redis() -> str:
    url = settings.REDIS_URL
    client = _redis_clients.get(url)
    if client is None:
        client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
        _redis_clients[url] = client
    client.ping()
    return "ok"


def check_generator_loaded() -> str:
    """A planner process on this host has loaded the model (see :mod:`companion.ops.workers`)."""
    from companion.ops.workers import loaded_processes

    count = loaded_processes()
    if not count:
        raise GeneratorNotLoaded("no planner process on this host has loaded the generator")
    return f"loaded in {count} process(es)"


class GeneratorNotLoaded(CheckFailed):
    """No planner process reported a loaded model (see companion.ops.workers)."""


def readiness(
    *, generator: bool = False, extra: dict[str, Callable[[], str]] | None = None
) -> dict[str, Any]:
    """Run the readiness checks; ``{"status": "ready" | "unready", "checks": {...}}``."""
    checks: dict[str, Callable[[], str]] = {
        "database": check_database,
        "migrations": check_migrations,
        "redis": check_redis,
    }
    if generator:
        checks["generator"] = check_generator_loaded
    checks.update(extra or {})
    results = [_run(name, check) for name, check in checks.items()]
    return {
        "status": "ready" if all(result.ok for result in results) else "unready",
        "checks": {result.name: result.as_json() for result in results},
    }
