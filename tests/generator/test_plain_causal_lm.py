"""Any local causal LM keeps working through the text-only path: a GPT-2 with its own tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from companion.generator import ReplyGenerator, SamplingConfig, parse_completion
from tests.generator.conftest import toy_dialogue


@pytest.fixture(scope="module")
def gpt2_dir(corpus_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init GPT-2 and a GPT-2-style byte-level BPE (digits merge freely, no isolated brackets)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus_texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>")
    torch.manual_seed(3)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(fast), n_positions=512, n_embd=32, n_layer=1, n_head=2,
                   eos_token_id=fast.eos_token_id, bos_token_id=fast.eos_token_id)
    )  # fmt: skip
    out = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


@pytest.mark.parametrize("time_decoding", ["distribution", "greedy"])
def test_gpt2_directory_answers_with_a_valid_time(gpt2_dir: Path, time_decoding: str) -> None:
    generator = ReplyGenerator.load(gpt2_dir, device="cpu", time_decoding=time_decoding)  # type: ignore[arg-type]
    dialogue = toy_dialogue()

    reply = generator.generate(dialogue, sampling=SamplingConfig(max_new_tokens=24))

    assert generator.conditioning is None
    at, text = parse_completion(reply.completion, previous=dialogue.last_at, time_zone="Asia/Seoul")
    assert (at, text) == (reply.at, reply.text)
    assert "[" not in reply.text and "]" not in reply.text
