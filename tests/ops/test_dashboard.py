"""The Grafana dashboard queries only metrics that /metrics really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.ops.conftest import METRICS_TOKEN

DASHBOARD = Path(__file__).resolve().parents[2] / "ops" / "grafana" / "reply-loop.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


@pytest.mark.django_db
def test_every_metric_the_dashboard_queries_is_exposed(client, settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").content.decode()
    exposed = {family(name) for name in re.findall(r"^# TYPE (\w+) ", text, flags=re.MULTILINE)}
    queried = {
        family(name)
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel["targets"]
        for name in re.findall(r"companion_\w+", target["expr"])
    }
    assert queried - exposed == set()
    assert len(queried) == 11
