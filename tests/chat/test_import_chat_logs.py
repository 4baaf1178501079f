"""``manage.py import_chat_logs``: what is stored, what is refused (line and reason), idempotence."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError

from chat.log_import import Progress, import_chat_logs
from chat.models import Conversation, ImportedLog, Message
from scheduling.models import ScheduledReply
from scheduling.services import due_replies_dispatch
from tests.factories import CompanionFactory, ConversationFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEMO_DIR = REPO_ROOT / "labeling" / "data" / "demo"


def chat_log(
    external_id: str = "log-0001",
    *,
    person: str = "p-0001",
    day: int = 2,
    companion: str = "luda",
    time_zone: str = "Asia/Seoul",
) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "companion": companion,
        "person": person,
        "time_zone": time_zone,
        "messages": [
            {"role": "person", "at": f"2026-03-{day:02d}T12:10:00+09:00", "text": "뭐해?"},
            {"role": "companion", "at": f"2026-03-{day:02d}T12:10:05+09:00", "text": "밥 먹는 중~ 너는?"},
            {"role": "person", "at": f"2026-03-{day:02d}T12:11:30+09:00", "text": "  나도 밥\r\n먹어  "},
        ],
    }


def write_logs(path: Path, *lines: dict[str, Any] | str) -> Path:
    path.write_text(
        "".join(
            (line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines
        ),
        encoding="utf-8",
    )
    return path


def run_import(path: Path, *options: str) -> str:
    out = StringIO()
    call_command("import_chat_logs", str(path), *options, stdout=out, stderr=StringIO())
    return out.getvalue()


def run_refused(path: Path, *options: str) -> tuple[str, str]:
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("import_chat_logs", str(path), *options, stdout=out, stderr=StringIO())
    return out.getvalue(), str(raised.value)


@pytest.fixture
def luda(db):
    return CompanionFactory(slug="luda", name="Luda")


def test_a_log_is_stored_in_utc_for_an_inactive_person_and_remembers_its_external_id(luda, tmp_path):
    # given
    path = write_logs(tmp_path / "logs.jsonl", chat_log())
    # when
    output = run_import(path)
    # then
    assert output == (
        "1 lines: imported 1 logs (3 messages) into 1 conversations (1 new, 1 new persons); "
        "skipped 0 already imported; refused 0.\n"
    )
    person = get_user_model().objects.get(username="log:p-0001")
    assert (person.is_active, person.is_staff, person.has_usable_password()) == (False, False, False)
    conversation = Conversation.objects.get()
    assert (conversation.person, conversation.companion, conversation.time_zone) == (
        person,
        luda,
        "Asia/Seoul",
    )
    assert conversation.created_at == datetime(2026, 3, 2, 3, 10, tzinfo=UTC)
    assert list(conversation.messages.values_list("role", "created_at", "text", "log_external_id")) == [
        ("person", datetime(2026, 3, 2, 3, 10, 0, tzinfo=UTC), "뭐해?", "log-0001"),
        ("companion", datetime(2026, 3, 2, 3, 10, 5, tzinfo=UTC), "밥 먹는 중~ 너는?", "log-0001"),
        ("person", datetime(2026, 3, 2, 3, 11, 30, tzinfo=UTC), "나도 밥\n먹어", "log-0001"),
    ]
    assert list(ImportedLog.objects.values_list("external_id", "conversation", "message_count")) == [
        ("log-0001", conversation.pk, 3)
    ]


def test_a_second_import_adds_nothing_and_reports_skipped(luda, tmp_path):
    # given
    path = write_logs(tmp_path / "logs.jsonl", chat_log("log-0001"), chat_log("log-0002", person="p-0002"))
    run_import(path)
    # when
    output = run_import(path, "--verbosity", "2")
    # then
    assert output == (
        "skipped log-0001 (already imported)\n"
        "skipped log-0002 (already imported)\n"
        "2 lines: imported 0 logs (0 messages) into 0 conversations (0 new, 0 new persons); "
        "skipped 2 already imported; refused 0.\n"
    )
    assert (Message.objects.count(), Conversation.objects.count(), ImportedLog.objects.count()) == (6, 2, 2)
    assert get_user_model().objects.count() == 2


def without(value: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k != key}


def with_message(index: int, **changes: Any) -> dict[str, Any]:
    log = chat_log("log-bad", person="p-bad")
    log["messages"][index] = {**log["messages"][index], **changes}
    return log


REFUSALS: list[tuple[str, dict[str, Any] | str, str]] = [
    ("bad JSON", '{"external_id": "log-bad", ', "json_invalid: not JSON: Expecting property name enclosed"),
    ("not an object", '["log-bad"]', "json_invalid: a line must be one JSON object"),
    ("nested too deeply", "[" * 100_000 + "]" * 100_000, "json_invalid: nested too deeply"),
    (
        "missing key",
        without(chat_log("log-bad"), "person"),
        "(log-bad): keys_invalid: the log: missing person",
    ),
    (
        "extra key",
        {**chat_log("log-bad"), "mood": "happy"},
        "(log-bad): keys_invalid: the log: unexpected mood",
    ),
    (
        "message keys",
        with_message(1, sender="luda"),
        "(log-bad): keys_invalid: messages[1]: unexpected sender",
    ),
    (
        "external id",
        chat_log("log bad"),
        "(log bad): external_id_invalid: external_id must be 1..100 characters without spaces or "
        "control characters, not 'log bad'",
    ),
    (
        "unknown companion",
        chat_log("log-bad", companion="nora"),
        "(log-bad): companion_unknown: no companion with slug 'nora'",
    ),
    (
        "person",
        chat_log("log-bad", person="p 1"),
        "(log-bad): person_invalid: person must be 1..100 letters, digits or . @ + - _, not 'p 1'",
    ),
    (
        "unknown time zone",
        chat_log("log-bad", time_zone="Asia/Busan"),
        "(log-bad): time_zone_unknown: unknown time zone 'Asia/Busan'",
    ),
    (
        "time zone too long for a file name",
        chat_log("log-bad", time_zone="Asia/" + "x" * 300),
        f"(log-bad): time_zone_unknown: unknown time zone 'Asia/{'x' * 300}'",
    ),
    (
        "no messages",
        {**chat_log("log-bad"), "messages": []},
        "(log-bad): messages_invalid: messages must be a non-empty list",
    ),
    (
        "bad role",
        with_message(1, role="luda"),
        "(log-bad): role_invalid: messages[1]: role must be 'person' or 'companion', not 'luda'",
    ),
    (
        "role not a string",
        with_message(0, role=["person"]),
        "(log-bad): role_invalid: messages[0]: role must be 'person' or 'companion', not ['person']",
    ),
    (
        "naive time",
        with_message(2, at="2026-03-02T12:11:30"),
        "(log-bad): time_naive: messages[2]: '2026-03-02T12:11:30' has no UTC offset "
        "(write e.g. 2026-03-02T12:10:00+09:00)",
    ),
    (
        "bad time",
        with_message(2, at="2026-03-02 noon"),
        "(log-bad): time_invalid: messages[2]: '2026-03-02 noon' is not an ISO 8601 time",
    ),
    (
        "time out of range in UTC",
        with_message(0, at="0001-01-01T00:00:00+09:00"),
        "(log-bad): time_invalid: messages[0]: '0001-01-01T00:00:00+09:00' is out of range in UTC",
    ),
    (
        "times go backwards",
        with_message(2, at="2026-03-02T12:10:04+09:00"),
        "(log-bad): times_not_increasing: messages[2] at 2026-03-02T12:10:04+09:00 is earlier than "
        "messages[1] at 2026-03-02T12:10:05+09:00",
    ),
    (
        "empty text",
        with_message(1, text="  \n "),
        "(log-bad): text_empty: messages[1]: The message is empty.",
    ),
    (
        "text too long",
        with_message(1, text="ㅋ" * 2001),
        "(log-bad): text_too_long: messages[1]: The message has 2001 characters; the limit is 2000.",
    ),
    (
        "text not a string",
        with_message(1, text=5),
        "(log-bad): text_not_string: messages[1]: The message text must be a string.",
    ),
    (
        "control character",
        with_message(1, text="hi\x07"),
        "(log-bad): text_control_character: messages[1]: The message contains the control character "
        "U+0007 at position 2; only newlines and tabs are allowed.",
    ),
    (
        "duplicate external id",
        chat_log("log-0001", person="p-0002"),
        "(log-0001): external_id_duplicate: external_id 'log-0001' is also on line 1",
    ),
    (
        "overlap within the file",
        {
            **chat_log("log-bad"),
            "messages": [{"role": "person", "at": "2026-03-02T12:11:00+09:00", "text": "어"}],
        },
        "(log-bad): overlap: starts at 2026-03-02T03:11:00+00:00, before the conversation's last "
        "message at 2026-03-02T03:11:30+00:00 (an earlier log or a live message)",
    ),
    (
        "another time zone for the same conversation",
        chat_log("log-bad", day=3, time_zone="Asia/Tokyo"),
        "(log-bad): time_zone_mismatch: time_zone 'Asia/Tokyo' differs from the conversation's 'Asia/Seoul'",
    ),
]


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [(line, reason) for _, line, reason in REFUSALS],
    ids=[name for name, _, _ in REFUSALS],
)
def test_each_refusal_names_its_line_and_reason_and_the_good_lines_are_imported(
    luda, tmp_path, bad_line, reason
):
    # given: a good line 1, the bad line 2 (same person as line 1 where it matters), a good line 3
    path = write_logs(
        tmp_path / "logs.jsonl", chat_log("log-0001"), bad_line, chat_log("log-0003", person="p-0003")
    )
    # when
    output, error = run_refused(path)
    # then
    refused = [line for line in output.splitlines() if line.startswith("refused ")]
    assert len(refused) == 1
    assert refused[0].startswith(f"refused line 2{' ' if reason.startswith('(') else ': '}{reason}")
    assert error == "1 of 3 lines refused; the other lines were imported."
    assert sorted(ImportedLog.objects.values_list("external_id", flat=True)) == ["log-0001", "log-0003"]
    assert Message.objects.count() == 6
    assert not Message.objects.filter(log_external_id="log-bad").exists()


def test_a_log_with_one_bad_message_stores_none_of_its_messages(luda, tmp_path):
    # given: its last message is empty
    path = write_logs(tmp_path / "logs.jsonl", with_message(2, text=""))
    # when
    output, error = run_refused(path)
    # then
    assert (
        output.splitlines()[0] == "refused line 1 (log-bad): text_empty: messages[2]: The message is empty."
    )
    assert error == "1 of 1 lines refused; the other lines were imported."
    assert (Message.objects.count(), Conversation.objects.count(), ImportedLog.objects.count()) == (0, 0, 0)
    assert not get_user_model().objects.filter(username="log:p-bad").exists()


def test_logs_of_one_person_are_appended_in_time_order_to_their_one_conversation(luda, tmp_path):
    # given: the later log first in the file, and a third log imported later from another file
    first_file = write_logs(tmp_path / "a.jsonl", chat_log("log-day4", day=4), chat_log("log-day2", day=2))
    later_file = write_logs(tmp_path / "b.jsonl", chat_log("log-day9", day=9))
    # when
    first = run_import(first_file)
    later = run_import(later_file)
    # then
    assert first.startswith(
        "2 lines: imported 2 logs (6 messages) into 1 conversations (1 new, 1 new persons)"
    )
    assert later.startswith(
        "1 lines: imported 1 logs (3 messages) into 1 conversations (0 new, 0 new persons)"
    )
    conversation = Conversation.objects.get()
    assert conversation.created_at == datetime(2026, 3, 2, 3, 10, tzinfo=UTC)
    messages = list(conversation.messages.order_by("id").values_list("log_external_id", "created_at"))
    assert [external_id for external_id, _ in messages] == ["log-day2"] * 3 + ["log-day4"] * 3 + [
        "log-day9"
    ] * 3
    assert [at for _, at in messages] == sorted(at for _, at in messages)


def test_a_log_starting_before_the_conversations_last_message_is_refused_as_overlap(luda, tmp_path):
    # given: a conversation imported up to 2026-03-04 and a live message after it
    run_import(write_logs(tmp_path / "a.jsonl", chat_log("log-day4", day=4)))
    conversation = Conversation.objects.get()
    MessageFactory(conversation=conversation, created_at=datetime(2026, 3, 5, 1, 0, tzinfo=UTC), text="live")
    path = write_logs(tmp_path / "b.jsonl", chat_log("log-day3", day=3), chat_log("log-day5", day=5))
    # when
    output, error = run_refused(path)
    # then
    assert output.splitlines() == [
        "refused line 1 (log-day3): overlap: starts at 2026-03-03T03:10:00+00:00, before the "
        "conversation's last message at 2026-03-05T01:00:00+00:00 (an earlier log or a live message)",
        "2 lines: imported 1 logs (3 messages) into 1 conversations (0 new, 0 new persons); "
        "skipped 0 already imported; refused 1.",
    ]
    assert error == "1 of 2 lines refused; the other lines were imported."
    assert list(ImportedLog.objects.values_list("external_id", flat=True)) == ["log-day4", "log-day5"]
    assert conversation.messages.count() == 7


def test_an_imported_recent_log_plans_no_reply_and_the_dispatcher_requeues_none(luda, tmp_path):
    # given: a log whose last message is the person's, two hours before "now"
    path = write_logs(tmp_path / "logs.jsonl", chat_log())
    run_import(path)
    now = datetime(2026, 3, 2, 5, 11, 30, tzinfo=UTC)
    # when
    report = due_replies_dispatch(now=now)
    # then
    assert report.plans_requeued == 0
    assert ScheduledReply.objects.count() == 0


def test_dry_run_validates_and_writes_nothing(luda, tmp_path):
    # given
    path = write_logs(tmp_path / "logs.jsonl", chat_log("log-0001"), chat_log("log-0002", companion="nora"))
    # when
    output, error = run_refused(path, "--dry-run")
    # then
    assert output.splitlines() == [
        "refused line 2 (log-0002): companion_unknown: no companion with slug 'nora'",
        "Dry run, nothing written: 2 lines: would import 1 logs (3 messages) into 1 conversations "
        "(1 new, 1 new persons); skipped 0 already imported; refused 1.",
    ]
    assert error == "1 of 2 lines refused; nothing was written (dry run)."
    assert (Message.objects.count(), Conversation.objects.count(), ImportedLog.objects.count()) == (0, 0, 0)
    assert get_user_model().objects.count() == 0


def test_dry_run_sees_what_is_already_imported(luda, tmp_path):
    # given
    run_import(write_logs(tmp_path / "a.jsonl", chat_log("log-day4", day=4)))
    path = write_logs(tmp_path / "b.jsonl", chat_log("log-day4", day=4), chat_log("log-day3", day=3))
    # when
    output, _ = run_refused(path, "--dry-run")
    # then
    assert output.splitlines()[-1] == (
        "Dry run, nothing written: 2 lines: would import 0 logs (0 messages) into 0 conversations "
        "(0 new, 0 new persons); skipped 1 already imported; refused 1."
    )
    assert Message.objects.count() == 3


def test_the_exit_status_is_1_when_a_line_is_refused_and_0_otherwise(luda, tmp_path, capsys):
    # given
    good = write_logs(tmp_path / "good.jsonl", chat_log("log-0001"))
    bad = write_logs(tmp_path / "bad.jsonl", "not json")
    # when
    ManagementUtility(["manage.py", "import_chat_logs", str(good)]).execute()
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "import_chat_logs", str(bad)]).execute()
    # then
    assert exited.value.code == 1
    assert "CommandError: 1 of 1 lines refused; the other lines were imported." in capsys.readouterr().err


def test_a_missing_file_is_a_command_error(tmp_path):
    with pytest.raises(CommandError, match=r"missing\.jsonl: no such file\."):
        call_command("import_chat_logs", str(tmp_path / "missing.jsonl"), stdout=StringIO())


def test_a_log_appended_to_a_live_conversation_keeps_the_conversation(luda, tmp_path):
    # given: the person's inactive user already talks live with Luda
    person = UserFactory(username="log:p-0001", is_active=False)
    conversation = ConversationFactory(person=person, companion=luda, time_zone="Asia/Seoul")
    # when
    run_import(write_logs(tmp_path / "logs.jsonl", chat_log()))
    # then
    assert list(Conversation.objects.values_list("id", flat=True)) == [conversation.pk]
    assert conversation.messages.count() == 3


def test_progress_is_written_at_most_once_per_interval(luda, tmp_path):
    # given: 30 logs and a clock that advances half a second per reading
    path = write_logs(tmp_path / "logs.jsonl", *(chat_log(f"log-{n}", person=f"p-{n}") for n in range(30)))
    ticks = iter(range(1000))
    lines: list[str] = []
    progress = Progress(write=lines.append, interval_seconds=10.0, clock=lambda: next(ticks) * 0.5)
    # when
    report = import_chat_logs(path=path, progress=progress)
    # then
    assert report.imported_logs == 30
    assert lines == [
        "read 21/30 lines",
        "validated 11/30 lines",
        "30 conversations ready (30 new), writing",
    ]


def test_a_transaction_holds_whole_conversations_only(luda, tmp_path, monkeypatch):
    # given: transactions of about 4 messages, and conversations of 3 and 6 messages
    monkeypatch.setattr("chat.log_import._TRANSACTION_MESSAGES", 4)
    path = write_logs(
        tmp_path / "logs.jsonl",
        chat_log("log-a1", person="p-a", day=2),
        chat_log("log-b1", person="p-b", day=2),
        chat_log("log-a2", person="p-a", day=3),
        chat_log("log-c1", person="p-c", day=2),
    )
    # when
    output = run_import(path)
    # then
    assert output.startswith(
        "4 lines: imported 4 logs (12 messages) into 3 conversations (3 new, 3 new persons)"
    )
    by_person = {
        conversation.person.username: list(conversation.messages.values_list("log_external_id", flat=True))
        for conversation in Conversation.objects.select_related("person")
    }
    assert by_person == {
        "log:p-a": ["log-a1"] * 3 + ["log-a2"] * 3,
        "log:p-b": ["log-b1"] * 3,
        "log:p-c": ["log-c1"] * 3,
    }


def test_a_log_another_import_stored_meanwhile_is_refused_as_a_conflict_alone(luda, tmp_path):
    # given: once the conversations are ready, another import stores log-0002 (its unique row, for real)
    path = write_logs(tmp_path / "logs.jsonl", chat_log("log-0001"), chat_log("log-0002", person="p-0002"))
    other = ConversationFactory(companion=luda)
    ticks = iter(range(1000))

    def meanwhile(text: str) -> None:
        if text.startswith("2 conversations ready"):
            ImportedLog.objects.create(external_id="log-0002", conversation=other, message_count=1)

    progress = Progress(write=meanwhile, interval_seconds=1.0, clock=lambda: float(next(ticks)))
    # when
    report = import_chat_logs(path=path, progress=progress)
    # then
    assert [str(refusal) for refusal in report.refusals] == [
        "line 2 (log-0002): conflict: another import wrote this conversation at the same time; "
        "run the import again"
    ]
    assert (report.imported_logs, report.imported_messages, report.conversations) == (1, 3, 1)
    assert set(Message.objects.values_list("log_external_id", flat=True)) == {"log-0001"}


def test_every_demo_log_imports_cleanly(luda):
    # given: the shipped demo set, main and holdout
    main, holdout = DEMO_DIR / "logs.jsonl", DEMO_DIR / "holdout_logs.jsonl"
    main_lines = len(main.read_text(encoding="utf-8").splitlines())
    holdout_lines = len(holdout.read_text(encoding="utf-8").splitlines())
    # when
    main_output, holdout_output = run_import(main), run_import(holdout)
    # then
    assert "refused 0." in main_output
    assert "refused 0." in holdout_output
    assert ImportedLog.objects.count() == main_lines + holdout_lines
    labels = [
        json.loads(line)
        for name in ("labels.jsonl", "holdout_labels.jsonl")
        for line in (DEMO_DIR / name).read_text(encoding="utf-8").splitlines()
    ]
    assert sorted(label["external_id"] for label in labels) == sorted(
        ImportedLog.objects.values_list("external_id", flat=True)
    )
