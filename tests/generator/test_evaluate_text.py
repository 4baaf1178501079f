"""The text metrics of ``evaluate()`` (language, distinct replies, garble, register) and predictions.

The replies come from a fake generator: a stand-in for the model at the metric code's boundary,
so each metric is checked on hand-made texts with exact numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, timedelta
from typing import Any

import pytest

from companion.generator import evaluate as evaluate_module
from companion.generator.dialogue_json import dialogue_from_json
from companion.generator.evaluate import (
    GARBLE_REASONS,
    evaluate,
    garble_reasons,
    register_of,
    text_language,
    text_metrics,
)
from companion.generator.transcript import (
    Dialogue,
    GenerationFailed,
)
from companion.generator.types import GeneratedReply, SamplingConfig


class FakeGenerator:
    """Answers the rows in order: ``(delay_minutes, text)`` or a ``GenerationFailed`` to raise."""

    def __init__(self, replies: Sequence[tuple[float, str] | GenerationFailed]) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[Dialogue, dict[str, Any]]] = []

    def generate(
        self,
        dialogue: Dialogue,
        *,
        sampling: SamplingConfig | None = None,
        max_delay: timedelta = timedelta(days=7),
        constrained: bool = True,
    ) -> GeneratedReply:
        self.calls.append(
            (dialogue, {"sampling": sampling, "max_delay": max_delay, "constrained": constrained})
        )
        reply = self.replies[len(self.calls) - 1]
        if isinstance(reply, GenerationFailed):
            raise reply
        minutes, text = reply
        # In UTC (elapsed time, across DST changes): the predictions must show the local clock.
        at = dialogue.last_at.astimezone(UTC) + timedelta(minutes=minutes)
        return GeneratedReply(at=at, text=text, completion=f"xx:xx] {text}", constrained=constrained)


def row(
    person: str | Sequence[str],
    *,
    age_group: str | None = None,
    time_zone: str = "Asia/Seoul",
    last: str = "2026-03-02T23:40",
) -> dict[str, Any]:
    """One evaluation line whose person turns are ``person`` (the last at ``last``, local time)."""
    texts = [person] if isinstance(person, str) else list(person)
    obj: dict[str, Any] = {
        "time_zone": time_zone,
        "turns": [{"role": "person", "at": last, "text": text} for text in texts],
        "reply": {"at": last, "text": "gold"},
    }
    if age_group:
        obj["person"] = {"age_group": age_group}
    return obj


def text_scores(rows: list[dict[str, Any]], replies: Sequence[str]) -> dict[str, Any]:
    return evaluate(FakeGenerator([(0, text) for text in replies]), rows)["text"]


# --- language -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("안녕 뭐해?", "ko"),
        ("ㅋㅋㅋ", "ko"),  # jamo count as Hangul
        ("good night luda", "en"),
        ("ok 알겠어요", "ko"),  # 4 Hangul vs 2 Latin letters
        ("sounds good 응", "en"),  # 10 Latin vs 1 Hangul
        ("😂😂 ❤️", None),
        ("12:30!!", None),
        ("", None),
        ("ab 가나", None),  # a tie is neither
    ],
)
def test_text_language_is_the_script_of_most_letters(text: str, language: str | None) -> None:
    assert text_language(text) == language


def test_language_match_rate_counts_replies_in_the_persons_language() -> None:
    rows = [
        row("good night luda"),  # en person
        row("good night luda"),
        row("good night luda"),
        row(["안녕", "뭐해?"]),  # ko person
        row(["hey", "오늘 뭐 먹었어?"]),  # 2 Latin vs 8 Hangul letters together: ko
        row("😂"),  # a person without letters: any reply matches
    ]
    replies = ["night! sleep well", "잘 자~", "🌙", "나 밥 먹었어", "I ate pasta", "haha what"]

    scores = text_scores(rows, replies)

    assert scores["replies"] == 6
    assert scores["language_match_rate"] == 4 / 6
    assert {lang: group["replies"] for lang, group in scores["by_language"].items()} == {
        "en": 3,
        "ko": 2,
        "none": 1,
    }
    assert scores["by_language"]["en"]["language_match_rate"] == 2 / 3
    assert scores["by_language"]["ko"]["language_match_rate"] == 1 / 2
    assert scores["by_language"]["none"]["language_match_rate"] == 1.0


# --- distinct replies ---------------------------------------------------------------------------


def test_distinct_rate_is_distinct_texts_over_valid_replies() -> None:
    rows = [row("hi"), row("hello"), row("yo"), row("hey"), row("안녕")]
    generator = FakeGenerator(
        [
            (0, "hi!"),
            (0, "hi!"),
            GenerationFailed("no", reason="missing_bracket"),
            (0, "what's up"),
            (0, "hi!"),
        ]
    )

    result = evaluate(generator, rows)

    assert result["valid"] == 4
    assert result["text"]["distinct_rate"] == 2 / 4  # "hi!" x3 and "what's up"; the failure is left out
    assert result["text"]["by_language"]["en"]["distinct_rate"] == 2 / 3
    assert result["text"]["by_language"]["ko"]["distinct_rate"] == 1.0


# --- garbled or looping text --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reasons"),
    [
        ("13:10] back now", ["time_fragment"]),
        ("+1d 09:00] morning!", ["time_fragment"]),
        ("back in 5] minutes", ["time_fragment"]),
        ("[luda] hi", ["time_fragment"]),
        ("ok ok ok", ["repetition"]),
        ("No, no, NO!", ["repetition"]),  # case and punctuation do not hide a repeated word
        ("see you soon and see you soon", ["repetition"]),  # a word 3-gram twice
        ("nooooooo way", ["repetition"]),  # 7 of one character
        ("ㅋ" * 11, ["repetition"]),
        ("😂" * 11, ["repetition"]),
        ("안녕hello", ["script_mix"]),  # mid-word
        ("좋아 sounds good", ["script_mix"]),  # the person never mixed
        ("bad \ufffd decode", ["bad_char"]),
        ("ring\x07ring", ["bad_char"]),
        ("13:10] ok ok ok", ["time_fragment", "repetition"]),
        # Not garbled:
        ("sooooo good", []),  # 5 of one character
        ("ㅋ" * 10, []),
        ("ㅎㅎ 알겠어 ㅠㅠㅠㅠㅠㅠㅠ", []),
        ("😂" * 10, []),
        ("ok ok", []),
        ("see you soon, see you", []),
        ("back at 12:30 ok?", []),
        ("잘 자 ok", []),  # a 2-letter Latin word
        ("I'm back~ how was it?", []),
    ],
)
def test_garble_reasons(text: str, reasons: list[str]) -> None:
    assert garble_reasons(text, person_text="hey luda") == reasons


def test_a_hangul_english_mix_is_fine_when_the_person_mixes_too() -> None:
    assert garble_reasons("좋아 sounds good", person_text="오늘 movie 볼래?") == []
    assert garble_reasons("좋아 sounds good", person_text="오늘 영화 볼래?") == ["script_mix"]
    # Inside one word it is garbled whatever the person writes.
    assert garble_reasons("좋아sounds", person_text="오늘 movie 볼래?") == ["script_mix"]


def test_garbled_rate_and_the_count_per_reason() -> None:
    rows = [
        row("hey"),
        row("hey"),
        row("hey"),
        row("hey"),
        row("hey"),
        row(["오늘 영화관 갈래?", "movie 볼래?"]),
    ]
    replies = ["13:10] ok ok ok", "fine fine fine", "안녕hello", "all good", "x\ufffd", "좋아 sounds good"]

    scores = text_scores(rows, replies)

    assert scores["garbled_rate"] == 4 / 6
    assert scores["garbled_reasons"] == {
        "time_fragment": 1,
        "repetition": 2,
        "script_mix": 1,
        "bad_char": 1,
    }
    assert tuple(scores["garbled_reasons"]) == GARBLE_REASONS
    assert scores["by_language"]["en"]["garbled_rate"] == 4 / 5
    assert scores["by_language"]["ko"]["garbled_rate"] == 0.0


# --- register -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "register"),
    [
        ("네, 알겠어요 ㅎㅎ", "polite"),
        ("감사합니다!!", "polite"),
        ("어디 가세요?", "polite"),
        ("같이 갈까요~", "polite"),
        ("그렇죠 😊", "polite"),
        ("식사는 하셨습니까?", "polite"),
        ("어디 갑니까", "polite"),  # ㅂ니까
        ("조심히 다녀오십시오.", "polite"),
        ("좋아요. 근데 나 배고파 ㅋㅋ", "casual"),  # the last sentence decides
        ("배고프니까", "casual"),  # 니까 without ㅂ is 반말
        ("잘 자~", "casual"),
        ("나도 좋아 ㅋㅋㅋ", "casual"),
        ("ㅋㅋㅋ", None),
        ("😂!!", None),
    ],
)
def test_register_of_the_last_sentence(text: str, register: str | None) -> None:
    assert register_of(text) == register


def test_register_rate_over_korean_replies_to_seniors_and_adults() -> None:
    rows = [
        row("안녕하세요", age_group="senior"),
        row("안녕하세요", age_group="senior"),
        row("안녕하세요", age_group="senior"),
        row("안녕", age_group="adult"),
        row("안녕", age_group="adult"),
        row("안녕", age_group="child"),  # not scored: child
        row("안녕"),  # not scored: no age group
        row("hello", age_group="senior"),  # not scored: an English reply
        row("안녕하세요", age_group="senior"),  # not scored: nothing to judge
    ]
    replies = [
        "네, 알겠어요 ㅎㅎ",  # senior, polite: right
        "감사합니다!",  # right
        "잘 자~",  # senior, casual: wrong
        "나도 좋아 ㅋㅋ",  # adult, casual: right
        "네 그래요",  # adult, polite: wrong
        "뭐 해요?",
        "뭐 해요?",
        "Good evening to you.",
        "ㅎㅎㅎ",
    ]

    scores = text_scores(rows, replies)

    assert scores["register_examples"] == 5
    assert scores["register_rate"] == 3 / 5
    assert scores["by_language"]["ko"]["register_examples"] == 5
    assert scores["by_language"]["en"]["register_examples"] == 0
    assert scores["by_language"]["en"]["register_rate"] is None


def test_the_register_endings_are_data(monkeypatch: pytest.MonkeyPatch) -> None:
    checks = evaluate_module._checks()
    assert "요" in checks["register"]["polite_endings"]
    assert "니다" in checks["register"]["polite_endings"]

    no_yo = {**checks, "register": {**checks["register"], "polite_endings": ["니다"]}}
    monkeypatch.setattr(evaluate_module, "_checks", lambda: no_yo)

    assert register_of("알겠어요") == "casual"
    assert register_of("알겠습니다") == "polite"


# --- the whole result ---------------------------------------------------------------------------


def test_evaluate_keeps_its_keys_and_adds_text() -> None:
    result = evaluate(FakeGenerator([(0, "hi!")]), [row("hey")])

    assert set(result) == {
        "examples",
        "valid",
        "valid_format_rate",
        "parse_failures",
        "parse_failure_reasons",
        "raw",
        "clamped",
        "scenarios",
        "text",
    }
    assert result["text"] == {
        "replies": 1,
        "language_match_rate": 1.0,
        "distinct_rate": 1.0,
        "garbled_rate": 0.0,
        "garbled_reasons": dict.fromkeys(GARBLE_REASONS, 0),
        "register_rate": None,
        "register_examples": 0,
        "by_language": {
            "en": {
                "replies": 1,
                "language_match_rate": 1.0,
                "distinct_rate": 1.0,
                "garbled_rate": 0.0,
                "garbled_reasons": dict.fromkeys(GARBLE_REASONS, 0),
                "register_rate": None,
                "register_examples": 0,
            }
        },
    }


def test_text_metrics_of_nothing() -> None:
    assert text_metrics([]) == {
        "replies": 0,
        "language_match_rate": None,
        "distinct_rate": None,
        "garbled_rate": None,
        "garbled_reasons": dict.fromkeys(GARBLE_REASONS, 0),
        "register_rate": None,
        "register_examples": 0,
        "by_language": {},
    }


def test_predictions_one_record_per_row_in_order() -> None:
    rows = [
        row("good night", last="2026-03-02T23:40"),
        row("hey", last="2026-03-02T10:00"),
        row("are you there", time_zone="America/New_York", last="2026-03-08T01:30"),  # DST starts at 2:00
        row("bye", last="2026-03-02T12:00"),
        row("one", last="2026-03-02T12:00"),
        row("two", last="2026-03-02T12:00"),  # past the limit
    ]
    generator = FakeGenerator(
        [
            (8 * 60 + 30, "morning!"),  # the next local day
            GenerationFailed("does not parse", reason="missing_bracket"),
            (45, "yes, sorry"),  # 01:30 EST + 45 min = 03:15 EDT
            GenerationFailed("no token can continue"),  # no reason: "generation"
            (0, "안녕 😊"),
            (0, "never asked"),
        ]
    )
    predictions: list[dict[str, str]] = []

    result = evaluate(generator, rows, limit=5, predictions=predictions)

    assert predictions == [
        {"at": "2026-03-03T08:10", "text": "morning!"},
        {"error": "missing_bracket"},
        {"at": "2026-03-08T03:15", "text": "yes, sorry"},
        {"error": "generation"},
        {"at": "2026-03-02T12:00", "text": "안녕 😊"},
    ]
    assert (result["examples"], result["valid"], result["parse_failure_reasons"]) == (
        5,
        3,
        {"missing_bracket": 1, "generation": 1},
    )
    assert [dialogue for dialogue, _ in generator.calls] == [dialogue_from_json(r)[0] for r in rows[:5]]


def test_evaluate_passes_the_decoding_settings_through() -> None:
    generator = FakeGenerator([(0, "hi")])
    sampling = SamplingConfig(temperature=0.5, seed=1)

    evaluate(generator, [row("hey")], sampling=sampling, constrained=False, max_delay=timedelta(hours=1))

    assert generator.calls[0][1] == {
        "sampling": sampling,
        "max_delay": timedelta(hours=1),
        "constrained": False,
    }
