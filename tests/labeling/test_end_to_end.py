"""End to end: planted chat logs -> mining -> labels -> export -> LoRA on the tiny model -> it waits.

The control is the same tiny base with an adapter trained, at the same budget, on the logs as they
were (the companion's instant replies after the same cuts). Only the labels differ, so the 90-minute
delay the labelled model produces on an unseen planted conversation comes from the labels.
(The tiny base alone, trained for seconds, writes one constant degenerate clock on every prompt;
it is reported below but is not a meaningful "instant" baseline.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import TypedDict

import pytest
import torch
from django.core.management import call_command

from chat.models import Message
from companion.generator import (
    ReplyGenerator,
    SamplingConfig,
    render_training_example,
    train_lora,
)
from companion.generator.model import TimeDecoding
from labeling.export import dialogue_until
from labeling.models import DelayTask
from labeling.services import label_review, label_save
from tests.factories import ConversationFactory, UserFactory
from tests.labeling.conftest import SEOUL_NOON, chat_log

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

PHRASES = [
    "나 진짜 가야해, 회의 있어",
    "I really have to go, meeting now",
    "stop replying, I'm busy",
    "나 진짜 가야해 ㅠㅠ",
    "leave me alone for a bit",
    "I have to go now, sorry",
    "그만 좀 답해 바빠",
    "제발 좀 씹어 일해야돼",
]


class LoraBudget(TypedDict):
    """The training budget both adapters share (keywords of ``train_lora``)."""

    steps: int
    learning_rate: float
    seed: int


LORA: LoraBudget = {"steps": 150, "learning_rate": 2e-2, "seed": 0}


@pytest.fixture
def one_thread() -> Iterator[None]:
    # Deterministic greedy outcomes, and the other test processes keep their share of the CPU.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def planted(companion, number: int, phrase: str, opener: str = "점심 뭐 먹었어?") -> list[Message]:
    """A person who must go at 12:32 Seoul time and a companion who answers instantly anyway."""
    conversation = ConversationFactory.create(person=UserFactory(username=f"p{number}"), companion=companion)
    start = SEOUL_NOON + timedelta(days=number)
    return chat_log(
        conversation,
        start,
        [
            (0, "person", opener),
            (1, "companion", "김밥! 너는?"),
            (2, "person", phrase),
            (2, "companion", "왜? 조금만 더 얘기하자"),
        ],
    )


def test_labels_teach_the_tiny_model_to_wait(
    companion, staff_user, reviewer, tmp_path: Path, one_thread, tiny_model_dir: Path
) -> None:
    # Given planted trigger conversations, and one more that nobody labels (the probe)
    for number, phrase in enumerate(PHRASES):
        planted(companion, number, phrase)
    probe_messages = planted(companion, 30, "I really have to go, my meeting starts", opener="오늘 어때?")
    mined = StringIO()
    call_command("mine_delay_candidates", stdout=mined)
    assert "  person_pushes_away: 9 hits, 9 new tasks" in mined.getvalue()

    # When annotators label 8 of them "90 minutes later" and a second person approves
    probe_task = DelayTask.objects.get(trigger_message=probe_messages[2])
    raw_rows = []
    for task in DelayTask.objects.exclude(pk=probe_task.pk).select_related("conversation__companion"):
        label = label_save(
            task=task,
            annotator=staff_user,
            action="submit",
            cut_after_id=task.suspected_message_id,
            delay_minutes=90,
            reply_text="회의 잘 끝났어? 고생했어!",
        )
        label_review(label=label, reviewer=reviewer, decision="approve")
        # The control data: the same cut, with the instant reply the logs hold
        logged = (
            Message.objects.filter(conversation=task.conversation, role="companion").order_by("id").last()
        )
        assert logged is not None, f"conversation {task.conversation_id} has no companion message"
        dialogue = dialogue_until(conversation=task.conversation, last_turn=task.suspected_message)
        raw_rows.append(render_training_example(dialogue, logged.created_at, logged.text))

    out = tmp_path / "delays.jsonl"
    call_command("export_delay_dataset", "--out", str(out), "--val-fraction", "0", stdout=StringIO())
    assert len(out.read_text().splitlines()) == 8

    # And the tiny model is LoRA-trained for a few seconds, on the labels and (control) on the raw logs
    base = tiny_model_dir  # the suite's tiny build (seed 0), never written to
    labelled = train_lora(out, base_dir=base, out_dir=tmp_path / "labelled", **LORA)
    control = train_lora(raw_rows, base_dir=base, out_dir=tmp_path / "control", **LORA)

    # Then, greedy on the unseen probe: the labelled model waits 90 minutes, the control does not
    probe = dialogue_until(conversation=probe_task.conversation, last_turn=probe_messages[2])
    greedy = SamplingConfig(temperature=0.0)
    # Digit by digit: a few seconds of LoRA leave the tiny model's time distribution too flat for
    # the whole-distribution decision (its mass spreads over all 1440 minutes), while its most
    # likely digits already say what the labels taught, which is what this test is about.
    digits: TimeDecoding = "greedy"
    waited = ReplyGenerator.load(base, adapter_dir=labelled, time_decoding=digits).generate(
        probe, sampling=greedy
    )
    instant = ReplyGenerator.load(base, adapter_dir=control, time_decoding=digits).generate(
        probe, sampling=greedy
    )
    untrained = ReplyGenerator.load(base, time_decoding=digits).generate(probe, sampling=greedy)
    last_clock = probe.turns[-1].at.astimezone(waited.at.tzinfo)
    print(f"untrained tiny base: [{untrained.completion[:6]} after [{last_clock:%H:%M}]")

    assert waited.at - probe.last_at == timedelta(minutes=90)
    assert waited.completion.startswith("14:02] ")
    assert instant.at == probe.last_at.replace(second=0, microsecond=0)
    assert instant.completion.startswith("12:32] ")
    assert untrained.at != waited.at
