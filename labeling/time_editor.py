"""The delayed reply's time, as the annotator edits it: relative or absolute, kept in sync.

This module is the one implementation of the conversion. The task page never converts in
JavaScript; it asks the server (``/labeling/api/time/``), which calls :func:`from_delay` or
:func:`from_local`, so the browser, the label services and the tests all share this code.

* relative: "X h Y min later", whole minutes after ``base`` (the cut turn's minute);
* absolute: a local date and clock time (HH:MM) in the conversation's IANA time zone.

Across midnight the date simply moves on. Across a DST change the relative delay is real
elapsed time (a 2 h delay over a spring-forward night shows a clock 3 h later); a clock time
that does not exist (skipped by the change) is refused with a reason; one that exists twice
(fall-back) means the first occurrence that is not before ``base``.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from labeling.models import minute_floor


class TimeEditorError(ValueError):
    """An input the time editor cannot turn into a reply time; ``str()`` is the reason to show."""


@dataclass(frozen=True)
class ReplyTime:
    """One reply time in both notations."""

    at: datetime  # UTC, whole minutes
    delay_minutes: int
    local_date: date
    local_clock: time  # HH:MM in the conversation's zone

    @property
    def hours(self) -> int:
        return self.delay_minutes // 60

    @property
    def minutes(self) -> int:
        return self.delay_minutes % 60

    @property
    def relative_text(self) -> str:
        return format_delay(self.delay_minutes)

    def as_json(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "delay_minutes": self.delay_minutes,
            "hours": self.hours,
            "minutes": self.minutes,
            "relative": self.relative_text,
            "local_date": self.local_date.isoformat(),
            "local_time": self.local_clock.strftime("%H:%M"),
        }


def _zone(time_zone: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise TimeEditorError(f"Unknown time zone {time_zone!r}.") from exc


def _check(base: datetime, delay_minutes: int, max_delay_minutes: int) -> None:
    if base.tzinfo is None:
        raise TimeEditorError("The base time must be timezone-aware.")
    if delay_minutes < 1:
        raise TimeEditorError("The delayed reply must come at least 1 minute after the cut turn.")
    if delay_minutes > max_delay_minutes:
        raise TimeEditorError(
            f"A delay of {format_delay(delay_minutes)} is beyond this companion's maximum of "
            f"{format_delay(max_delay_minutes, later=False)}."
        )


def from_delay(
    *, base: datetime, delay_minutes: int, time_zone: str, max_delay_minutes: int = 7 * 24 * 60
) -> ReplyTime:
    """The reply ``delay_minutes`` after ``base``'s minute, with its local date and clock."""
    _check(base, delay_minutes, max_delay_minutes)
    zone = _zone(time_zone)
    # In UTC: Python adds a timedelta to the *wall clock* of a zoned datetime, wrong across DST.
    at = minute_floor(base.astimezone(UTC)) + timedelta(minutes=delay_minutes)
    local = at.astimezone(zone)
    return ReplyTime(
        at=at,
        delay_minutes=delay_minutes,
        local_date=local.date(),
        local_clock=local.time().replace(tzinfo=None),
    )


def from_local(
    *,
    base: datetime,
    local_date: date,
    local_clock: time,
    time_zone: str,
    max_delay_minutes: int = 7 * 24 * 60,
) -> ReplyTime:
    """The reply at a local date and clock time in ``time_zone``, with its delay after ``base``."""
    if base.tzinfo is None:
        raise TimeEditorError("The base time must be timezone-aware.")
    zone = _zone(time_zone)
    wall = datetime.combine(local_date, local_clock.replace(second=0, microsecond=0, tzinfo=None))
    candidates = []
    for fold in (0, 1):
        moment = wall.replace(tzinfo=zone, fold=fold)
        # A wall time that does not survive the round trip to UTC was skipped by a DST change.
        if moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
            candidates.append(moment.astimezone(UTC))
    if not candidates:
        raise TimeEditorError(
            f"{local_clock.strftime('%H:%M')} does not exist on {local_date.isoformat()} in {time_zone} "
            "(the clocks jump forward then); pick another time."
        )
    floor = minute_floor(base.astimezone(UTC))
    not_before = sorted({c for c in candidates if c > floor})
    at = not_before[0] if not_before else min(candidates)
    delay_minutes = int((at - floor).total_seconds() // 60)
    _check(base, delay_minutes, max_delay_minutes)
    return from_delay(
        base=base, delay_minutes=delay_minutes, time_zone=time_zone, max_delay_minutes=max_delay_minutes
    )


def format_delay(delay_minutes: int, *, later: bool = True) -> str:
    """``95`` -> ``"1 h 35 min later"``; days are written as hours (``"26 h 0 min later"``)."""
    text = f"{delay_minutes // 60} h {delay_minutes % 60} min"
    return f"{text} later" if later else text


_RELATIVE = re.compile(
    r"^\s*(?:(?P<hours>\d+)\s*h(?:ours?|rs?)?)?\s*(?:(?P<minutes>\d+)\s*m(?:in(?:utes?|s)?)?)?\s*(?:later)?\s*$",
    re.IGNORECASE,
)


def parse_delay(text: str) -> int:
    """``"1 h 30 min later"`` / ``"2h"`` / ``"45 min"`` -> minutes; anything else is refused."""
    match = _RELATIVE.match(text)
    if not match or (match["hours"] is None and match["minutes"] is None):
        raise TimeEditorError(f"{text!r} is not a delay; write it as 'X h Y min later'.")
    return int(match["hours"] or 0) * 60 + int(match["minutes"] or 0)


def local_time_label(moment: datetime, time_zone: str) -> str:
    """How the task page shows a turn's time: local date, clock and UTC offset."""
    local = moment.astimezone(_zone(time_zone))
    return local.strftime("%Y-%m-%d %H:%M (UTC%z)")
