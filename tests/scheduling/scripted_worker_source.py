"""A ReplySource for real worker processes, named by ``SCHEDULING_REPLY_SOURCE`` (tests only).

The browser test of bubbles and follow-ups checks the reply loop (rows, order, typing, delivery,
the unanswered cap) around an exact proposal, which a real model's sampled time and words cannot
give; the model's own follow-up decisions are measured on the dev set (README, Generator). It
answers a person at once in two bubbles, and follows up a companion message 15 minutes later.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from companion.generator import Dialogue, GeneratedReply

ANSWER = ("WAIT really??", "tell me everything!!")
FOLLOW_UP = "so... how did it go?"
FOLLOW_UP_AFTER = timedelta(minutes=15)


class BubblesAndFollowUps:
    def generate(
        self,
        dialogue: Dialogue,
        *,
        sampling: Any = None,
        forced_at: datetime | None = None,
        max_delay: timedelta = timedelta(days=7),
        max_bubbles: int = 1,
    ) -> GeneratedReply:
        last = dialogue.last_at
        if dialogue.turns[-1].role == "companion":
            at = forced_at or last + FOLLOW_UP_AFTER
            return GeneratedReply(at=at, text=FOLLOW_UP, completion="", constrained=True)
        at = forced_at or last
        more = ((at, ANSWER[1]),) if max_bubbles > 1 else ()
        return GeneratedReply(at=at, text=ANSWER[0], completion="", constrained=True, more=more)


def bubbles_and_follow_ups() -> BubblesAndFollowUps:
    return BubblesAndFollowUps()
