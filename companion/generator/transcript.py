"""The transcript grammar of DESIGN.md: dialogues rendered to text, completions parsed back.

This module is the single place that knows the format, so the generator, the labeling export
and the tests cannot disagree about it. It is pure Python (no torch, no Django).

Choices made where DESIGN.md is silent, kept here so every user reads the same rules:

* Speaker labels: the person is ``[user]``; the companion is its name lowercased, with
  whitespace runs turned into ``_`` and brackets dropped (``"Luda"`` -> ``[luda]``). A name that
  would collide with ``user`` or become empty is a :class:`TranscriptError`.
* Header (optional conditioning): one line ``# persona: <text>`` when the companion has a persona
  and one line ``# person: <age group>`` when the person's age group is known, before the turns.
* Text: a turn is one line, so line breaks inside a text are rendered as single spaces and the
  text is stripped; a text that is empty after that cannot be rendered.
* Time resolution works on *instants*, not on naive wall clocks. ``HH:MM`` after a previous turn
  ``prev`` is the first instant at or after ``prev`` (taken to the minute) whose local clock reads
  ``HH:MM``; ``+Nd HH:MM`` is the first instant with that clock on the local date N days after that
  one. Because of the minute granularity, ``HH:MM`` equal to ``prev``'s own minute means ``prev``
  itself: an instant reply is never placed before the turn it answers.
* DST: a wall-clock time that does not exist (the spring-forward gap) resolves to the instant the
  clocks jumped to, shifted forward by the gap (``02:30`` -> ``03:30`` in New York); rendering never
  produces such a time. A repeated wall-clock time (fall back) resolves to its first occurrence at
  or after ``prev``, which is what a reader of the transcript assumes. The one gap that the grammar
  cannot express is the *second* occurrence of a repeated minute when the first occurrence also
  lies after ``prev``: it renders identically and parses as the first occurrence (one hour early).
  Everything else round-trips exactly at minute precision (property-tested).
* The zone is an IANA name; times are compared and subtracted in UTC because Python compares
  datetimes that share a ``tzinfo`` by their wall clock, which is wrong across DST changes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_MAX_DELAY",
    "PERSON_LABEL",
    "Dialogue",
    "GenerationFailed",
    "InvalidCompletion",
    "TranscriptError",
    "Turn",
    "companion_label",
    "parse_bubbles",
    "parse_completion",
    "parse_transcript",
    "render_prompt",
    "render_time",
    "render_training_example",
    "render_transcript",
    "resolve_time",
]

PERSON_LABEL = "user"
DEFAULT_MAX_DELAY = timedelta(days=7)
Role = Literal["person", "companion"]
_ROLES: frozenset[str] = frozenset({"person", "companion"})
_DAY = timedelta(days=1)


class TranscriptError(ValueError):
    """Base of every format error: a dialogue that cannot be rendered or text that does not parse."""


class InvalidCompletion(TranscriptError):
    """A generated completion that does not follow the grammar or resolves past the maximum delay.

    ``reason`` is a stable machine-readable code, one of: ``empty``, ``missing_bracket``,
    ``bad_format``, ``bad_time``, ``bad_day_count``, ``empty_text``, ``beyond_max_delay``.
    """

    def __init__(self, reason: str, message: str, *, completion: str = "") -> None:
        super().__init__(f"{message} [{reason}]")
        self.reason = reason
        self.completion = completion


class GenerationFailed(RuntimeError):
    """Generation could not produce a valid reply (for instance unconstrained output that does not parse)."""

    def __init__(self, message: str, *, completion: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.completion = completion
        self.reason = reason


@dataclass(frozen=True)
class Turn:
    """One message of a dialogue; ``at`` is timezone-aware (any zone)."""

    role: Role
    at: datetime
    text: str

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise TranscriptError(f"turn role must be 'person' or 'companion', not {self.role!r}")
        if not isinstance(self.at, datetime) or self.at.tzinfo is None or self.at.utcoffset() is None:
            raise TranscriptError(f"turn time must be a timezone-aware datetime, not {self.at!r}")
        if not isinstance(self.text, str):
            raise TranscriptError("turn text must be a string")


@dataclass(frozen=True)
class Dialogue:
    """A conversation to render: turns oldest first, in an IANA zone, with optional conditioning."""

    turns: tuple[Turn, ...]
    time_zone: str = "UTC"
    companion_name: str = "Luda"
    persona: str = ""
    age_group: str | None = None

    def __post_init__(self) -> None:
        # Accept any sequence but store a tuple, so the frozen dataclass stays hashable.
        object.__setattr__(self, "turns", tuple(self.turns))
        if not self.turns:
            raise TranscriptError("a dialogue needs at least one turn")
        for turn in self.turns:
            if not isinstance(turn, Turn):
                raise TranscriptError(f"dialogue turns must be Turn objects, not {type(turn).__name__}")
        zone(self.time_zone)
        companion_label(self.companion_name)

    @property
    def last_at(self) -> datetime:
        """The time of the last turn, which a reply's delay is measured from."""
        return self.turns[-1].at


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name; an unknown name is a TranscriptError, not a crash."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as error:
        raise TranscriptError(f"unknown time zone {name!r}") from error


def companion_label(name: str) -> str:
    """The speaker label of a companion: its name lowercased (see the module docstring)."""
    label = "_".join(str(name).replace("[", "").replace("]", "").lower().split())
    if not label or label == PERSON_LABEL:
        raise TranscriptError(f"companion name {name!r} cannot be a speaker label")
    return label


def _one_line(text: str) -> str:
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").strip()


def _floor_minute(at: datetime, tz: ZoneInfo) -> datetime:
    """``at`` in ``tz``, seconds dropped; truncating the local clock keeps zones with odd offsets right."""
    return at.astimezone(tz).replace(second=0, microsecond=0)


def _occurrences(day: date, hour: int, minute: int, tz: ZoneInfo) -> list[datetime]:
    """The UTC instants whose local clock in ``tz`` reads ``day hour:minute`` (a gap gives its shift)."""
    found: list[datetime] = []
    for fold in (0, 1):
        instant = datetime(day.year, day.month, day.day, hour, minute, fold=fold, tzinfo=tz).astimezone(UTC)
        local = instant.astimezone(tz)
        if (local.date(), local.hour, local.minute) == (day, hour, minute) and instant not in found:
            found.append(instant)
    if not found:
        # A clock time inside a spring-forward gap: take the forward shift (the later reading).
        shifted = [
            datetime(day.year, day.month, day.day, hour, minute, fold=fold, tzinfo=tz).astimezone(UTC)
            for fold in (0, 1)
        ]
        found.append(max(shifted))
    return sorted(found)


def _first_at_or_after(floor_utc: datetime, hour: int, minute: int, tz: ZoneInfo) -> datetime:
    start = floor_utc.astimezone(tz).date()
    for offset in range(4):
        for instant in _occurrences(start + timedelta(days=offset), hour, minute, tz):
            if instant >= floor_utc:
                return instant
    raise TranscriptError("no such clock time after the previous turn")  # pragma: no cover - cannot happen


def resolve_time(days: int, hour: int, minute: int, *, previous: datetime, time_zone: str) -> datetime:
    """The aware datetime (in ``time_zone``) that a TIME resolves to after ``previous`` (no delay check)."""
    tz = zone(time_zone)
    floor_utc = _floor_minute(previous, tz).astimezone(UTC)
    base = _first_at_or_after(floor_utc, hour, minute, tz)
    if days:
        base = _occurrences(base.astimezone(tz).date() + timedelta(days=days), hour, minute, tz)[0]
    # Same minute as ``previous``: the reply is instant, i.e. ``previous`` itself, never before it.
    return max(base, previous.astimezone(UTC)).astimezone(tz)


def render_time(at: datetime, *, previous: datetime | None, time_zone: str) -> str:
    """The canonical TIME of ``at`` after ``previous`` (``HH:MM`` or ``+Nd HH:MM``)."""
    require_aware(at, "time")
    tz = zone(time_zone)
    current = _floor_minute(at, tz)
    clock = f"{current.hour:02d}:{current.minute:02d}"
    if previous is None:
        return clock
    require_aware(previous, "previous time")
    floor_utc = _floor_minute(previous, tz).astimezone(UTC)
    current_utc = current.astimezone(UTC)
    if current_utc < floor_utc:
        raise TranscriptError(f"turn at {at.isoformat()} is earlier than the turn before it")
    base = _first_at_or_after(floor_utc, current.hour, current.minute, tz)
    days = (current.date() - base.astimezone(tz).date()).days
    # days <= 0 with base != current is the one inexpressible case (second pass of a repeated hour).
    return clock if base == current_utc or days <= 0 else f"+{days}d {clock}"


def require_aware(at: Any, what: str) -> None:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise TranscriptError(f"{what} must be a timezone-aware datetime, not {at!r}")


def _header(dialogue: Dialogue) -> list[str]:
    lines = []
    persona = _one_line(dialogue.persona or "")
    if persona:
        lines.append(f"# persona: {persona}")
    if dialogue.age_group:
        lines.append(f"# person: {_one_line(dialogue.age_group)}")
    return lines


def _turn_lines(dialogue: Dialogue) -> list[str]:
    label = companion_label(dialogue.companion_name)
    lines = []
    previous: datetime | None = None
    for turn in dialogue.turns:
        text = _one_line(turn.text)
        if not text:
            raise TranscriptError("a turn's text is empty")
        speaker = PERSON_LABEL if turn.role == "person" else label
        lines.append(
            f"[{speaker}] [{render_time(turn.at, previous=previous, time_zone=dialogue.time_zone)}] {text}"
        )
        previous = turn.at
    return lines


def render_transcript(dialogue: Dialogue) -> str:
    """The dialogue in the transcript grammar: optional header lines, then one line per turn."""
    return "\n".join(_header(dialogue) + _turn_lines(dialogue))


def render_prompt(dialogue: Dialogue) -> str:
    """The transcript followed by ``\\n[<companion>] [``: the model completes ``TIME] TEXT``."""
    return f"{render_transcript(dialogue)}\n[{companion_label(dialogue.companion_name)}] ["


def render_training_example(
    dialogue: Dialogue,
    reply_at: datetime,
    reply_text: str,
    more: Sequence[tuple[datetime, str]] = (),
) -> dict[str, str]:
    """``{"prompt": ..., "completion": "TIME] TEXT"}``; the tokenizer's EOS is appended at training time.

    ``more`` are further bubbles of the same reply, ``(at, text)`` in order: the completion then
    reads ``TIME] TEXT\n[<companion>] [TIME] TEXT ...``, each time rendered against the bubble
    before it.
    """
    label = companion_label(dialogue.companion_name)
    parts = []
    previous = dialogue.last_at
    for index, (at, raw_text) in enumerate(((reply_at, reply_text), *more)):
        text = _one_line(raw_text)
        if not text:
            raise TranscriptError("the reply's text is empty")
        require_aware(at, "bubble time")
        if at.astimezone(UTC) < previous.astimezone(UTC):
            raise TranscriptError(f"bubble {index} is earlier than the turn before it")
        time = render_time(at, previous=previous, time_zone=dialogue.time_zone)
        parts.append(f"{time}] {text}" if index == 0 else f"[{label}] [{time}] {text}")
        previous = at
    return {"prompt": render_prompt(dialogue), "completion": "\n".join(parts)}


_TIME_RE = re.compile(r"(?:\+(?P<days>[0-9]+)d )?(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})")


def split_completion(completion: str) -> tuple[int, int, int, str]:
    """``(days, hour, minute, text)`` of a completion, checked against the grammar but not resolved."""
    if not completion or not completion.strip():
        raise InvalidCompletion("empty", "the completion is empty", completion=completion)
    close = completion.find("]")
    if close < 0:
        raise InvalidCompletion("missing_bracket", "no ']' closes the time", completion=completion)
    head, rest = completion[:close], completion[close + 1 :]
    match = _TIME_RE.fullmatch(head)
    if match is None:
        raise InvalidCompletion("bad_format", f"{head!r} is not HH:MM or +Nd HH:MM", completion=completion)
    days_text = match["days"]
    if days_text is not None and (days_text.startswith("0")):
        raise InvalidCompletion(
            "bad_day_count", f"day count {days_text!r} must be >= 1", completion=completion
        )
    hour, minute = int(match["hour"]), int(match["minute"])
    if hour > 23 or minute > 59:
        raise InvalidCompletion("bad_time", f"{head!r} is not a clock time", completion=completion)
    if rest and not rest.startswith(" "):
        raise InvalidCompletion("bad_format", "']' must be followed by a space", completion=completion)
    # A model that does not stop at EOS runs on into the next turn: the reply is the first line.
    text = rest[1:].split("\n", 1)[0].strip() if rest else ""
    if not text:
        raise InvalidCompletion("empty_text", "the reply text is empty", completion=completion)
    return int(days_text or 0), hour, minute, text


def parse_completion(
    completion: str, *, previous: datetime, time_zone: str, max_delay: timedelta = DEFAULT_MAX_DELAY
) -> tuple[datetime, str]:
    """Resolve a completion (``"13:10] back~"``) after ``previous``: aware datetime in ``time_zone``, text.

    Raises :class:`InvalidCompletion` for anything off-grammar or later than ``previous + max_delay``.
    """
    require_aware(previous, "previous time")
    days, hour, minute, text = split_completion(completion)
    # Checked before any arithmetic so "+99999999d" is an error, not an OverflowError.
    if days > max_delay // _DAY + 1:
        raise InvalidCompletion(
            "beyond_max_delay", f"+{days}d exceeds the maximum delay", completion=completion
        )
    try:
        at = resolve_time(days, hour, minute, previous=previous, time_zone=time_zone)
    except OverflowError as error:
        raise InvalidCompletion(
            "beyond_max_delay", "the time is out of range", completion=completion
        ) from error
    if at.astimezone(UTC) - previous.astimezone(UTC) > max_delay:
        raise InvalidCompletion(
            "beyond_max_delay", f"{at.isoformat()} is more than {max_delay} later", completion=completion
        )
    return at, text


def parse_bubbles(
    completion: str,
    *,
    previous: datetime,
    time_zone: str,
    companion_name: str,
    max_delay: timedelta = DEFAULT_MAX_DELAY,
    max_bubbles: int = 1,
) -> tuple[tuple[datetime, str], ...]:
    """Every bubble of a completion, ``((at, text), ...)``: ``TIME] TEXT`` then, on each further line,
    ``[<companion>] [TIME] TEXT``, each time resolved against the bubble before it.

    At most ``max_bubbles`` are read; parsing stops at the first line that is not a further
    companion turn (a model that runs on into the person's turn), so only the first bubble must
    parse. Each bubble's delay from the one before it must be within ``max_delay``.
    """
    if max_bubbles < 1:
        raise ValueError("max_bubbles must be >= 1")
    lines = completion.split("\n")
    head = f"[{companion_label(companion_name)}] ["
    bubbles = [parse_completion(lines[0], previous=previous, time_zone=time_zone, max_delay=max_delay)]
    for line in lines[1:max_bubbles]:
        if not line.startswith(head):
            break
        try:
            bubbles.append(
                parse_completion(
                    line[len(head) :], previous=bubbles[-1][0], time_zone=time_zone, max_delay=max_delay
                )
            )
        except InvalidCompletion:
            break
    return tuple(bubbles)


_TURN_RE = re.compile(r"\[(?P<speaker>[^\[\]]+)\] \[(?P<time>[^\[\]]*)\] (?P<text>.*)")


def parse_transcript(
    transcript: str, *, first_day: date, time_zone: str = "UTC", companion_name: str | None = None
) -> Dialogue:
    """Parse a rendered transcript back into a Dialogue; the first turn's clock is on ``first_day``.

    ``companion_name`` defaults to the companion's speaker label (the original casing is not rendered).
    """
    tz = zone(time_zone)
    turns: list[Turn]
    persona, age_group, turns = "", None, []
    label: str | None = companion_label(companion_name) if companion_name else None
    previous: datetime | None = None
    for number, line in enumerate(transcript.split("\n"), start=1):
        if not turns and line.startswith("# persona: "):
            persona = line.removeprefix("# persona: ")
            continue
        if not turns and line.startswith("# person: "):
            age_group = line.removeprefix("# person: ")
            continue
        match = _TURN_RE.fullmatch(line)
        if match is None:
            raise TranscriptError(f"line {number} is not a turn: {line!r}")
        speaker = match["speaker"]
        if speaker == PERSON_LABEL:
            role: Role = "person"
        else:
            label = label or speaker
            if speaker != label:
                raise TranscriptError(f"line {number}: unknown speaker {speaker!r}")
            role = "companion"
        if previous is None:
            previous = datetime(first_day.year, first_day.month, first_day.day, tzinfo=tz)
        try:
            at, text = parse_completion(
                f"{match['time']}] {match['text']}",
                previous=previous,
                time_zone=time_zone,
                max_delay=timedelta.max,
            )
        except InvalidCompletion as error:
            raise TranscriptError(f"line {number}: {error}") from error
        turns.append(Turn(role=role, at=at, text=text))
        previous = at
    return Dialogue(
        turns=tuple(turns),
        time_zone=time_zone,
        companion_name=companion_name or label or "Luda",
        persona=persona,
        age_group=age_group,
    )


# --- the JSON line format of issue 3 (independent of the rendering) ---------------------------
