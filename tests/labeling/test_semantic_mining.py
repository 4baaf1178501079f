"""Semantic mining with the real sentence encoder: paraphrases hit, look-alikes do not, vectors are
stored once, ``--json`` prints one line per hit, and the shipped rules cover loops and leaving."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from chat.models import Message
from companion.generator.sentence_vectors import shared_encoder
from labeling.mining import load_rules, mine_delay_candidates
from labeling.models import DelayTask, MessageVector
from tests.labeling.conftest import SEOUL_NOON, chat_log

pytestmark = pytest.mark.django_db

EXAMPLES = ["I have to leave now, talk to you later", "my phone is about to die"]
RULES = {
    "rules": [
        {
            "name": "person_heads_out",
            "speaker": "person",
            "kind": "phrase",
            "patterns": ["\\bgotta\\s+go\\b"],
            "examples": EXAMPLES,
            "threshold": 0.6,
        }
    ]
}
PARAPHRASE = "ok heading out now, catch you later"  # no pattern names it
LOOK_ALIKE = "I love talking to you later at night"  # same words, not leaving


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(RULES))
    return path


class CountingEncoder:
    """The real encoder, recording every batch of texts it is asked to encode."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str]) -> Any:
        self.calls.append(list(texts))
        return shared_encoder().encode(texts)


def task_rows() -> list[tuple[str, str, str, str, float | None]]:
    return [
        (t.rule, t.trigger_message.text, t.matched_text, t.matched_example, t.similarity)
        for t in DelayTask.objects.select_related("trigger_message").order_by("id")
    ]


def test_a_paraphrase_hits_by_similarity_and_a_look_alike_does_not(conversation, rules_file) -> None:
    chat_log(
        conversation,
        SEOUL_NOON,
        [
            (0, "person", LOOK_ALIKE),
            (1, "companion", PARAPHRASE),  # the companion's words: a person rule never reads them
            (2, "person", PARAPHRASE),
            (3, "companion", "wait where are you going?"),
            (4, "person", "sorry gotta go"),
        ],
    )
    mine_delay_candidates(rules=load_rules(rules_file))
    assert task_rows() == [
        ("person_heads_out", PARAPHRASE, "", "I have to leave now, talk to you later", 0.6888),
        ("person_heads_out", "sorry gotta go", "gotta go", "", None),
    ]


def test_regex_only_skips_the_example_phrases(conversation, rules_file) -> None:
    chat_log(conversation, SEOUL_NOON, [(0, "person", PARAPHRASE), (1, "person", "gotta go")])
    out = StringIO()
    call_command("mine_delay_candidates", "--rules", str(rules_file), "--regex-only", stdout=out)
    assert [row[1] for row in task_rows()] == ["gotta go"]
    assert MessageVector.objects.count() == 0
    assert "Sentence vectors" not in out.getvalue()


def test_json_prints_one_line_per_hit_and_the_summary_on_stderr(conversation, rules_file) -> None:
    semantic, regex = chat_log(
        conversation, SEOUL_NOON, [(0, "person", PARAPHRASE), (5, "person", "gotta go")]
    )
    Message.objects.filter(pk=regex.pk).update(log_external_id="log-0042")
    out, err = StringIO(), StringIO()
    call_command("mine_delay_candidates", "--rules", str(rules_file), "--json", stdout=out, stderr=err)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {
            "conversation_id": conversation.pk,
            "log_external_id": None,
            "message_id": semantic.pk,
            "rule": "person_heads_out",
            "score": 0.6888,
        },
        {
            "conversation_id": conversation.pk,
            "log_external_id": "log-0042",
            "message_id": regex.pk,
            "rule": "person_heads_out",
            "score": None,
        },
    ]
    assert err.getvalue().splitlines() == [
        "Scanned 2 messages in 1 conversations.",
        "  person_heads_out: 2 hits, 2 new tasks",
        "Found 2 hits; created 2 new tasks.",
        "Sentence vectors: 2 encoded, 0 reused.",
    ]


def test_message_vectors_are_stored_and_never_encoded_again(conversation, rules_file) -> None:
    rules = load_rules(rules_file)
    chat_log(conversation, SEOUL_NOON, [(0, "person", PARAPHRASE), (1, "companion", "where to?")])
    first_encoder = CountingEncoder()
    first = mine_delay_candidates(rules=rules, encoder=first_encoder)
    # The example phrases, then the one person message whole and clause by clause
    assert first_encoder.calls == [EXAMPLES, [PARAPHRASE, "ok heading out now", "catch you later"]]
    assert (first.vectors.encoded, first.vectors.reused) == (1, 0)
    assert MessageVector.objects.count() == 1
    assert len(bytes(MessageVector.objects.get().vector)) == 3 * 512 * 4  # three float32 rows

    # A second run reads the stored vector back; only a new message is encoded
    chat_log(conversation, SEOUL_NOON, [(10, "person", "ok")])
    second_encoder = CountingEncoder()
    second = mine_delay_candidates(rules=rules, encoder=second_encoder)
    assert second_encoder.calls == [EXAMPLES, ["ok"]]
    assert (second.vectors.encoded, second.vectors.reused) == (1, 1)
    third_encoder = CountingEncoder()
    third = mine_delay_candidates(rules=rules, encoder=third_encoder)
    assert third_encoder.calls == [EXAMPLES]
    assert (third.vectors.encoded, third.vectors.reused) == (0, 2)
    assert DelayTask.objects.count() == 1


def test_the_task_page_shows_the_rule_the_example_and_the_similarity(conversation, rules_file, staff_user):
    chat_log(conversation, SEOUL_NOON, [(0, "person", PARAPHRASE), (1, "companion", "where to?")])
    mine_delay_candidates(rules=load_rules(rules_file))
    task = DelayTask.objects.get()
    client = Client()
    client.force_login(staff_user)
    html = client.get(f"/labeling/tasks/{task.pk}/").content.decode()
    assert (
        'Rule <b class="rule">person_heads_out</b> matched by sentence similarity '
        '<b class="similarity">0.689</b> to its example '
        '<q class="example">I have to leave now, talk to you later</q>'
    ) in html


def test_examples_need_a_threshold(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"rules": [{"name": "x", "speaker": "person", "examples": ["hi"]}]}))
    with pytest.raises(CommandError) as error:
        call_command("mine_delay_candidates", "--rules", str(path), stdout=StringIO())
    assert str(error.value) == (
        f"{path}, rule 'x': 'examples' need a 'threshold' between 0 and 1 (cosine similarity)."
    )


# --- the shipped rules -------------------------------------------------------------------------


def shipped_tasks() -> list[tuple[str, str, str]]:
    return [
        (t.rule, t.trigger_message.text, t.suspected_message.text)
        for t in DelayTask.objects.select_related("trigger_message", "suspected_message").order_by("id")
    ]


def test_a_good_night_loop_is_one_task_and_a_clean_good_night_is_none(conversation) -> None:
    chat_log(
        conversation,
        SEOUL_NOON,
        [
            (0, "person", "나 이제 잔다"),
            (0, "companion", "잘자~ 내일 봐"),
            # the next evening: good nights that never end, each answered at once
            (24 * 60, "person", "잘자~"),
            (24 * 60, "companion", "너도 잘자!"),
            (24 * 60 + 1, "person", "응 잘자ㅎㅎ"),
            (24 * 60 + 1, "companion", "진짜 잘자~ 꿈에서 봐"),
        ],
    )
    mine_delay_candidates()
    assert shipped_tasks() == [("goodnight_loop", "너도 잘자!", "너도 잘자!")]


def test_a_person_who_left_counts_only_when_the_companion_kept_talking(conversation) -> None:
    chat_log(
        conversation,
        SEOUL_NOON,
        [
            (0, "person", "ok driving now, ttyl"),
            (0, "companion", "drive safe!!"),
            (40, "person", "home!"),  # one goodbye, then quiet: nothing missed
            (24 * 60, "person", "ok driving now, ttyl"),
            (24 * 60, "companion", "wait which road do u take?"),
            (24 * 60, "companion", "also did u eat??"),
            (24 * 60 + 50, "person", "i was driving lol"),
        ],
    )
    mine_delay_candidates()
    rows = shipped_tasks()
    assert rows == [("person_left", "ok driving now, ttyl", "ok driving now, ttyl")]
    assert DelayTask.objects.get().trigger_message.created_at == SEOUL_NOON.replace(day=3)
