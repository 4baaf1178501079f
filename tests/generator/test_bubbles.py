"""Bubbles in the transcript grammar: a completion of several companion turns, rendered and parsed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from companion.generator import (
    Dialogue,
    InvalidCompletion,
    ReplyGenerator,
    TranscriptError,
    Turn,
    parse_bubbles,
    render_training_example,
    reply_bubbles_from_json,
)
from companion.generator.constraint import DecodeState, VocabularyIndex, time_window
from companion.generator.dialogue_json import dialogue_from_json
from companion.generator.evaluate import evaluate_follow_ups
from companion.generator.transcript import GenerationFailed
from companion.generator.types import GeneratedReply

SEOUL = ZoneInfo("Asia/Seoul")


def dialogue(*turns: tuple[str, datetime, str]) -> Dialogue:
    return Dialogue(
        turns=tuple(Turn(role=role, at=at, text=text) for role, at, text in turns),  # type: ignore[arg-type]
        time_zone="Asia/Seoul",
    )


NEWS = dialogue(("person", datetime(2026, 3, 3, 23, 59, tzinfo=SEOUL), "I GOT THE JOB"))


def test_a_two_bubble_completion_renders_each_time_against_the_bubble_before():
    first = datetime(2026, 3, 3, 23, 59, tzinfo=SEOUL)
    second = datetime(2026, 3, 4, 0, 0, tzinfo=SEOUL)
    pair = render_training_example(NEWS, first, "WAIT WHAT", [(second, "congrats!!!")])
    assert pair["completion"] == "23:59] WAIT WHAT\n[luda] [00:00] congrats!!!"
    assert parse_bubbles(
        pair["completion"],
        previous=NEWS.last_at,
        time_zone="Asia/Seoul",
        companion_name="Luda",
        max_bubbles=2,
    ) == ((first, "WAIT WHAT"), (second, "congrats!!!"))


def test_parsing_stops_at_max_bubbles_and_at_a_line_that_is_no_companion_turn():
    completion = "23:59] a\n[luda] [23:59] b\n[user] [23:59] c\n[luda] [23:59] d"
    kwargs = {"previous": NEWS.last_at, "time_zone": "Asia/Seoul", "companion_name": "Luda"}
    assert [text for _, text in parse_bubbles(completion, max_bubbles=5, **kwargs)] == ["a", "b"]
    assert [text for _, text in parse_bubbles(completion, max_bubbles=1, **kwargs)] == ["a"]
    # a further bubble that does not parse ends the reply; the first one must parse
    assert [text for _, text in parse_bubbles("23:59] a\n[luda] [99:99] b", max_bubbles=2, **kwargs)] == ["a"]
    with pytest.raises(InvalidCompletion):
        parse_bubbles("99:99] a\n[luda] [23:59] b", max_bubbles=2, **kwargs)
    with pytest.raises(ValueError, match="max_bubbles must be >= 1"):
        parse_bubbles("23:59] a", max_bubbles=0, **kwargs)


def test_a_bubble_earlier_than_the_one_before_it_cannot_be_rendered():
    first = datetime(2026, 3, 4, 0, 5, tzinfo=SEOUL)
    with pytest.raises(TranscriptError, match="bubble 1 is earlier than the turn before it"):
        render_training_example(NEWS, first, "a", [(first - timedelta(minutes=1), "b")])


@given(gaps=st.lists(st.integers(min_value=0, max_value=3 * 24 * 60), min_size=1, max_size=4))
def test_bubbles_round_trip_at_minute_precision(gaps):
    times, at = [], NEWS.last_at
    for gap in gaps:
        at = at + timedelta(minutes=gap)
        times.append(at)
    texts = [f"bubble {i}" for i in range(len(times))]
    pair = render_training_example(NEWS, times[0], texts[0], list(zip(times[1:], texts[1:], strict=True)))
    parsed = parse_bubbles(
        pair["completion"],
        previous=NEWS.last_at,
        time_zone="Asia/Seoul",
        companion_name="Luda",
        max_bubbles=len(times),
    )
    assert [(at.astimezone(SEOUL), text) for at, text in parsed] == list(zip(times, texts, strict=True))


def test_reply_more_is_read_from_a_json_line():
    row = {
        "turns": [{"role": "person", "at": "2026-03-03T23:59", "text": "hi"}],
        "time_zone": "Asia/Seoul",
        "reply": {"at": "2026-03-03T23:59", "text": "a", "more": [{"at": "2026-03-04T00:00", "text": "b"}]},
    }
    assert reply_bubbles_from_json(row, NEWS) == ((datetime(2026, 3, 4, 0, 0, tzinfo=SEOUL), "b"),)
    assert reply_bubbles_from_json({"reply": {"at": "x", "text": "a"}}, NEWS) == ()
    with pytest.raises(TranscriptError, match=r"reply.more\[0\] must be an object"):
        reply_bubbles_from_json({"reply": {"more": ["b"]}}, NEWS)


def test_a_line_break_may_end_the_text_only_when_another_bubble_is_allowed(foreign_tokenizer):
    index = VocabularyIndex(foreign_tokenizer, vocab_size=len(foreign_tokenizer), eos_ids={0})
    assert index.newline_id is not None
    window = time_window(NEWS.last_at, "Asia/Seoul", timedelta(days=1))
    for allowed in (True, False):
        state = DecodeState(index, window, prefix="23:59]", another_bubble=allowed)
        for token in foreign_tokenizer(" hey", add_special_tokens=False)["input_ids"]:
            state.advance(token)
        assert (state.in_text, state.has_text) == (True, True)
        mask = state.mask(remaining=10)
        assert mask is not None
        assert (mask[index.newline_id] == 0).item() is allowed
        assert (mask[0] == 0).item() is True  # EOS ends the reply either way


class ScriptedFollowUps:
    """Proposes the next companion turn this many minutes after the last one (None: fails)."""

    def __init__(self, minutes: list[float | None]) -> None:
        self.minutes = minutes

    def generate(self, dialogue: Dialogue, **_: object) -> GeneratedReply:
        minutes = self.minutes.pop(0)
        if minutes is None:
            raise GenerationFailed("no parse", reason="bad_format")
        at = dialogue.last_at + timedelta(minutes=minutes)
        return GeneratedReply(at=at, text="so??", completion="", constrained=True)


def follow_up_row(gold_minutes: int | None, scenario: str) -> dict:
    return {
        "scenario": scenario,
        "time_zone": "Asia/Seoul",
        "turns": [
            {"role": "person", "at": "2026-03-03T12:00", "text": "going to eat"},
            {"role": "companion", "at": "2026-03-03T12:00", "text": "enjoy!"},
        ],
        "reply": None
        if gold_minutes is None
        else {
            "at": f"2026-03-03T{12 + gold_minutes // 60:02d}:{gold_minutes % 60:02d}",
            "text": "how was it?",
        },
    }


def test_the_follow_up_decision_is_a_time_within_the_window():
    rows = [
        follow_up_row(60, "follow_after"),  # followed at 60: tp, exact
        follow_up_row(120, "follow_after"),  # followed at 5 min (a bubble, not a follow-up): fn
        follow_up_row(None, "no_follow_up"),  # +3 days: tn
        follow_up_row(None, "no_follow_up"),  # 30 min: fp
        follow_up_row(240, "follow_event"),  # fails to parse: fn
    ]
    predictions: list = []
    metrics = evaluate_follow_ups(
        ScriptedFollowUps([60, 5, 3 * 24 * 60, 30, None]), rows, predictions=predictions
    )
    assert (metrics["tp"], metrics["fp"], metrics["fn"], metrics["tn"]) == (1, 1, 2, 1)
    assert metrics["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert metrics["fpr"] == 0.5
    assert metrics["rmsle"] == 0.0
    assert metrics["parse_failures"] == 1
    assert predictions[4] == {"error": "bad_format"}
    assert predictions[0] == {"at": "2026-03-03T13:00", "text": "so??"}
    assert metrics["scenarios"]["no_follow_up"] == {"examples": 2, "followed_up": 1}
    with pytest.raises(ValueError, match="does not end with the companion's turn"):
        evaluate_follow_ups(
            ScriptedFollowUps([1]), [{"turns": [{"role": "person", "at": "2026-03-03T12:00", "text": "x"}]}]
        )


# The first test to ask for the default model builds it when its sources changed; conftest.py
# gives every test that asks for ``default_model_dir`` the time limit of a build.
@pytest.mark.slow
def test_the_default_model_writes_some_replies_in_two_bubbles_each_a_minute_apart_at_most(default_model_dir):
    # given: the default model (the one `make run` builds) and the dev set's instant conversations
    from companion.generator.model import BUBBLE_MAX_GAP  # imports torch: only in this test

    dev = Path(__file__).resolve().parents[2] / "companion/generator/data/dev/dev.jsonl"
    rows = [json.loads(line) for line in dev.read_text(encoding="utf-8").splitlines()]
    dialogues = [dialogue_from_json(row)[0] for row in rows if row["scenario"] == "instant"][:40]
    generator = ReplyGenerator.load(default_model_dir, device="cpu")
    two = 0
    for dialogue in dialogues:
        # when: up to two bubbles are allowed, and when one is
        reply = generator.generate(dialogue, max_bubbles=2)
        single = generator.generate(dialogue, max_bubbles=1)
        # then: the completion parses back into exactly the bubbles returned
        assert parse_bubbles(
            reply.completion,
            previous=dialogue.last_at,
            time_zone=dialogue.time_zone,
            companion_name=dialogue.companion_name,
            max_bubbles=2,
        ) == ((reply.at, reply.text), *reply.more)
        assert len(reply.more) <= 1 and single.more == ()
        # the time is decided before any text: the first bubble's time does not depend on it
        assert single.at == reply.at
        for at, text in reply.more:
            two += 1
            assert timedelta(0) <= at - reply.at <= BUBBLE_MAX_GAP
            assert text.strip() and "[" not in text and "\n" not in text
    # and the model does use bubbles, though most replies are one message
    assert 1 <= two <= len(dialogues) // 2
