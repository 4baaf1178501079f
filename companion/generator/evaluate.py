"""TimelyChat-style metrics of a reply-time model on evaluation JSONL (issue 3).

Delay = reply time minus the last turn's time, in minutes; a reply is *delayed* when that is at
least one minute (the grammar's instant reply is the last turn's own minute). Metrics:

* ``valid_format_rate`` and ``parse_failures``: failures are counted separately and left out of
  every other metric, never counted as "instant".
* delay-vs-instant ``precision``, ``recall``, ``f1`` (delayed is the positive class) and the
  false-positive rate ``fpr`` (instant replies the model delayed);
* ``rmsle`` of minutes: ``sqrt(mean((log1p(pred) - log1p(gold))**2))``;
* ``bucket_accuracy`` over 0-5 min, 5-30 min, 30 min-2 h, 2-6 h, 6-12 h, 12 h+;
* the same under ``clamped``: delays shorter than the guard rules' 10 minutes become 0 on both
  sides before scoring.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from companion.generator.transcript import DEFAULT_MAX_DELAY, GenerationFailed, dialogue_from_json
from companion.generator.types import SamplingConfig

__all__ = ["BUCKET_EDGES", "bucket", "delay_metrics", "evaluate"]

BUCKET_EDGES = (5, 30, 120, 360, 720)  # minutes; six buckets
CLAMP_MINUTES = 10


def bucket(minutes: float) -> int:
    """Index 0..5 of the bucket a delay falls in."""
    return sum(minutes >= edge for edge in BUCKET_EDGES)


def _minutes(at: datetime, previous: datetime) -> float:
    return (at.astimezone(UTC) - previous.astimezone(UTC)) / timedelta(minutes=1)


def delay_metrics(pairs: Sequence[tuple[float, float]], *, clamp: float = 0.0) -> dict[str, float | int]:
    """Scores of ``(gold_minutes, predicted_minutes)`` pairs; delays below ``clamp`` count as 0."""
    tp = fp = fn = tn = 0
    squared_log_error = 0.0
    buckets_right = 0
    for gold, predicted in pairs:
        gold = 0.0 if gold < clamp else gold
        predicted = 0.0 if predicted < clamp else predicted
        gold_delayed, predicted_delayed = gold >= 1, predicted >= 1
        tp += gold_delayed and predicted_delayed
        fp += predicted_delayed and not gold_delayed
        fn += gold_delayed and not predicted_delayed
        tn += not gold_delayed and not predicted_delayed
        squared_log_error += (math.log1p(predicted) - math.log1p(gold)) ** 2
        buckets_right += bucket(gold) == bucket(predicted)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
        "rmsle": math.sqrt(squared_log_error / len(pairs)) if pairs else 0.0,
        "bucket_accuracy": buckets_right / len(pairs) if pairs else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def evaluate(
    generator: Any,
    rows: Iterable[Mapping[str, Any]],
    *,
    sampling: SamplingConfig | None = None,
    constrained: bool = True,
    max_delay: timedelta = DEFAULT_MAX_DELAY,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Generate a reply for every row (a JSON line with a gold ``reply``) and score the times."""
    pairs: list[tuple[float, float]] = []
    failures: dict[str, int] = defaultdict(int)
    by_scenario: dict[str, list[tuple[float, float]]] = defaultdict(list)
    total = 0
    for row in rows:
        if limit is not None and total >= limit:
            break
        dialogue, gold = dialogue_from_json(row)
        if gold is None:
            raise ValueError(f"evaluation row {total} has no 'reply'")
        total += 1
        try:
            reply = generator.generate(
                dialogue, sampling=sampling, max_delay=max_delay, constrained=constrained
            )
        except GenerationFailed as error:
            failures[error.reason or "generation"] += 1
            continue
        pair = (_minutes(gold[0], dialogue.last_at), _minutes(reply.at, dialogue.last_at))
        pairs.append(pair)
        by_scenario[str(row.get("scenario", "all"))].append(pair)
        if progress and total % 50 == 0:
            progress(f"evaluated {total}")
    scenarios = {
        name: {
            "examples": len(items),
            "bucket_accuracy": delay_metrics(items)["bucket_accuracy"],
            "delayed_rate": sum(p >= 1 for _, p in items) / len(items),
        }
        for name, items in sorted(by_scenario.items())
    }
    return {
        "examples": total,
        "valid": len(pairs),
        "valid_format_rate": len(pairs) / total if total else 0.0,
        "parse_failures": sum(failures.values()),
        "parse_failure_reasons": dict(failures),
        "raw": delay_metrics(pairs),
        "clamped": delay_metrics(pairs, clamp=CLAMP_MINUTES),
        "scenarios": scenarios,
    }
