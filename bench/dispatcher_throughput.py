"""Dispatcher throughput with 100k due pending replies, against a bare claim loop, same database, same run.

1. Create ``--rows`` conversations, each with one pending reply that is already due.
2. Bare loop: ``UPDATE ... WHERE id IN (SELECT id ... FOR UPDATE SKIP LOCKED LIMIT batch)``
   until nothing is due (claims and marks, creates nothing); then every row is reset to pending.
3. The real dispatcher (``scheduling.services.due_replies_dispatch``, one run with a time
   budget of ``--seconds``) delivers from the same 100k rows: a chat message per row through
   ``chat.services.companion_message_create``, the row marked sent, the ``message.created``
   push to Redis after each commit. Its rate is what it delivered over the time it took.

Both run in this one process, one claimer at a time. Prints replies/s for each and the ratio.

    .venv/bin/python bench/dispatcher_throughput.py [--rows 100000] [--batch 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import time

from _reply_loop import bench_environment, make_conversations, make_pending_replies

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


def reset_to_pending() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE scheduling_scheduledreply SET state = 'pending', sent_at = NULL, message_id = NULL"
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE scheduling_scheduledreply")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0, help="the dispatcher run's time budget")
    args = parser.parse_args()
    with bench_environment("dispatcher_throughput"):
        from django.db import connection
        from django.utils import timezone

        from chat.models import Message
        from scheduling.models import ScheduledReply
        from scheduling.services import due_replies_dispatch

        print(f"creating {args.rows} due pending replies ...", flush=True)
        conversation_ids = make_conversations(args.rows)
        due = timezone.now()
        make_pending_replies(conversation_ids, [due] * args.rows)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

        started = time.perf_counter()
        bare = bare_claim_loop(args.batch)
        bare_seconds = time.perf_counter() - started
        assert bare == args.rows, bare
        reset_to_pending()

        started = time.perf_counter()
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        report = due_replies_dispatch(batch_size=args.batch, time_budget_seconds=args.seconds)
        if os.environ.get("BENCH_PROFILE"):
            profiler.disable()
            profiler.dump_stats(os.environ["BENCH_PROFILE"])
        dispatcher_seconds = time.perf_counter() - started
        assert ScheduledReply.objects.filter(state="sent").count() == report.delivered
        assert Message.objects.filter(role="companion").count() == report.delivered

    bare_rate = bare / bare_seconds
    dispatcher_rate = report.delivered / dispatcher_seconds
    print(f"bare FOR UPDATE SKIP LOCKED claim loop: {bare} rows in {bare_seconds:.1f}s = {bare_rate:,.0f}/s")
    print(
        f"reply dispatcher (message + sent + push): {report.delivered} replies in {dispatcher_seconds:.1f}s"
        f" = {dispatcher_rate:,.0f} replies/s"
    )
    print(f"ratio dispatcher / bare: {dispatcher_rate / bare_rate:.3f}")


if __name__ == "__main__":
    main()
