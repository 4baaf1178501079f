"""The served-model grammars accept exactly the TIMEs the local automaton and the parser accept."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from companion.generator import InvalidCompletion, parse_completion
from companion.generator.served_grammar import completion_language
from companion.generator.time_window import TEXT, classify_prefix, time_window
from tests.generator.gbnf_reader import gbnf_regex

# Zones without a clock change: there the window's minute arithmetic is exact, so the grammar must
# agree with the parser itself (around a DST change the parser's real-delay check is the last word).
FIXED_ZONES = ("UTC", "Asia/Seoul", "Asia/Kolkata")
ALL_ZONES = (*FIXED_ZONES, "America/New_York", "Europe/Berlin")

previous_times = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
max_delays = st.one_of(
    st.integers(min_value=0, max_value=3 * 1440).map(lambda m: timedelta(minutes=m)),
    st.integers(min_value=0, max_value=40 * 1440).map(lambda m: timedelta(minutes=m)),
    st.sampled_from([timedelta(days=7), timedelta(days=1), timedelta(minutes=1439), timedelta(0)]),
)


@st.composite
def time_texts(draw: st.DrawFn) -> str:
    """Well-formed TIMEs with any day count, clock or digit count, and arbitrary near-misses."""
    if draw(st.booleans()):
        return draw(st.text(alphabet="0123456789:+d ", max_size=12))
    hour = draw(st.integers(min_value=0, max_value=29))
    minute = draw(st.integers(min_value=0, max_value=65))
    days = draw(st.integers(min_value=0, max_value=45))
    clock = f"{hour:02d}:{minute:02d}"
    if days == 0 and draw(st.booleans()):
        return clock
    return f"+{days:0{draw(st.integers(min_value=1, max_value=3))}d}d {clock}"


def parses(completion: str, previous: datetime, zone_name: str, max_delay: timedelta) -> bool:
    try:
        parse_completion(completion, previous=previous, time_zone=zone_name, max_delay=max_delay)
    except InvalidCompletion:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(
    previous=previous_times,
    zone_name=st.sampled_from(FIXED_ZONES),
    max_delay=max_delays,
    time=time_texts(),
)
@example(
    previous=datetime(2026, 3, 2, 23, 50, tzinfo=UTC),
    zone_name="UTC",
    max_delay=timedelta(days=7),
    time="+7d 23:50",
)
@example(
    previous=datetime(2026, 3, 2, 23, 50, tzinfo=UTC),
    zone_name="UTC",
    max_delay=timedelta(days=7),
    time="+7d 23:51",
)
@example(
    previous=datetime(2026, 3, 2, 23, 50, tzinfo=UTC),
    zone_name="UTC",
    max_delay=timedelta(hours=1),
    time="00:50",
)
@example(
    previous=datetime(2026, 3, 2, 23, 50, tzinfo=UTC),
    zone_name="UTC",
    max_delay=timedelta(hours=1),
    time="00:51",
)
def test_the_grammar_and_the_regex_accept_exactly_what_the_parser_accepts(
    previous: datetime, zone_name: str, max_delay: timedelta, time: str
) -> None:
    window = time_window(previous, zone_name, max_delay)
    language = completion_language(window)
    completion = f"{time}] see you"
    expected = parses(completion, previous, zone_name, max_delay)
    assert bool(re.fullmatch(language.regex, completion)) is expected
    assert bool(gbnf_regex(language.gbnf).fullmatch(completion)) is expected


@settings(max_examples=200, deadline=None)
@given(
    previous=previous_times,
    zone_name=st.sampled_from(ALL_ZONES),
    max_delay=max_delays,
    time=time_texts(),
)
def test_the_grammar_is_the_local_decoders_automaton_in_every_zone(
    previous: datetime, zone_name: str, max_delay: timedelta, time: str
) -> None:
    window = time_window(previous, zone_name, max_delay)
    language = completion_language(window)
    expected = classify_prefix(f"{time}] ", window) == TEXT
    assert bool(re.fullmatch(language.regex, f"{time}] ok")) is expected
    assert bool(gbnf_regex(language.gbnf).fullmatch(f"{time}] ok")) is expected


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="ab 가\t\n\r[]~", max_size=8), forced=st.booleans())
def test_the_text_is_one_line_without_brackets_and_not_blank(text: str, forced: bool) -> None:
    window = time_window(datetime(2026, 3, 2, 12, 0, tzinfo=UTC), "UTC", timedelta(days=7))
    language = completion_language(None if forced else window)
    completion = (" " if forced else "12:30] ") + text
    expected = not set(text) & set("\n\r[]") and bool(text.strip(" \t"))
    assert bool(re.fullmatch(language.regex, completion)) is expected
    assert bool(gbnf_regex(language.gbnf).fullmatch(completion)) is expected


def test_a_window_shorter_than_a_day_wraps_past_midnight_and_writes_no_day_count() -> None:
    # given: the previous turn at 23:50 and at most 20 minutes
    window = time_window(datetime(2026, 3, 2, 23, 50, tzinfo=UTC), "UTC", timedelta(minutes=20))
    # when
    language = completion_language(window)
    # then: exactly 23:50..23:59 and 00:00..00:10
    allowed = [
        f"{m // 60:02d}:{m % 60:02d}"
        for m in range(1440)
        if re.fullmatch(language.regex, f"{m // 60:02d}:{m % 60:02d}] x")
    ]
    assert allowed == [f"00:{m:02d}" for m in range(11)] + [f"23:{m:02d}" for m in range(50, 60)]
    assert "+" not in language.gbnf
