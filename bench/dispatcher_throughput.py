"""Dispatcher throughput with 100k due pending replies, against a bare claim loop, same database, same run.

1. Create ``--rows`` conversations, each with one pending reply that is already due.
2. For ``--rounds`` rounds, each round both loops over the same rows, in alternating order
   (bare first, then dispatcher first) so that a drift of the machine falls on both; every
   row (and no message) is reset to pending before each loop:

   * the bare loop: ``UPDATE ... WHERE id IN (SELECT id ... FOR UPDATE SKIP LOCKED LIMIT batch)``
     until nothing is due (claims and marks, creates nothing);
   * the real dispatcher (``scheduling.services.due_replies_dispatch``, one run with a time
     budget of ``--seconds``): a chat message per row, the row marked sent, the batch's
     ``message.created`` pushes to Redis after each commit. Its rate is what it delivered over
     the time it took.

Both run in this one process, one claimer at a time. Prints each round's rates, then one JSON
line: the median rates, the median of the rounds' own dispatcher/bare ratios (the figure: least
exposed to drift) and every round's figures. ``BENCH_PROFILE=path`` writes a cProfile of the
last round's dispatcher run.

    .venv/bin/python bench/dispatcher_throughput.py [--rows 100000] [--batch 200] [--seconds 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from _reply_loop import bench_environment, make_conversations, make_pending_replies, reset_to_pending

BARE_CLAIM = """
UPDATE scheduling_scheduledreply SET state = 'sent', sent_at = now(), message_id = 0
WHERE id IN (
    SELECT id FROM scheduling_scheduledreply
    WHERE state = 'pending' AND due_at <= now()
    ORDER BY due_at LIMIT %s
    FOR UPDATE SKIP LOCKED
)
"""


def bare_claim_loop(batch: int) -> int:
    from django.db import connection, transaction

    claimed = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(BARE_CLAIM, [batch])
            count = cursor.rowcount
        claimed += count
        if count == 0:
            return claimed


def timed_bare(rows: int, batch: int) -> float:
    """Rows per second of the bare claim loop over every due row."""
    reset_to_pending()
    started = time.perf_counter()
    claimed = bare_claim_loop(batch)
    seconds = time.perf_counter() - started
    assert claimed == rows, claimed
    return claimed / seconds


def timed_dispatcher(rows: int, batch: int, budget: float, profile: str | None) -> float:
    """Replies per second of one dispatcher run (what it delivered over the time it took)."""
    from chat.models import Message
    from scheduling.models import ScheduledReply
    from scheduling.services import due_replies_dispatch

    reset_to_pending()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    report = due_replies_dispatch(batch_size=batch, time_budget_seconds=budget)
    seconds = time.perf_counter() - started
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    assert ScheduledReply.objects.filter(state="sent").count() == report.delivered
    assert Message.objects.filter(role="companion").count() == report.delivered
    return report.delivered / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0, help="the dispatcher run's time budget")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds: list[dict[str, float]] = []
    with bench_environment("dispatcher_throughput"):
        from django.db import connection
        from django.utils import timezone

        print(f"creating {args.rows} due pending replies ...", flush=True)
        conversation_ids = make_conversations(args.rows)
        make_pending_replies(conversation_ids, [timezone.now()] * args.rows)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        for number in range(args.rounds):
            profile = os.environ.get("BENCH_PROFILE") if number == args.rounds - 1 else None
            figures: dict[str, float] = {}
            for loop in ("bare", "dispatcher") if number % 2 == 0 else ("dispatcher", "bare"):
                if loop == "bare":
                    figures["bare_rows_per_s"] = timed_bare(args.rows, args.batch)
                else:
                    figures["replies_per_s"] = timed_dispatcher(args.rows, args.batch, args.seconds, profile)
            figures["ratio"] = figures["replies_per_s"] / figures["bare_rows_per_s"]
            rounds.append(figures)
            print(
                f"round {number + 1}: bare claim loop {figures['bare_rows_per_s']:,.0f} rows/s, dispatcher"
                f" (message + sent + push) {figures['replies_per_s']:,.0f} replies/s,"
                f" ratio {figures['ratio']:.3f}",
                flush=True,
            )
    print(
        json.dumps(
            {
                "bench": "dispatcher_throughput",
                "rows": args.rows,
                "batch": args.batch,
                "rounds": args.rounds,
                "replies_per_s": round(statistics.median(r["replies_per_s"] for r in rounds), 1),
                "bare_rows_per_s": round(statistics.median(r["bare_rows_per_s"] for r in rounds), 1),
                "ratio": round(statistics.median(r["ratio"] for r in rounds), 4),
                "per_round": [{key: round(value, 4) for key, value in r.items()} for r in rounds],
            }
        )
    )


if __name__ == "__main__":
    main()
