"""``/metrics``: every process's metrics (multiprocess mode) and the reply table read at scrape time.

The counters and histograms come from :mod:`chat.metrics` and :mod:`scheduling.metrics`, summed
over every process that wrote to ``PROMETHEUS_MULTIPROC_DIR`` (or this process's own registry
when it is unset). The table's gauges come from one query per scrape (:class:`ReplyTableCollector`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Imported for their side effect: the metrics are defined in this process too (single-process mode).
from chat import metrics as chat_metrics  # noqa: F401
from scheduling import metrics as scheduling_metrics  # noqa: F401
from scheduling.models import ScheduledReply

# One statement: every state's count and the oldest due pending reply. The pending rows are a
# partial index; counting the terminal states scans the table, once per scrape (15 s or more).
_TABLE_QUERY = """
SELECT state, count(*), min(due_at) FILTER (WHERE state = 'pending' AND due_at <= %s)
FROM scheduling_scheduledreply GROUP BY state
"""

# What "now" is for the overdue gauge; tests replace it to move time without waiting.
clock: Callable[[], datetime] = timezone.now


class ReplyTableCollector(Collector):
    """``companion_replies{state}`` and ``companion_reply_oldest_overdue_seconds`` from the table."""

    def collect(self) -> Iterator[Metric]:
        now = clock()
        try:
            with connection.cursor() as cursor:
                cursor.execute(_TABLE_QUERY, [now])
                rows = cursor.fetchall()
        except DatabaseError:
            # The process metrics still go out; the missing table gauges and this one say why.
            yield GaugeMetricFamily(
                "companion_reply_table_up", "1 when the scrape could read the reply table.", value=0
            )
            return
        yield GaugeMetricFamily(
            "companion_reply_table_up", "1 when the scrape could read the reply table.", value=1
        )
        by_state = dict.fromkeys(ScheduledReply.State.values, 0)
        oldest_due: datetime | None = None
        for state, count, due in rows:
            by_state[state] = count
            if due is not None:
                oldest_due = due
        replies = GaugeMetricFamily("companion_replies", "Scheduled replies by state.", labels=["state"])
        for state, count in sorted(by_state.items()):
            replies.add_metric([state], count)
        yield replies
        overdue = 0.0 if oldest_due is None else max(0.0, (now - oldest_due).total_seconds())
        yield GaugeMetricFamily(
            "companion_reply_oldest_overdue_seconds",
            "How long the oldest due pending reply has waited past its due time (0 when none).",
            value=overdue,
        )


def exposition() -> bytes:
    """The text a scrape gets: process metrics (summed over processes) and the table's gauges."""
    registry = CollectorRegistry()
    if settings.PROMETHEUS_MULTIPROC_DIR:
        multiprocess.MultiProcessCollector(registry, path=str(settings.PROMETHEUS_MULTIPROC_DIR))
    else:
        registry.register(_ThisProcess())
    registry.register(ReplyTableCollector())
    return generate_latest(registry)


class _ThisProcess(Collector):
    """Without a multiprocess folder: this process's default registry (a single-process server)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
