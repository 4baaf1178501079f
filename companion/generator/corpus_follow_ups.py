"""Composing the follow-up conversations of the corpus: the transcript ends with the companion.

Split from ``corpus.py`` (which draws every conversation and calls :func:`follow_up` for the
four follow-up timings); the timing rules are in its docstring and in the corpus README. Also
home to :func:`clock_words`, how a person says a clock time, which both use.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from companion.generator.corpus_data import CorpusDataError, Intent, people


class _Library(Protocol):
    """The intents ``corpus._Library`` groups for drawing (the part used here)."""

    @property
    def decisive(self) -> Mapping[tuple[str, str], Sequence[Intent]]: ...
    @property
    def small_talk(self) -> Mapping[str, Sequence[Intent]]: ...


class _Writer(Protocol):
    """What composing a follow-up needs of ``corpus._Writer`` (one conversation being written)."""

    now: datetime

    @property
    def rng(self) -> random.Random: ...
    @property
    def library(self) -> _Library: ...
    @property
    def lang(self) -> str: ...
    @property
    def zone(self) -> ZoneInfo: ...
    @property
    def age_group(self) -> str | None: ...

    def mention(self, text: str) -> str: ...
    def say(self, role: str, text: str, gap: int = 0) -> None: ...
    def person_line(self, intent: Intent) -> str: ...
    def reply_of(self, intent: Intent) -> str: ...
    def answer_of(self, intent: Intent) -> str: ...
    def local(self) -> datetime: ...
    def next_local(self, hour: int, minute: int) -> datetime: ...
    def morning(self) -> datetime: ...
    def example(self, intent: Intent, reply_at: datetime, reply_text: str) -> dict[str, Any]: ...


__all__ = ["borrowed_intent", "clock_words", "follow_up", "send_off"]

_NO_FOLLOW_UP_DAYS = (2, 4)
_NO_FOLLOW_UP_MINUTES = (10 * 60, 21 * 60)  # local clock of the check-in, 10:00-21:00 inclusive
_EVENT_AHEAD = (60, 360)  # minutes from the person's line to the event, on the half hour
_ORDINARY_ENDING_SHARE = 0.7  # of no_follow_up conversations, ending on everyday chat instead
# Half the leaving-now and good-night follow-ups take their lines from the delayed answers' intents.
_BORROWED_FROM = {"follow_after": "person_leaves", "follow_morning": "good_night"}
_BORROWED_SHARE = 0.5


def clock_words(lang: str, hour: int, minute: int, rng: random.Random, *, daytime: bool) -> str:
    """How a person says a clock time: "7", "7am", "6:30", "3 pm", "7시", "6시 반", "오후 3시"."""
    twelve = hour % 12 or 12
    if lang == "en":
        base = f"{twelve}" if minute == 0 else f"{twelve}:{minute:02d}"
        if daytime or rng.random() < 0.5:
            return f"{base}{rng.choice(['', ' '])}{'pm' if hour >= 12 else 'am'}"
        return base
    words = f"{twelve}시" + ("" if minute == 0 else " 반" if minute == 30 else f" {minute}분")
    if daytime:
        return ("오후 " if hour >= 12 else "오전 ") + words
    return rng.choice(["", "", "아침 "]) + words


def borrowed_intent(w: _Writer, intent: Intent) -> Intent | None:
    """For ``_BORROWED_SHARE`` of ``follow_after`` / ``follow_morning`` conversations: an intent of
    the delayed answers whose lines say the same (leaving now, good night), or None.

    Their person lines are the corpus's widest phrasing of leaving and of saying good night, and
    their replies ("how was the food?", "good morning!") are what a follow-up says; the companion's
    instant answer is then a send-off of ``people.json``.
    """
    source = _BORROWED_FROM.get(intent.timing)
    pool = w.library.decisive.get((source, w.lang)) if source else None
    if not pool or w.rng.random() >= _BORROWED_SHARE:
        return None
    return w.rng.choice(pool)


def send_off(w: _Writer, kind: str) -> str:
    by_register = people()["send_offs"][kind][w.lang]
    return w.mention(w.rng.choice(by_register.get(w.age_group or "adult") or by_register["adult"]))


def follow_up(w: _Writer, intent: Intent, borrowed: Intent | None = None) -> dict[str, Any]:
    """The person's line, the companion's answer at once (the last turn), then its follow-up."""
    rng, timing = w.rng, intent.timing
    if borrowed is not None:
        line = w.person_line(borrowed)
        w.say("person", line, gap=rng.randint(0, 3))
        w.say(
            "companion",
            send_off(w, "night" if timing == "follow_morning" else "leave"),
            gap=rng.choice((0, 0, 1)),
        )
        reply_text = w.reply_of(borrowed)
        if timing == "follow_morning":
            at = w.morning()
        else:
            if borrowed.minutes is None:  # corpus_data requires minutes for person_leaves
                raise CorpusDataError(f"intent {borrowed.name!r} leaves without a minutes range")
            at = w.now + timedelta(minutes=rng.randint(*borrowed.minutes))
        example = w.example(intent, at, reply_text)
        example["borrowed"] = borrowed.name
        return example
    line = w.person_line(intent)
    w.now += timedelta(minutes=rng.randint(0, 3))
    event: datetime | None = None
    if timing == "follow_event":
        local = w.local()
        now = local.hour * 60 + local.minute
        first = -(-(now + _EVENT_AHEAD[0]) // 30) * 30  # the first half hour at least 1 h ahead
        start = rng.randrange(first, now + _EVENT_AHEAD[1] + 1, 30)
        hour, minute = divmod(start % 1440, 60)
        line = line.replace("{time}", clock_words(w.lang, hour, minute, rng, daytime=True))
        event = w.next_local(hour, minute)
    answer = w.answer_of(intent)
    chat = w.library.small_talk[w.lang]
    if timing == "no_follow_up" and chat and rng.random() < _ORDINARY_ENDING_SHARE:
        # Most conversations that stop have nothing pending: any exchange of everyday chat can be
        # the last one, so the model learns that only a reason (a night, an activity, an event)
        # brings a follow-up soon, not the particular closing lines of a few intents.
        ending = rng.choice(chat)
        line, answer = w.person_line(ending), w.reply_of(ending)
    else:
        ending = None
    w.say("person", line)
    w.say("companion", answer, gap=rng.choice((0, 0, 1)))
    reply_text = w.reply_of(intent)
    if timing == "no_follow_up":
        day = w.local().date() + timedelta(days=rng.randint(*_NO_FOLLOW_UP_DAYS))
        minute = rng.randint(*_NO_FOLLOW_UP_MINUTES)
        at = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=w.zone).astimezone(UTC)
        example = w.example(intent, at, reply_text)
        if ending is not None:
            example["ending"] = ending.name
        return example
    if timing == "follow_morning":
        return w.example(intent, w.morning(), reply_text)
    if intent.minutes is None:  # corpus_data requires minutes for follow_after and follow_event
        raise CorpusDataError(f"intent {intent.name!r} follows up without a minutes range")
    after = event if event is not None else w.now
    return w.example(intent, after + timedelta(minutes=rng.randint(*intent.minutes)), reply_text)
