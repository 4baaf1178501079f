"""Celery worker checks: a planner process reports its loaded model; the readiness command reads it.

With ``OPS_PRELOAD_GENERATOR`` on (docker-compose.yml sets it on the planner), each worker
process loads the generator as it starts instead of at its first plan, and adds its process id
to a Redis set named after the host. ``manage.py readiness --generator`` checks that set and
``--celery-worker NAME`` pings the worker (``celery inspect ping``), so the container's
healthcheck means "this planner answers and holds a model".
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import redis
from celery.signals import worker_process_init, worker_process_shutdown
from django.conf import settings

logger = logging.getLogger(__name__)
LOADED_SET = "companion:ops:generator-loaded:{host}"


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2.0, socket_connect_timeout=2.0)


def loaded_processes(host: str | None = None) -> int:
    """How many planner processes on ``host`` (default: this one) reported a loaded generator."""
    return int(_client().scard(LOADED_SET.format(host=host or socket.gethostname())))


@worker_process_init.connect
def _preload_generator(**_: Any) -> None:
    if not getattr(settings, "OPS_PRELOAD_GENERATOR", False):
        return
    from scheduling.generation import reply_source

    try:
        reply_source()  # the configured source: the local model, or a server's tokenizer
    except Exception:
        # The process stays up (a plan records the failure on its row); the check reports unready.
        logger.exception("preloading the reply generator failed")
        return
    _client().sadd(LOADED_SET.format(host=socket.gethostname()), os.getpid())


@worker_process_shutdown.connect
def _forget_process(**_: Any) -> None:
    if getattr(settings, "OPS_PRELOAD_GENERATOR", False):
        _client().srem(LOADED_SET.format(host=socket.gethostname()), os.getpid())
