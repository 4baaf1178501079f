"""Fixtures for the generator tests: a foreign tokenizer and corpus texts.

The tiny model (``tiny_model_dir``) is the suite-wide build of tests/conftest.py. The foreign
tokenizer is a SentencePiece-style BPE (``▁`` for spaces, byte fallback, digits merged freely)
built with the ``tokenizers`` library, so the constraint is exercised on a vocabulary unlike
ours without downloading anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from companion.generator import Dialogue, Turn, render_training_example
from companion.generator.corpus import CorpusConfig, build_corpus
from companion.generator.dialogue_json import dialogue_from_json


@pytest.fixture(scope="session", autouse=True)
def _lean_torch() -> Iterator[None]:
    # Other test processes share the machine's two cores.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def corpus_texts() -> list[str]:
    rows = build_corpus(CorpusConfig(n_train=300, n_val=0, seed=5))["train"]
    texts = []
    for row in rows:
        dialogue, reply = dialogue_from_json(row)
        assert reply is not None
        example = render_training_example(dialogue, *reply)
        texts.append(example["prompt"] + example["completion"])
    return texts


@pytest.fixture(scope="session")
def foreign_tokenizer(corpus_texts: list[str]) -> PreTrainedTokenizerFast:
    """SentencePiece-style: Metaspace pre-tokenizer, BPE with merged digits, byte fallback, BOS added."""
    byte_tokens = [f"<0x{value:02X}>" for value in range(256)]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=2000, special_tokens=["<unk>", "<s>", "</s>", *byte_tokens], show_progress=False
    )
    tokenizer.train_from_iterator(corpus_texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def random_model(
    vocab_size: int, *, seed: int, eos_token_id: int, layers: int = 1, kv_heads: int = 2
) -> LlamaForCausalLM:
    """An untrained (random-init) tiny Llama: the constraint alone must make its output valid.

    Two attention heads of 16 dimensions; ``kv_heads=1`` makes it grouped-query attention."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=kv_heads,
        max_position_embeddings=512,
        eos_token_id=eos_token_id,
    )
    return LlamaForCausalLM(config).eval()


SEOUL = ZoneInfo("Asia/Seoul")


def toy_dialogue(last: datetime | None = None, text: str = "ok go eat!") -> Dialogue:
    last = last or datetime(2026, 3, 2, 23, 50, tzinfo=SEOUL)
    return Dialogue(
        turns=(
            Turn("person", (last - timedelta(minutes=1)).astimezone(UTC), "hey luda"),
            Turn("companion", last - timedelta(minutes=1), "hi! I was just about to go eat"),
            Turn("person", last, text),
        ),
        time_zone="Asia/Seoul",
    )
