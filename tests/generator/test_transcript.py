"""The transcript grammar: render/parse round trips (property-based) and typed errors."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from companion.generator import (
    Dialogue,
    InvalidCompletion,
    TranscriptError,
    Turn,
    dialogue_from_json,
    dialogue_to_json,
    parse_completion,
    parse_transcript,
    render_prompt,
    render_time,
    render_training_example,
    render_transcript,
)

ZONES = [
    "UTC",
    "Asia/Seoul",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "America/St_Johns",  # a -03:30 offset
    "Asia/Kathmandu",  # a +05:45 offset
    "Pacific/Apia",  # skipped a whole calendar day in 2011
]
# UTC instants of DST changes (and Apia's skipped day), so examples land on them often.
TRANSITIONS = [
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # New York springs forward
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),  # New York falls back
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # Berlin springs forward
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),  # Berlin falls back
    datetime(2026, 4, 4, 15, 0, tzinfo=UTC),  # Lord Howe falls back 30 min
    datetime(2011, 12, 30, 10, 0, tzinfo=UTC),  # Apia skips Dec 30
    datetime(2026, 1, 31, 23, 0, tzinfo=UTC),  # a month end
    datetime(2028, 2, 28, 23, 30, tzinfo=UTC),  # a leap day
]
MAX_MINUTES = 7 * 24 * 60

minute_instants = st.one_of(
    st.integers(0, 60 * 60 * 24 * 365 * 60 // 60).map(
        lambda m: datetime(1990, 1, 1, tzinfo=UTC) + timedelta(minutes=m)
    ),
    st.tuples(st.sampled_from(TRANSITIONS), st.integers(-3 * 1440, 3 * 1440)).map(
        lambda pair: pair[0] + timedelta(minutes=pair[1])
    ),
)


def expected_resolution(current: datetime, previous: datetime, time_zone: str) -> datetime:
    """What parsing the rendering of ``current`` must give: itself, except for the one
    documented inexpressible case (second pass of a repeated hour whose first pass is after
    ``previous``), which parses as the first pass."""
    tz = ZoneInfo(time_zone)
    local = current.astimezone(tz)
    first_pass = local.replace(fold=0).astimezone(UTC)
    floor_previous = previous.astimezone(tz).replace(second=0, microsecond=0).astimezone(UTC)
    if local.fold == 1 and first_pass != current.astimezone(UTC) and first_pass >= floor_previous:
        return first_pass
    return current


@settings(max_examples=400, deadline=None)
@given(
    time_zone=st.sampled_from(ZONES),
    previous=minute_instants,
    gap=st.integers(0, MAX_MINUTES),
)
@example(time_zone="UTC", previous=datetime(2026, 3, 2, 23, 50, tzinfo=UTC), gap=30)  # across midnight
@example(time_zone="UTC", previous=datetime(2026, 1, 31, 23, 59, tzinfo=UTC), gap=1)  # month end
@example(time_zone="Asia/Seoul", previous=datetime(2026, 3, 2, 3, 0, tzinfo=UTC), gap=MAX_MINUTES)
def test_render_then_parse_round_trips(time_zone: str, previous: datetime, gap: int) -> None:
    tz = ZoneInfo(time_zone)
    # Arithmetic in UTC: adding to a local datetime is wall-clock arithmetic and drops the fold.
    current = (previous + timedelta(minutes=gap)).astimezone(tz)
    previous = previous.astimezone(tz)
    rendered = render_time(current, previous=previous, time_zone=time_zone)

    at, text = parse_completion(f"{rendered}] hi", previous=previous, time_zone=time_zone)

    expected = expected_resolution(current, previous, time_zone)
    # Compared in UTC: Python compares datetimes of one zone by wall clock, ignoring the fold.
    assert at.astimezone(UTC) == expected.astimezone(UTC)
    assert at.utcoffset() == expected.astimezone(tz).utcoffset()
    assert text == "hi"
    assert str(at.tzinfo) == time_zone
    # The canonical form: N whole days, omitted when 0, never "+0d".
    if rendered.startswith("+"):
        assert int(rendered[1 : rendered.index("d")]) >= 1


@settings(max_examples=300, deadline=None)
@given(
    time_zone=st.sampled_from(ZONES),
    previous=minute_instants,
    gap=st.integers(0, MAX_MINUTES + 3 * 1440),
    max_minutes=st.integers(0, MAX_MINUTES),
)
def test_max_delay_is_enforced_exactly(
    time_zone: str, previous: datetime, gap: int, max_minutes: int
) -> None:
    tz = ZoneInfo(time_zone)
    current = previous + timedelta(minutes=gap)
    expected = expected_resolution(current, previous, time_zone).astimezone(UTC)
    rendered = render_time(current, previous=previous, time_zone=time_zone)
    max_delay = timedelta(minutes=max_minutes)

    if expected - previous <= max_delay:
        at, _ = parse_completion(
            f"{rendered}] ok", previous=previous.astimezone(tz), time_zone=time_zone, max_delay=max_delay
        )
        assert at.astimezone(UTC) == expected.astimezone(UTC)
    else:
        with pytest.raises(InvalidCompletion) as raised:
            parse_completion(f"{rendered}] ok", previous=previous, time_zone=time_zone, max_delay=max_delay)
        assert raised.value.reason == "beyond_max_delay"


@settings(max_examples=300, deadline=None)
@given(completion=st.text(max_size=30), previous=minute_instants, time_zone=st.sampled_from(ZONES))
@example(completion="+99999999999999d 10:00] x", previous=datetime(2026, 1, 1, tzinfo=UTC), time_zone="UTC")
@example(
    completion="23:59] \n[user] [00:00] more", previous=datetime(9999, 12, 30, tzinfo=UTC), time_zone="UTC"
)
def test_any_completion_parses_or_raises_a_typed_error(
    completion: str, previous: datetime, time_zone: str
) -> None:
    try:
        at, text = parse_completion(completion, previous=previous, time_zone=time_zone)
    except InvalidCompletion as error:
        assert error.reason in {
            "empty",
            "missing_bracket",
            "bad_format",
            "bad_time",
            "bad_day_count",
            "empty_text",
            "beyond_max_delay",
        }
        return
    assert previous <= at <= previous + timedelta(days=7)
    assert text == text.strip() != ""
    assert "\n" not in text


@pytest.mark.parametrize(
    ("completion", "reason"),
    [
        ("25:76] hi", "bad_time"),
        ("24:00] hi", "bad_time"),
        ("13:60] hi", "bad_time"),
        ("13:10 hi", "missing_bracket"),
        ("13:10]", "empty_text"),
        ("13:10]    ", "empty_text"),
        ("13:10] \nnext line", "empty_text"),
        ("", "empty"),
        ("   ", "empty"),
        ("1:10] hi", "bad_format"),
        ("13:10]hi", "bad_format"),
        ("+1d13:10] hi", "bad_format"),
        ("[13:10] hi", "bad_format"),
        ("+0d 13:10] hi", "bad_day_count"),
        ("+01d 13:10] hi", "bad_day_count"),
        ("+8d 12:00] hi", "beyond_max_delay"),
        ("+7d 12:01] hi", "beyond_max_delay"),
        ("+123456789012d 12:00] hi", "beyond_max_delay"),
    ],
)
def test_invalid_completions_are_typed_errors(completion: str, reason: str) -> None:
    previous = datetime(2026, 3, 2, 12, 0, tzinfo=ZoneInfo("Asia/Seoul"))

    with pytest.raises(InvalidCompletion) as raised:
        parse_completion(completion, previous=previous, time_zone="Asia/Seoul")

    assert raised.value.reason == reason
    assert raised.value.completion == completion
    assert isinstance(raised.value, TranscriptError)


SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("completion", "previous", "time_zone", "expected"),
    [
        # Across midnight: [00:20] after [23:50] is 30 minutes later.
        (
            "00:20] hi",
            datetime(2026, 3, 2, 23, 50, tzinfo=SEOUL),
            "Asia/Seoul",
            datetime(2026, 3, 3, 0, 20, tzinfo=SEOUL),
        ),
        # Same minute: instant, the previous turn itself (seconds kept, never earlier).
        (
            "12:34] hi",
            datetime(2026, 3, 2, 12, 34, 45, tzinfo=SEOUL),
            "Asia/Seoul",
            datetime(2026, 3, 2, 12, 34, 45, tzinfo=SEOUL),
        ),
        # A clock a minute earlier is almost a day later.
        (
            "12:33] hi",
            datetime(2026, 3, 2, 12, 34, tzinfo=SEOUL),
            "Asia/Seoul",
            datetime(2026, 3, 3, 12, 33, tzinfo=SEOUL),
        ),
        (
            "+1d 12:34] hi",
            datetime(2026, 3, 2, 12, 34, tzinfo=SEOUL),
            "Asia/Seoul",
            datetime(2026, 3, 3, 12, 34, tzinfo=SEOUL),
        ),
        (
            "+2d 00:10] hi",
            datetime(2026, 1, 31, 23, 0, tzinfo=SEOUL),
            "Asia/Seoul",
            datetime(2026, 2, 3, 0, 10, tzinfo=SEOUL),
        ),
        # Exactly the maximum delay is allowed.
        (
            "+7d 12:00] hi",
            datetime(2026, 3, 2, 12, 0, tzinfo=SEOUL),
            "Asia/Seoul",
            datetime(2026, 3, 9, 12, 0, tzinfo=SEOUL),
        ),
        # Spring-forward gap: 02:30 does not exist in New York on 2026-03-08; it moves to 03:30 EDT.
        (
            "02:30] hi",
            datetime(2026, 3, 8, 1, 50, tzinfo=NEW_YORK),
            "America/New_York",
            datetime(2026, 3, 8, 3, 30, tzinfo=NEW_YORK),
        ),
        # Fall-back: 01:30 after 00:50 is the first pass (EDT), 40 minutes later.
        (
            "01:30] hi",
            datetime(2026, 11, 1, 0, 50, tzinfo=NEW_YORK),
            "America/New_York",
            datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        ),
        # ... and after 01:40 EDT it is the second pass (EST), 50 minutes later, not tomorrow.
        (
            "01:30] hi",
            datetime(2026, 11, 1, 5, 40, tzinfo=UTC),
            "America/New_York",
            datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        ),
    ],
)
def test_resolution_examples(completion: str, previous: datetime, time_zone: str, expected: datetime) -> None:
    at, _ = parse_completion(completion, previous=previous, time_zone=time_zone)

    assert at.astimezone(UTC) == expected.astimezone(UTC)
    assert at.utcoffset() == expected.astimezone(ZoneInfo(time_zone)).utcoffset()


def test_design_example_prompt_and_completion() -> None:
    dialogue = Dialogue(
        turns=(
            Turn("person", datetime(2026, 3, 2, 12, 34, tzinfo=SEOUL), "hey luda"),
            Turn(
                "companion", datetime(2026, 3, 2, 12, 34, 30, tzinfo=SEOUL), "hi! I was just about to go eat"
            ),
            Turn("person", datetime(2026, 3, 2, 3, 35, tzinfo=UTC), "ok go eat!"),
        ),
        time_zone="Asia/Seoul",
        companion_name="Luda",
        persona="cheerful student\nloves music",
        age_group="adult",
    )

    example = render_training_example(
        dialogue, datetime(2026, 3, 2, 13, 10, tzinfo=SEOUL), "back~ that was good."
    )

    assert example == {
        "prompt": (
            "# persona: cheerful student loves music\n"
            "# person: adult\n"
            "[user] [12:34] hey luda\n"
            "[luda] [12:34] hi! I was just about to go eat\n"
            "[user] [12:35] ok go eat!\n"
            "[luda] ["
        ),
        "completion": "13:10] back~ that was good.",
    }
    assert render_prompt(dialogue) == example["prompt"]


turn_gaps = st.lists(
    st.tuples(st.sampled_from(["person", "companion"]), st.integers(0, 3000)), min_size=1, max_size=6
)


@settings(max_examples=150, deadline=None)
@given(time_zone=st.sampled_from(ZONES), start=minute_instants, gaps=turn_gaps)
def test_transcript_round_trips(time_zone: str, start: datetime, gaps: list[tuple[str, int]]) -> None:
    tz = ZoneInfo(time_zone)
    turns: list[Turn] = []
    at = start
    for role, gap in gaps:
        at = at + timedelta(minutes=gap)
        turns.append(Turn(role, at.astimezone(tz), f"message {len(turns)} ]["))  # type: ignore[arg-type]
    for previous, current in itertools.pairwise(turns):
        expected = expected_resolution(current.at, previous.at, time_zone)
        assume(expected.astimezone(UTC) == current.at.astimezone(UTC))
    dialogue = Dialogue(
        turns=tuple(turns), time_zone=time_zone, companion_name="Mina Kim", persona="p", age_group="child"
    )

    parsed = parse_transcript(
        render_transcript(dialogue),
        first_day=turns[0].at.astimezone(tz).date(),
        time_zone=time_zone,
        companion_name="Mina Kim",
    )

    assert parsed == dialogue
    assert dialogue_from_json(dialogue_to_json(dialogue)) == (dialogue, None)


def test_render_rejects_what_the_grammar_cannot_carry() -> None:
    later = Turn("person", datetime(2026, 3, 2, 12, 0, tzinfo=SEOUL), "later")
    earlier = Turn("companion", datetime(2026, 3, 2, 11, 0, tzinfo=SEOUL), "earlier")

    with pytest.raises(TranscriptError, match="earlier than the turn before"):
        render_transcript(Dialogue(turns=(later, earlier)))
    with pytest.raises(TranscriptError, match="empty"):
        render_transcript(Dialogue(turns=(Turn("person", later.at, " \n "),)))
    with pytest.raises(TranscriptError, match="timezone-aware"):
        Turn("person", datetime(2026, 3, 2, 12, 0), "naive")
    with pytest.raises(TranscriptError, match="speaker label"):
        Dialogue(turns=(later,), companion_name="User")
    with pytest.raises(TranscriptError, match="unknown time zone"):
        Dialogue(turns=(later,), time_zone="Mars/Olympus")
    with pytest.raises(TranscriptError, match="at least one turn"):
        Dialogue(turns=())


def test_json_line_of_issue_3() -> None:
    line = {
        "companion": {"name": "Luda", "persona": "cheerful"},
        "person": {"age_group": "adult"},
        "time_zone": "Asia/Seoul",
        "turns": [
            {"role": "person", "at": "2026-03-02T12:34", "text": "hey"},
            {"role": "companion", "at": "2026-03-02T12:34", "text": "hi! off to eat"},
        ],
        "reply": {"at": "2026-03-02T13:10", "text": "back~"},
    }

    dialogue, reply = dialogue_from_json(line)

    assert dialogue.turns[1] == Turn(
        "companion", datetime(2026, 3, 2, 12, 34, tzinfo=SEOUL), "hi! off to eat"
    )
    assert (dialogue.persona, dialogue.age_group, dialogue.companion_name) == ("cheerful", "adult", "Luda")
    assert reply == (datetime(2026, 3, 2, 13, 10, tzinfo=SEOUL), "back~")
    assert dialogue_to_json(dialogue, reply) == line
    with pytest.raises(TranscriptError, match="not an ISO datetime"):
        dialogue_from_json({"turns": [{"role": "person", "at": "noon", "text": "x"}]})
    with pytest.raises(TranscriptError, match="role"):
        dialogue_from_json({"turns": [{"role": "bot", "at": "2026-03-02T12:34", "text": "x"}]})
    assert (
        dialogue_from_json({"turns": [{"role": "person", "at": "2026-03-02T12:34", "text": "x"}]})[
            0
        ].time_zone
        == "UTC"
    )
    assert date(2026, 3, 2) == dialogue.turns[0].at.date()
