"""The pretrained sentence encoder: offline, cached, and wired to the right tokens of a prompt."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from companion.generator import ReplyGenerator, render_prompt
from companion.generator.conditioning import ConditionedLM, SentenceConditioning, token_turn_texts
from companion.generator.sentence_vectors import SentenceVectors, shared_encoder, turn_texts
from tests.generator.conftest import toy_dialogue


def test_encoder_loads_and_encodes_with_the_network_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    vectors = SentenceVectors(shared_encoder()).encode(["잘자", "good night", "tell me a joke"])

    assert vectors.shape == (3, 512)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    # Cross-lingual paraphrases land closer than unrelated sentences.
    assert round(float(vectors[0] @ vectors[1]), 2) == 0.57
    assert float(vectors[0] @ vectors[1]) > float(vectors[1] @ vectors[2])


class CountingEncoder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([np.full(512, float(len(t)), dtype=np.float32) for t in texts])


def test_each_text_is_encoded_once() -> None:
    encoder = CountingEncoder()
    cache = SentenceVectors(encoder)

    first = cache.encode(["hi", "hello", "hi"])
    second = cache.encode(["hello", "new one"])

    assert encoder.calls == [["hi", "hello"], ["new one"]]
    assert (cache.hits, cache.misses) == (2, 3)
    assert first[0, 0] == 2.0 and first[2, 0] == 2.0 and second[0, 0] == 5.0


def test_cache_evicts_the_least_recently_used_text() -> None:
    encoder = CountingEncoder()
    cache = SentenceVectors(encoder, capacity=2)

    cache.encode(["a", "b"])
    cache.encode(["a"])  # "b" is now the oldest
    cache.encode(["c"])
    cache.encode(["a", "b"])

    assert encoder.calls == [["a", "b"], ["c"], ["b"]]


def test_turn_texts_and_token_owners_follow_the_prompt_lines(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    dialogue = toy_dialogue()
    prompt = render_prompt(dialogue)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    ids, owners = token_turn_texts(tokenizer, prompt)

    assert turn_texts(prompt) == ["hey luda", "hi! I was just about to go eat", "ok go eat!", None]
    assert len(ids) == len(owners)
    text_of_line: dict[str | None, list[Any]] = {}  # decode() is typed str | list[str]
    for token_id, owner in zip(ids, owners, strict=True):
        text_of_line.setdefault(owner, []).append(tokenizer.decode([token_id]))
    assert "".join(text_of_line["ok go eat!"]) == "[user] [23:50] ok go eat!"
    assert "".join(text_of_line[None]) == "\n\n\n[luda] ["  # newlines and the open reply line


def test_a_reply_encodes_only_the_new_message(tiny_model_dir: Path) -> None:
    encoder = CountingEncoder()
    generator = ReplyGenerator.load(tiny_model_dir, device="cpu")
    assert generator.conditioning is not None
    generator.vectors = SentenceVectors(encoder)

    generator.generate(toy_dialogue())
    generator.generate(toy_dialogue(text="what are you eating?"))

    assert encoder.calls == [
        ["hey luda", "hi! I was just about to go eat", "ok go eat!"],
        ["what are you eating?"],
    ]


def test_the_vectors_change_the_model_output() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    lm = LlamaForCausalLM(
        LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                    num_attention_heads=2, num_key_value_heads=2)
    ).eval()  # fmt: skip
    model = ConditionedLM(lm, SentenceConditioning(16)).eval()
    ids = torch.tensor([[3, 4, 5]])
    vectors = torch.zeros((1, 3, 512))

    plain = model(input_ids=ids).logits
    zero = model(input_ids=ids, token_vectors=vectors).logits
    vectors[0, 1] = 1.0
    moved = model(input_ids=ids, token_vectors=vectors).logits

    assert torch.equal(plain, zero)  # no bias: a token without a vector is unchanged
    assert torch.equal(moved[0, 0], plain[0, 0])  # causal: earlier tokens do not see it
    assert not torch.allclose(moved[0, 1], plain[0, 1])
