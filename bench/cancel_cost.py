"""Cancel cost: the person's message latency with 0 vs. 100 pending replies in the conversation.

Times ``chat.services.message_post`` end to end (row lock, insert, scheduling's in-transaction
cancel hook, commit, the after-commit hooks that push the message and queue the plan), on the
embedded PostgreSQL and a private Redis. Before every timed post the conversation gets its
pending replies back (untimed), so each post cancels exactly ``pending`` rows.

    .venv/bin/python bench/cancel_cost.py [--posts 300] [--pending 100]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta

from _reply_loop import bench_environment, describe, make_conversations, make_pending_replies, summary


def measure(conversation_id: int, *, pending: int, posts: int) -> list[float]:
    from django.utils import timezone

    from chat.models import Conversation
    from chat.services import message_post
    from scheduling.models import ScheduledReply

    conversation = Conversation.objects.select_related("person").get(pk=conversation_id)
    latencies: list[float] = []
    for number in range(posts):
        if pending:
            make_pending_replies([conversation_id] * pending, [timezone.now() + timedelta(hours=1)] * pending)
        started = time.perf_counter()
        message_post(
            conversation=conversation,
            author=conversation.person,
            text=f"hi {number}",
            client_id=f"p{pending}-{number}",
        )
        latencies.append(time.perf_counter() - started)
        assert ScheduledReply.objects.filter(conversation_id=conversation_id, state="pending").count() == 0
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--pending", type=int, default=100)
    args = parser.parse_args()
    with bench_environment("cancel_cost"):
        from companion.celery import app

        empty, busy = make_conversations(2)
        measure(empty, pending=0, posts=20)  # warm-up: connections, caches, the broker
        baseline = measure(empty, pending=0, posts=args.posts)
        loaded = measure(busy, pending=args.pending, posts=args.posts)
        app.control.purge()
    print(f"message_post with 0 pending replies:   {describe(baseline)}")
    print(f"message_post with {args.pending} pending replies: {describe(loaded)}")
    ratio = sorted(loaded)[len(loaded) // 2] / sorted(baseline)[len(baseline) // 2]
    print(f"p50 ratio: {ratio:.2f}x")
    print(
        json.dumps(
            {
                "bench": "cancel_cost",
                "posts": args.posts,
                "pending": args.pending,
                "baseline_ms": summary(baseline),
                "loaded_ms": summary(loaded),
                "p50_ratio": round(ratio, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
