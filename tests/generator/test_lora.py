"""A seconds-long LoRA run whose adapter changes the tiny model's timing on a toy case."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from companion.generator import ReplyGenerator, SamplingConfig, render_training_example, train_lora
from tests.generator.conftest import SEOUL, toy_dialogue

TARGET = datetime(2026, 3, 3, 9, 15, tzinfo=SEOUL)  # "+1d"-free: 09:15 the next morning


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    example = render_training_example(toy_dialogue(), TARGET, "good morning!")
    return train_lora(
        [example] * 4,
        base_dir=tiny_model_dir,
        out_dir=tmp_path_factory.mktemp("lora") / "adapter",
        steps=100,
        learning_rate=2e-2,
        batch_size=4,
        seed=0,
    )


def test_adapter_changes_the_reply_time(tiny_model_dir: Path, adapter_dir: Path) -> None:
    greedy = SamplingConfig(max_new_tokens=24)
    dialogue = toy_dialogue()
    base = ReplyGenerator.load(tiny_model_dir, device="cpu")
    tuned = ReplyGenerator.load(tiny_model_dir, adapter_dir=adapter_dir, device="cpu")
    merged = ReplyGenerator.load(tiny_model_dir, adapter_dir=adapter_dir, device="cpu", merge=True)

    base_reply = base.generate(dialogue, sampling=greedy)
    tuned_reply = tuned.generate(dialogue, sampling=greedy)

    # The time is what the adapter must move: the likeliest TIME, digit by digit, becomes the target.
    for generator in (base, tuned):
        generator.time_decoding = "greedy"
    assert base.generate(dialogue, sampling=greedy).at != TARGET
    assert tuned.generate(dialogue, sampling=greedy).completion.startswith("09:15] ")
    # The reply time itself (the least expected log error over the whole distribution) moves too,
    # but not onto the target: a rank-8 adapter cannot make this 48-wide model confident (its
    # final norm caps the logits; the completion loss stops near 1.3 at any rate), so the hour
    # stays spread over the morning (09:15 is the peak, at 6%) and the reply hedges within it.
    assert tuned_reply.at != base_reply.at
    assert ReplyGenerator.load(tiny_model_dir, adapter_dir=adapter_dir).conditioning is not None
    assert merged.generate(dialogue, sampling=greedy).completion == tuned_reply.completion


def test_adapter_directory_and_model_card(adapter_dir: Path) -> None:
    info = json.loads((adapter_dir / "training.json").read_text())

    assert (adapter_dir / "adapter_config.json").is_file()
    assert (adapter_dir / "adapter_model.safetensors").is_file()
    # The tiny model is sentence-conditioned: its projection is tuned and saved with the adapter.
    assert info["sentence_conditioning"] is True
    assert (adapter_dir / "sentence_conditioning.safetensors").is_file()
    assert info["steps"] == 100
    assert info["data"]["rows"] == 4
    assert info["data"]["source"] == "in-memory rows"
    assert info["metrics"]["completion_loss_after"] < info["metrics"]["completion_loss_before"]
    card = (adapter_dir / "README.md").read_text()
    assert "steps: 100" in card
    assert "4 prompt/completion pairs" in card


def test_missing_base_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no base model at"):
        train_lora([], base_dir=tmp_path / "nothing", out_dir=tmp_path / "out")
