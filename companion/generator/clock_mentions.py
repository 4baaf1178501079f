"""The clock time a person states ("busy till 7pm", "3시까지", "wake me at 6:30"), read off a prompt.

The reply's time often is that clock, or that clock plus a little: "at work until 5" is answered
just after 17:00, "wake me at 6:30" at 06:30, "interview at 3" followed up an hour or two after
15:00. A small model reading "5" and "until" as tokens has to learn the whole conversion (the
12-hour clock, "오후", "half past") from the corpus's few phrasings; the same conversion done here
and offered as a hint (``clock_hints.py``) leaves it the part that needs the conversation: whether
the stated clock matters for this reply, and how long after it to answer.

What counts as stated: the most recent clock written in the person's last run of turns (the
person lines since the companion last spoke; for a prompt that ends with the companion's turn, the
run before it). A bare number is a clock only after a cue word ("at 7", "till 5") or with a
marker ("7pm", "7:30", "10ish"); "3 cats" and "2시간" are not. A 12-hour clock without am / pm
resolves to the first occurrence at or after the minute it was written ("until 7" at 14:00 is
19:00, "at 7" at 23:00 is 07:00). The words are data (``data/clock_words.json``). Pure Python.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["CLOCK_WORDS_PATH", "ClockMention", "clock_mentions", "stated_clock"]

CLOCK_WORDS_PATH = Path(__file__).with_name("data") / "clock_words.json"
_TURN_LINE = re.compile(r"^\[([^\]\n]*)\] \[(?:\+[0-9]+d )?([0-9]{2}):([0-9]{2})\] (.*)$", re.MULTILINE)
_PERSON = "user"  # transcript.PERSON_LABEL (not imported: that module is heavier than this one)


class ClockMention(NamedTuple):
    """A clock found in a text: its minute of the day when the half of the day is known (an am /
    pm / 오후 marker, a 24-hour clock), else the minute on the 12-hour dial with ``ambiguous``."""

    minute: int
    ambiguous: bool


def _alternatives(words: list[str]) -> str:
    return "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))


def _number(words: dict[str, int], name: str) -> str:
    """Digits or a number word, as the groups ``{name}_digits`` / ``{name}_word``."""
    return rf"(?P<{name}_digits>\d{{1,2}})|(?P<{name}_word>{_alternatives(list(words))})"


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], dict[str, Any]]:
    words = json.loads(CLOCK_WORDS_PATH.read_text(encoding="utf-8"))
    en, ko = words["en"], words["ko"]
    past = _alternatives(en["half_past"] + en["quarter_past"])
    english = re.compile(
        rf"(?<![\w:.])(?:(?P<named>{_alternatives(list(en['named']))})"
        rf"|(?P<past>{past})\s+(?:{_number(en['numbers'], 'past')})"
        rf"|(?P<cue>(?:{_alternatives(en['cues'])}|(?<=\d )to)\s*)?(?:{_number(en['numbers'], 'hour')})"
        rf"(?::(?P<minutes>[0-5]\d))?(?P<oclock>\s*(?:{_alternatives(en['o_clock'])}))?"
        rf"(?:\s*(?:(?P<pm>{_alternatives(en['after_pm'])})|(?P<am>{_alternatives(en['after_am'])})))?)"
        rf"(?!\w|:\d|\s*%|\s+(?:{_alternatives(en['units'])})\b)",
        re.IGNORECASE,
    )
    parts = _alternatives(ko["pm"] + ko["am"] + ko["day"])
    korean = re.compile(
        rf"(?P<named>{_alternatives(list(ko['named']))})"
        rf"|(?:(?P<part>{parts})\s*)?(?:(?P<hour_digits>\d{{1,2}})|(?<![가-힣])(?P<hour_word>{_alternatives(list(ko['numbers']))}))"
        rf"\s*{re.escape(ko['hour_word'])}(?![{''.join(ko['not_after_hour_word'])}])"
        rf"(?:\s*(?:(?P<half>{re.escape(ko['half'])})|(?P<minutes>\d{{1,2}})\s*{re.escape(ko['minute_word'])}))?"
        rf"|(?<![\d:])(?P<h24>\d{{1,2}}):(?P<m24>[0-5]\d)(?!\d)"
    )
    return english, korean, words


def _on_the_dial(hour: int, minute: int) -> ClockMention | None:
    """A clock without am / pm: 0 and 13-23 say their half of the day, 1-12 do not."""
    if hour > 23 or minute > 59:
        return None
    if hour == 0 or hour > 12:
        return ClockMention(hour * 60 + minute, False)
    return ClockMention((hour % 12) * 60 + minute, True)


def _english(match: re.Match[str], words: dict[str, Any]) -> ClockMention | None:
    en = words["en"]
    groups = match.groupdict()
    if groups["named"]:
        return ClockMention(en["named"][groups["named"].lower()], False)
    if groups["past"]:
        digits, word = groups["past_digits"], groups["past_word"]
        hour = int(digits) if digits else en["numbers"][word.lower()]
        if not 1 <= hour <= 12:
            return None
        minute = 30 if groups["past"].lower() in en["half_past"] else 15
        return ClockMention((hour % 12) * 60 + minute, True)
    word, marker = groups["hour_word"], (groups["pm"] or groups["am"] or "").lower()
    hour = int(groups["hour_digits"]) if groups["hour_digits"] else en["numbers"][word.lower()]
    minute = int(groups["minutes"] or 0)
    if word:  # "seven" is a clock only when something says so: "at seven", "seven o'clock", "seven pm"
        if not (groups["cue"] or groups["oclock"] or marker in en["strict_markers"]):
            return None
    elif not (groups["cue"] or groups["minutes"] or groups["oclock"] or marker):
        return None  # "3 cats"
    if not marker:
        return _on_the_dial(hour, minute)
    if not 1 <= hour <= 12:
        return None
    return ClockMention((hour % 12 + (12 if groups["pm"] else 0)) * 60 + minute, False)


def _korean(match: re.Match[str], words: dict[str, Any]) -> ClockMention | None:
    ko = words["ko"]
    groups = match.groupdict()
    if groups["named"]:
        return ClockMention(ko["named"][groups["named"]], False)
    if groups["h24"]:
        return _on_the_dial(int(groups["h24"]), int(groups["m24"]))
    hour = int(groups["hour_digits"]) if groups["hour_digits"] else ko["numbers"][groups["hour_word"]]
    minute = 30 if groups["half"] else int(groups["minutes"] or 0)
    part = groups["part"]
    if hour == 24:
        hour = 0
    if part is None or hour == 0 or hour > 12:
        return _on_the_dial(hour, minute)
    if minute > 59:
        return None
    if part in ko["pm"]:
        # 밤 12시 is midnight and 밤 1-4시 the small hours; otherwise afternoon and evening.
        small_hours = part == "밤" and (hour == 12 or hour <= 4)
        return ClockMention((hour % 12 + (0 if small_hours else 12)) * 60 + minute, False)
    if part in ko["am"]:
        return ClockMention((hour % 12) * 60 + minute, False)
    return ClockMention((hour % 12 + (12 if hour <= 6 else 0)) * 60 + minute, False)  # 낮 1-6시


def clock_mentions(text: str) -> list[tuple[int, ClockMention]]:
    """Every clock ``text`` states, with the offset it starts at, in the order written."""
    english, korean, words = _patterns()
    found: dict[int, ClockMention] = {}
    for match in korean.finditer(text):
        mention = _korean(match, words)
        if mention is not None:
            found[match.start()] = mention
    for match in english.finditer(text):
        if any(match.start() <= start < match.end() for start in found):
            continue
        mention = _english(match, words)
        if mention is not None:
            found[match.start()] = mention
    return sorted(found.items())


def resolve(mention: ClockMention, said_at: int) -> int:
    """The minute of the day a mention means, said at minute ``said_at``: a 12-hour clock without
    its half of the day is whichever of its two readings comes first at or after ``said_at``."""
    if not mention.ambiguous:
        return mention.minute
    morning, evening = mention.minute % 720, mention.minute % 720 + 720
    return min((morning, evening), key=lambda clock: (clock - said_at) % 1440)


def stated_clock(prompt: str) -> int | None:
    """The clock (minute of the day) the person's last run of turns states most recently, or None.

    ``prompt`` is a rendered transcript (``transcript.render_prompt``); the run is the person's
    lines after the companion's last one, or, when the prompt ends with the companion's lines, the
    person's lines just before them."""
    lines = [
        (line.group(1), int(line.group(2)) * 60 + int(line.group(3)), line.group(4))
        for line in _TURN_LINE.finditer(prompt)
    ]
    while lines and lines[-1][0] != _PERSON:
        lines.pop()
    for label, said_at, text in reversed(lines):
        if label != _PERSON:
            return None
        mentions = clock_mentions(text)
        if mentions:
            return resolve(mentions[-1][1], said_at)
    return None
