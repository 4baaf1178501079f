"""Load and validate the hand-written corpus data under ``companion/generator/data/corpus/``.

The data files (one intent per JSON line, described in that folder's README) are the corpus's
substance; ``corpus.py`` only composes them into timed conversations. Every rule a data file
must follow is checked here, so a bad line fails the build with its file and line number.

``python -m companion.generator.corpus_data [FILE ...]`` validates files and prints counts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast

__all__ = [
    "CORPUS_DIR",
    "FOLLOW_UPS",
    "TIMINGS",
    "CorpusDataError",
    "Intent",
    "companion_lines",
    "load_intents",
    "load_slots",
    "people",
]

CORPUS_DIR = Path(__file__).resolve().parent / "data" / "corpus"
LANGS = ("en", "ko")
REGISTERS = ("adult", "senior", "child")
TIMINGS = (
    "instant",
    "complaint",
    "back",
    "person_leaves",
    "companion_leaves",
    "companion_sleeps",
    "good_night",
    "bye",
    "abuse",
    "leave_alone",
    "busy_for",
    "busy_until",
    "wake_at",
    "follow_morning",
    "follow_after",
    "follow_event",
    "no_follow_up",
)
# Follow-ups: the conversation ends with the companion's own ``answer``; ``reply`` is what it
# writes next, after the person went quiet.
FOLLOW_UPS = ("follow_morning", "follow_after", "follow_event", "no_follow_up")
# Instant-type timings, whose reply may come as two consecutive messages (``bubbles``).
BUBBLE_TIMINGS = ("instant", "complaint", "back")
NEEDS_MINUTES = ("person_leaves", "companion_leaves", "follow_after", "follow_event")
NEEDS_ANNOUNCE = ("companion_leaves", "companion_sleeps")
SLOT_OF = {"busy_for": "{duration}", "busy_until": "{time}", "wake_at": "{time}", "follow_event": "{time}"}
SLOTS = ("{duration}", "{time}")


class CorpusDataError(ValueError):
    """A corpus data file breaks one of the README's rules; the message names file and line."""


@dataclass(frozen=True)
class Intent:
    """One situation: its lines, when the companion answers, and the answers by age group."""

    name: str
    lang: str
    timing: str
    person: tuple[str, ...]
    replies: dict[str, tuple[str, ...]]
    announce: tuple[str, ...] = ()
    minutes: tuple[int, int] | None = None
    hours: tuple[float, float] = (0.0, 24.0)
    source: str = field(default="", compare=False)
    answers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    bubbles: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def replies_for(self, age_group: str | None) -> tuple[str, ...]:
        """The reply lines of an age group's register (adult when the group has none)."""
        return self.replies.get(age_group or "adult") or self.replies["adult"]

    def answers_for(self, age_group: str | None) -> tuple[str, ...]:
        """A follow-up intent's immediate answers in an age group's register (adult fallback)."""
        return self.answers.get(age_group or "adult") or self.answers["adult"]

    def bubbles_for(self, age_group: str | None) -> tuple[tuple[str, str], ...]:
        """The two-message replies of an age group's register (adult fallback; empty: none)."""
        if not self.bubbles:
            return ()
        return self.bubbles.get(age_group or "adult") or self.bubbles["adult"]


def _lines(value: Any, where: str, key: str, *, slot: str | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise CorpusDataError(f"{where}: '{key}' must be a non-empty list of strings")
    lines = []
    for text in value:
        if not isinstance(text, str) or not text.strip():
            raise CorpusDataError(f"{where}: '{key}' holds an empty or non-string line")
        if text != text.strip() or "\n" in text or "[" in text or "]" in text:
            raise CorpusDataError(f"{where}: {key} line {text!r} has outer spaces, a newline or a bracket")
        if slot is not None and key == "person" and slot not in text:
            raise CorpusDataError(f"{where}: person line {text!r} lacks the slot {slot}")
        stray = [s for s in SLOTS if s in text and s != slot]
        if stray:
            raise CorpusDataError(f"{where}: {key} line {text!r} uses the slot {stray[0]} this timing lacks")
        lines.append(text)
    return tuple(lines)


def _registers(raw: Any, where: str, key: str, lang: str) -> dict[str, Any]:
    """An object keyed by register: ``adult`` required, ``senior`` required in Korean, no others."""
    if not isinstance(raw, dict) or "adult" not in raw:
        raise CorpusDataError(f"{where}: '{key}' must be an object with at least 'adult'")
    if lang == "ko" and "senior" not in raw:
        what = "replies" if key == "reply" else f"{key} lines"
        raise CorpusDataError(f"{where}: a Korean intent needs 'senior' {what} (존댓말)")
    unknown = set(raw) - set(REGISTERS)
    if unknown:
        raise CorpusDataError(f"{where}: unknown {key} register(s) {sorted(unknown)}")
    return raw


def _pairs(value: Any, where: str, key: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise CorpusDataError(f"{where}: '{key}' must be a non-empty list of pairs")
    pairs = []
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise CorpusDataError(f"{where}: {key} entry {pair!r} is not a pair of exactly 2 lines")
        first, second = _lines(pair, where, key)
        pairs.append((first, second))
    return tuple(pairs)


def _intent(row: Any, where: str) -> Intent:
    if not isinstance(row, dict):
        raise CorpusDataError(f"{where}: expected a JSON object")
    name, lang, timing = row.get("intent"), row.get("lang"), row.get("timing")
    if not isinstance(name, str) or not name:
        raise CorpusDataError(f"{where}: 'intent' must be a non-empty string")
    if lang not in LANGS:
        raise CorpusDataError(f"{where}: 'lang' must be one of {LANGS}")
    if timing not in TIMINGS:
        raise CorpusDataError(f"{where}: 'timing' {timing!r} is not one of {', '.join(TIMINGS)}")
    slot = SLOT_OF.get(timing)
    minutes = None
    if timing in NEEDS_MINUTES:
        raw = row.get("minutes")
        if not (isinstance(raw, list) and len(raw) == 2 and all(isinstance(m, int) for m in raw)):
            raise CorpusDataError(f"{where}: '{timing}' needs 'minutes': [low, high] (integers)")
        if not 10 <= raw[0] <= raw[1] <= 24 * 60:
            raise CorpusDataError(f"{where}: 'minutes' must satisfy 10 <= low <= high <= 1440")
        minutes = (raw[0], raw[1])
    elif "minutes" in row:
        raise CorpusDataError(f"{where}: '{timing}' takes no 'minutes'")
    hours = row.get("hours", [0, 24])
    if not (
        isinstance(hours, list) and len(hours) == 2 and all(isinstance(h, int | float) for h in hours)
    ) or not all(0 <= h <= 24 for h in hours):
        raise CorpusDataError(f"{where}: 'hours' must be [from, to] within 0..24")
    announce: tuple[str, ...] = ()
    if timing in NEEDS_ANNOUNCE:
        announce = _lines(row.get("announce"), where, "announce")
        person = _lines(row["person"], where, "person") if row.get("person") else ()
    else:
        person = _lines(row.get("person"), where, "person", slot=slot)
    if "reply" not in row:
        raise CorpusDataError(f"{where}: 'reply' must be an object with at least 'adult'")
    replies = {
        register: _lines(lines, where, f"reply.{register}", slot="{time}" if timing == "wake_at" else None)
        for register, lines in _registers(row["reply"], where, "reply", lang).items()
    }
    answers: dict[str, tuple[str, ...]] = {}
    if timing in FOLLOW_UPS:
        if "answer" not in row:
            raise CorpusDataError(f"{where}: a follow-up ('{timing}') needs 'answer' (its reply at once)")
        answers = {
            register: _lines(lines, where, f"answer.{register}")
            for register, lines in _registers(row["answer"], where, "answer", lang).items()
        }
    elif "answer" in row:
        raise CorpusDataError(f"{where}: 'answer' belongs to follow-up timings only, not '{timing}'")
    bubbles: dict[str, tuple[tuple[str, str], ...]] = {}
    if "bubbles" in row:
        if timing not in BUBBLE_TIMINGS:
            raise CorpusDataError(f"{where}: 'bubbles' belong to instant-type timings only, not '{timing}'")
        bubbles = {
            register: _pairs(pairs, where, f"bubbles.{register}")
            for register, pairs in _registers(row["bubbles"], where, "bubbles", lang).items()
        }
    return Intent(
        name=name,
        lang=lang,
        timing=timing,
        person=person,
        replies=replies,
        announce=announce,
        minutes=minutes,
        hours=(float(hours[0]), float(hours[1])),
        source=where,
        answers=answers,
        bubbles=bubbles,
    )


def load_intents(paths: Iterable[Path] | None = None) -> list[Intent]:
    """Every intent of the corpus files (default: all ``*.jsonl`` of :data:`CORPUS_DIR`, sorted)."""
    files = sorted(CORPUS_DIR.glob("*.jsonl")) if paths is None else [Path(p) for p in paths]
    intents: list[Intent] = []
    seen: dict[str, str] = {}
    for path in files:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path.name}:{number}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise CorpusDataError(f"{where}: not valid JSON ({error.msg})") from error
                intent = _intent(row, where)
                if intent.name in seen:
                    raise CorpusDataError(
                        f"{where}: intent {intent.name!r} already defined at {seen[intent.name]}"
                    )
                seen[intent.name] = where
                intents.append(intent)
    return intents


@cache
def people() -> dict[str, Any]:
    """``people.json``: companion names, personas, zones, the age-group mix, noise, send-offs."""
    return cast(dict[str, Any], json.loads((CORPUS_DIR / "people.json").read_text(encoding="utf-8")))


def load_slots(path: Path | None = None) -> dict[str, list[tuple[str, int]]]:
    """Duration phrases per language with their minutes: ``{"en": [("2 hours", 120), ...]}``."""
    raw = json.loads((path or CORPUS_DIR / "slots.json").read_text(encoding="utf-8"))
    return {lang: [(str(text), int(minutes)) for text, minutes in raw["durations"][lang]] for lang in LANGS}


def _summary(intents: Sequence[Intent]) -> str:
    person = {line for intent in intents for line in intent.person}
    companion = {line for intent in intents for line in companion_lines(intent)}
    by_timing: dict[str, int] = {}
    for intent in intents:
        by_timing[intent.timing] = by_timing.get(intent.timing, 0) + 1
    bubbled = [intent for intent in intents if intent.bubbles]
    pairs = sum(len(pairs) for intent in bubbled for pairs in intent.bubbles.values())
    return (
        f"{len(intents)} intents, {len(person)} distinct person lines, {len(companion)} distinct companion "
        f"lines; by timing: {json.dumps(by_timing, sort_keys=True)}; "
        f"{len(bubbled)} intents with bubbles ({pairs} pairs)"
    )


def companion_lines(intent: Intent) -> list[str]:
    """Every line the companion writes in an intent: announcements, answers, replies, bubbles."""
    lines = [*intent.announce]
    for group in (intent.answers, intent.replies):
        lines += [line for register in group.values() for line in register]
    lines += [line for pairs in intent.bubbles.values() for pair in pairs for line in pair]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)] or None
    try:
        intents = load_intents(paths)
    except (CorpusDataError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(_summary(intents))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
