"""The chat-log file format of ``import_chat_logs``: reading and validating lines, nothing written.

One line is one log, one conversation excerpt of one person with one companion::

    {"external_id": "log-0001", "companion": "luda", "person": "p-0001", "time_zone": "Asia/Seoul",
     "messages": [{"role": "person", "at": "2026-03-02T12:10:00+09:00", "text": "뭐해?"}, ...]}

Rules (each broken rule refuses the whole line, with its line number and a reason code):

* exactly those keys, on the log and on each message; ``role`` is ``person`` or ``companion``;
* ``companion`` is the slug of an existing companion; ``time_zone`` an IANA name;
* ``person`` is an external id (letters, digits and ``.@+-_``, at most 100): it maps to one
  inactive user with an unusable password, named ``log:<person>``. Registration never accepts a
  ``:``, so that name can never be a real person's;
* ``at`` is ISO 8601 *with* an offset (stored in UTC); times within a log never go backwards;
* texts pass chat's own :func:`~chat.text_rules.validate_message_text` (and are stored normalized);
* an ``external_id`` appears once per file (:mod:`chat.log_import` skips one already imported
  and refuses logs that overlap their conversation).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError

from chat.models import Message, validate_time_zone
from chat.text_rules import MessageTextInvalid, validate_message_text

LOG_KEYS = frozenset({"external_id", "companion", "person", "time_zone", "messages"})
MESSAGE_KEYS = frozenset({"role", "at", "text"})
IMPORTED_ROLES = frozenset({Message.Role.PERSON.value, Message.Role.COMPANION.value})
EXTERNAL_ID_MAX_LENGTH = 100  # chat.Message.log_external_id / chat.ImportedLog.external_id
PERSON_USERNAME_PREFIX = "log:"
_EXTERNAL_ID = re.compile(r"[^\s\x00-\x1f\x7f]{1,100}\Z")
_PERSON_ID = re.compile(r"[\w.@+-]{1,100}\Z")


def person_username(person: str) -> str:
    """The username of the inactive user that stands for an imported log's ``person``."""
    return PERSON_USERNAME_PREFIX + person


class LogLineInvalid(ValueError):
    """One line of a log file breaks a rule; ``code`` is stable, ``detail`` is for humans."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class LineRefusal:
    line: int
    external_id: str | None
    code: str
    detail: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" ({self.external_id})" if self.external_id else "")
        return f"{where}: {self.code}: {self.detail}"


@dataclass(frozen=True)
class LogMessage:
    role: str
    at: datetime  # UTC
    text: str  # normalized by validate_message_text


@dataclass(frozen=True)
class ChatLog:
    """One valid line, ready to be written."""

    line: int
    external_id: str
    companion_id: int
    person: str
    time_zone: str
    messages: tuple[LogMessage, ...]

    @property
    def starts_at(self) -> datetime:
        return self.messages[0].at

    @property
    def ends_at(self) -> datetime:
        return self.messages[-1].at


@dataclass
class ImportReport:
    """What an import did (or, with ``dry_run``, would do)."""

    dry_run: bool
    lines: int = 0
    imported_logs: int = 0
    imported_messages: int = 0
    conversations: int = 0  # conversations that received at least one log
    conversations_created: int = 0
    persons_created: int = 0
    skipped: list[str] = field(default_factory=list)  # external ids imported before
    refusals: list[LineRefusal] = field(default_factory=list)


@dataclass
class Progress:
    """Throttled progress lines (at most one per ``interval_seconds``) for large files."""

    write: Callable[[str], None] | None = None
    interval_seconds: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _last: float | None = None

    def report(self, text: str) -> None:
        if self.write is None:
            return
        now = self.clock()
        if self._last is None:
            self._last = now  # the first call only starts the clock: small files stay quiet
            return
        if now - self._last >= self.interval_seconds:
            self._last = now
            self.write(text)


def decode_lines(
    raw_lines: Sequence[bytes], *, report: ImportReport, progress: Progress
) -> list[tuple[int, dict[str, Any]]]:
    decoded: list[tuple[int, dict[str, Any]]] = []
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            report.refusals.append(LineRefusal(number, None, "json_invalid", f"not UTF-8: {exc.reason}"))
            continue
        except json.JSONDecodeError as exc:
            report.refusals.append(LineRefusal(number, None, "json_invalid", f"not JSON: {exc}"))
            continue
        except RecursionError:
            report.refusals.append(LineRefusal(number, None, "json_invalid", "nested too deeply"))
            continue
        if not isinstance(value, dict):
            report.refusals.append(
                LineRefusal(number, None, "json_invalid", "a line must be one JSON object")
            )
            continue
        decoded.append((number, value))
        progress.report(f"read {number}/{len(raw_lines)} lines")
    return decoded


def validate_logs(
    decoded: Sequence[tuple[int, dict[str, Any]]],
    *,
    companions: dict[str, int],
    report: ImportReport,
    progress: Progress,
) -> list[ChatLog]:
    logs: list[ChatLog] = []
    first_line_of: dict[str, int] = {}
    for number, value in decoded:
        external_id = value.get("external_id")
        shown_id = external_id if isinstance(external_id, str) and external_id else None
        try:
            log = parse_log(value, line=number, companions=companions)
            if log.external_id in first_line_of:
                raise LogLineInvalid(
                    "external_id_duplicate",
                    f"external_id {log.external_id!r} is also on line {first_line_of[log.external_id]}",
                )
        except LogLineInvalid as exc:
            report.refusals.append(LineRefusal(number, shown_id, exc.code, exc.detail))
            continue
        first_line_of[log.external_id] = number
        logs.append(log)
        progress.report(f"validated {number}/{report.lines} lines")
    return logs


def parse_log(value: dict[str, Any], *, line: int, companions: dict[str, int]) -> ChatLog:
    """One decoded line as a :class:`ChatLog`, or ``LogLineInvalid`` naming the first broken rule."""
    _require_keys(value, LOG_KEYS, where="the log")
    external_id = value["external_id"]
    if not isinstance(external_id, str) or not _EXTERNAL_ID.match(external_id):
        raise LogLineInvalid(
            "external_id_invalid",
            f"external_id must be 1..{EXTERNAL_ID_MAX_LENGTH} characters without spaces or control "
            f"characters, not {external_id!r}",
        )
    slug = value["companion"]
    if not isinstance(slug, str) or slug not in companions:
        raise LogLineInvalid("companion_unknown", f"no companion with slug {slug!r}")
    person = value["person"]
    if not isinstance(person, str) or not _PERSON_ID.match(person):
        raise LogLineInvalid(
            "person_invalid",
            f"person must be 1..100 letters, digits or . @ + - _, not {person!r}",
        )
    zone = value["time_zone"]
    try:
        if not isinstance(zone, str):
            raise ValidationError("not a string")
        validate_time_zone(zone)
    except ValidationError as exc:
        raise LogLineInvalid("time_zone_unknown", f"unknown time zone {zone!r}") from exc
    raw_messages = value["messages"]
    if not isinstance(raw_messages, list) or not raw_messages:
        raise LogLineInvalid("messages_invalid", "messages must be a non-empty list")
    messages = tuple(_parse_message(raw, index) for index, raw in enumerate(raw_messages))
    for index in range(1, len(messages)):
        if messages[index].at < messages[index - 1].at:
            raise LogLineInvalid(
                "times_not_increasing",
                f"messages[{index}] at {raw_messages[index]['at']} is earlier than "
                f"messages[{index - 1}] at {raw_messages[index - 1]['at']}",
            )
    return ChatLog(
        line=line,
        external_id=external_id,
        companion_id=companions[slug],
        person=person,
        time_zone=zone,
        messages=messages,
    )


def _require_keys(value: dict[str, Any], keys: frozenset[str], *, where: str) -> None:
    missing, extra = sorted(keys - value.keys()), sorted(value.keys() - keys)
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(extra)}"] if extra else []
        )
        raise LogLineInvalid("keys_invalid", f"{where}: {'; '.join(parts)}")


def _parse_message(raw: Any, index: int) -> LogMessage:
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise LogLineInvalid("keys_invalid", f"{where}: must be an object with role, at and text")
    _require_keys(raw, MESSAGE_KEYS, where=where)
    role = raw["role"]
    if not isinstance(role, str) or role not in IMPORTED_ROLES:
        raise LogLineInvalid("role_invalid", f"{where}: role must be 'person' or 'companion', not {role!r}")
    at = raw["at"]
    try:
        moment = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise LogLineInvalid("time_invalid", f"{where}: {at!r} is not an ISO 8601 time")
    if moment.utcoffset() is None:
        raise LogLineInvalid(
            "time_naive", f"{where}: {at!r} has no UTC offset (write e.g. 2026-03-02T12:10:00+09:00)"
        )
    try:
        at_utc = moment.astimezone(UTC)
    except OverflowError as exc:  # year 1 or 9999 pushed past the calendar by its offset
        raise LogLineInvalid("time_invalid", f"{where}: {at!r} is out of range in UTC") from exc
    try:
        text = validate_message_text(raw["text"])
    except MessageTextInvalid as exc:
        raise LogLineInvalid(exc.code, f"{where}: {exc.detail}") from exc
    return LogMessage(role=role, at=at_utc, text=text)
