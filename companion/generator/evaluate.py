"""TimelyChat-style metrics of a reply-time model on evaluation JSONL (issue 3).

Delay = reply time minus the last turn's time, in minutes; a reply is *delayed* when that is at
least one minute (the grammar's instant reply is the last turn's own minute). Metrics:

* ``valid_format_rate`` and ``parse_failures``: failures are counted separately and left out of
  every other metric, never counted as "instant".
* delay-vs-instant ``precision``, ``recall``, ``f1`` (delayed is the positive class) and the
  false-positive rate ``fpr`` (instant replies the model delayed);
* ``rmsle`` of minutes: ``sqrt(mean((log1p(pred) - log1p(gold))**2))``;
* ``bucket_accuracy`` over 0-5 min, 5-30 min, 30 min-2 h, 2-6 h, 6-12 h, 12 h+;
* the same under ``clamped``: delays shorter than the guard rules' 10 minutes become 0 on both
  sides before scoring;
* ``text``: what the valid replies say (:func:`text_metrics`): language match, distinct replies,
  garbled or looping text, and the Korean register the person's age group calls for.

The text checks' word lists and limits are data, in ``data/text_checks.json`` (loaded once).
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any, cast

from companion.generator.dialogue_json import dialogue_from_json
from companion.generator.transcript import (
    DEFAULT_MAX_DELAY,
    Dialogue,
    GenerationFailed,
    zone,
)
from companion.generator.types import SamplingConfig

__all__ = [
    "BUCKET_EDGES",
    "GARBLE_REASONS",
    "bucket",
    "delay_metrics",
    "evaluate",
    "evaluate_follow_ups",
    "garble_reasons",
    "register_of",
    "text_language",
    "text_metrics",
]

BUCKET_EDGES = (5, 30, 120, 360, 720)  # minutes; six buckets
CLAMP_MINUTES = 10


def bucket(minutes: float) -> int:
    """Index 0..5 of the bucket a delay falls in."""
    return sum(minutes >= edge for edge in BUCKET_EDGES)


def _minutes(at: datetime, previous: datetime) -> float:
    return (at.astimezone(UTC) - previous.astimezone(UTC)) / timedelta(minutes=1)


def delay_metrics(pairs: Sequence[tuple[float, float]], *, clamp: float = 0.0) -> dict[str, float | int]:
    """Scores of ``(gold_minutes, predicted_minutes)`` pairs; delays below ``clamp`` count as 0."""
    tp = fp = fn = tn = 0
    squared_log_error = 0.0
    buckets_right = 0
    for gold, predicted in pairs:
        gold = 0.0 if gold < clamp else gold
        predicted = 0.0 if predicted < clamp else predicted
        gold_delayed, predicted_delayed = gold >= 1, predicted >= 1
        tp += gold_delayed and predicted_delayed
        fp += predicted_delayed and not gold_delayed
        fn += gold_delayed and not predicted_delayed
        tn += not gold_delayed and not predicted_delayed
        squared_log_error += (math.log1p(predicted) - math.log1p(gold)) ** 2
        buckets_right += bucket(gold) == bucket(predicted)
    return {
        **_decision_rates(tp, fp, fn, tn),
        "rmsle": math.sqrt(squared_log_error / len(pairs)) if pairs else 0.0,
        "bucket_accuracy": buckets_right / len(pairs) if pairs else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def _decision_rates(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """Precision, recall, F1 and false-positive rate of a yes/no decision (0.0 where undefined)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
    }


def _prediction(reply: Any, dialogue: Dialogue) -> dict[str, str]:
    """The ``--predictions`` record of a valid reply: its local wall-clock time and its text."""
    local = reply.at.astimezone(zone(dialogue.time_zone))
    return {"at": local.strftime("%Y-%m-%dT%H:%M"), "text": reply.text}


TEXT_CHECKS_PATH = Path(__file__).with_name("data") / "text_checks.json"
GARBLE_REASONS = ("time_fragment", "repetition", "script_mix", "bad_char")

_HANGUL = "\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff"
_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"
_HANGUL_RE = re.compile(f"[{_HANGUL}]")
_LATIN_RE = re.compile(f"[{_LATIN}]")
# A leftover of the grammar's "TIME] " in the text, or any square bracket at all.
_TIME_FRAGMENT_RE = re.compile(r"^\s*\+?\d*d?\s*\d{1,2}:?\d{0,2}\]|\d\]|[\[\]]")
_LETTER_RUN_RE = re.compile(r"[^\W\d_]+")
_SYLLABLE_FIRST, _SYLLABLE_LAST, _FINAL_B = 0xAC00, 0xD7A3, 17  # ㅂ is jongseong index 17


@functools.cache
def _checks() -> dict[str, Any]:
    """The word lists and limits of the text checks (``data/text_checks.json``), read once."""
    return cast(dict[str, Any], json.loads(TEXT_CHECKS_PATH.read_text(encoding="utf-8")))


def text_language(text: str) -> str | None:
    """``"ko"`` when Hangul (syllables and jamo) outnumbers Latin letters, ``"en"`` when Latin does.

    ``None`` when the text has neither (emoji, digits, punctuation only) or both equally.
    """
    hangul, latin = len(_HANGUL_RE.findall(text)), len(_LATIN_RE.findall(text))
    if hangul > latin:
        return "ko"
    if latin > hangul:
        return "en"
    return None


def _mixes_scripts(text: str) -> bool:
    """Hangul together with a Latin word of at least ``min_latin_word`` letters."""
    length = int(_checks()["script_mix"]["min_latin_word"])
    return bool(_HANGUL_RE.search(text)) and re.search(f"[{_LATIN}]{{{length},}}", text) is not None


def _is_emoji(char: str) -> bool:
    return unicodedata.category(char) in ("So", "Sk")


def _loops(text: str) -> bool:
    limits = _checks()["repetition"]
    words = [w for w in (re.sub(r"^\W+|\W+$", "", t).casefold() for t in text.split()) if w]
    if any(len(list(run)) > limits["max_word_repeat"] for _, run in groupby(words)):
        return True
    trigrams = Counter(zip(words, words[1:], words[2:], strict=False))
    if any(count >= 2 for count in trigrams.values()):
        return True
    expressive = set(limits["expressive_chars"])
    for char, run in groupby(text):
        expressive_run = char in expressive or _is_emoji(char)
        allowed = limits["max_expressive_run"] if expressive_run else limits["max_char_run"]
        if len(list(run)) > allowed:
            return True
    return False


def garble_reasons(text: str, *, person_text: str = "") -> list[str]:
    """Why a reply reads as garbled or looping (empty when it does not), in ``GARBLE_REASONS`` order.

    * ``time_fragment``: a stray piece of the grammar's ``TIME]`` (``"13:10] hi"``, ``"5] ok"``) or
      any square bracket;
    * ``repetition``: a word 3+ times in a row, a word 3-gram that occurs twice, or a run of one
      character longer than 5 (emoji and ㅋ/ㅎ/ㅠ: longer than 10);
    * ``script_mix``: Hangul and Latin letters inside one word (``"안녕hello"``), or Hangul with a
      Latin word of 3+ letters when ``person_text`` (the person's turns) does not mix them too;
    * ``bad_char``: U+FFFD (a broken decode), a control character or a lone surrogate.
    """
    reasons = []
    if _TIME_FRAGMENT_RE.search(text):
        reasons.append("time_fragment")
    if _loops(text):
        reasons.append("repetition")
    mid_word = any(_HANGUL_RE.search(run) and _LATIN_RE.search(run) for run in _LETTER_RUN_RE.findall(text))
    if mid_word or (_mixes_scripts(text) and not _mixes_scripts(person_text)):
        reasons.append("script_mix")
    if any(char == "\ufffd" or unicodedata.category(char) in ("Cc", "Cs") for char in text):
        reasons.append("bad_char")
    return reasons


def _is_syllable(char: str) -> bool:
    return _SYLLABLE_FIRST <= ord(char) <= _SYLLABLE_LAST


def _ends_a_sentence(char: str) -> bool:
    """A Hangul syllable, a Latin letter or a digit (not jamo like ㅋ, not punctuation or emoji)."""
    return _is_syllable(char) or char.isdigit() or bool(_LATIN_RE.match(char))


def register_of(text: str) -> str | None:
    """``"polite"`` (존댓말) or ``"casual"`` (반말) by how a Korean text's last sentence ends.

    Trailing punctuation, spaces, emoji, ㅋㅋ/ㅎㅎ/ㅠㅠ and ``~`` are ignored (everything after the
    last Hangul syllable, Latin letter or digit). ``None`` when nothing is left to judge.
    """
    register = _checks()["register"]
    end = len(text)
    while end and not _ends_a_sentence(text[end - 1]):
        end -= 1
    core = text[:end]
    if not core:
        return None
    if any(core.endswith(ending) for ending in register["polite_endings"]):
        return "polite"
    for ending in register["polite_endings_after_b_final"]:
        before = core[: -len(ending)][-1:] if core.endswith(ending) else ""
        if before and _is_syllable(before) and (ord(before) - _SYLLABLE_FIRST) % 28 == _FINAL_B:
            return "polite"
    return "casual"


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


def _text_scores(items: Sequence[tuple[Dialogue, str]]) -> dict[str, Any]:
    expected_register = _checks()["register"]["scored_age_groups"]
    matches = garbled = register_examples = register_right = 0
    reasons = dict.fromkeys(GARBLE_REASONS, 0)
    for dialogue, text in items:
        person_text = " ".join(turn.text for turn in dialogue.turns if turn.role == "person")
        person_language, language = text_language(person_text), text_language(text)
        matches += language is None or person_language is None or language == person_language
        found = garble_reasons(text, person_text=person_text)
        garbled += bool(found)
        for reason in found:
            reasons[reason] += 1
        if language == "ko" and dialogue.age_group in expected_register:
            register = register_of(text)
            if register is not None:
                register_examples += 1
                register_right += register == expected_register[dialogue.age_group]
    return {
        "replies": len(items),
        "language_match_rate": _rate(matches, len(items)),
        "distinct_rate": _rate(len({text for _, text in items}), len(items)),
        "garbled_rate": _rate(garbled, len(items)),
        "garbled_reasons": reasons,
        "register_rate": _rate(register_right, register_examples),
        "register_examples": register_examples,
    }


def text_metrics(items: Sequence[tuple[Dialogue, str]]) -> dict[str, Any]:
    """Scores of the texts of ``(dialogue, reply_text)`` pairs, overall and per person language.

    * ``language_match_rate``: replies in the language of the person's turns together
      (:func:`text_language`); a reply without letters, or to a person without any, matches;
    * ``distinct_rate``: distinct reply texts / replies;
    * ``garbled_rate`` and ``garbled_reasons`` (a count per reason of :func:`garble_reasons`; one
      reply can have several);
    * ``register_rate`` over ``register_examples``: Korean replies to a ``senior`` (polite wanted)
      or an ``adult`` (casual wanted) whose register :func:`register_of` could judge.

    A rate with nothing to count is ``None``. ``by_language`` holds the same scores for the
    dialogues of each person language (``"ko"``, ``"en"``, ``"none"`` when the person's turns have
    no letters).
    """
    groups: dict[str, list[tuple[Dialogue, str]]] = defaultdict(list)
    for dialogue, text in items:
        person_text = " ".join(turn.text for turn in dialogue.turns if turn.role == "person")
        groups[text_language(person_text) or "none"].append((dialogue, text))
    scores = _text_scores(items)
    scores["by_language"] = {language: _text_scores(group) for language, group in sorted(groups.items())}
    return scores


def evaluate(
    generator: Any,
    rows: Iterable[Mapping[str, Any]],
    *,
    sampling: SamplingConfig | None = None,
    constrained: bool = True,
    max_delay: timedelta = DEFAULT_MAX_DELAY,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    predictions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Generate a reply for every row (a JSON line with a gold ``reply``) and score times and texts.

    ``generator`` is anything with ``ReplyGenerator.generate``'s signature. When ``predictions``
    is a list, one record per evaluated row is appended to it, in row order:
    ``{"at": "YYYY-MM-DDTHH:MM", "text": ...}`` (local wall clock in the dialogue's zone) for a
    valid reply, ``{"error": reason}`` (``GenerationFailed.reason`` or ``"generation"``) otherwise.
    The result's ``text`` key holds :func:`text_metrics` of the valid replies.
    """
    pairs: list[tuple[float, float]] = []
    failures: dict[str, int] = defaultdict(int)
    by_scenario: dict[str, list[tuple[float, float]]] = defaultdict(list)
    texts: list[tuple[Dialogue, str]] = []
    total = 0
    for row in rows:
        if limit is not None and total >= limit:
            break
        dialogue, gold = dialogue_from_json(row)
        if gold is None:
            raise ValueError(f"evaluation row {total} has no 'reply'")
        total += 1
        try:
            reply = generator.generate(
                dialogue, sampling=sampling, max_delay=max_delay, constrained=constrained
            )
        except GenerationFailed as error:
            reason = error.reason or "generation"
            failures[reason] += 1
            if predictions is not None:
                predictions.append({"error": reason})
            continue
        if predictions is not None:
            predictions.append(_prediction(reply, dialogue))
        pair = (_minutes(gold[0], dialogue.last_at), _minutes(reply.at, dialogue.last_at))
        pairs.append(pair)
        texts.append((dialogue, reply.text))
        by_scenario[str(row.get("scenario", "all"))].append(pair)
        if progress and total % 50 == 0:
            progress(f"evaluated {total}")
    scenarios = {
        name: {
            "examples": len(items),
            "bucket_accuracy": delay_metrics(items)["bucket_accuracy"],
            "delayed_rate": sum(p >= 1 for _, p in items) / len(items),
        }
        for name, items in sorted(by_scenario.items())
    }
    return {
        "examples": total,
        "valid": len(pairs),
        "valid_format_rate": len(pairs) / total if total else 0.0,
        "parse_failures": sum(failures.values()),
        "parse_failure_reasons": dict(failures),
        "raw": delay_metrics(pairs),
        "clamped": delay_metrics(pairs, clamp=CLAMP_MINUTES),
        "scenarios": scenarios,
        "text": text_metrics(texts),
    }


# The follow-up policy of the dev set (data/dev/README.md) and of the reply loop's defaults: a
# follow-up sooner than this is a bubble the reply did not write, one later than the horizon
# means nothing to follow up on soon.
FOLLOW_UP_MIN_GAP = timedelta(minutes=10)
FOLLOW_UP_HORIZON = timedelta(hours=24)


def evaluate_follow_ups(
    generator: Any,
    rows: Iterable[Mapping[str, Any]],
    *,
    sampling: SamplingConfig | None = None,
    max_delay: timedelta = DEFAULT_MAX_DELAY,
    min_gap: timedelta = FOLLOW_UP_MIN_GAP,
    horizon: timedelta = FOLLOW_UP_HORIZON,
    limit: int | None = None,
    predictions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Score the follow-up decision on rows whose dialogue ends with the companion's turn.

    A row's gold ``reply`` is the follow-up (``{at, text}``) or ``null`` when none is deserved; a
    gold reply later than the horizon (the corpus's check-in days later) also means none. The
    model proposes the next companion turn; it is a follow-up when its delay after the last turn
    lies within ``[min_gap, horizon]``. Returns the decision's precision, recall, F1 and
    false-positive rate, the RMSLE (minutes) of the follow-up time over the rows where both the
    gold and the model follow up (``rmsle``) and over every gold follow-up (``rmsle_all_gold``,
    with the model's proposed time whatever it is), and the same by scenario. A generation that
    fails counts as no follow-up (and is in ``parse_failures``).
    """
    tp = fp = fn = tn = failures = 0
    squared: list[float] = []
    squared_all: list[float] = []
    by_scenario: dict[str, dict[str, int]] = defaultdict(lambda: {"examples": 0, "followed_up": 0})
    total = 0
    for row in rows:
        if limit is not None and total >= limit:
            break
        dialogue, gold = dialogue_from_json(row)
        if dialogue.turns[-1].role != "companion":
            raise ValueError(f"follow-up row {total} does not end with the companion's turn")
        total += 1
        proposed: float | None = None
        try:
            reply = generator.generate(dialogue, sampling=sampling, max_delay=max_delay)
        except GenerationFailed as error:
            failures += 1
            if predictions is not None:
                predictions.append({"error": error.reason or "generation"})
        else:
            proposed = _minutes(reply.at, dialogue.last_at)
            if predictions is not None:
                predictions.append(_prediction(reply, dialogue))
        low, high = min_gap / timedelta(minutes=1), horizon / timedelta(minutes=1)
        follows = proposed is not None and low <= proposed <= high
        gold_minutes = _minutes(gold[0], dialogue.last_at) if gold is not None else None
        # A gold check-in days later (the corpus's "nothing to follow up on soon") is no follow-up.
        deserved = gold_minutes is not None and low <= gold_minutes <= high
        tp += deserved and follows
        fp += follows and not deserved
        fn += deserved and not follows
        tn += not deserved and not follows
        if deserved and gold_minutes is not None and proposed is not None:
            error_squared = (math.log1p(max(proposed, 0.0)) - math.log1p(gold_minutes)) ** 2
            squared_all.append(error_squared)
            if follows:
                squared.append(error_squared)
        scenario = by_scenario[str(row.get("scenario", "all"))]
        scenario["examples"] += 1
        scenario["followed_up"] += bool(follows)
    return {
        "examples": total,
        "parse_failures": failures,
        **_decision_rates(tp, fp, fn, tn),
        "rmsle": math.sqrt(sum(squared) / len(squared)) if squared else None,
        "rmsle_all_gold": math.sqrt(sum(squared_all) / len(squared_all)) if squared_all else None,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "scenarios": {name: dict(counts) for name, counts in sorted(by_scenario.items())},
    }
