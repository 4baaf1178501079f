"""The model's side of whole-distribution timing: exact clock probabilities and a valid, parsed reply."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from companion.generator import ReplyGenerator, SamplingConfig, clock_scoring, parse_completion
from companion.generator.clock_hints import NO_HINT, hint_row
from tests.generator.conftest import toy_dialogue


def _string_log_prob(
    generator: ReplyGenerator, prompt_ids: torch.Tensor, vectors: torch.Tensor, text: str, clock: int
) -> float:
    """log P(text | prompt) from one plain forward pass over prompt + text (no cache, no tree), the
    clock hints of ``clock`` on the open ``[`` and on the time's own tokens."""
    ids = generator._time_token_ids(text)[:-1]  # without the "]"
    full = torch.cat([prompt_ids, torch.tensor([ids])], dim=1)
    reply_line = torch.zeros((1, len(ids), vectors.shape[2]))  # the time's tokens carry no vector
    assert generator.conditioning is not None
    rows = [NO_HINT] * (prompt_ids.shape[1] - 1) + [hint_row(text[:i], clock) for i in range(len(ids) + 1)]
    hints = generator.conditioning.hints(torch.tensor([rows]))
    assert hints is not None  # the tiny preset reads clock hints
    added = generator.conditioning(torch.cat([vectors, reply_line], dim=1)) + hints
    logits = generator._forward(full, None, added).logits[0].float()
    start = prompt_ids.shape[1]
    log_probs = torch.log_softmax(logits[start - 1 : -1], dim=-1)
    return float(sum(log_probs[i, token] for i, token in enumerate(ids)))


@torch.no_grad()
def test_the_digit_tree_gives_each_clock_its_exact_probability(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clock_scoring, "TREE_EXPANDED_PREFIXES", 144)  # every prefix exact
    generator = ReplyGenerator.load(tiny_model_dir, device="cpu")
    digits = generator._digit_token_ids()
    assert digits is not None  # our tokenizer: one token per digit
    ids, vectors = generator._prompt_inputs(toy_dialogue(), "", 64)
    assert vectors is not None
    last = 23 * 60 + 50  # the toy dialogue's last turn
    output = generator._forward(ids, None, generator._prompt_added(ids, vectors, [], last))

    tree = generator._clock_log_probs(
        output.past_key_values, output.logits[0, -1].float(), digits, last, hinted=True
    )

    for clock in (0, 7 * 60 + 5, 23 * 60 + 50, 23 * 60 + 59):
        text = f"{clock // 60:02d}:{clock % 60:02d}"
        reference = _string_log_prob(generator, ids, vectors, text, last)
        assert float(tree[clock]) == pytest.approx(reference, abs=1e-4)
    assert float(torch.logsumexp(tree, 0)) <= 1e-6  # a distribution over clocks: at most all of the mass


def test_a_distribution_reply_parses_at_its_time(tiny_model_dir: Path) -> None:
    generator = ReplyGenerator.load(tiny_model_dir, device="cpu")
    dialogue = toy_dialogue()

    reply = generator.generate(dialogue, sampling=SamplingConfig(max_new_tokens=24))
    again = generator.generate(dialogue, sampling=SamplingConfig(max_new_tokens=24))

    at, text = parse_completion(reply.completion, previous=dialogue.last_at, time_zone="Asia/Seoul")
    assert (at, text) == (reply.at, reply.text)
    assert again == reply  # greedy: the same answer twice


@pytest.mark.parametrize("seed", range(6))
def test_an_untrained_model_still_gets_a_valid_time_from_the_distribution(
    tiny_model_dir: Path, seed: int
) -> None:
    from transformers import AutoTokenizer

    from tests.generator.conftest import random_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    model = random_model(len(tokenizer), seed=seed, eos_token_id=tokenizer.eos_token_id)
    generator = ReplyGenerator(model, tokenizer, device="cpu")
    dialogue = toy_dialogue()

    reply = generator.generate(
        dialogue, sampling=SamplingConfig(temperature=1.0, max_new_tokens=12, seed=seed)
    )

    assert generator._digit_token_ids() is not None  # the distribution path was taken
    assert parse_completion(reply.completion, previous=dialogue.last_at, time_zone="Asia/Seoul") == (
        reply.at,
        reply.text,
    )
