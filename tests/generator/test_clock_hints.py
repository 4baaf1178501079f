"""Clock hints: which input positions get the last turn's clock digits, in training and in decoding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from companion.generator import render_training_example
from companion.generator.clock_hints import HINT_ROWS, NO_HINT, hint_row, last_clock
from companion.generator.conditioning import ConditionedLM, SentenceConditioning
from companion.generator.training import TextIndex, encode_example
from tests.generator.conftest import SEOUL, toy_dialogue

CLOCK = 7 * 60 + 25  # the last turn said [07:25]


@pytest.mark.parametrize(
    ("written", "row"),
    [
        ("", 0 * 10 + 0),  # the open "[" predicts H: hint "0"
        ("0", 1 * 10 + 7),  # then H: hint "7"
        ("07", NO_HINT),  # the colon needs none
        ("07:", 2 * 10 + 2),  # M: hint "2"
        ("07:2", 3 * 10 + 5),  # M: hint "5"
        ("07:25", NO_HINT),  # "]" next
        ("07:25]", NO_HINT),
        ("07:25] hi", NO_HINT),
        ("+", NO_HINT),  # a day count gets none...
        ("+1d", NO_HINT),
        ("+1d ", 0 * 10 + 0),  # ...its clock does, counted from the space
        ("+1d 0", 1 * 10 + 7),
        ("+1d 08:", 2 * 10 + 2),
        ("ab", NO_HINT),  # not a time at all
    ],
)
def test_hint_row_follows_the_clock_characters(written: str, row: int) -> None:
    assert hint_row(written, CLOCK) == row


def test_hint_rows_stay_inside_the_table() -> None:
    rows = {hint_row(w, clock) for clock in range(1440) for w in ("", "1", "12:", "12:3")}
    hours, minutes = {0, 1, 2}, set(range(20, 26))  # a clock's first digits are 0-2 and 0-5
    assert rows == hours | set(range(10, 20)) | minutes | set(range(30, 40))
    assert max(rows) == HINT_ROWS - 1


def test_last_clock_reads_the_last_turn_line() -> None:
    prompt = "# person: adult\n[user] [23:50] hi [12:00] there\n[luda] [+1d 07:25] morning\n[luda] ["
    assert last_clock(prompt) == CLOCK
    assert last_clock("[luda] [") is None


def test_training_examples_carry_hints_exactly_on_the_time(tiny_model_dir: Path) -> None:
    from datetime import datetime

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    dialogue = toy_dialogue()  # last turn at 23:50
    pair = render_training_example(dialogue, datetime(2026, 3, 3, 0, 35, tzinfo=SEOUL), "back!")
    assert pair["completion"] == "00:35] back!"

    example = encode_example(
        tokenizer,
        pair["prompt"],
        pair["completion"],
        max_length=192,
        text_index=TextIndex(),
        clock_hints=True,
    )

    assert example.hint_rows is not None
    assert len(example.hint_rows) == len(example.input_ids)
    tokens = [tokenizer.decode([i]) for i in example.input_ids]
    hinted = [(tokens[i], row) for i, row in enumerate(example.hint_rows) if row != NO_HINT]
    # "[" -> hint "2" for H; "0" -> "3"; ":" -> "5"; "3" -> "0" (23:50): each predicts the next digit.
    assert hinted == [("[", 2), ("0", 13), (":", 25), ("3", 30)]
    plain = encode_example(tokenizer, pair["prompt"], pair["completion"], max_length=192)
    assert plain.hint_rows is None
    assert plain.input_ids == example.input_ids


def test_a_truncated_prompt_keeps_its_hints_aligned(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    pair = render_training_example(toy_dialogue(), toy_dialogue().last_at, "ok")
    example = encode_example(tokenizer, pair["prompt"], pair["completion"], max_length=24, clock_hints=True)

    assert example.hint_rows is not None
    assert len(example.input_ids) == 24 == len(example.hint_rows)
    assert tokenizer.decode([example.input_ids[example.hint_rows.index(2)]]) == "["


def test_hints_are_saved_and_loaded_and_add_nothing_where_there_is_none(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    conditioning = SentenceConditioning(16, clock_hints=True)
    conditioning.save(tmp_path)
    loaded = SentenceConditioning.load(tmp_path)
    assert loaded.clock_hints is not None and conditioning.clock_hints is not None
    assert torch.equal(loaded.clock_hints.weight, conditioning.clock_hints.weight)
    assert SentenceConditioning.load(_saved_without_hints(tmp_path / "plain")).clock_hints is None

    lm = LlamaForCausalLM(
        LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                    num_attention_heads=2, num_key_value_heads=2)
    ).eval()  # fmt: skip
    model = ConditionedLM(lm, loaded).eval()
    ids = torch.tensor([[3, 4, 5]])
    plain = model(input_ids=ids).logits
    none = model(input_ids=ids, clock_hints=torch.tensor([[NO_HINT, NO_HINT, NO_HINT]])).logits
    hinted = model(input_ids=ids, clock_hints=torch.tensor([[NO_HINT, 7, NO_HINT]])).logits

    assert torch.equal(plain, none)
    assert torch.equal(hinted[0, 0], plain[0, 0])  # causal: the position before it is unchanged
    assert not torch.allclose(hinted[0, 1], plain[0, 1])


def _saved_without_hints(directory: Path) -> Path:
    SentenceConditioning(16).save(directory)
    return directory


def test_a_config_that_promises_hints_needs_them_stored(tmp_path: Path) -> None:
    import json

    SentenceConditioning(16).save(tmp_path)
    config = json.loads((tmp_path / "sentence_conditioning.json").read_text())
    (tmp_path / "sentence_conditioning.json").write_text(json.dumps({**config, "clock_hints": True}))

    with pytest.raises(ValueError, match="promises clock hints"):
        SentenceConditioning.load(tmp_path)
