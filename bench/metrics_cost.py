"""The cost of metrics on the dispatcher: the same due replies delivered with metrics off and on, same run.

1. Create ``--rows`` conversations, each with one pending reply that is already due.
2. For ``--rounds`` rounds, in alternating order (off, on / on, off) so that a drift of the
   machine falls on both: reset every row to pending (and delete the delivered messages),
   then run ``scheduling.services.due_replies_dispatch`` until all are delivered, with
   ``METRICS_ENABLED`` off or on. On is the production path: prometheus-client in
   multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, a temporary folder), the lag histogram
   observed per reply, the counters per batch.
3. Print one JSON line: the median replies/s of each mode, their ratio, the median of the rounds'
   own on/off ratios (the figure: least exposed to a machine's drift) and the cost in percent.

    .venv/bin/python bench/metrics_cost.py [--rows 20000] [--batch 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

# Before anything imports prometheus-client: the multiprocess folder is read at its import.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bench-metrics-"))

from _reply_loop import bench_environment, make_conversations, make_pending_replies, reset_to_pending


def deliver_all(*, metrics_on: bool, rows: int, batch: int) -> float:
    """Replies per second of one full dispatch with metrics on or off."""
    from django.conf import settings

    from scheduling.services import due_replies_dispatch

    settings.METRICS_ENABLED = metrics_on
    started = time.perf_counter()
    report = due_replies_dispatch(batch_size=batch, time_budget_seconds=3600)
    seconds = time.perf_counter() - started
    assert report.delivered == rows, report
    return rows / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"off": [], "on": []}
    with bench_environment("metrics_cost"):
        from django.db import connection
        from django.utils import timezone

        print(f"creating {args.rows} due pending replies ...", flush=True)
        make_pending_replies(make_conversations(args.rows), [timezone.now()] * args.rows)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        # Warm-up (not counted): the first pass over fresh tables is slower whatever the mode.
        reset_to_pending()
        deliver_all(metrics_on=True, rows=args.rows, batch=args.batch)
        for round_number in range(args.rounds):
            order = ("off", "on") if round_number % 2 == 0 else ("on", "off")
            for mode in order:
                reset_to_pending()
                rate = deliver_all(metrics_on=mode == "on", rows=args.rows, batch=args.batch)
                rates[mode].append(rate)
                print(f"round {round_number + 1} metrics {mode}: {rate:,.0f} replies/s", flush=True)
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    # Each round ran both modes back to back: its own ratio is the least exposed to drift.
    paired = statistics.median(
        on_rate / off_rate for on_rate, off_rate in zip(rates["on"], rates["off"], strict=True)
    )
    print(
        json.dumps(
            {
                "bench": "dispatcher_metrics_cost",
                "rows": args.rows,
                "batch": args.batch,
                "rounds": args.rounds,
                "replies_per_s_off": round(off, 1),
                "replies_per_s_on": round(on, 1),
                "ratio_on_off": round(on / off, 4),
                "paired_ratio_median": round(paired, 4),
                "cost_percent": round((1 - paired) * 100, 2),
                "rates_off": [round(rate, 1) for rate in rates["off"]],
                "rates_on": [round(rate, 1) for rate in rates["on"]],
            }
        )
    )


if __name__ == "__main__":
    main()
