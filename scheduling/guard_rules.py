"""Guard rules: pure functions that keep the model's proposed reply time humane.

Given the delay the model proposed (measured from the last turn it saw) and a snapshot of the
conversation's recent history, :func:`apply_guard_rules` returns the delay to use and one
:class:`GuardDecision` per rule, changed or not, so the reply row records exactly why its time is
what it is. No database, no clock: the caller passes ``now`` and the history.

Rules, in the order they run (settings per companion, defaults from the Luda write-up):

1. ``max_delay``: a delay beyond the companion's maximum is clamped to it.
2. ``complaint_cooldown``: the person complained about slowness or being ignored within the
   cool-down: instant (a delay now would be punishing the complaint).
3. ``delay_ration``: one of the last K companion turns was a delayed reply: instant.
4. ``instant_threshold``: a delay shorter than the threshold is not worth a wait: instant.

"Instant" is a delay of zero: the reply is sent as soon as it is typed.

Messages the companion starts (a delayed answer, a follow-up) also meet :func:`quiet_hours_rule`;
follow-ups meet their own guards (:func:`follow_up_precheck` before any model time, then
:func:`apply_follow_up_rules` on the model's time): the per-companion switch, a person who asked
to be left alone, the unanswered cap, the follow-up window, quiet hours and the daily cap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

INSTANT = timedelta(0)


class ComplaintMatcher(Protocol):
    def matches(self, text: str) -> list[str]: ...


@dataclass(frozen=True)
class GuardSettings:
    instant_threshold: timedelta
    delay_ration_turns: int
    complaint_cooldown: timedelta
    max_delay: timedelta

    @classmethod
    def from_companion(cls, companion: Any) -> GuardSettings:
        """Read the four per-companion settings of :class:`chat.models.Companion`."""
        return cls(
            instant_threshold=timedelta(minutes=companion.instant_threshold_minutes),
            delay_ration_turns=companion.delay_ration_turns,
            complaint_cooldown=timedelta(minutes=companion.complaint_cooldown_minutes),
            max_delay=timedelta(minutes=companion.max_delay_minutes),
        )


@dataclass(frozen=True)
class PersonTurn:
    at: datetime
    text: str


@dataclass(frozen=True)
class GuardHistory:
    """What the rules look at, newest first.

    ``companion_turns_delayed``: for each of the most recent companion messages, whether it was
    a delayed reply (at least ``delay_ration_turns`` of them when the conversation has that many).
    ``person_turns``: the person's messages, at least those within the complaint cool-down.
    """

    now: datetime
    companion_turns_delayed: Sequence[bool]
    person_turns: Sequence[PersonTurn]


@dataclass(frozen=True)
class GuardDecision:
    rule: str
    changed: bool
    before_seconds: float
    after_seconds: float
    reason: str

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GuardOutcome:
    proposed_delay: timedelta
    final_delay: timedelta
    decisions: tuple[GuardDecision, ...]

    @property
    def changed(self) -> bool:
        return self.final_delay != self.proposed_delay

    @property
    def is_instant(self) -> bool:
        return self.final_delay == INSTANT


def _minutes(delay: timedelta) -> str:
    return f"{delay.total_seconds() / 60:g} min"


def max_delay_rule(delay: timedelta, settings: GuardSettings) -> tuple[timedelta, str]:
    if delay > settings.max_delay:
        return settings.max_delay, f"{_minutes(delay)} exceeds the maximum {_minutes(settings.max_delay)}"
    return delay, f"within the maximum {_minutes(settings.max_delay)}"


def complaint_cooldown_rule(
    delay: timedelta, settings: GuardSettings, history: GuardHistory, complaints: ComplaintMatcher
) -> tuple[timedelta, str]:
    since = history.now - settings.complaint_cooldown
    for turn in history.person_turns:
        if turn.at < since:
            continue
        phrases = complaints.matches(turn.text)
        if phrases:
            ago = history.now - turn.at
            return INSTANT, (
                f"the person complained ({phrases[0]!r}) {_minutes(ago)} ago, "
                f"within the {_minutes(settings.complaint_cooldown)} cool-down"
            )
    return delay, f"no complaint within the last {_minutes(settings.complaint_cooldown)}"


def delay_ration_rule(
    delay: timedelta, settings: GuardSettings, history: GuardHistory
) -> tuple[timedelta, str]:
    recent = list(history.companion_turns_delayed)[: settings.delay_ration_turns]
    if delay > INSTANT and any(recent):
        position = recent.index(True) + 1
        return INSTANT, (
            f"companion turn {position} of the last {settings.delay_ration_turns} was already delayed"
        )
    return delay, f"no delayed reply within the last {settings.delay_ration_turns} companion turns"


def instant_threshold_rule(delay: timedelta, settings: GuardSettings) -> tuple[timedelta, str]:
    if INSTANT < delay < settings.instant_threshold:
        return INSTANT, f"{_minutes(delay)} is shorter than {_minutes(settings.instant_threshold)}"
    return delay, f"not between 0 and {_minutes(settings.instant_threshold)}"


def apply_guard_rules(
    *,
    proposed_delay: timedelta,
    settings: GuardSettings,
    history: GuardHistory,
    complaints: ComplaintMatcher,
) -> GuardOutcome:
    """Run the four rules in order; each sees the previous one's result."""
    delay = max(proposed_delay, INSTANT)
    decisions: list[GuardDecision] = []
    steps: tuple[tuple[str, Callable[[timedelta], tuple[timedelta, str]]], ...] = (
        ("max_delay", lambda d: max_delay_rule(d, settings)),
        ("complaint_cooldown", lambda d: complaint_cooldown_rule(d, settings, history, complaints)),
        ("delay_ration", lambda d: delay_ration_rule(d, settings, history)),
        ("instant_threshold", lambda d: instant_threshold_rule(d, settings)),
    )
    for rule, step in steps:
        if delay == INSTANT:
            decisions.append(GuardDecision(rule, False, 0.0, 0.0, "already instant"))
            continue
        after, reason = step(delay)
        decisions.append(
            GuardDecision(rule, after != delay, delay.total_seconds(), after.total_seconds(), reason)
        )
        delay = after
    return GuardOutcome(
        proposed_delay=max(proposed_delay, INSTANT), final_delay=delay, decisions=tuple(decisions)
    )


def typing_lead(text: str, *, min_seconds: float, seconds_per_char: float, max_seconds: float) -> timedelta:
    """How long a person would type ``text`` (before REPLY_TIME_SCALE): min + per char, capped."""
    return timedelta(seconds=min(max_seconds, min_seconds + seconds_per_char * len(text)))


# --- Writing first: quiet hours (any message the companion starts) and the follow-up guards ---


@dataclass(frozen=True)
class QuietHours:
    """Local hours of the person in which the companion starts no message (``start == end``: none)."""

    start: time
    end: time

    @classmethod
    def from_companion(cls, companion: Any) -> QuietHours:
        """Read ``quiet_hours_start`` / ``quiet_hours_end`` of :class:`chat.models.Companion`."""
        return cls(companion.quiet_hours_start, companion.quiet_hours_end)

    def contains(self, local: datetime) -> bool:
        clock = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= clock < self.end
        return clock >= self.start or clock < self.end  # the hours wrap past midnight

    def end_after(self, local: datetime) -> datetime:
        """The first moment the quiet hours end at or after ``local`` (an aware local datetime)."""
        tz = local.tzinfo
        day = (
            local.date() if local.time().replace(tzinfo=None) < self.end else local.date() + timedelta(days=1)
        )
        # Wall-clock end on that day; converted through UTC so a DST change cannot shift it.
        return datetime.combine(day, self.end, tzinfo=tz).astimezone(UTC).astimezone(tz)


def quiet_hours_rule(
    local_at: datetime, quiet: QuietHours, *, asked_for_time: bool
) -> tuple[datetime, GuardDecision]:
    """A message the companion starts (delayed answer or follow-up) inside quiet hours waits for their end.

    ``local_at`` is the planned time in the person's zone. Not when the person asked for a time
    ("wake me at 6:30"): that message comes when it was asked for.
    """
    window = f"{quiet.start:%H:%M}-{quiet.end:%H:%M}"
    if not quiet.contains(local_at):
        return local_at, GuardDecision(
            "quiet_hours", False, 0.0, 0.0, f"{local_at:%H:%M} is outside {window}"
        )
    if asked_for_time:
        return local_at, GuardDecision(
            "quiet_hours",
            False,
            0.0,
            0.0,
            f"{local_at:%H:%M} is within {window}, but the person asked for a time",
        )
    moved = quiet.end_after(local_at)
    return moved, GuardDecision(
        "quiet_hours",
        True,
        0.0,
        (moved - local_at).total_seconds(),
        f"{local_at:%H:%M} is within the quiet hours {window}: moved to {moved:%H:%M}",
    )


@dataclass(frozen=True)
class FollowUpSettings:
    enabled: bool
    max_unanswered: int
    per_day: int
    min_gap: timedelta
    horizon: timedelta
    quiet_hours: QuietHours

    @classmethod
    def from_companion(cls, companion: Any) -> FollowUpSettings:
        """Read the follow-up settings of :class:`chat.models.Companion`."""
        return cls(
            enabled=companion.follow_ups_enabled,
            max_unanswered=companion.follow_up_max_unanswered,
            per_day=companion.follow_ups_per_day,
            min_gap=timedelta(minutes=companion.instant_threshold_minutes),
            horizon=timedelta(minutes=companion.follow_up_horizon_minutes),
            quiet_hours=QuietHours.from_companion(companion),
        )


@dataclass(frozen=True)
class FollowUpHistory:
    """What the follow-up guards look at.

    ``unanswered``: follow-ups sent or pending since the person's last message.
    ``follow_up_days``: the local dates (person's zone) of recent follow-ups sent or pending.
    ``person_turns``: the person's messages of the last day, newest first.
    """

    unanswered: int
    follow_up_days: Sequence[date]
    person_turns: Sequence[PersonTurn]


@dataclass(frozen=True)
class FollowUpOutcome:
    """``at`` is the follow-up's local time, or None when it is declined."""

    at: datetime | None
    decisions: tuple[GuardDecision, ...]

    @property
    def declined(self) -> bool:
        return self.at is None


def _declined(rule: str, reason: str) -> GuardDecision:
    return GuardDecision(rule, True, 0.0, 0.0, reason)


def follow_up_precheck(
    settings: FollowUpSettings, history: FollowUpHistory, leave_alone: ComplaintMatcher
) -> FollowUpOutcome | None:
    """The guards that need no model: a declined outcome, or None when a follow-up may be planned."""
    if not settings.enabled:
        return FollowUpOutcome(
            None, (_declined("follow_ups_enabled", "follow-ups are off for this companion"),)
        )
    for turn in history.person_turns:
        phrases = leave_alone.matches(turn.text)
        if phrases:
            return FollowUpOutcome(
                None, (_declined("leave_alone", f"the person asked to be left alone ({phrases[0]!r})"),)
            )
    if history.unanswered >= settings.max_unanswered:
        return FollowUpOutcome(
            None,
            (
                _declined(
                    "unanswered_cap",
                    f"{history.unanswered} follow-up(s) since the person last wrote; "
                    f"at most {settings.max_unanswered}",
                ),
            ),
        )
    return None


def apply_follow_up_rules(
    *,
    base_local: datetime,
    proposed_local: datetime,
    settings: FollowUpSettings,
    history: FollowUpHistory,
    asked_for_time: bool,
) -> FollowUpOutcome:
    """The guards on the model's follow-up time (measured from the companion message it follows).

    In order: the window (not sooner than ``min_gap``, which would be a bubble the reply did not
    write, and not later than ``horizon``, which means nothing to follow up on soon), quiet hours
    (moved to their end unless asked for), and the daily cap on the final local date.
    """
    delay = proposed_local - base_local
    seconds = delay.total_seconds()
    if delay < settings.min_gap:
        return FollowUpOutcome(
            None,
            (
                _declined(
                    "follow_up_window", f"{_minutes(delay)} is sooner than {_minutes(settings.min_gap)}"
                ),
            ),
        )
    if delay > settings.horizon:
        return FollowUpOutcome(
            None,
            (
                _declined(
                    "follow_up_window",
                    f"{_minutes(delay)} is later than the horizon {_minutes(settings.horizon)}",
                ),
            ),
        )
    decisions = [
        GuardDecision(
            "follow_up_window",
            False,
            seconds,
            seconds,
            f"within {_minutes(settings.min_gap)}-{_minutes(settings.horizon)}",
        )
    ]
    final, quiet = quiet_hours_rule(proposed_local, settings.quiet_hours, asked_for_time=asked_for_time)
    decisions.append(quiet)
    same_day = sum(1 for day in history.follow_up_days if day == final.date())
    if same_day >= settings.per_day:
        decisions.append(
            _declined(
                "daily_cap", f"{same_day} follow-up(s) already on {final.date()}; at most {settings.per_day}"
            )
        )
        return FollowUpOutcome(None, tuple(decisions))
    decisions.append(
        GuardDecision(
            "daily_cap",
            False,
            0.0,
            0.0,
            f"{same_day} follow-up(s) on {final.date()}; at most {settings.per_day}",
        )
    )
    return FollowUpOutcome(final, tuple(decisions))
