"""Prometheus metrics of the messenger, and the process identity every metric file carries.

Every metric of the project lives in a module of the app that records it (this one for chat,
:mod:`scheduling.metrics` for the reply loop); ``companion.ops.metrics`` serves them on
``/metrics``. With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus-client keeps each process's
values in a file of that folder and the scrape adds them up (Celery's prefork children, the
web process). The files are named by ``<host>-<pid>`` rather than the bare pid, so that several
containers may share one folder (docker-compose.yml) without two processes writing one file.

This module is imported before any metric object is created (scheduling's imports it first),
because the identity must be in place before the first value file is opened.
"""

from __future__ import annotations

import os
import socket

from django.conf import settings
from prometheus_client import Counter, Gauge, disable_created_metrics, multiprocess, values

# No underscore: prometheus-client splits file names on it. Read once: the identifier is asked
# for on every metric update (to notice a fork), and the host name does not change.
_HOST = socket.gethostname().replace("_", "-")


def process_identifier() -> str:
    return f"{_HOST}-{os.getpid()}"


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)
    # A restarted container reuses its host name and may reuse a pid: a live gauge must not
    # start from the dead process's value (counters may: the dead process's counts stay counted).
    multiprocess.mark_process_dead(process_identifier())


# The *_created series double every counter's lines and tell an operator nothing here.
disable_created_metrics()


def metrics_enabled() -> bool:
    """``METRICS_ENABLED`` (default on): off, every record call returns at once (bench/ compares both)."""
    return bool(getattr(settings, "METRICS_ENABLED", True))


WEBSOCKETS_OPEN = Gauge(
    "companion_websocket_connections_open",
    "Conversation sockets open now (accepted and authenticated), over every web process.",
    multiprocess_mode="livesum",
)
MESSAGES_POSTED = Counter(
    "companion_messages_posted",
    "Chat messages stored, by author role (person: sent by people; companion: delivered replies).",
    ["role"],
)


def websocket_opened() -> None:
    if metrics_enabled():
        WEBSOCKETS_OPEN.inc()


def websocket_closed() -> None:
    if metrics_enabled():
        WEBSOCKETS_OPEN.dec()


def messages_posted(*, role: str, count: int = 1) -> None:
    if count and metrics_enabled():
        MESSAGES_POSTED.labels(role=role).inc(count)
