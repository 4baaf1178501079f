"""The deterministic reply source of ``bench/scale_out.py``, named by ``SCHEDULING_REPLY_SOURCE``.

The scale-out bench measures the reply loop (web, Celery, PostgreSQL, Redis), not the model: this
source answers at once (at the forced time, else the time of the last turn) with a short fixed
text, in one bubble, and costs no model time. The planner imports it as
``bench._scale_out_source.instant_reply_source`` (the repository root is on the worker's path).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from companion.generator import Dialogue, GeneratedReply, SamplingConfig

REPLY_TEXT = "ok, got it"


class InstantReplySource:
    """A ``ReplySource`` that replies instantly with :data:`REPLY_TEXT`, ignoring sampling."""

    def generate(
        self,
        dialogue: Dialogue,
        *,
        sampling: SamplingConfig | None = None,
        forced_at: datetime | None = None,
        max_delay: timedelta = timedelta(days=7),
        max_bubbles: int = 1,
    ) -> GeneratedReply:
        at = forced_at or dialogue.last_at
        return GeneratedReply(at=at, text=REPLY_TEXT, completion=REPLY_TEXT, constrained=True)


def instant_reply_source() -> InstantReplySource:
    """The factory ``SCHEDULING_REPLY_SOURCE`` names."""
    return InstantReplySource()
