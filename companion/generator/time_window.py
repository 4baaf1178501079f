"""The TIME language after a turn: which ``TIME] `` prefixes are allowed, with the maximum delay folded in.

Every TIME maps to ``N * 1440 + k`` minutes (``k`` = minutes from the previous turn's clock to
TIME's clock), which grows with the real delay, so "at most the maximum delay" is one number,
``TimeWindow.max_total``, found by binary search with the exact resolver. Around DST changes that
mapping can be off by the shift, so a final parse still checks the real delay.

Plain Python (no torch): the local decoder (``constraint.py``) walks :func:`classify_prefix`
character by character, and the served-model grammars (``served_grammar.py``) are generated from
the same :class:`TimeWindow`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from companion.generator.transcript import resolve_time, zone

__all__ = ["REJECT", "TEXT", "TIME", "TIME_ALPHABET", "TimeWindow", "classify_prefix", "time_window"]

TIME_ALPHABET = frozenset("0123456789:+d ]")
REJECT, TIME, TEXT = 0, 1, 2
_DIGITS = frozenset("0123456789")
_CLOCKS = tuple(f"{minute // 60:02d}:{minute % 60:02d}" for minute in range(1440))


@dataclass(frozen=True)
class TimeWindow:
    """Which TIMEs are allowed: those with ``N * 1440 + k <= max_total`` (see the module docstring)."""

    prev_clock: int
    max_total: int

    @property
    def max_days(self) -> int:
        return self.max_total // 1440


def time_window(previous: datetime, time_zone: str, max_delay: timedelta) -> TimeWindow:
    """The TimeWindow after ``previous`` for ``max_delay``, found with the exact resolver."""
    if max_delay < timedelta(0):
        raise ValueError("max_delay must not be negative")
    local = previous.astimezone(zone(time_zone))
    prev_clock = local.hour * 60 + local.minute
    previous_utc = previous.astimezone(UTC)

    def within(total: int) -> bool:
        days, offset = divmod(total, 1440)
        clock = (prev_clock + offset) % 1440
        at = resolve_time(days, clock // 60, clock % 60, previous=previous, time_zone=time_zone)
        return at.astimezone(UTC) - previous_utc <= max_delay

    # Without a clock change in the window, TIME "total" minutes on is exactly that many minutes
    # after prev's minute: try that answer first (two resolver calls), search only when it fails.
    floor_seconds = previous_utc - previous_utc.replace(second=0, microsecond=0)
    guess = (max_delay + floor_seconds) // timedelta(minutes=1)
    if within(guess) and not within(guess + 1):
        return TimeWindow(prev_clock=prev_clock, max_total=guess)
    low, high = 0, (max_delay // timedelta(days=1) + 2) * 1440  # within(low) holds, within(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if within(middle):
            low = middle
        else:
            high = middle
    return TimeWindow(prev_clock=prev_clock, max_total=low)


@lru_cache(maxsize=8192)
def _clock_prefix_ok(partial: str, prev_clock: int, budget: int) -> bool:
    """Whether some clock ``HH:MM`` starting with ``partial`` is at most ``budget`` minutes after prev."""
    for minute, clock in enumerate(_CLOCKS):
        if clock.startswith(partial) and (budget >= 1439 or (minute - prev_clock) % 1440 <= budget):
            return True
    return False


@lru_cache(maxsize=65536)
def classify_prefix(prefix: str, window: TimeWindow) -> int:
    """REJECT, TIME (a proper prefix of some allowed ``TIME] ``) or TEXT (``TIME] `` is complete)."""
    rest, days = prefix, 0
    if rest.startswith("+"):
        end = 1
        while end < len(rest) and rest[end] in _DIGITS:
            end += 1
        digits = rest[1:end]
        if not digits:
            return TIME if len(rest) == 1 and window.max_days >= 1 else REJECT
        if digits[0] == "0" or int(digits) > window.max_days:
            return REJECT
        days = int(digits)
        if end == len(rest):
            return TIME
        if rest[end] != "d":
            return REJECT
        if end + 1 == len(rest):
            return TIME
        if rest[end + 1] != " ":
            return REJECT
        rest = rest[end + 2 :]
    clock, tail = rest[:5], rest[5:]
    budget = min(window.max_total - days * 1440, 1439)
    # A full day's budget admits every clock: the previous clock is irrelevant (one cache entry).
    if not _clock_prefix_ok(clock, window.prev_clock if budget < 1439 else -1, budget):
        return REJECT
    if len(clock) < 5 or not tail:
        return TIME
    if tail[0] != "]":
        return REJECT
    if len(tail) == 1:
        return TIME
    return TEXT if tail[1] == " " else REJECT
