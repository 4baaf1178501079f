"""Prometheus metrics of the reply loop: plans, generations, guards, safety, wake-ups, deliveries.

Recorded by the services (:mod:`scheduling.services`) in whatever process runs them, summed
over processes by prometheus-client's multiprocess mode (see :mod:`chat.metrics`, imported first
for the process identity). The gauges that describe the table (replies by state, the oldest
overdue reply) are not here: ``companion.ops.metrics`` reads them with one query per scrape.

Label values are bounded: plan outcomes and failure reasons are the codes below, never the
free-text ``outcome_reason`` of the row; guard rules and generation purposes are names from code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Histogram

from chat.metrics import metrics_enabled

# Why a plan ended without a pending reply: the bounded codes behind ``outcome_reason``.
PLAN_FAILURE_REASONS = ("generator_unavailable", "planning_error", "generation_failed")
PLAN_OUTCOMES = ("pending", "superseded", "failed", "declined")
GUARD_RULES = (
    "max_delay",
    "complaint_cooldown",
    "delay_ration",
    "instant_threshold",
    "generation_fallback",
    "guard_retime",
    "quiet_hours",
    "follow_ups_enabled",
    "leave_alone",
    "unanswered_cap",
    "follow_up_window",
    "daily_cap",
)
GENERATION_PURPOSES = (
    "load",
    "propose",
    "follow_up",
    "fallback_instant",
    "guard_retime",
    "safety_regenerate",
)

PLAN_SECONDS = Histogram(
    "companion_reply_plan_seconds",
    "Time one plan took (render, generate, guard, store), by outcome.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
PLAN_FAILURES = Counter(
    "companion_reply_plan_failures",
    "Plans that stored a failed reply, by the bounded code of its outcome_reason.",
    ["reason"],
)
GENERATION_ATTEMPTS = Counter(
    "companion_generation_attempts",
    "Generator calls made by plans, by purpose and result (ok / error).",
    ["purpose", "result"],
)
GUARD_DECISIONS = Counter(
    "companion_guard_decisions",
    "Guard rule decisions recorded on plans, by rule and whether the rule changed the time.",
    ["rule", "changed"],
)
SAFETY_HITS = Counter(
    "companion_safety_hits",
    "Texts the safety filter refused (kind=regenerated) and civil fallbacks sent (kind=fallback).",
    ["kind"],
)
WAKEUP_SLOTS = Counter(
    "companion_wakeup_slots_queued",
    "ETA wake-up tasks queued (one per slot of SCHEDULING_WAKE_RESOLUTION_SECONDS).",
)
DELIVERY_LAG = Histogram(
    "companion_reply_delivery_lag_seconds",
    "How late a reply was sent: sent_at - due_at, per delivered reply.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0),
)


def _bounded(value: Any, allowed: Iterable[str]) -> str:
    return value if isinstance(value, str) and value in allowed else "other"


def plan_recorded(
    *,
    outcome: str,
    failure_reason: str | None,
    seconds: float,
    attempts: Iterable[Mapping[str, Any]],
    decisions: Iterable[Mapping[str, Any]],
    safety_hits: Iterable[Mapping[str, Any]],
) -> None:
    """Everything one stored plan contributes: its duration, failure code, attempts, guards, safety."""
    if not metrics_enabled():
        return
    PLAN_SECONDS.labels(outcome=_bounded(outcome, PLAN_OUTCOMES)).observe(seconds)
    if failure_reason is not None:
        PLAN_FAILURES.labels(reason=_bounded(failure_reason, PLAN_FAILURE_REASONS)).inc()
    for attempt in attempts:
        GENERATION_ATTEMPTS.labels(
            purpose=_bounded(attempt.get("purpose"), GENERATION_PURPOSES),
            result="ok" if attempt.get("ok") else "error",
        ).inc()
    for decision in decisions:
        GUARD_DECISIONS.labels(
            rule=_bounded(decision.get("rule"), GUARD_RULES),
            changed="true" if decision.get("changed") else "false",
        ).inc()
    for hit in safety_hits:
        SAFETY_HITS.labels(kind="fallback" if hit.get("fallback") else "regenerated").inc()


def wakeup_slots_queued(count: int) -> None:
    if count and metrics_enabled():
        WAKEUP_SLOTS.inc(count)


def replies_delivered(lags_seconds: Iterable[float]) -> None:
    if metrics_enabled():
        for lag in lags_seconds:
            DELIVERY_LAG.observe(lag)
