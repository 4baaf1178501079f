"""Constrained decoding: every completion parses, with our tokenizer and a foreign one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer, LogitsProcessorList

from companion.generator import (
    GenerationFailed,
    InvalidCompletion,
    ReplyGenerator,
    SamplingConfig,
    parse_completion,
)
from companion.generator.constraint import (
    REJECT,
    TEXT,
    TIME,
    TimePrefixLogitsProcessor,
    VocabularyIndex,
    classify_prefix,
    time_window,
)
from tests.generator.conftest import SEOUL, random_model, toy_dialogue


@pytest.fixture(scope="module", params=["ours", "sentencepiece_style"])
def random_generator(
    request: pytest.FixtureRequest, tiny_model_dir: Path, foreign_tokenizer: Any
) -> ReplyGenerator:
    if request.param == "ours":
        tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    else:
        tokenizer = foreign_tokenizer
    model = random_model(len(tokenizer), seed=3, eos_token_id=tokenizer.eos_token_id)
    # These tests are about the automaton: the time is decoded digit by digit under it.
    return ReplyGenerator(model, tokenizer, device="cpu", time_decoding="greedy")


def test_the_two_tokenizers_really_differ(tiny_model_dir: Path, foreign_tokenizer: Any) -> None:
    ours = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    text = "[luda] [13:10] back"

    tokens = ours.convert_ids_to_tokens(ours(text)["input_ids"])
    assert tokens[:11] == ["[", "luda", "]", "Ġ", "[", "1", "3", ":", "1", "0", "]"]  # fmt: skip
    assert "".join(tokens[11:]) == "Ġback"
    foreign = foreign_tokenizer.convert_ids_to_tokens(foreign_tokenizer(text)["input_ids"])
    assert foreign[0] == "<s>"
    assert any(len(token.strip("▁")) > 1 and any(c.isdigit() for c in token) for token in foreign)


def test_untrained_model_always_writes_a_valid_reply(random_generator: ReplyGenerator) -> None:
    replies = []
    for seed in range(25):
        last = datetime(2026, 3, 2, 23, 30, tzinfo=SEOUL) + timedelta(minutes=37 * seed)
        dialogue = toy_dialogue(last)
        sampling = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=20, seed=seed)

        reply = random_generator.generate(dialogue, sampling=sampling)

        again = parse_completion(reply.completion, previous=dialogue.last_at, time_zone="Asia/Seoul")
        assert again == (reply.at, reply.text)
        assert last <= reply.at <= last + timedelta(days=7)
        assert reply.constrained is True
        replies.append(reply)
    # Sampling really explores the language: both plain and "+Nd" times come out.
    assert {r.completion.startswith("+") for r in replies} == {True, False}


def test_max_delay_is_respected_by_the_constraint(random_generator: ReplyGenerator) -> None:
    delays = []
    for seed in range(20):
        dialogue = toy_dialogue()
        reply = random_generator.generate(
            dialogue,
            sampling=SamplingConfig(temperature=1.0, max_new_tokens=20, seed=seed),
            max_delay=timedelta(minutes=90),
        )
        delays.append((reply.at - dialogue.last_at) / timedelta(minutes=1))
    assert max(delays) <= 90
    assert len(delays) == 20


def test_forced_time_is_kept_and_only_text_is_generated(random_generator: ReplyGenerator) -> None:
    dialogue = toy_dialogue()
    forced = datetime(2026, 3, 3, 7, 0, tzinfo=SEOUL)

    reply = random_generator.generate(
        dialogue, forced_at=forced, sampling=SamplingConfig(temperature=1.0, max_new_tokens=12, seed=1)
    )

    assert reply.at == forced
    assert reply.completion.startswith("07:00] ")
    assert reply.text == reply.completion.removeprefix("07:00] ").strip() != ""


def test_unconstrained_untrained_model_fails_loudly(random_generator: ReplyGenerator) -> None:
    with pytest.raises(GenerationFailed) as raised:
        random_generator.generate(
            toy_dialogue(), constrained=False, sampling=SamplingConfig(max_new_tokens=12)
        )

    assert isinstance(raised.value.__cause__, InvalidCompletion)
    assert raised.value.completion is not None


def test_logits_processor_works_with_model_generate(random_generator: ReplyGenerator) -> None:
    dialogue = toy_dialogue()
    tokenizer, model = random_generator.tokenizer, random_generator.model
    from companion.generator import render_prompt

    prompt = tokenizer(render_prompt(dialogue), return_tensors="pt")
    window = time_window(dialogue.last_at, "Asia/Seoul", timedelta(days=7))
    processor = TimePrefixLogitsProcessor(
        random_generator.index, window, prompt_length=prompt["input_ids"].shape[1], max_new_tokens=20
    )
    torch.manual_seed(0)
    output = model.generate(
        **prompt,
        logits_processor=LogitsProcessorList([processor]),
        do_sample=True,
        top_k=0,
        max_new_tokens=20,
        pad_token_id=tokenizer.eos_token_id,
        num_return_sequences=4,
    )

    for row in output:
        completion = random_generator.index.decode(row[prompt["input_ids"].shape[1] :].tolist())
        at, text = parse_completion(completion, previous=dialogue.last_at, time_zone="Asia/Seoul")
        assert dialogue.last_at <= at <= dialogue.last_at + timedelta(days=7)
        assert text


@pytest.mark.parametrize(
    ("prefix", "verdict"),
    [
        ("", TIME),
        ("2", TIME),
        ("24", REJECT),
        ("23:6", REJECT),
        ("23:59", TIME),
        ("23:59]", TIME),
        ("23:59] ", TEXT),
        ("23:59]x", REJECT),
        ("+", TIME),
        ("+0", REJECT),
        ("+7", TIME),
        ("+8", REJECT),
        ("+7d", TIME),
        ("+7d ", TIME),
        ("+7d12", REJECT),
        ("+7d 12:00] ", TEXT),
        ("+7d 12:01", REJECT),
        ("12 ", REJECT),
        ("a", REJECT),
    ],
)
def test_prefix_automaton(prefix: str, verdict: int) -> None:
    previous = datetime(2026, 3, 2, 12, 0, tzinfo=SEOUL)

    assert classify_prefix(prefix, time_window(previous, "Asia/Seoul", timedelta(days=7))) == verdict


@pytest.mark.parametrize(
    ("previous", "time_zone", "max_delay"),
    [
        (datetime(2026, 3, 2, 23, 50, tzinfo=SEOUL), "Asia/Seoul", timedelta(hours=3)),
        (datetime(2026, 3, 2, 12, 34, 50, tzinfo=SEOUL), "Asia/Seoul", timedelta(days=2, minutes=7)),
        (datetime(2026, 1, 31, 22, 0, tzinfo=UTC), "UTC", timedelta(0)),
    ],
)
def test_automaton_accepts_exactly_the_parseable_times(
    previous: datetime, time_zone: str, max_delay: timedelta
) -> None:
    window = time_window(previous, time_zone, max_delay)
    clocks = [f"{m // 60:02d}:{m % 60:02d}" for m in range(1440)]
    candidates = clocks + [f"+{n}d {c}" for n in range(1, max_delay.days + 3) for c in clocks]
    accepted, parseable = set(), set()
    for time in candidates:
        if classify_prefix(time + "] ", window) == TEXT:
            accepted.add(time)
        try:
            parse_completion(f"{time}] x", previous=previous, time_zone=time_zone, max_delay=max_delay)
        except InvalidCompletion:
            continue
        parseable.add(time)

    assert accepted == parseable
    assert len(accepted) == max_delay // timedelta(minutes=1) + 1


def test_masks_cached_across_windows_equal_masks_computed_afresh(random_generator: ReplyGenerator) -> None:
    """Masks whose prefix fixed a day below the last one are shared by every window: still exact."""
    shared = random_generator.index
    windows = [
        time_window(datetime(2026, 3, 2, hour, minute, tzinfo=SEOUL), "Asia/Seoul", delay)
        for hour, minute, delay in [
            (23, 50, timedelta(days=7)),
            (0, 0, timedelta(days=7)),
            (12, 34, timedelta(days=2, minutes=7)),
            (8, 5, timedelta(hours=3)),
        ]
    ]
    prefixes = [
        "",
        "0",
        "1",
        "12",
        "12:",
        "12:3",
        "23:5",
        "+",
        "+1",
        "+1d",
        "+1d ",
        "+2d 1",
        "+7d 2",
        "+7d 23:4",
    ]
    for window in windows:
        fresh = VocabularyIndex(shared.tokenizer, vocab_size=shared.vocab_size, eos_ids=set(shared.eos_ids))
        for prefix in prefixes:
            cached, computed = shared.time_mask(prefix, window), fresh.time_mask(prefix, window)
            assert (cached is None) == (computed is None), (prefix, window)
            assert cached is None or (computed is not None and torch.equal(cached, computed)), (
                prefix,
                window,
            )
