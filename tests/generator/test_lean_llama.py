"""The lean forward computes exactly what transformers' Llama forward computes, cache included."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM

from companion.generator import ReplyGenerator, SamplingConfig
from companion.generator.lean_llama import LeanCache, LeanLlama, lean_supported
from tests.generator.conftest import random_model, toy_dialogue


def llama() -> LlamaForCausalLM:
    return random_model(300, seed=0, eos_token_id=2, layers=2)


@pytest.mark.parametrize("kv_heads", [2, 1])
def test_prompt_cached_steps_and_batched_copies_give_transformers_logits_exactly(kv_heads: int) -> None:
    # given: a random Llama (plain and grouped-query attention) and its lean forward
    model = random_model(300, seed=0, eos_token_id=2, layers=2, kv_heads=kv_heads)
    lean = LeanLlama(model)
    prompt = torch.randint(0, 300, (1, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # when: a prompt without a cache, as ids and as embeddings with something added
        theirs, ours = model(input_ids=prompt, use_cache=True), lean(input_ids=prompt)
        embeds = model.get_input_embeddings()(prompt) + 0.5
        assert torch.equal(model(inputs_embeds=embeds).logits, lean(inputs_embeds=embeds).logits)
        # then: the same logits to the last bit
        assert torch.equal(theirs.logits, ours.logits)
        their_cache, our_cache = copy.deepcopy(theirs.past_key_values), copy.deepcopy(ours.past_key_values)
        # when: 24 copies of the cache each fed three tokens, then 3 of those rows one token more
        their_cache.batch_repeat_interleave(24)
        our_cache.batch_repeat_interleave(24)
        hours = torch.randint(0, 300, (24, 3), generator=torch.Generator().manual_seed(2))
        assert torch.equal(
            model(input_ids=hours, past_key_values=their_cache, use_cache=True).logits,
            lean(input_ids=hours, past_key_values=our_cache).logits,
        )
        rows = torch.tensor([0, 7, 7])
        their_cache.batch_select_indices(rows)
        our_cache.batch_select_indices(rows)
        step = torch.tensor([[5], [6], [7]])
        assert torch.equal(
            model(input_ids=step, past_key_values=their_cache, use_cache=True).logits,
            lean(input_ids=step, past_key_values=our_cache).logits,
        )
    # and: the cache grew in place, as transformers' does (40 prompt + 3 + 1 positions)
    assert our_cache.get_seq_length() == 44
    assert [tuple(k.shape) for k, _ in our_cache.layers] == [(3, kv_heads, 44, 16)] * 2
    # and: the prompt's own cache was copied, never extended
    assert ours.past_key_values.get_seq_length() == 40


def test_only_a_plain_llama_is_served() -> None:
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=1, n_head=2))
    scaled = llama()
    scaled.config.rope_parameters = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    biased = llama()
    biased.config.attention_bias = True
    assert lean_supported(llama())
    assert [lean_supported(m) for m in (gpt2, scaled, biased)] == [False, False, False]
    with pytest.raises(ValueError, match="does not reproduce GPT2LMHeadModel"):
        LeanLlama(gpt2)


def test_the_generator_answers_exactly_as_through_transformers(tiny_model_dir: Path) -> None:
    # given: the tiny model, once with the lean forward and once forced onto transformers' own
    lean = ReplyGenerator.load(tiny_model_dir, device="cpu")
    plain = ReplyGenerator.load(tiny_model_dir, device="cpu")
    plain._lean_of = plain.model  # marks the lean forward as built, and leaves it None
    sampling = SamplingConfig(max_new_tokens=40)
    dialogue = toy_dialogue()
    # when: both answer the same conversation in both time decodings
    replies = []
    for generator in (lean, plain):
        generator.time_decoding = "distribution"
        first = generator.generate(dialogue, sampling=sampling)
        generator.time_decoding = "greedy"
        replies.append((first.completion, generator.generate(dialogue, sampling=sampling).completion))
    # then: the same completions, and the lean one really ran on LeanCache
    assert replies[0] == replies[1]
    assert isinstance(lean._lean, LeanLlama)
    assert plain._lean is None
    output = lean._forward(torch.tensor([[1, 2, 3]]), None)
    assert isinstance(output.past_key_values, LeanCache)
