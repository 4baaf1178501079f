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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
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
