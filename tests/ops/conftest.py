"""Helpers of the operator tests: a scrape of /metrics parsed into exact samples, a private Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.live import ChildProcess, free_port, spawn, wait_until_ready
from tests.scheduling.conftest import purged_broker  # noqa: F401  (an empty broker for the worker tests)

METRICS_TOKEN = "scrape-token-for-tests"
REDIS_SERVER = "/usr/bin/redis-server"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: Client) -> Samples:
    """``GET /metrics`` with the token; ``{(sample name, sorted labels): value}``."""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200, response.content
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metrics_dir(settings, tmp_path) -> Path:
    """A multiprocess folder for this test: the workers write to it, the scrape reads it."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    settings.METRICS_TOKEN = METRICS_TOKEN
    settings.PROMETHEUS_MULTIPROC_DIR = str(folder)
    return folder


def json_events(child: ChildProcess, event: str) -> list[dict]:
    """The JSON log lines (LOG_FORMAT=json) of one event in a child's output."""
    found = []
    for line in child.log_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == event:
                found.append(entry)
    return found


class PrivateRedis:
    """A redis-server of this test alone, on a fixed port so that it can be stopped and started again."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.child: ChildProcess | None = None

    def start(self) -> None:
        self.child = spawn(
            f"redis-{self.port}",
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            log_dir=self.log_dir,
            env={},
        )
        wait_until_ready(self.child, self._answers, what="the private redis-server")

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "private-redis")
    server.start()
    yield server
    server.stop()
