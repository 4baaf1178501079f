"""The time editor's conversion, relative <-> absolute, across midnight and DST (one implementation)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeling.time_editor import TimeEditorError, format_delay, from_delay, from_local, parse_delay

SEOUL = "Asia/Seoul"
NEW_YORK = "America/New_York"


def at(
    zone: str, year: int, month: int, day: int, hour: int, minute: int, second: int = 0, *, fold: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(zone), fold=fold)


def test_relative_to_absolute_across_midnight() -> None:
    # Given a cut turn at 23:50:40 in Seoul; When the reply is 1 h 30 min later
    reply = from_delay(base=at(SEOUL, 2026, 3, 2, 23, 50, 40), delay_minutes=90, time_zone=SEOUL)
    # Then the clock reads 01:20 on the next day (seconds of the cut turn are dropped)
    assert (reply.local_date, reply.local_clock) == (date(2026, 3, 3), time(1, 20))
    assert reply.at == datetime(2026, 3, 2, 16, 20, tzinfo=UTC)
    assert (reply.hours, reply.minutes, reply.relative_text) == (1, 30, "1 h 30 min later")


def test_absolute_to_relative_across_midnight() -> None:
    reply = from_local(
        base=at(SEOUL, 2026, 3, 2, 23, 50),
        local_date=date(2026, 3, 3),
        local_clock=time(0, 20),
        time_zone=SEOUL,
    )
    assert reply.delay_minutes == 30
    assert reply.as_json() == {
        "at": "2026-03-02T15:20:00Z",
        "delay_minutes": 30,
        "hours": 0,
        "minutes": 30,
        "relative": "0 h 30 min later",
        "local_date": "2026-03-03",
        "local_time": "00:20",
    }


def test_spring_forward_night_counts_real_elapsed_time() -> None:
    # 01:30 EST + 2 h of real time = 04:30 EDT (02:00-03:00 does not exist on 2026-03-08)
    reply = from_delay(base=at(NEW_YORK, 2026, 3, 8, 1, 30), delay_minutes=120, time_zone=NEW_YORK)
    assert (reply.local_date, reply.local_clock) == (date(2026, 3, 8), time(4, 30))
    back = from_local(
        base=at(NEW_YORK, 2026, 3, 8, 1, 30),
        local_date=date(2026, 3, 8),
        local_clock=time(4, 30),
        time_zone=NEW_YORK,
    )
    assert back.delay_minutes == 120


def test_a_clock_time_skipped_by_spring_forward_is_refused_with_a_reason() -> None:
    with pytest.raises(TimeEditorError) as error:
        from_local(
            base=at(NEW_YORK, 2026, 3, 8, 1, 30),
            local_date=date(2026, 3, 8),
            local_clock=time(2, 30),
            time_zone=NEW_YORK,
        )
    assert str(error.value) == (
        "02:30 does not exist on 2026-03-08 in America/New_York "
        "(the clocks jump forward then); pick another time."
    )


def test_fall_back_repeated_hour_both_directions() -> None:
    base = at(NEW_YORK, 2026, 11, 1, 0, 50)  # EDT
    # 01:30 happens twice; the first occurrence after the cut is 40 minutes later
    first = from_local(base=base, local_date=date(2026, 11, 1), local_clock=time(1, 30), time_zone=NEW_YORK)
    assert first.delay_minutes == 40
    # 100 minutes later is the *second* 01:30 (EST): same clock, one hour further
    second = from_delay(base=base, delay_minutes=100, time_zone=NEW_YORK)
    assert (second.local_date, second.local_clock) == (date(2026, 11, 1), time(1, 30))
    assert second.at - first.at == timedelta(hours=1)
    # From a cut inside the second 01:xx hour, 01:30 can only mean the second occurrence
    later_base = at(NEW_YORK, 2026, 11, 1, 1, 10, fold=1)
    assert (
        from_local(
            base=later_base, local_date=date(2026, 11, 1), local_clock=time(1, 30), time_zone=NEW_YORK
        ).delay_minutes
        == 20
    )


@pytest.mark.parametrize(
    ("delay", "message"),
    [
        (0, "The delayed reply must come at least 1 minute after the cut turn."),
        (-5, "The delayed reply must come at least 1 minute after the cut turn."),
        (7 * 24 * 60 + 1, "A delay of 168 h 1 min later is beyond this companion's maximum of 168 h 0 min."),
    ],
)
def test_out_of_range_delays_are_refused(delay: int, message: str) -> None:
    with pytest.raises(TimeEditorError) as error:
        from_delay(base=at(SEOUL, 2026, 3, 2, 12, 0), delay_minutes=delay, time_zone=SEOUL)
    assert str(error.value) == message


def test_an_absolute_time_before_the_cut_is_refused() -> None:
    with pytest.raises(TimeEditorError) as error:
        from_local(
            base=at(SEOUL, 2026, 3, 2, 12, 0),
            local_date=date(2026, 3, 2),
            local_clock=time(11, 0),
            time_zone=SEOUL,
        )
    assert str(error.value) == "The delayed reply must come at least 1 minute after the cut turn."


def test_unknown_zone_and_naive_base_are_refused() -> None:
    with pytest.raises(TimeEditorError, match=r"^Unknown time zone 'Mars/Olympus'\.$"):
        from_delay(base=at(SEOUL, 2026, 3, 2, 12, 0), delay_minutes=5, time_zone="Mars/Olympus")
    with pytest.raises(TimeEditorError, match=r"^The base time must be timezone-aware\.$"):
        from_delay(base=datetime(2026, 3, 2, 12, 0), delay_minutes=5, time_zone=SEOUL)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("1 h 30 min later", 90),
        ("2h", 120),
        ("45 min", 45),
        ("26 hours 5 minutes later", 1565),
        ("0 h 7 min", 7),
    ],
)
def test_parse_and_format_relative_text(text: str, minutes: int) -> None:
    assert parse_delay(text) == minutes
    assert parse_delay(format_delay(minutes)) == minutes


def test_unparseable_relative_text_is_refused() -> None:
    with pytest.raises(TimeEditorError, match=r"^'soon' is not a delay; write it as 'X h Y min later'\.$"):
        parse_delay("soon")


@settings(max_examples=300, deadline=None)
@given(
    base=st.datetimes(
        min_value=datetime(2025, 1, 1),
        max_value=datetime(2027, 12, 31),
        timezones=st.just(ZoneInfo(NEW_YORK)),
    ),
    delay=st.integers(min_value=1, max_value=7 * 24 * 60),
    zone=st.sampled_from([NEW_YORK, SEOUL, "Europe/Berlin", "Australia/Lord_Howe", "UTC"]),
)
def test_relative_and_absolute_agree_both_ways(base: datetime, delay: int, zone: str) -> None:
    # Whatever the delay, its absolute clock converts back to the same instant; the delay too,
    # except for the second pass of a repeated (fall-back) hour, which reads as the first.
    forward = from_delay(base=base, delay_minutes=delay, time_zone=zone)
    back = from_local(
        base=base, local_date=forward.local_date, local_clock=forward.local_clock, time_zone=zone
    )
    local = forward.at.astimezone(ZoneInfo(zone))
    repeated = local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()
    if repeated and back.at != forward.at:
        first_pass, second_pass = local.replace(fold=0).utcoffset(), local.replace(fold=1).utcoffset()
        assert first_pass is not None and second_pass is not None, f"{local} has no UTC offset"
        assert forward.at - back.at == first_pass - second_pass
    else:
        assert back == forward
