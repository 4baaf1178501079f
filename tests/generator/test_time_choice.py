"""Choosing the reply time from the distribution over whole times (time_choice.py)."""

from __future__ import annotations

import math
from collections import Counter

from companion.generator.constraint import TimeWindow
from companion.generator.time_choice import TimeCandidate, choose, grid_candidates, neighbours

WINDOW = TimeWindow(prev_clock=12 * 60 + 34, max_total=7 * 1440)  # after 12:34, a week allowed


def test_grid_candidates_cover_the_delay_axis_once() -> None:
    candidates = grid_candidates(WINDOW)
    times = [c.time for c in candidates]

    assert times[:6] == ["12:34", "12:35", "12:36", "12:37", "12:38", "12:40"]
    assert len(times) == len(set(times))
    assert Counter(c.weight for c in candidates) == Counter({1.0: 5, 5.0: 275, 30.0: 48})
    # No 23-24 h delays: the clocks of the hour before 12:34 never appear without "+1d".
    assert "12:30" not in times and "11:40" not in times and "11:30" in times
    assert times[-1] == "+1d 12:30" and "+1d 12:00" in times


def test_short_window_limits_the_candidates() -> None:
    candidates = grid_candidates(TimeWindow(prev_clock=23 * 60 + 58, max_total=30))

    assert [c.time for c in candidates] == ["23:58", "23:59", "00:00", "00:01", "00:02", "00:05", "00:10",
                                            "00:15", "00:20", "00:25"]  # fmt: skip


def _log_probs(candidates: list[TimeCandidate], wanted: dict[str, float], rest: float) -> list[float]:
    return [math.log(wanted.get(c.time, rest)) for c in candidates]


def test_instant_wins_with_half_the_mass() -> None:
    candidates = grid_candidates(WINDOW)
    # 0.5 on the instant minute, the rest spread thinly over the delays.
    rest = 0.5 / sum(c.weight for c in candidates if c.minutes)
    chosen = choose(candidates, _log_probs(candidates, {"12:34": 0.5}, rest))

    assert chosen.time == "12:34"


def test_split_mass_is_decided_as_a_whole_not_digit_by_digit() -> None:
    candidates = grid_candidates(WINDOW)
    # Instant 0.3; "about 45 minutes" spread over 13:10-13:30 (0.12 per 5-minute slot): the delay wins,
    # although the single most probable time is the instant one.
    spread = {"13:10": 0.02, "13:15": 0.025, "13:20": 0.028, "13:25": 0.025, "13:30": 0.02}
    chosen = choose(candidates, _log_probs(candidates, {"12:34": 0.3, **spread}, 1e-6), instant_threshold=0.5)

    assert chosen.time == "13:20"
    assert chosen.bucket == 2


def test_threshold_moves_the_decision() -> None:
    candidates = grid_candidates(WINDOW)
    log_probs = _log_probs(candidates, {"12:34": 0.4, "13:20": 0.12}, 1e-6)

    assert choose(candidates, log_probs, instant_threshold=0.5).time == "13:20"
    assert choose(candidates, log_probs, instant_threshold=0.3).time == "12:34"


def test_neighbours_stay_in_the_bucket_and_window() -> None:
    chosen = TimeCandidate("13:05", 31, 5.0)

    assert [c.time for c in neighbours(chosen, WINDOW, radius=4)] == [
        "13:04",
        "13:05",
        "13:06",
        "13:07",
        "13:08",
        "13:09",
    ]  # fmt: skip  (13:01-13:03 are under 30 minutes: another bucket)


def test_a_sharp_peak_beats_a_wide_bucket_spread_thin() -> None:
    candidates = grid_candidates(WINDOW)
    # A little mass everywhere (the "12 h+" bucket alone spans 720 minutes) and a peak at 14:05.
    chosen = choose(candidates, _log_probs(candidates, {"12:34": 0.01, "14:05": 0.05}, 2e-3))

    assert chosen.time == "14:05"


def test_a_day_or_more_wins_when_the_model_puts_that_much_on_a_day_count() -> None:
    # given: a sharp same-day peak at +600 min, and "a few days later" spread thin over later clocks
    candidates = [
        TimeCandidate("10:00", 0, 1.0),
        TimeCandidate("20:00", 600, 1.0),
        TimeCandidate("+2d 14:00", 2 * 1440 + 240, 30.0),
        TimeCandidate("+3d 11:30", 3 * 1440 + 90, 30.0),
    ]
    log_probs = [math.log(0.05), math.log(0.30), math.log(0.12), math.log(0.10)]
    # then: below the threshold, the per-minute mode; at or above it, the likeliest later clock
    assert choose(candidates, log_probs, later_mass=0.49, later_threshold=0.5).time == "20:00"
    assert choose(candidates, log_probs, later_mass=0.5, later_threshold=0.5).time == "+2d 14:00"
    # and the instant mass still comes first
    instant = [math.log(0.6), math.log(0.2), math.log(0.001), math.log(0.001)]
    assert choose(candidates, instant, later_mass=0.9, later_threshold=0.5).time == "10:00"
    # and without later candidates the mass alone changes nothing
    assert choose(candidates[:2], log_probs[:2], later_mass=0.9).time == "20:00"


def test_the_exact_mass_of_unscored_day_counts_counts_against_instant() -> None:
    # given: same-day candidates only (the +1d grid below the later threshold is not scored),
    # instant 0.2 and "in 10 hours" 0.3, while the model puts 0.5 on a day count
    candidates = [TimeCandidate("10:00", 0, 1.0), TimeCandidate("20:00", 600, 1.0)]
    log_probs = [math.log(0.2), math.log(0.3)]
    # then: measured against the same-day mass alone the instant share is 0.4, against all of it 0.2
    assert choose(candidates, log_probs, later_mass=0.0, instant_threshold=0.3).time == "10:00"
    assert choose(candidates, log_probs, later_mass=0.5, instant_threshold=0.3).time == "20:00"


def test_between_two_likely_peaks_the_reply_takes_the_time_of_least_expected_log_error() -> None:
    # given: "in 30 minutes" (the likeliest five minutes), "in 2 hours" and "in 4 hours", nearly as
    # likely, and almost nothing elsewhere
    candidates = grid_candidates(WINDOW)
    peaks = {"13:05": 0.030, "14:35": 0.025, "16:35": 0.029}
    log_probs = _log_probs(candidates, {"12:34": 0.001, **peaks}, 1e-7)
    # then: the hedge between them (log1p of 31, 121 and 241 minutes average to 4.56: 121 is nearest),
    # not the single likeliest minute
    assert choose(candidates, log_probs).time == "14:35"
    # and with one clear peak the reply is that peak
    sharp = _log_probs(candidates, {"12:34": 0.001, "13:05": 0.2, "14:35": 0.015, "16:35": 0.015}, 1e-7)
    assert choose(candidates, sharp).time == "13:05"


def test_below_the_later_threshold_a_delayed_reply_stays_within_the_day() -> None:
    # given: a same-day peak and much more mass on later clocks, with a day count under the threshold
    candidates = [
        TimeCandidate("10:00", 0, 1.0),
        TimeCandidate("20:00", 600, 1.0),
        TimeCandidate("+2d 14:00", 2 * 1440 + 240, 30.0),
    ]
    log_probs = [math.log(0.01), math.log(0.30), math.log(0.25)]
    # then: the reply stays on the same day, whatever the later mass pulls the expected error to
    assert choose(candidates, log_probs, later_mass=0.4, later_threshold=0.5).time == "20:00"
