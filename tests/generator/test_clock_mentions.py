"""The clock a person states, read off the prompt, and the stated hints it gives the reply's time."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import torch

from companion.generator import render_training_example
from companion.generator.clock_hints import NO_HINT, hint_row, split_rows
from companion.generator.clock_mentions import ClockMention, clock_mentions, resolve, stated_clock
from companion.generator.conditioning import ConditionedLM, SentenceConditioning
from companion.generator.training import TextIndex, encode_example
from companion.generator.transcript import Dialogue, Turn
from tests.generator.conftest import SEOUL


def _clocks(text: str) -> list[tuple[int, int, bool]]:
    return [(m.minute // 60, m.minute % 60, m.ambiguous) for _, m in clock_mentions(text)]


@pytest.mark.parametrize(
    ("text", "clocks"),
    [
        ("at work until 5pm", [(17, 0, False)]),
        ("im working till 6:30, talk after", [(6, 30, True)]),
        ("shift ends at 7", [(7, 0, True)]),
        ("interview at 3 pm!!", [(15, 0, False)]),
        ("wake me at seven", [(7, 0, True)]),
        ("half past six works", [(6, 30, True)]),
        ("home by 10ish", [(10, 0, True)]),
        ("around 8 tonight", [(20, 0, False)]),
        ("lunch at noon", [(12, 0, False)]),
        ("5 am flight", [(5, 0, False)]),
        ("19:00 train", [(19, 0, False)]),
        ("busy from 9 to 5", [(9, 0, True), (5, 0, True)]),
        ("저녁 7시까지 바빠", [(19, 0, False)]),
        ("오후 3시에 면접", [(15, 0, False)]),
        ("7시 반에 깨워줘", [(7, 30, True)]),
        ("9시 10분 출발", [(9, 10, True)]),
        ("새벽 2시에 잠", [(2, 0, False)]),
        ("밤 11시", [(23, 0, False)]),
        ("밤 1시까지 게임", [(1, 0, False)]),
        ("일곱시에 만나", [(7, 0, True)]),
        ("열한시쯤 올게", [(11, 0, True)]),
        ("낮 2시", [(14, 0, False)]),
        ("자정까지", [(0, 0, False)]),
        # Durations and counts are not clocks.
        ("I have 3 cats", []),
        ("meeting for 2 hours", []),
        ("about 20 minutes", []),
        ("2시간 회의", []),
        ("한시도 못 쉼", []),
        ("seven days a week", []),
        ("90% done", []),
    ],
)
def test_clock_mentions_read_the_ways_people_write_a_clock(
    text: str, clocks: list[tuple[int, int, bool]]
) -> None:
    assert _clocks(text) == clocks


@pytest.mark.parametrize(
    ("minute", "said_at", "resolved"),
    [
        (7 * 60, 14 * 60, 19 * 60),  # "until 7" said at 14:00: this evening
        (7 * 60, 23 * 60, 7 * 60),  # "at 7" said at 23:00: tomorrow morning
        (7 * 60, 7 * 60, 7 * 60),  # said at 07:00 itself
        (0 * 60 + 30, 11 * 60, 12 * 60 + 30),  # "12시 반" before noon: 12:30
    ],
)
def test_a_clock_without_its_half_of_the_day_is_the_next_one(
    minute: int, said_at: int, resolved: int
) -> None:
    assert resolve(ClockMention(minute, True), said_at) == resolved
    assert resolve(ClockMention(minute, False), said_at) == minute


def _prompt(*turns: tuple[str, str, str]) -> str:
    lines = [f"[{'user' if role == 'person' else 'luda'}] [{clock}] {text}" for role, clock, text in turns]
    return "\n".join([*lines, "[luda] ["])


def test_stated_clock_reads_the_persons_last_run_of_turns() -> None:
    reply = _prompt(
        ("person", "14:02", "hey"), ("companion", "14:02", "hi"), ("person", "14:03", "busy until 7")
    )
    assert stated_clock(reply) == 19 * 60
    burst = _prompt(("person", "14:03", "busy until 7"), ("person", "14:03", "ttyl"))
    assert stated_clock(burst) == 19 * 60  # the most recent mention of the run, not only the last line
    follow_up = _prompt(("person", "14:02", "interview at 3"), ("companion", "14:03", "good luck!!"))
    assert stated_clock(follow_up) == 15 * 60
    earlier = _prompt(
        ("person", "09:00", "woke up at 6"),
        ("companion", "09:00", "early!"),
        ("person", "09:01", "going to eat"),
    )
    assert stated_clock(earlier) is None  # a clock said before the companion's last turn is not this run's
    assert stated_clock(_prompt(("person", "10:00", "i have 2 exams"))) is None
    assert stated_clock("[luda] [") is None


def test_hint_rows_pack_the_stated_clock_beside_the_last_one() -> None:
    last, stated = 7 * 60 + 25, 19 * 60 + 5  # [07:25], and the person said 7:05pm
    for written in ("", "0", "07:", "07:2"):
        packed = hint_row(written, last, stated)
        assert split_rows(packed) == (hint_row(written, last), hint_row(written, stated))
    assert split_rows(hint_row("", last, stated)) == (0, 1)  # H: "0" from 07:25, "1" from 19:05
    assert split_rows(hint_row("07:2", last, stated)) == (35, 35)  # both end in 5
    assert hint_row("07", last, stated) == NO_HINT  # the colon gets neither
    assert hint_row("", last, None) == hint_row("", last)  # no stated clock: the old rows exactly
    assert split_rows(NO_HINT) == (NO_HINT, NO_HINT)
    assert split_rows(torch.tensor([hint_row("0", last, stated), NO_HINT])).__repr__() == repr(
        (torch.tensor([17, NO_HINT]), torch.tensor([19, NO_HINT]))
    )


def test_training_examples_carry_the_stated_hint_on_the_time(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    dialogue = Dialogue(
        turns=[Turn("person", datetime(2026, 3, 3, 14, 3, tzinfo=SEOUL), "at work till 7 😩")],
        time_zone="Asia/Seoul",
        companion_name="Luda",
    )
    pair = render_training_example(dialogue, datetime(2026, 3, 3, 19, 6, tzinfo=SEOUL), "off work yet?")
    assert pair["completion"] == "19:06] off work yet?"

    example = encode_example(
        tokenizer, pair["prompt"], pair["completion"], max_length=192, text_index=TextIndex(),
        clock_hints=True, stated_hints=True,
    )  # fmt: skip

    assert example.hint_rows is not None
    tokens = [tokenizer.decode([i]) for i in example.input_ids]
    hinted = [(tokens[i], split_rows(row)) for i, row in enumerate(example.hint_rows) if row != NO_HINT]
    # Last clock 14:03, stated 19:00: "[" -> H "1"/"1"; "1" -> "4"/"9"; ":" -> "0"/"0"; "0" -> "3"/"0".
    assert hinted == [("[", (1, 1)), ("1", (14, 19)), (":", (20, 20)), ("0", (33, 30))]
    without = encode_example(
        tokenizer,
        pair["prompt"],
        pair["completion"],
        max_length=192,
        text_index=TextIndex(),
        clock_hints=True,
    )
    assert without.hint_rows is not None
    assert [split_rows(row)[1] for row in without.hint_rows] == [NO_HINT] * len(without.hint_rows)


def test_stated_hints_are_saved_loaded_and_move_only_their_positions(tmp_path: Path) -> None:
    import json

    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    conditioning = SentenceConditioning(16, clock_hints=True, stated_hints=True)
    conditioning.save(tmp_path / "stated")
    loaded = SentenceConditioning.load(tmp_path / "stated")
    assert loaded.stated_hints is not None and conditioning.stated_hints is not None
    assert torch.equal(loaded.stated_hints.weight, conditioning.stated_hints.weight)
    SentenceConditioning(16, clock_hints=True).save(tmp_path / "clock")
    assert SentenceConditioning.load(tmp_path / "clock").stated_hints is None

    lm = LlamaForCausalLM(
        LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                    num_attention_heads=2, num_key_value_heads=2)
    ).eval()  # fmt: skip
    model = ConditionedLM(lm, loaded).eval()
    ids = torch.tensor([[3, 4, 5]])
    clock_only = model(
        input_ids=ids, clock_hints=torch.tensor([[NO_HINT, hint_row("0", 445), NO_HINT]])
    ).logits
    both = model(
        input_ids=ids, clock_hints=torch.tensor([[NO_HINT, hint_row("0", 445, 1145), NO_HINT]])
    ).logits
    assert torch.equal(both[0, 0], clock_only[0, 0])
    assert not torch.allclose(both[0, 1], clock_only[0, 1])  # the stated clock's "9" joins the "7"

    config = json.loads((tmp_path / "clock" / "sentence_conditioning.json").read_text())
    (tmp_path / "clock" / "sentence_conditioning.json").write_text(
        json.dumps({**config, "stated_hints": True})
    )
    with pytest.raises(ValueError, match="promises stated hints"):
        SentenceConditioning.load(tmp_path / "clock")
