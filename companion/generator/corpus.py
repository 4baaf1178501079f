"""The training corpus: timed bilingual conversations composed from the hand-written data files.

The lines themselves live in ``data/corpus/*.jsonl`` (one intent per line: what a person or the
companion writes in a situation, when the companion answers, and what it answers in each age
group's register; see that folder's README and ``corpus_data.py``). This module only places them
in time: a random day and clock within the intent's plausible hours, a zone of the language,
0-3 exchanges of small talk before the decisive turn, and the reply's time by the intent's timing
rule. The four follow-up timings end the transcript with the companion's own ``answer`` (0-1
minute after the person's line); their ``reply`` is the message it writes next, unprompted:

==================  ====================================================================
timing              reply
==================  ====================================================================
instant             the same minute (news, feelings, questions, plans for later, ...)
complaint           the same minute, often after an unanswered message
back                the same minute, after a long gap in the transcript
person_leaves       after the activity's ``minutes`` ("I'm going to eat now")
companion_leaves    the companion announced it leaves, the person acked: after ``minutes``
companion_sleeps    the companion went to bed: the next morning, 07:20-09:30
good_night          the next morning, 07:20-09:30
bye                 150-300 minutes later
abuse               150-330 minutes later
leave_alone         180-420 minutes later
busy_for            the stated duration + 3-8 minutes (``{duration}`` slot)
busy_until          the stated clock time + 3-8 minutes (``{time}`` slot)
wake_at             exactly the stated clock time (``{time}`` slot)
follow_morning      the person said good night, the companion answered: next morning
                    07:20-09:30 ("good morning!! did you sleep ok?"); half of them with a
                    ``good_night`` intent's lines and a send-off
follow_after        the person left for an activity, the companion answered: the
                    activity's ``minutes`` after that answer ("how was the food?"); half of
                    them say it with a ``person_leaves`` intent's lines, answered with a
                    send-off of ``people.json``
follow_event        an event at ``{time}`` (1-6 h ahead, on the half hour), the companion
                    wished luck: the event's clock time + ``minutes`` ("how did it go??")
no_follow_up        a natural close the companion closed, or (70%) any exchange of everyday
                    chat: 2-4 days later, 10:00-21:00
                    local ("hey stranger!"); the product reads beyond 24 h as no follow-up
==================  ====================================================================

An instant-type intent (instant, complaint, back) may carry ``bubbles``: pairs of messages that
make one reply. The composer uses a pair for about 40% of such replies (the reply's second
message is ``more``, in the same minute or one minute later), and small talk sometimes shows a
pair as two consecutive companion turns; a single message stays the norm.

A person's line is used as written or with light noise: lower case, a prefix ("omg", "헐"), a
suffix (" lol", " ㅋㅋ"), Korean without spaces, a swapped-letter typo. The held-out split is
compositional: a noisy variant of a line is held out when a hash of its final text says so, so
every variant is in exactly one split, validation never shows a sentence training saw, and the
lines and words behind it are known. Validation therefore measures the model on its own
templates; the hand-written dev set (``data/dev/``) measures generalization.

Everything is drawn from a seeded ``random.Random``: the same seed writes the same corpus.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from companion.generator.corpus_data import (
    CORPUS_DIR,
    FOLLOW_UPS,
    CorpusDataError,
    Intent,
    load_intents,
    load_slots,
    people,
)
from companion.generator.corpus_follow_ups import borrowed_intent, clock_words, follow_up

__all__ = ["SCENARIO_WEIGHTS", "CorpusConfig", "build_corpus", "corpus_sources", "write_corpus"]

Split = Literal["train", "val"]

# How often each timing opens a conversation: about 36% instant, as in real chat, and 18% follow-ups
# (no follow-up the most common of them: most conversations that stop have nothing pending).
SCENARIO_WEIGHTS = {
    "instant": 36,
    "complaint": 5,
    "back": 4,
    "person_leaves": 13,
    "companion_leaves": 10,
    "companion_sleeps": 3,
    "good_night": 7,
    "bye": 4,
    "abuse": 5,
    "leave_alone": 3,
    "busy_for": 4,
    "busy_until": 3,
    "wake_at": 4,
    # Follow-ups (about 15% of all examples; the weights above keep their proportions).
    "follow_morning": 4,
    "follow_after": 5,
    "follow_event": 4,
    "no_follow_up": 10,
}
_BUBBLE_SHARE = 0.4  # of the replies of an intent with bubbles
_SMALL_TALK_BUBBLE_SHARE = 0.3  # of the small-talk answers whose intent has bubbles
_FIXED_DELAYS = {"bye": (150, 300), "abuse": (150, 330), "leave_alone": (180, 420)}
_MORNING = (7 * 60 + 20, 9 * 60 + 30)
_COMPANION_NAME_MARKS = ("luda", "루다")


@dataclass(frozen=True)
class CorpusConfig:
    """How many examples of each split to write, and the seed that makes them reproducible."""

    n_train: int = 6000
    n_val: int = 400
    seed: int = 0


def corpus_sources() -> list[Path]:
    """The data files a corpus is built from (their contents decide the corpus)."""
    return [*sorted(CORPUS_DIR.glob("*.jsonl")), CORPUS_DIR / "slots.json", CORPUS_DIR / "people.json"]


def held_out(text: str) -> bool:
    """Whether a person's sentence belongs to the validation split (a stable hash of its text)."""
    return hashlib.sha256(text.encode("utf-8")).digest()[0] % 4 == 3


def _typo(text: str) -> str:
    """Swap two adjacent letters inside the longest word (a plausible slip of the thumb).

    A slot ("{time}") is not a word: a typo there would leave the slot unfilled ("{itme}").
    """
    words = text.split(" ")
    candidates = [i for i, word in enumerate(words) if "{" not in word and "}" not in word]
    if not candidates:
        return text
    longest = max(candidates, key=lambda i: len(words[i]))
    word = words[longest]
    if len(word) < 4 or not word[1:3].isalpha():
        return text
    words[longest] = word[0] + word[2] + word[1] + word[3:]
    return " ".join(words)


def variants(text: str, lang: str) -> list[str]:
    """The line as written and its noisy variants, distinct, in a fixed order."""
    noise = people()["noise"][lang]
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    prefix = noise["prefixes"][digest[1] % len(noise["prefixes"])]
    suffix = noise["suffixes"][digest[2] % len(noise["suffixes"])]
    other_suffix = noise["suffixes"][(digest[2] + 3) % len(noise["suffixes"])]
    bare = text.rstrip("!?.~ ")
    options = [
        text,
        text.lower() if lang == "en" else bare,
        f"{prefix} {text}",
        f"{bare or text}{suffix}",
        f"{prefix} {bare or text}{other_suffix}",
        text.replace(" ", "") if lang == "ko" else _typo(text),
        text[:1].upper() + text[1:] if lang == "en" else f"{bare or text}{other_suffix}",
    ]
    return [v for v in dict.fromkeys(o.strip() for o in options) if v]


def _split_lines(lines: Sequence[str], lang: str, split: Split) -> list[str]:
    wanted = split == "val"
    return [v for line in lines for v in variants(line, lang) if held_out(v) == wanted]


class _Library:
    """The intents grouped for drawing, with each intent's person lines of one split."""

    def __init__(self, intents: Sequence[Intent], split: Split) -> None:
        self.by_timing: dict[tuple[str, str], list[Intent]] = {}
        self.lines: dict[str, list[str]] = {}
        self.announce: dict[str, list[str]] = {}
        for intent in intents:
            self.lines[intent.name] = _split_lines(intent.person, intent.lang, split)
            wanted = split == "val"
            self.announce[intent.name] = [a for a in intent.announce if held_out(a) == wanted] or list(
                intent.announce
            )
            if intent.person and not self.lines[intent.name]:
                continue  # every variant of this intent's lines fell in the other split
            self.by_timing.setdefault((intent.timing, intent.lang), []).append(intent)
        self.small_talk = {
            lang: [i for i in self.by_timing.get(("instant", lang), []) if not i.name.startswith("acks")]
            for lang in ("en", "ko")
        }
        self.decisive = {
            key: [i for i in intents if not i.name.startswith("acks")]
            for key, intents in self.by_timing.items()
        }
        self.acks = {
            lang: [i for i in self.by_timing.get(("instant", lang), []) if i.name.startswith("acks")]
            for lang in ("en", "ko")
        }


class _Writer:
    """Builds one example; ``now`` is an aware UTC datetime that moves forward as turns are added."""

    def __init__(self, rng: random.Random, library: _Library, lang: str) -> None:
        setting = people()
        self.rng = rng
        self.library = library
        self.lang = lang
        self.companion = rng.choice(setting["companion_names"])
        self.zone = ZoneInfo(rng.choice(setting["zones"][lang]))
        self.age_group: str | None = rng.choice(setting["age_groups"])
        self.turns: list[dict[str, str]] = []
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def start(self, hours: tuple[float, float]) -> None:
        """Place the conversation on a random day, starting between the two local hours (may wrap)."""
        low, high = hours
        day = date(2025, 1, 1) + timedelta(days=self.rng.randrange(730))
        span = (high - low) % 24 or 24
        minute = int((low + self.rng.random() * span) * 60) % 1440
        self.now = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.zone).astimezone(UTC)

    def mention(self, text: str) -> str:
        if any(mark in text.lower() for mark in _COMPANION_NAME_MARKS):
            self.companion = "Luda"
        return text

    def say(self, role: str, text: str, gap: int = 0) -> None:
        self.now += timedelta(minutes=gap)
        self.turns.append({"role": role, "at": self._wall(self.now), "text": self.mention(text)})

    def person_line(self, intent: Intent) -> str:
        return self.rng.choice(self.library.lines[intent.name])

    def reply_of(self, intent: Intent) -> str:
        return self.mention(self.rng.choice(intent.replies_for(self.age_group)))

    def answer_of(self, intent: Intent) -> str:
        return self.mention(self.rng.choice(intent.answers_for(self.age_group)))

    def bubbles_of(self, intent: Intent, share: float) -> tuple[str, str] | None:
        """A two-message reply of the intent, ``share`` of the time when it has any."""
        pairs = intent.bubbles_for(self.age_group)
        if not pairs or self.rng.random() >= share:
            return None
        first, second = self.rng.choice(pairs)
        return self.mention(first), self.mention(second)

    def small_talk(self, most: int) -> None:
        pool = self.library.small_talk[self.lang]
        for _ in range(self.rng.randint(0, most) if pool else 0):
            intent = self.rng.choice(pool)
            self.say("person", self.person_line(intent), gap=self.rng.randint(0, 3))
            pair = self.bubbles_of(intent, _SMALL_TALK_BUBBLE_SHARE)
            if pair is None:
                self.say("companion", self.reply_of(intent), gap=self.rng.choice((0, 0, 0, 1)))
            else:
                self.say("companion", pair[0], gap=self.rng.choice((0, 0, 0, 1)))
                self.say("companion", pair[1], gap=_second_bubble_gap(self.rng))

    def _wall(self, instant: datetime) -> str:
        return instant.astimezone(self.zone).replace(tzinfo=None).isoformat(timespec="minutes")

    def local(self) -> datetime:
        return self.now.astimezone(self.zone)

    def next_local(self, hour: int, minute: int) -> datetime:
        """The first local wall-clock hour:minute after now, as a UTC instant."""
        local = self.local()
        day = local.date() + timedelta(days=1 if (hour, minute) <= (local.hour, local.minute) else 0)
        return datetime.combine(day, time(hour, minute), tzinfo=self.zone).astimezone(UTC)

    def morning(self) -> datetime:
        minute = self.rng.randrange(*_MORNING)
        return self.next_local(minute // 60, minute % 60)

    def example(
        self, intent: Intent, reply_at: datetime, reply_text: str, more: str | None = None
    ) -> dict[str, Any]:
        reply: dict[str, Any] = {"at": self._wall(reply_at), "text": reply_text}
        if more is not None:
            second_at = reply_at + timedelta(minutes=_second_bubble_gap(self.rng))
            reply["more"] = [{"at": self._wall(second_at), "text": more}]
        example: dict[str, Any] = {
            "time_zone": str(self.zone),
            "companion": {"name": self.companion},
            "turns": self.turns,
            "reply": reply,
            "scenario": intent.timing,
            "intent": intent.name,
        }
        if self.rng.random() < 0.4:
            example["companion"]["persona"] = self.rng.choice(people()["personas"][self.lang])
        if self.age_group:
            example["person"] = {"age_group": self.age_group}
        return example


def _second_bubble_gap(rng: random.Random) -> int:
    """Minutes between the two messages of a pair: the same minute 70% of the time, else one."""
    return 0 if rng.random() < 0.7 else 1


def _compose(w: _Writer, intent: Intent) -> dict[str, Any]:
    """One conversation ending in ``intent``'s decisive turn, with the reply its timing gives."""
    rng, timing = w.rng, intent.timing
    if timing in FOLLOW_UPS:
        borrowed = borrowed_intent(w, intent)
        w.start((borrowed or intent).hours)
        w.small_talk(2)
        return follow_up(w, intent, borrowed)
    w.start(intent.hours)
    w.small_talk(3 if timing == "instant" else 2)
    reply_text = w.reply_of(intent)
    if timing in ("companion_leaves", "companion_sleeps"):
        w.say("companion", rng.choice(w.library.announce[intent.name]), gap=rng.randint(0, 2))
        kind = "sleep" if timing == "companion_sleeps" else "leave"
        acks = [i for i in w.library.acks[w.lang] if f"_{kind}" in i.name] or w.library.acks[w.lang]
        if (intent.person and rng.random() < 0.6) or not acks:
            ack = w.person_line(intent)
        else:
            ack = w.person_line(rng.choice(acks))
        w.say("person", ack, gap=rng.randint(0, 2))
        if intent.minutes is None:
            return w.example(intent, w.morning(), reply_text)
        return w.example(intent, w.now + timedelta(minutes=rng.randint(*intent.minutes)), reply_text)
    line = w.person_line(intent)
    pair = w.bubbles_of(intent, _BUBBLE_SHARE)
    if pair is not None:
        reply_text, more = pair
    else:
        more = None
    if timing == "complaint" and w.library.small_talk[w.lang] and rng.random() < 0.5:
        unanswered = rng.choice(w.library.small_talk[w.lang])
        w.say("person", w.person_line(unanswered), gap=rng.randint(0, 3))
        w.say("person", line, gap=rng.randint(3, 40))
        return w.example(intent, w.now, reply_text, more)
    if timing == "back":
        w.say("person", line, gap=rng.randint(20, 240) if w.turns else 0)
        return w.example(intent, w.now, reply_text, more)
    if timing in ("busy_for", "busy_until", "wake_at"):
        return _slotted(w, intent, line, reply_text)
    w.say("person", line, gap=rng.randint(0, 3))
    if timing in ("instant", "complaint"):
        return w.example(intent, w.now, reply_text, more)
    if timing == "person_leaves":
        if intent.minutes is None:  # corpus_data requires minutes for this timing
            raise CorpusDataError(f"intent {intent.name!r} leaves without a minutes range")
        return w.example(intent, w.now + timedelta(minutes=rng.randint(*intent.minutes)), reply_text)
    if timing == "good_night":
        return w.example(intent, w.morning(), reply_text)
    low, high = _FIXED_DELAYS[timing]
    return w.example(intent, w.now + timedelta(minutes=rng.randint(low, high)), reply_text)


def _slotted(w: _Writer, intent: Intent, line: str, reply_text: str) -> dict[str, Any]:
    rng = w.rng
    w.now += timedelta(minutes=rng.randint(0, 3))
    if intent.timing == "busy_for":
        words, minutes = rng.choice(load_slots()[w.lang])
        w.say("person", line.replace("{duration}", words))
        return w.example(intent, w.now + timedelta(minutes=minutes + rng.randint(3, 8)), reply_text)
    local = w.local()
    if intent.timing == "busy_until":
        end = local.hour * 60 + local.minute + rng.randrange(90, 300)
        end = (end - end % 30) % 1440
        hour, minute = divmod(end, 60)
        w.say("person", line.replace("{time}", clock_words(w.lang, hour, minute, rng, daytime=True)))
        reply_at = w.next_local(hour, minute) + timedelta(minutes=rng.randint(3, 8))
        return w.example(intent, reply_at, reply_text)
    daytime = 9 <= local.hour < 19
    if daytime:
        wake = local.hour * 60 + rng.randrange(45, 180, 15)
        wake -= wake % 15
    else:
        wake = rng.randrange(5 * 60, 9 * 60 + 31, rng.choice((15, 15, 5)))
    hour, minute = divmod(wake % 1440, 60)
    w.say("person", line.replace("{time}", clock_words(w.lang, hour, minute, rng, daytime=daytime)))
    spoken = (
        f"{hour:02d}:{minute:02d}" if w.lang == "en" else clock_words("ko", hour, minute, rng, daytime=False)
    )
    return w.example(intent, w.next_local(hour, minute), reply_text.replace("{time}", spoken))


def build_corpus(
    config: CorpusConfig, intents: Sequence[Intent] | None = None
) -> dict[Split, list[dict[str, Any]]]:
    """The train and val examples (JSON-ready dicts), reproducible from ``config.seed``."""
    intents = list(intents) if intents is not None else load_intents()
    corpus: dict[Split, list[dict[str, Any]]] = {}
    split: Split
    for split, count, salt in (("train", config.n_train, 1), ("val", config.n_val, 2)):
        library = _Library(intents, split)
        rng = random.Random(config.seed * 1000 + salt)
        options = [
            (timing, lang, weight)
            for timing, weight in SCENARIO_WEIGHTS.items()
            for lang in ("en", "ko")
            if library.decisive.get((timing, lang))
        ]
        rows = []
        for _ in range(count):
            timing, lang, _weight = rng.choices(options, [o[2] for o in options])[0]
            intent = rng.choice(library.decisive[(timing, lang)])
            rows.append(_compose(_Writer(rng, library, lang), intent))
        corpus[split] = rows
    return corpus


def write_corpus(out_dir: str | Path, config: CorpusConfig) -> dict[Split, Path]:
    """Write ``train.jsonl`` and ``val.jsonl`` under ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[Split, Path] = {}
    for split, rows in build_corpus(config).items():
        path = out / f"{split}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        paths[split] = path
    return paths
