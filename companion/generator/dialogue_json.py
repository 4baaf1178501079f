"""The JSON line of a dialogue (evaluation sets, the corpus, labeling exports) read and written.

One object per line: ``turns`` (``{role, at, text}``, ``at`` local wall-clock time), ``time_zone``,
``companion`` {name, persona}, ``person`` {age_group}, and the gold ``reply`` {at, text, more?}
(``more``: further bubbles of the same reply). The grammar itself lives in ``transcript.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from companion.generator.transcript import Dialogue, TranscriptError, Turn, require_aware, zone

__all__ = ["dialogue_from_json", "dialogue_to_json", "reply_bubbles_from_json"]


def _local_at(value: Any, tz: ZoneInfo, where: str) -> datetime:
    if not isinstance(value, str):
        raise TranscriptError(f"{where}: 'at' must be an ISO datetime string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise TranscriptError(f"{where}: 'at' {value!r} is not an ISO datetime") from error
    if parsed.tzinfo is None:
        # The format carries local wall-clock time; a time in a DST gap moves forward, a
        # repeated one takes its first occurrence (fold=0), as in the grammar.
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC).astimezone(tz)


def dialogue_from_json(obj: Mapping[str, Any]) -> tuple[Dialogue, tuple[datetime, str] | None]:
    """Read one evaluation/corpus line: ``(Dialogue, (reply_at, reply_text) or None)``.

    Keys: ``turns`` (required), ``time_zone`` (default ``"UTC"``), ``companion`` {name, persona},
    ``person`` {age_group}, ``reply`` {at, text}. ``at`` is local wall-clock time (an explicit
    offset is also accepted and converted). Unknown keys are ignored.
    """
    if not isinstance(obj, Mapping):
        raise TranscriptError("a dialogue must be a JSON object")
    time_zone = obj.get("time_zone") or "UTC"
    if not isinstance(time_zone, str):
        raise TranscriptError("'time_zone' must be a string")
    tz = zone(time_zone)
    companion = obj.get("companion") or {}
    person = obj.get("person") or {}
    if not isinstance(companion, Mapping) or not isinstance(person, Mapping):
        raise TranscriptError("'companion' and 'person' must be objects")
    raw_turns = obj.get("turns")
    if not isinstance(raw_turns, list) or not raw_turns:
        raise TranscriptError("'turns' must be a non-empty list")
    turns = []
    for index, raw in enumerate(raw_turns):
        where = f"turn {index}"
        if not isinstance(raw, Mapping):
            raise TranscriptError(f"{where} must be an object")
        text = raw.get("text")
        if not isinstance(text, str):
            raise TranscriptError(f"{where}: 'text' must be a string")
        turns.append(Turn(role=raw.get("role"), at=_local_at(raw.get("at"), tz, where), text=text))  # type: ignore[arg-type]
    age_group = person.get("age_group")
    dialogue = Dialogue(
        turns=tuple(turns),
        time_zone=time_zone,
        companion_name=str(companion.get("name") or "Luda"),
        persona=str(companion.get("persona") or ""),
        age_group=str(age_group) if age_group else None,
    )
    raw_reply = obj.get("reply")
    if raw_reply is None:
        return dialogue, None
    if not isinstance(raw_reply, Mapping) or not isinstance(raw_reply.get("text"), str):
        raise TranscriptError("'reply' must be an object with 'at' and 'text'")
    return dialogue, (_local_at(raw_reply.get("at"), tz, "reply"), raw_reply["text"])


def reply_bubbles_from_json(obj: Mapping[str, Any], dialogue: Dialogue) -> tuple[tuple[datetime, str], ...]:
    """The bubbles after a line's ``reply``: ``reply.more``, ``{at, text}`` in order (may be absent)."""
    raw_reply = obj.get("reply")
    more = raw_reply.get("more") if isinstance(raw_reply, Mapping) else None
    if more is None:
        return ()
    if not isinstance(more, list):
        raise TranscriptError("'reply.more' must be a list of {at, text}")
    tz = zone(dialogue.time_zone)
    bubbles = []
    for index, raw in enumerate(more):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("text"), str):
            raise TranscriptError(f"reply.more[{index}] must be an object with 'at' and 'text'")
        bubbles.append((_local_at(raw.get("at"), tz, f"reply.more[{index}]"), raw["text"]))
    return tuple(bubbles)


def _wall(at: datetime, tz: ZoneInfo) -> str:
    local = at.astimezone(tz)
    spec = "minutes" if local.second == 0 and local.microsecond == 0 else "seconds"
    return local.replace(tzinfo=None).isoformat(timespec=spec)


def dialogue_to_json(dialogue: Dialogue, reply: tuple[datetime, str] | None = None) -> dict[str, Any]:
    """The JSON line of :func:`dialogue_from_json` (local wall-clock times, no offsets)."""
    tz = zone(dialogue.time_zone)
    obj: dict[str, Any] = {"time_zone": dialogue.time_zone, "companion": {"name": dialogue.companion_name}}
    if dialogue.persona:
        obj["companion"]["persona"] = dialogue.persona
    if dialogue.age_group:
        obj["person"] = {"age_group": dialogue.age_group}
    obj["turns"] = [{"role": t.role, "at": _wall(t.at, tz), "text": t.text} for t in dialogue.turns]
    if reply is not None:
        require_aware(reply[0], "reply time")
        obj["reply"] = {"at": _wall(reply[0], tz), "text": reply[1]}
    return obj
