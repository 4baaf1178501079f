"""Choosing the reply's time from the model's whole distribution over times, not digit by digit.

Greedy digit-by-digit decoding commits to the first digit before it has weighed the rest: a
model split between "now" (``12:34``) and "in 40 minutes" (``13:14``) writes ``1`` then whatever
follows, and a clock a few minutes *before* the last message (``12:31``) reads as a 23 h 57 min
delay. Here the model scores whole candidate TIMEs instead:

1. **Candidates.** With our tokenizer (one token per digit) the model computes the probability
   of every clock of the next 23 hours exactly, walking the digit tree in two batched steps
   (:func:`day_candidates`, ``ReplyGenerator._clock_log_probs``); ``+1d`` clocks on a 30-minute
   grid join when the model's probability of a day count reaches the later rule's threshold
   (step 2; 1% when sampling), and that probability joins the whole mass when they do not.
   With any other tokenizer
   (:func:`grid_candidates`): the instant minute, each of the next four minutes, then every clock
   on a 5-minute grid up to 23 hours later, and the ``+1d`` grid, each candidate standing for
   ``weight`` minutes of the delay axis, so ``probability * weight`` estimates the mass around it.
   Clocks of the last hour before the previous turn (a 23-24 h delay) are left out: the corpus
   never teaches such a delay, and a model that writes one has almost surely missed the instant
   minute.
2. **Decision** (:func:`choose`): the reply is instant when the mass of delays under 5 minutes
   reaches ``instant_threshold`` of the whole. Otherwise, when the model's probability of a day
   count (a delay of a day or more: the TIME starts with ``+``, read off the first character's
   distribution exactly) reaches ``later_threshold``, the reply goes to the most probable of the
   later candidates: "in a few days" is spread thin over thousands of minutes, so no single one
   of them would win the mode against a same-day minute, although together they are what the
   model means (a follow-up after a conversation that simply ended). Otherwise the reply goes to
   a same-day delayed time, the one of least expected squared log error under the model's
   delayed mass (minimum Bayes risk for the error RMSLE measures): a model split between "in 30
   minutes" and "in 4 hours" answers in between rather than betting on the slightly likelier
   peak. The choice is only among plausible minutes, those with at least ``PLAUSIBLE_SHARE`` of
   the likeliest minute's probability, so that breadth alone cannot win: a vague model spreads a
   little mass over the 720 minutes of "12 h+", and that must not pull the reply away from a
   sharp peak at "in 90 minutes". (Until session 13 this was the mode, the likeliest minute.)
3. **Refinement** (:func:`neighbours`, grid candidates only): the exact minutes around that
   candidate are scored and the most probable is the answer, so "wake me at 6:47" can still come
   out at 06:47.

Pure Python: the model scores candidates, this module only decides.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from companion.generator.time_window import TimeWindow

__all__ = [
    "INSTANT_THRESHOLD",
    "LATER_THRESHOLD",
    "TimeCandidate",
    "choose",
    "day_candidates",
    "grid_candidates",
    "neighbours",
]

# Chosen on the val split (the best mean F1 of 0.05-0.5 over two seeds of the default preset; see
# README), never on dev.
INSTANT_THRESHOLD = 0.3
# The probability of a day count or more that sends the reply a day or more later; chosen on the
# val split's follow-up examples (README), never on dev.
LATER_THRESHOLD = 0.5
# The delayed reply goes to the minute of least expected squared log error (the error RMSLE
# measures) among the minutes with at least this share of the likeliest one's probability: a
# hedge between the model's peaks, never a minute it all but rules out. Measured on val with the
# seed-0 default model (README): RMSLE 1.294 with the mode, 1.226 at 0.1, 1.207 at 0.01, which
# lets a thin spread over the whole day outweigh a sharp peak (the tests' sharp-peak case).
PLAUSIBLE_SHARE = 0.1
BUCKET_EDGES = (5, 30, 120, 360, 720)  # minutes, the evaluation's six buckets
_LAST_DAY0 = 23 * 60  # delays of 23-24 h are never candidates (see the module docstring)


@dataclass(frozen=True)
class TimeCandidate:
    """A TIME (``"13:10"`` or ``"+1d 09:00"``), its delay in window minutes, and the minutes it stands for."""

    time: str
    minutes: int
    weight: float

    @property
    def bucket(self) -> int:
        return bisect.bisect_right(BUCKET_EDGES, self.minutes)


def _render(window: TimeWindow, total: int) -> str:
    days, offset = divmod(total, 1440)
    clock = (window.prev_clock + offset) % 1440
    text = f"{clock // 60:02d}:{clock % 60:02d}"
    return f"+{days}d {text}" if days else text


def _allowed(window: TimeWindow, total: int) -> bool:
    return 0 <= total <= window.max_total and not (_LAST_DAY0 < total < 1440)


@lru_cache(maxsize=4096)
def grid_candidates(window: TimeWindow) -> list[TimeCandidate]:
    """The candidates of step 1, in increasing delay."""
    candidates = [TimeCandidate(_render(window, m), m, 1.0) for m in range(5) if _allowed(window, m)]
    for total in range(5, min(_LAST_DAY0, window.max_total) + 1):
        if (window.prev_clock + total) % 5 == 0:
            candidates.append(TimeCandidate(_render(window, total), total, 5.0))
    for total in range(1440, min(2 * 1440 - 1, window.max_total) + 1):
        if (window.prev_clock + total) % 30 == 0:
            candidates.append(TimeCandidate(_render(window, total), total, 30.0))
    return candidates


@lru_cache(maxsize=4096)
def day_candidates(window: TimeWindow) -> list[TimeCandidate]:
    """Every minute of the next 23 hours that the window allows, as ``HH:MM`` candidates of weight 1
    (for a model whose whole clock distribution is computed exactly, see ``model.py``)."""
    return [
        TimeCandidate(_render(window, total), total, 1.0)
        for total in range(min(_LAST_DAY0, window.max_total) + 1)
    ]


def neighbours(candidate: TimeCandidate, window: TimeWindow, radius: int) -> list[TimeCandidate]:
    """The exact minutes within ``radius`` of ``candidate`` that stay in its bucket and the window."""
    found = []
    for total in range(candidate.minutes - radius, candidate.minutes + radius + 1):
        option = TimeCandidate(_render(window, total), total, 1.0)
        if _allowed(window, total) and option.bucket == candidate.bucket:
            found.append(option)
    return found


def choose(
    candidates: Sequence[TimeCandidate],
    log_probs: Sequence[float],
    *,
    instant_threshold: float = INSTANT_THRESHOLD,
    later_mass: float = 0.0,
    later_threshold: float = LATER_THRESHOLD,
    temperature: float = 0.0,
    rng: random.Random | None = None,
) -> TimeCandidate:
    """Step 2: the instant candidate, the most probable later one, or the most probable delayed one.

    ``later_mass`` is the model's probability that the delay is a day or more (its TIME starts
    with ``+``). When candidates of a day or more are given it decides the later rule; when none
    are, it joins the whole mass that the instant share is measured against.

    With ``temperature > 0`` a bucket is sampled from the (tempered) bucket masses instead, and
    the candidate within it from its probabilities.
    """
    if not candidates or len(candidates) != len(log_probs):
        raise ValueError("choose() needs one log-probability per candidate")
    top = max(log_probs)
    probabilities = [math.exp(lp - top) for lp in log_probs]
    masses = [p * c.weight for p, c in zip(probabilities, candidates, strict=True)]
    buckets = [c.bucket for c in candidates]
    by_bucket: dict[int, float] = {}
    for candidate_bucket, mass in zip(buckets, masses, strict=True):
        by_bucket[candidate_bucket] = by_bucket.get(candidate_bucket, 0.0) + mass
    total = sum(masses)
    later = [i for i, c in enumerate(candidates) if c.minutes >= 1440]
    if not later:
        # The day counts were not scored (see ``ClockScoring._tree_candidates``): their exact mass
        # still counts against "instant".
        total += later_mass / math.exp(top)
    instant = [c for c in candidates if c.minutes == 0]
    if temperature > 0:
        rng = rng or random.Random()
        options = sorted(by_bucket)
        weights = [(by_bucket[b] / total) ** (1 / temperature) for b in options]
        chosen_bucket = rng.choices(options, weights)[0]
        if chosen_bucket == 0 and instant:
            return instant[0]
        members = [
            (c, p) for c, p in zip(candidates, probabilities, strict=True) if c.bucket == chosen_bucket
        ]
        return rng.choices([c for c, _ in members], [p ** (1 / temperature) for _, p in members])[0]
    if instant and by_bucket.get(0, 0.0) >= instant_threshold * total:
        return instant[0]
    if later and later_mass >= later_threshold:
        return candidates[max(later, key=probabilities.__getitem__)]
    delayed = [i for i, b in enumerate(buckets) if b > 0]
    if not delayed:
        return instant[0] if instant else candidates[max(range(len(masses)), key=masses.__getitem__)]
    # Below the later rule's threshold the reply stays within the day whenever it can.
    same_day = [i for i in delayed if candidates[i].minutes < 1440] or delayed
    return _least_expected_log_error(
        [candidates[i] for i in same_day], [probabilities[i] for i in same_day], [masses[i] for i in same_day]
    )


def _least_expected_log_error(
    delayed: Sequence[TimeCandidate], probabilities: Sequence[float], masses: Sequence[float]
) -> TimeCandidate:
    """Among the plausible delayed candidates, the one whose delay has the least expected squared
    log error under the model's delayed mass (minimum Bayes risk).

    The expected error of delay ``x``, ``sum(mass * (log1p(x) - log1p(m))**2)``, is a parabola in
    ``log1p(x)`` with its vertex at the mass-weighted mean of ``log1p(m)``: the answer is the
    plausible candidate nearest to that mean.
    """
    logs = [math.log1p(c.minutes) for c in delayed]
    mean = sum(mass * log for mass, log in zip(masses, logs, strict=True)) / sum(masses)
    floor = PLAUSIBLE_SHARE * max(probabilities)
    options = [i for i, p in enumerate(probabilities) if p >= floor]
    return delayed[min(options, key=lambda i: abs(logs[i] - mean))]
