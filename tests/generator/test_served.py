"""A served model is sent what the local generator feeds its model, and read by the same parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from companion.generator import Dialogue, GenerationFailed, ReplyGenerator, Turn
from companion.generator.served import ServedPrompts

SEOUL = "Asia/Seoul"
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def long_dialogue(turns: int) -> Dialogue:
    return Dialogue(
        turns=tuple(
            Turn(
                role="person" if n % 2 == 0 else "companion",
                at=START + timedelta(minutes=n),
                text=f"message number {n} about lunch and the weather today",
            )
            for n in range(turns)
        ),
        time_zone=SEOUL,
    )


@pytest.fixture(scope="module")
def local(tiny_model_dir: Path) -> ReplyGenerator:
    return ReplyGenerator.load(tiny_model_dir, device="cpu")


@pytest.mark.parametrize("turns", [1, 3, 30])
def test_the_prompt_ids_are_the_local_generators_including_the_dropped_oldest_turns(
    local: ReplyGenerator, tiny_model_dir: Path, turns: int
) -> None:
    # given: the local generator's text-only prompt (it drops the oldest turns to fit its context)
    dialogue = long_dialogue(turns)
    local.conditioning = None  # the served model reads the text only
    expected = local._prompt_inputs(dialogue, "", 64)[0][0].tolist()
    # when
    request = ServedPrompts(tiny_model_dir).request(dialogue, max_new_tokens=64)
    # then: the same ids, and they leave room for the answer in the 192-token context
    assert list(request.prompt_ids or ()) == expected
    assert len(expected) + 64 <= 192
    assert request.prompt.endswith("\n[luda] [")
    assert request.forced == ""


def test_a_forced_time_ends_the_prompt_and_the_answer_is_read_at_that_time(tiny_model_dir: Path) -> None:
    # given: the previous turn at 21:00 in Seoul, the reply forced to 08:15 the next morning
    prompts = ServedPrompts(tiny_model_dir)
    dialogue = long_dialogue(1)
    forced_at = datetime(2026, 3, 2, 23, 15, tzinfo=UTC)
    # when
    request = prompts.request(dialogue, forced_at=forced_at)
    reply = prompts.reply(request, " good morning!")
    # then
    assert request.prompt.endswith("\n[luda] [08:15]")
    assert request.language.regex.startswith(" ")
    assert (reply.at, reply.text, reply.completion) == (
        forced_at.astimezone(reply.at.tzinfo),
        "good morning!",
        "08:15] good morning!",
    )


def test_an_answer_the_parser_refuses_is_a_generation_failure_with_its_reason(tiny_model_dir: Path) -> None:
    prompts = ServedPrompts(tiny_model_dir)
    request = prompts.request(long_dialogue(1), max_delay=timedelta(hours=1))
    with pytest.raises(GenerationFailed) as raised:
        prompts.reply(request, "23:30] too late")
    assert (raised.value.reason, raised.value.completion) == ("beyond_max_delay", "23:30] too late")
