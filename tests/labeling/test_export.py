"""Export: approved labels only, through the generator's grammar, split by conversation, with a manifest."""

from __future__ import annotations

import hashlib
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from companion.generator import dialogue_from_json, parse_completion, render_training_example
from labeling.export import is_validation, label_dialogue
from labeling.mining import mine_delay_candidates
from labeling.models import DelayLabel, DelayTask
from labeling.services import label_review, label_save
from tests.factories import ConversationFactory, UserFactory
from tests.labeling.conftest import SEOUL_NOON, chat_log

pytestmark = pytest.mark.django_db


@pytest.fixture
def labelled(conversation, staff_user, reviewer) -> list[DelayLabel]:
    """Two approved labels in one conversation, one submitted and one skipped (never exported)."""
    chat_log(
        conversation,
        SEOUL_NOON,
        [
            (0, "person", "오늘 뭐해?"),
            (1, "companion", "배고파서 밥 먹고 올게~"),
            (1, "person", "ㅇㅋ 맛있게 먹어"),
            (2, "companion", "뭐 먹을지 추천해줘!"),
            (600, "person", "I really have to go,\nsee you"),  # 22:30
            (601, "companion", "wait, one more thing"),
            (610, "person", "stop replying"),
            (611, "person", "leave me alone"),
        ],
    )
    mine_delay_candidates()
    plan, going, stop, alone = DelayTask.objects.order_by("rule", "id")
    first = label_save(
        task=plan,
        annotator=staff_user,
        action="submit",
        cut_after_id=plan.suspected_message_id,
        delay_minutes=40,
        reply_text="다녀왔어~ 맛있었다",
    )
    second = label_save(
        task=going,
        annotator=staff_user,
        action="submit",
        cut_after_id=going.suspected_message_id,
        delay_minutes=9 * 60,
        reply_text="good morning!\nhow did it go?",
    )
    label_save(
        task=stop,
        annotator=staff_user,
        action="submit",
        cut_after_id=stop.suspected_message_id,
        delay_minutes=30,
        reply_text="not approved yet",
    )
    label_save(task=alone, annotator=staff_user, action="skip")
    label_review(label=first, reviewer=reviewer, decision="approve")
    label_review(label=second, reviewer=reviewer, decision="approve")
    return [first, second]


def export(tmp_path: Path, *args: str) -> str:
    out = StringIO()
    call_command("export_delay_dataset", "--out", str(tmp_path / "delays.jsonl"), *args, stdout=out)
    return out.getvalue()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_prompt_export_round_trips_through_the_generators_parser(labelled, tmp_path) -> None:
    # When the approved labels are exported with no validation split
    output = export(tmp_path, "--val-fraction", "0")
    rows = read_jsonl(tmp_path / "delays.jsonl")
    # Then exactly the two approved examples are there, rendered by the generator's grammar
    assert [row["meta"]["label_id"] for row in rows] == [label.pk for label in labelled]
    first, second = rows
    assert first["prompt"].endswith(
        "[user] [12:30] 오늘 뭐해?\n[luda] [12:31] 배고파서 밥 먹고 올게~\n"
        "[user] [12:31] ㅇㅋ 맛있게 먹어\n[luda] ["
    )
    assert first["completion"] == "13:11] 다녀왔어~ 맛있었다"
    assert second["completion"] == "07:30] good morning! how did it go?"
    assert second["prompt"].endswith("[user] [22:30] I really have to go, see you\n[luda] [")
    for row, label in zip(rows, labelled, strict=True):
        dialogue = label_dialogue(label)
        assert row["prompt"] == render_training_example(dialogue, label.reply_at, label.reply_text)["prompt"]
        at, text = parse_completion(row["completion"], previous=dialogue.last_at, time_zone="Asia/Seoul")
        assert at == label.reply_at
        assert text == label.reply_text.replace("\n", " ")
    # Cut turns are left out: nothing after the cut reaches the prompt
    assert "추천해줘" not in first["prompt"]
    assert (tmp_path / "delays.val.jsonl").read_text() == ""
    assert "Exported 2 examples (2 train, 0 validation) as prompt." in output


def test_conversation_export_reads_back_with_dialogue_from_json(labelled, tmp_path) -> None:
    export(tmp_path, "--format", "conversation", "--val-fraction", "0")
    rows = read_jsonl(tmp_path / "delays.jsonl")
    assert rows[0]["reply"] == {"at": "2026-03-02T13:11", "text": "다녀왔어~ 맛있었다"}
    assert rows[0]["person"] == {"age_group": "adult"}
    assert rows[0]["time_zone"] == "Asia/Seoul"
    assert [turn["at"] for turn in rows[0]["turns"]] == [
        "2026-03-02T12:30",
        "2026-03-02T12:31",
        "2026-03-02T12:31",
    ]
    for row, label in zip(rows, labelled, strict=True):
        dialogue, reply = dialogue_from_json(row)
        assert reply == (label.reply_at, label.reply_text)
        assert dialogue.turns[-1].text == label.cut_after.text


def test_manifest_counts_rules_and_buckets_and_hashes_the_export(labelled, tmp_path) -> None:
    export(tmp_path, "--val-fraction", "0")
    manifest = json.loads((tmp_path / "delays.manifest.json").read_text())
    train = (tmp_path / "delays.jsonl").read_bytes()
    assert manifest["examples"] == 2
    assert manifest["per_rule"] == {"companion_unkept_plan": 1, "person_pushes_away": 1}
    assert manifest["per_bucket"] == {"30 min-2 h": 1, "6-12 h": 1}
    assert manifest["files"]["train"] == {
        "path": "delays.jsonl",
        "rows": 2,
        "sha256": hashlib.sha256(train).hexdigest(),
    }
    assert manifest["files"]["val"] == {
        "path": "delays.val.jsonl",
        "rows": 0,
        "sha256": hashlib.sha256(b"").hexdigest(),
    }
    assert manifest["sha256"] == hashlib.sha256(train + b"\0").hexdigest()
    # The same labels give the same dataset version
    export(tmp_path, "--val-fraction", "0")
    assert json.loads((tmp_path / "delays.manifest.json").read_text())["sha256"] == manifest["sha256"]


def test_split_is_by_conversation_and_deterministic(staff_user, reviewer, companion, tmp_path) -> None:
    # Given one approved label in each of 20 conversations
    for number in range(20):
        conversation = ConversationFactory.create(
            person=UserFactory(username=f"p{number}"), companion=companion
        )
        chat_log(conversation, SEOUL_NOON, [(0, "person", "I have to go")])
    mine_delay_candidates()
    for task in DelayTask.objects.all():
        label = label_save(
            task=task,
            annotator=staff_user,
            action="submit",
            cut_after_id=task.suspected_message_id,
            delay_minutes=60,
            reply_text="back",
        )
        label_review(label=label, reviewer=reviewer, decision="approve")
    expected_val = sorted(
        task.conversation_id for task in DelayTask.objects.all() if is_validation(task.conversation_id, 0.25)
    )
    # When exported twice with a 25% validation share
    export(tmp_path, "--val-fraction", "0.25")
    first = (tmp_path / "delays.jsonl").read_bytes(), (tmp_path / "delays.val.jsonl").read_bytes()
    export(tmp_path, "--val-fraction", "0.25")
    # Then the files are identical and the split follows the conversation hash
    assert ((tmp_path / "delays.jsonl").read_bytes(), (tmp_path / "delays.val.jsonl").read_bytes()) == first
    val_rows = read_jsonl(tmp_path / "delays.val.jsonl")
    assert sorted(row["meta"]["conversation_id"] for row in val_rows) == expected_val
    assert len(val_rows) + len(read_jsonl(tmp_path / "delays.jsonl")) == 20
    assert 0 < len(val_rows) < 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--val-fraction", "1.0"], "--val-fraction must be at least 0 and below 1, not 1.0."),
        (["--val-fraction", "-0.1"], "--val-fraction must be at least 0 and below 1, not -0.1."),
        (["--context-turns", "0"], "--context-turns must be at least 1, not 0."),
        (
            ["--format", "csv"],
            "Error: argument --format: invalid choice: 'csv' (choose from 'prompt', 'conversation')",
        ),
    ],
)
def test_bad_arguments_fail_with_a_message_and_write_nothing(labelled, tmp_path, args, message) -> None:
    with pytest.raises(CommandError) as error:
        export(tmp_path, *args)
    assert str(error.value) == message
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_and_nothing_approved_are_errors(conversation, tmp_path) -> None:
    with pytest.raises(CommandError) as error:
        call_command("export_delay_dataset", "--out", str(tmp_path / "missing" / "d.jsonl"))
    assert str(error.value) == f"The folder {tmp_path / 'missing'} does not exist."
    with pytest.raises(CommandError) as error:
        export(tmp_path)
    assert str(error.value) == "There are no approved labels to export yet."
    assert list(tmp_path.iterdir()) == []


def test_only_approved_labels_are_exported_never_submitted_or_skipped_ones(labelled, tmp_path) -> None:
    # given: besides the two approved labels, a submitted one and a skipped one (so the filter has work)
    assert sorted(DelayLabel.objects.values_list("state", flat=True)) == [
        "approved",
        "approved",
        "skipped",
        "submitted",
    ]
    # when
    export(tmp_path, "--val-fraction", "0")
    rows = read_jsonl(tmp_path / "delays.jsonl")
    # then: exactly the two approved labels are rows; the other two are in neither file
    assert [(row["meta"]["label_id"], row["completion"]) for row in rows] == [
        (labelled[0].pk, "13:11] 다녀왔어~ 맛있었다"),
        (labelled[1].pk, "07:30] good morning! how did it go?"),
    ]
    assert (tmp_path / "delays.val.jsonl").read_text() == ""
