"""Mining: every rule fires on its planted case and only there; re-runs never duplicate tasks."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from chat.models import Message
from labeling.models import DelayTask
from tests.factories import CompanionFactory, ConversationFactory, MessageFactory, UserFactory
from tests.labeling.conftest import SEOUL_NOON, chat_log

pytestmark = pytest.mark.django_db


def mine(*args: str) -> str:
    out = StringIO()
    call_command("mine_delay_candidates", *args, stdout=out)
    return out.getvalue()


def tasks() -> list[tuple[str, str, str, str]]:
    return [
        (t.rule, t.trigger_message.text, t.suspected_message.text, t.matched_text)
        for t in DelayTask.objects.select_related("trigger_message", "suspected_message").order_by("id")
    ]


def test_person_pushing_away_fires_on_korean_and_english(conversation) -> None:
    # Given a person who says they must go, in both languages, and some ordinary chat
    chat_log(
        conversation,
        SEOUL_NOON,
        [
            (0, "person", "오늘 뭐 먹었어?"),
            (1, "companion", "떡볶이! 너는?"),
            (2, "person", "나 진짜 가야해 ㅠㅠ"),
            (2, "companion", "아 진짜? 조금만 더 얘기하자"),
            (30, "person", "ok I really have to go now"),
            (31, "companion", "stop replying to me is what you mean?"),
        ],
    )
    # When mining runs
    output = mine()
    # Then both person turns are tasks; the companion's "stop replying" is not the person's rule
    assert tasks() == [
        ("person_pushes_away", "나 진짜 가야해 ㅠㅠ", "나 진짜 가야해 ㅠㅠ", "나 진짜 가야해"),
        (
            "person_pushes_away",
            "ok I really have to go now",
            "ok I really have to go now",
            "I really have to go",
        ),
    ]
    assert "Scanned 6 messages in 1 conversations." in output
    assert "  person_pushes_away: 2 hits, 2 new tasks" in output
    assert "  companion_threatens_silence: 0 hits, 0 new tasks" in output


def test_companion_threatening_silence_fires_only_for_the_companion(conversation) -> None:
    chat_log(
        conversation,
        SEOUL_NOON,
        [
            (0, "person", "너 바보야"),
            (1, "companion", "너 자꾸 그러면 나 답 안한다?"),
            (2, "person", "I'm not answering you anymore"),
            (3, "companion", "Fine. I'm not answering you anymore."),
        ],
    )
    mine()
    assert tasks() == [
        (
            "companion_threatens_silence",
            "너 자꾸 그러면 나 답 안한다?",
            "너 자꾸 그러면 나 답 안한다?",
            "자꾸 그러면 나 답 안한다",
        ),
        (
            "companion_threatens_silence",
            "Fine. I'm not answering you anymore.",
            "Fine. I'm not answering you anymore.",
            "I'm not answering you anymore",
        ),
    ]


def test_unkept_plan_fires_when_the_companion_replies_instantly_after_announcing_it(conversation) -> None:
    # Given: "going to eat" then an instant reply (a hit), and a kept plan (back 40 minutes later)
    chat_log(
        conversation,
        SEOUL_NOON,
        [
            (0, "companion", "배고파 밥 먹고 올게~"),
            (1, "person", "ㅇㅋ 맛있게 먹어"),
            (1, "companion", "뭐 먹을지 추천해줘!"),
            (60, "companion", "ok brb, going to eat"),
            (100, "companion", "back~ that was good"),
        ],
    )
    mine()
    # Then only the unkept plan is a task; the cut is suggested after the turn it answered
    assert tasks() == [("companion_unkept_plan", "배고파 밥 먹고 올게~", "ㅇㅋ 맛있게 먹어", "밥 먹고 올게")]


def test_unkept_plan_directly_followed_by_the_companion_suspects_the_plan_itself(conversation) -> None:
    chat_log(
        conversation,
        SEOUL_NOON,
        [(0, "companion", "brb, going to eat"), (3, "companion", "actually what are you doing?")],
    )
    mine()
    assert tasks() == [("companion_unkept_plan", "brb, going to eat", "brb, going to eat", "brb")]


def test_unkept_plan_uses_the_companions_instant_threshold(person) -> None:
    # A companion whose "instant" is 2 minutes: a reply 3 minutes later kept the plan
    patient = CompanionFactory(slug="patient", name="Patient", instant_threshold_minutes=2)
    conversation = ConversationFactory.create(person=person, companion=patient)
    chat_log(conversation, SEOUL_NOON, [(0, "companion", "샤워하고 올게"), (3, "companion", "다녀왔어")])
    mine()
    assert tasks() == []


def test_rerunning_never_duplicates_tasks(conversation) -> None:
    chat_log(conversation, SEOUL_NOON, [(0, "person", "leave me alone for a bit"), (1, "companion", "ok...")])
    first = mine()
    second = mine()
    assert DelayTask.objects.count() == 1
    assert "Found 1 hits; created 1 new tasks." in first
    assert "Found 1 hits; created 0 new tasks." in second
    assert "  person_pushes_away: 1 hits, 0 new tasks" in second


def test_since_and_companion_narrow_the_scan(conversation) -> None:
    other = ConversationFactory.create(
        person=UserFactory(username="other"), companion=CompanionFactory(slug="haru", name="Haru")
    )
    chat_log(
        conversation, SEOUL_NOON, [(0, "person", "stop replying"), (2 * 24 * 60, "person", "I gotta go")]
    )
    chat_log(other, SEOUL_NOON, [(2 * 24 * 60, "person", "그만 좀 답해")])

    output = mine("--since", "2026-03-03", "--companion", "luda")

    assert "Scanned 1 messages in 1 conversations." in output
    assert tasks() == [("person_pushes_away", "I gotta go", "I gotta go", "I gotta go")]
    mine("--companion", str(other.companion_id))
    assert [t[1] for t in tasks()] == ["I gotta go", "그만 좀 답해"]


def test_system_messages_are_not_turns(conversation) -> None:
    MessageFactory(
        conversation=conversation, role=Message.Role.SYSTEM, text="stop replying", created_at=SEOUL_NOON
    )
    assert "Scanned 0 messages in 1 conversations." in mine()
    assert tasks() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is not a date (YYYY-MM-DD) or an ISO datetime."),
        (["--companion", "nobody"], "--companion 'nobody': no companion with that id or slug."),
        (["--companion", "999999"], "--companion '999999': no companion with that id or slug."),
        (["--rules", "/nonexistent/rules.json"], "Rules file /nonexistent/rules.json does not exist."),
    ],
)
def test_bad_arguments_fail_with_a_message_and_create_nothing(conversation, args, message) -> None:
    chat_log(conversation, SEOUL_NOON, [(0, "person", "stop replying")])
    with pytest.raises(CommandError) as error:
        mine(*args)
    assert str(error.value) == message
    assert DelayTask.objects.count() == 0


def test_a_bad_rules_file_names_the_rule_and_the_pattern(conversation, tmp_path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps({"rules": [{"name": "broken", "speaker": "person", "patterns": ["(unclosed"]}]})
    )
    with pytest.raises(CommandError) as error:
        mine("--rules", str(rules))
    assert str(error.value).startswith(
        f"{rules}, rule 'broken': bad pattern '(unclosed': missing ), unterminated"
    )


def test_a_new_rule_is_added_in_the_data_file_without_code(conversation, tmp_path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps(
            {
                "rules": [
                    {
                        "name": "good_night",
                        "speaker": "person",
                        "patterns": ["\\bgood\\s*night\\b", "잘\\s*자"],
                    }
                ]
            }
        )
    )
    chat_log(conversation, SEOUL_NOON, [(0, "person", "Good night!"), (1, "companion", "잘 자~")])
    output = mine("--rules", str(rules))
    assert tasks() == [("good_night", "Good night!", "Good night!", "Good night")]
    assert "  good_night: 1 hits, 1 new tasks" in output


def every_message_column() -> list[tuple]:
    columns = [field.attname for field in Message._meta.concrete_fields]
    return list(Message.objects.order_by("id").values_list(*columns))


def test_mining_makes_a_task_and_never_changes_the_chat_logs(conversation) -> None:
    # given: a log with a hit, read back column by column
    chat_log(conversation, SEOUL_NOON, [(0, "person", "stop replying"), (1, "companion", "ok")])
    before = every_message_column()
    # when
    mine()
    # then: the hit became a task, and not one message column changed, none was added or removed
    assert tasks() == [("person_pushes_away", "stop replying", "stop replying", "stop replying")]
    assert every_message_column() == before
