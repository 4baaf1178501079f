"""Delivery lag (message stored minus due time), p50/p99, with 10k replies falling due within one minute.

Real Celery worker and beat processes against the embedded PostgreSQL and a private Redis:

1. the reply dispatcher is registered (every ``--interval`` s) and a worker and beat start;
2. ``--replies`` conversations each get a pending reply, due uniformly over ``--window`` seconds
   starting ``--lead`` seconds from now, typing 1 s before; their ETA wake-ups for the typing
   times are queued through ``reply_wakes_queue``, as the planner queues them (one per slot);
3. wait until every reply is sent (or ``--timeout``), then read ``message.created_at - due_at``.

    .venv/bin/python bench/delivery_lag.py [--replies 10000] [--window 60] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections.abc import Iterable
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import cast

from _reply_loop import (
    bench_environment,
    describe,
    make_conversations,
    make_pending_replies,
    start_beat,
    start_worker,
    stop,
    summary,
    wait_until,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--lead", type=float, default=45.0, help="seconds until the first reply is due")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--interval", type=int, default=1, help="dispatcher interval, seconds")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-delivery-lag-"))
    with bench_environment("delivery_lag") as env:
        from django.core.management import call_command
        from django.utils import timezone

        from chat.models import Message
        from scheduling.models import ScheduledReply
        from scheduling.services import reply_wakes_queue

        call_command("ensure_reply_dispatcher", "--every", str(args.interval), stdout=StringIO())
        # A delivery worker, as compose runs it: the follow-up plans that deliveries queue wait
        # for a planner (none here), instead of running the model between wake-ups.
        worker = start_worker(
            env, concurrency=args.concurrency, log=logs / "worker.log", queues="delivery,celery"
        )
        beat = start_beat(env, log=logs / "beat.log", pidfile=logs / "beat.pid")
        try:
            rng = random.Random(0)
            start = timezone.now() + timedelta(seconds=args.lead)
            due_ats = sorted(
                start + timedelta(seconds=rng.uniform(0, args.window)) for _ in range(args.replies)
            )
            print(f"creating {args.replies} replies due between {start:%H:%M:%S} and +{args.window:.0f}s ...")
            reply_ids = make_pending_replies(make_conversations(args.replies), due_ats)
            ScheduledReply.objects.filter(pk__in=reply_ids).update(wake_queued_at=timezone.now())
            # Pending replies have both times (ScheduledReply's check constraint).
            tasks = reply_wakes_queue(
                wakes=cast(
                    list[tuple[int, datetime]],
                    list(ScheduledReply.objects.filter(pk__in=reply_ids).values_list("id", "typing_at")),
                )
            )
            queued = timezone.now()
            assert queued < start, f"queueing took longer than --lead ({queued - start} late); raise --lead"
            print(
                f"{tasks} wake-ups queued {(start - queued).total_seconds():.1f}s before the first due time;"
                " waiting"
            )
            finished = wait_until(
                lambda: not ScheduledReply.objects.filter(state="pending").exists(),
                timeout=args.lead + args.window + args.timeout,
                interval=1.0,
            )
            # A sent reply keeps the due time it had while pending; its message names it.
            due_by_id = cast(
                dict[int, datetime],
                dict(ScheduledReply.objects.filter(state="sent").values_list("id", "due_at")),
            )
            stored = cast(
                Iterable[tuple[int, datetime]],
                Message.objects.filter(scheduled_reply_id__in=list(due_by_id)).values_list(
                    "scheduled_reply_id", "created_at"
                ),
            )
            lags = [(created_at - due_by_id[reply_id]).total_seconds() for reply_id, created_at in stored]
            sent = len(lags)
        finally:
            stop(beat)
            stop(worker)
    print(f"delivered {sent}/{args.replies} ({'all' if finished else 'TIMED OUT'})")
    print(f"delivery lag (delivered - due): {describe(lags)}")
    print(
        json.dumps(
            {
                "bench": "delivery_lag",
                "replies": args.replies,
                "window_s": args.window,
                "delivered": sent,
                "finished": finished,
                "lag_ms": summary(lags),
            }
        )
    )


if __name__ == "__main__":
    main()
