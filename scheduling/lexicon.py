"""Bilingual phrase lists (English and Korean) kept in data files, and how text is matched against them.

Used by the guard rules (complaints, leave-alone requests, asked-for times) and by the safety
filter. A data file is plain UTF-8: one phrase per line, ``#`` starts a comment, ``[en]`` /
``[ko]`` headers name the language of what follows.

Matching is forgiving about the things people vary when they type, and strict about words:

* text and phrases are NFKC-normalised and case-folded; apostrophes are dropped (``aren't`` ==
  ``arent``) and every other non-word character becomes a space;
* a phrase without Hangul matches on word boundaries (``spic`` does not match ``spicy``);
* a phrase with Hangul matches as a substring with all spaces removed, because Korean attaches
  particles to words and people space it freely (``왜 자꾸 답장 안해`` == ``왜자꾸 답장안해?``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_APOSTROPHES = re.compile(r"['’‘`´]")
_NON_WORD = re.compile(r"[\W_]+")


class LexiconFileInvalid(ValueError):
    """A phrase data file that cannot be read as the format above."""


def normalize(text: str) -> str:
    """Case-folded words separated by single spaces."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", _APOSTROPHES.sub("", folded)).split())


def contains_hangul(text: str) -> bool:
    return _HANGUL.search(text) is not None


@dataclass(frozen=True)
class Phrase:
    language: str
    text: str
    normalized: str


@dataclass(frozen=True)
class PhraseList:
    """Phrases from one data file; :meth:`matches` returns the ones found in a text."""

    name: str
    phrases: tuple[Phrase, ...]

    def matches(self, text: str) -> list[str]:
        normalized = normalize(text)
        padded = f" {normalized} "
        compact = normalized.replace(" ", "")
        found: list[str] = []
        for phrase in self.phrases:
            if contains_hangul(phrase.normalized):
                hit = phrase.normalized.replace(" ", "") in compact
            else:
                hit = f" {phrase.normalized} " in padded
            if hit:
                found.append(phrase.text)
        return found


def parse_phrase_file(content: str, *, name: str) -> PhraseList:
    """Parse the data-file format; a phrase before any language header is an error."""
    language: str | None = None
    phrases: list[Phrase] = []
    for number, raw_line in enumerate(content.splitlines(), start=1):
        line = raw_line.split("#", 1)[0].strip()
        if not line:
            continue
        header = re.fullmatch(r"\[([a-z]{2})\]", line)
        if header:
            language = header.group(1)
            continue
        if language is None:
            raise LexiconFileInvalid(f"{name}:{number}: phrase {line!r} comes before a [en]/[ko] header")
        normalized = normalize(line)
        if not normalized:
            raise LexiconFileInvalid(f"{name}:{number}: phrase {line!r} has no letters")
        phrases.append(Phrase(language=language, text=line, normalized=normalized))
    if not phrases:
        raise LexiconFileInvalid(f"{name}: no phrases")
    return PhraseList(name=name, phrases=tuple(phrases))


@cache
def load_phrase_list(file_name: str) -> PhraseList:
    """A data file under ``scheduling/data/``, parsed once per process."""
    path = DATA_DIR / file_name
    return parse_phrase_file(path.read_text(encoding="utf-8"), name=file_name)


def complaint_phrases() -> PhraseList:
    return load_phrase_list("complaint_phrases.txt")


def unsafe_phrases() -> PhraseList:
    return load_phrase_list("safety_lexicon.txt")


def leave_alone_phrases() -> PhraseList:
    """The person asked not to be written to: the follow-up guard declines."""
    return load_phrase_list("leave_alone_phrases.txt")


def time_request_phrases() -> PhraseList:
    """The person asked to be written to at a time ("wake me at 7"): quiet hours do not hold."""
    return load_phrase_list("time_request_phrases.txt")
