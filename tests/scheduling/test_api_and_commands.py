"""The staff replies API, the admin page and the management commands that `make run` calls."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils.html import escape
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from scheduling.models import ScheduledReply
from scheduling.services import reply_plan
from tests.conftest import token_client
from tests.scheduling.conftest import post

pytestmark = pytest.mark.django_db


def replies_url(conversation_id: int) -> str:
    return f"/api/v1/conversations/{conversation_id}/replies/"


@pytest.fixture
def planned(conversation, real_generator) -> ScheduledReply:
    """A reply planned by the real tiny model."""
    trigger = post(conversation, "you there?")
    return reply_plan(conversation_id=conversation.pk, trigger_message_id=trigger.pk)


def iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def test_staff_list_a_conversations_replies_with_state_due_time_and_decisions(planned, staff_user):
    # when
    response = token_client(staff_user).get(replies_url(planned.conversation_id))
    # then
    assert response.status_code == 200
    assert response.json() == [
        {
            "id": planned.pk,
            "kind": "answer",
            "state": "pending",
            "trigger_message_id": planned.trigger_message_id,
            "after_reply_id": None,
            "bubble_index": 0,
            "text": planned.text,
            "proposed_at": iso(planned.proposed_at),
            "final_at": iso(planned.final_at),
            "due_at": iso(planned.due_at),
            "typing_at": iso(planned.typing_at),
            "is_delayed": planned.is_delayed,
            "guard_decisions": planned.guard_decisions,
            "generation_attempts": planned.generation_attempts,
            "safety_hits": [],
            "outcome_reason": "",
            "planned_at": iso(planned.planned_at),
            "typing_started_at": None,
            "sent_at": None,
            "cancelled_at": None,
            "message_id": None,
        }
    ]
    # a delayed answer is a message the companion starts: it also meets the quiet hours
    assert [d["rule"] for d in response.json()[0]["guard_decisions"]] == [
        "max_delay",
        "complaint_cooldown",
        "delay_ration",
        "instant_threshold",
        *(["quiet_hours"] if planned.is_delayed else []),
    ]


def test_the_state_filter_narrows_and_an_unknown_state_is_a_400_with_a_reason(planned, staff_user):
    client = token_client(staff_user)
    assert client.get(replies_url(planned.conversation_id), {"state": "sent"}).json() == []
    assert len(client.get(replies_url(planned.conversation_id), {"state": "pending"}).json()) == 1
    bad = client.get(replies_url(planned.conversation_id), {"state": "lost"})
    assert bad.status_code == 400
    assert bad.json() == {
        "code": "state_invalid",
        "detail": "state must be one of pending, sent, cancelled, superseded, failed, declined.",
    }


@pytest.mark.parametrize("query", ["state=", "state=Sent", "state=sent%00"])
def test_an_empty_or_near_miss_state_is_a_400_not_every_reply(conversation, staff_user, query):
    # "?state=" used to read as no filter at all (DRF's HTML-form reading of a blank value).
    response = token_client(staff_user).get(f"{replies_url(conversation.pk)}?{query}")
    assert (response.status_code, response.json()) == (
        400,
        {
            "code": "state_invalid",
            "detail": "state must be one of pending, sent, cancelled, superseded, failed, declined.",
        },
    )


def test_non_staff_get_403_even_for_their_own_conversation_and_anonymous_401(
    planned, api_client, anonymous_client
):
    assert api_client.get(replies_url(planned.conversation_id)).status_code == 403
    assert anonymous_client.get(replies_url(planned.conversation_id)).status_code == 401
    # a non-staff caller cannot even learn whether a conversation exists
    assert api_client.get(replies_url(999_999)).status_code == 403


def test_an_unknown_conversation_is_a_404_for_staff(staff_user):
    assert token_client(staff_user).get(replies_url(999_999)).status_code == 404


def test_staff_see_replies_in_the_admin_read_only(planned, staff_user):
    # given
    staff_user.is_superuser = True
    staff_user.save()
    client = Client()
    client.force_login(staff_user)
    # when
    listing = client.get("/admin/scheduling/scheduledreply/")
    detail = client.get(f"/admin/scheduling/scheduledreply/{planned.pk}/change/")
    # then
    assert listing.status_code == 200
    assert escape(planned.text[:60]) in listing.content.decode()
    assert detail.status_code == 200
    assert client.get("/admin/scheduling/scheduledreply/add/").status_code == 403


def test_ensure_reply_dispatcher_is_idempotent_and_updates_a_changed_interval():
    out = StringIO()
    call_command("ensure_reply_dispatcher", stdout=out)
    call_command("ensure_reply_dispatcher", stdout=out)
    call_command("ensure_reply_dispatcher", "--every", "2", stdout=out)
    assert out.getvalue().splitlines() == [
        "reply dispatcher created: scheduling.dispatch_due_replies every 5s",
        "reply dispatcher unchanged: scheduling.dispatch_due_replies every 5s",
        "reply dispatcher updated: scheduling.dispatch_due_replies every 2s",
    ]
    task = PeriodicTask.objects.get(name="reply dispatcher")
    assert (task.task, task.interval.every, task.interval.period, task.expire_seconds, task.enabled) == (
        "scheduling.dispatch_due_replies",
        2,
        IntervalSchedule.SECONDS,
        2,
        True,
    )
    assert PeriodicTask.objects.filter(task="scheduling.dispatch_due_replies").count() == 1


def test_ensure_reply_dispatcher_refuses_a_non_positive_interval():
    with pytest.raises(CommandError, match="--every must be at least 1 second, not -3"):
        call_command("ensure_reply_dispatcher", "--every", "-3")
    assert PeriodicTask.objects.filter(name="reply dispatcher").count() == 0


def test_ensure_generator_model_built_the_tiny_model_with_progress(tiny_model_build):
    # the session's tiny model was built by the command itself (tests/scheduling/conftest.py)
    lines = tiny_model_build.output.splitlines()
    assert lines[0] == f"building the tiny generator model into {tiny_model_build.path} (first start only)"
    assert lines[-1] == f"generator model ready: {tiny_model_build.path}"
    assert len(lines) > 2 and all(line.startswith("  ") for line in lines[1:-1])


def test_ensure_generator_model_leaves_a_present_model_alone(settings, tiny_model_dir):
    settings.GENERATOR_MODEL_DIR = tiny_model_dir
    before = (tiny_model_dir / "config.json").stat().st_mtime_ns
    out = StringIO()
    call_command("ensure_generator_model", stdout=out)
    assert out.getvalue() == f"generator model present: {tiny_model_dir}\n"
    assert (tiny_model_dir / "config.json").stat().st_mtime_ns == before


def test_ensure_generator_model_refuses_a_path_that_is_a_file(settings, tmp_path):
    target = tmp_path / "model"
    target.write_text("not a model")
    settings.GENERATOR_MODEL_DIR = target
    with pytest.raises(CommandError, match=f"GENERATOR_MODEL_DIR {target} exists and is not a directory"):
        call_command("ensure_generator_model", stdout=StringIO())
    assert target.read_text() == "not a model"
