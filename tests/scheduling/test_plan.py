"""The plan: a real tiny model answers a person message; read receipt, idempotency, superseded, failures."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from django.db import connection, transaction

from chat.models import Conversation
from companion.generator import GenerationFailed
from scheduling.models import ScheduledReply
from scheduling.services import ReplyPlanInvalid, due_replies_dispatch, reply_plan
from tests.factories import MessageFactory
from tests.scheduling.conftest import ScriptedSource, Step, delivered_messages, post, wait_for

State = ScheduledReply.State


@pytest.mark.django_db
def test_a_real_model_plans_a_reply_with_a_read_receipt_and_a_recorded_proposal(
    conversation, companion, real_generator, settings
):
    # given: a companion that may wait at most 5 minutes, under its 10-minute instant threshold,
    # so whatever time the real model proposes the reply is instant; a flat 3 s typing lead;
    # the plan runs 2 s after the message (the debounce), with time injected
    companion.max_delay_minutes = 5
    companion.save()
    settings.SCHEDULING_TYPING_MIN_SECONDS = 3.0
    settings.SCHEDULING_TYPING_SECONDS_PER_CHAR = 0.0
    settings.SCHEDULING_TYPING_MAX_SECONDS = 3.0
    trigger = post(conversation, "I'm going to eat now")
    now = trigger.created_at + timedelta(seconds=2)
    # when
    reply = reply_plan(conversation_id=conversation.pk, trigger_message_id=trigger.pk, now=now)
    # then: the companion has read the message, and the row records what the model said
    conversation.refresh_from_db()
    assert conversation.companion_read_up_to == trigger.pk
    assert reply.state == State.PENDING
    propose = reply.generation_attempts[0]
    assert (propose["purpose"], propose["ok"], propose["constrained"]) == ("propose", True, True)
    assert datetime.fromisoformat(propose["at"]) == reply.proposed_at
    assert propose["completion"].startswith(
        f"{reply.proposed_at.astimezone(conversation_zone(conversation)):%H:%M}]"
    )
    assert [decision["rule"] for decision in reply.guard_decisions] == [
        "max_delay",
        "complaint_cooldown",
        "delay_ration",
        "instant_threshold",
    ]
    # and the reply is instant: typing starts at the plan's now, the message 3 s later
    assert (reply.is_delayed, reply.final_at) == (False, now)
    assert (reply.typing_at, reply.due_at) == (now, now + timedelta(seconds=3))
    assert reply.safety_hits == []
    assert reply.text == [attempt for attempt in reply.generation_attempts if attempt["ok"]][-1]["text"]
    # and a second run of the same plan (a duplicated task) changes nothing
    assert reply_plan(conversation_id=conversation.pk, trigger_message_id=trigger.pk).pk == reply.pk
    assert ScheduledReply.objects.count() == 1


def conversation_zone(conversation: Conversation):
    from zoneinfo import ZoneInfo

    return ZoneInfo(conversation.time_zone)


@pytest.mark.django_db
def test_a_burst_is_answered_once_from_its_newest_message(conversation, real_generator):
    # given: three messages before any plan ran (the debounce window)
    first, second, third = (post(conversation, text) for text in ("hey", "guess what", "I got the job!"))
    # when: the three plan tasks run in order
    replies = [
        reply_plan(conversation_id=conversation.pk, trigger_message_id=message.pk)
        for message in (first, second, third)
    ]
    # then: the first two are superseded without any model time, the newest is planned
    assert [reply.state for reply in replies] == [State.SUPERSEDED, State.SUPERSEDED, State.PENDING]
    assert [reply.generation_attempts for reply in replies[:2]] == [[], []]
    assert replies[0].outcome_reason == "a newer person message arrived before planning started"
    assert replies[2].generation_attempts[0]["purpose"] == "propose"


@pytest.mark.django_db(transaction=True)
def test_a_plan_that_finishes_after_a_newer_person_message_is_superseded(conversation, real_generator):
    """The plan is under way (started, waiting on the conversation row) when the person writes again.

    It then generates with the real model and finishes after the newer message: superseded,
    nothing to deliver.
    """
    # given: the conversation row is locked, as chat's message_post locks it while storing a message
    trigger = post(conversation, "I'm going to eat now")
    result: dict[str, ScheduledReply] = {}

    def run_plan() -> None:
        try:
            result["reply"] = reply_plan(conversation_id=conversation.pk, trigger_message_id=trigger.pk)
        finally:
            connection.close()

    with transaction.atomic():
        Conversation.objects.select_for_update().get(pk=conversation.pk)
        planner = threading.Thread(target=run_plan)
        planner.start()
        # when: the plan has started and waits for the conversation row...
        wait_for(
            lambda: plan_waits_for_a_lock(), timeout=60, what="the plan to wait for the conversation lock"
        )
        # ...and the person's next message commits first (the same lock, then released)
        newer = post(conversation, "actually wait, one question")
    planner.join(timeout=60)
    # then
    reply = result["reply"]
    assert reply.state == State.SUPERSEDED
    assert reply.outcome_reason == f"person message {newer.pk} arrived while the reply was planned"
    assert reply.generation_attempts[0]["ok"] is True
    assert due_replies_dispatch(now=reply.planned_at + timedelta(days=30)).delivered == 0
    assert delivered_messages(reply) == []


def plan_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        # pg_stat_activity is a per-transaction snapshot; this test asks from inside one.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE '%chat_conversation%FOR UPDATE%'"
        )
        return cursor.fetchone()[0] == 1


@pytest.mark.django_db
def test_no_model_is_a_failed_row_with_the_reason_and_never_a_silent_stuck_conversation(
    conversation, settings, tmp_path
):
    # given: the model directory is empty
    settings.GENERATOR_MODEL_DIR = tmp_path / "missing"
    trigger = post(conversation, "hello?")
    # when
    reply = reply_plan(conversation_id=conversation.pk, trigger_message_id=trigger.pk)
    # then
    assert reply.state == State.FAILED
    assert reply.outcome_reason == (
        f"the reply generator is unavailable: FileNotFoundError: no model at {tmp_path / 'missing'} "
        "(expected a directory with config.json)"
    )
    assert reply.generation_attempts[0]["purpose"] == "load"
    conversation.refresh_from_db()
    assert conversation.companion_read_up_to == trigger.pk


@pytest.mark.django_db
def test_a_failed_proposal_falls_back_to_an_instant_reply(conversation):
    """Scripted boundary: the model's failure modes cannot be provoked on demand from a real model."""
    # given
    failure = GenerationFailed(
        "the model's completion does not parse", completion="25:99] ??", reason="bad_time"
    )
    source = ScriptedSource([Step(error=failure), Step("sorry, what were we saying?")])
    trigger = post(conversation, "hi")
    now = trigger.created_at + timedelta(seconds=2)
    # when
    reply = reply_plan(conversation_id=conversation.pk, trigger_message_id=trigger.pk, source=source, now=now)
    # then
    assert (reply.state, reply.proposed_at, reply.final_at, reply.is_delayed) == (
        State.PENDING,
        None,
        now,
        False,
    )
    assert [a["purpose"] for a in reply.generation_attempts] == ["propose", "fallback_instant"]
    assert reply.generation_attempts[0]["error"] == "GenerationFailed: the model's completion does not parse"
    assert reply.generation_attempts[0]["completion"] == "25:99] ??"
    assert reply.guard_decisions[0]["rule"] == "generation_fallback"
    assert due_replies_dispatch(now=reply.due_at).delivered == 1


@pytest.mark.django_db
def test_when_the_fallback_fails_too_the_row_is_failed_with_both_attempts(conversation):
    """Scripted boundary, as above."""
    source = ScriptedSource([Step(error=GenerationFailed("no parse")), Step(error=RuntimeError("CUDA gone"))])
    trigger = post(conversation, "hi")
    reply = reply_plan(conversation_id=conversation.pk, trigger_message_id=trigger.pk, source=source)
    assert reply.state == State.FAILED
    assert reply.outcome_reason == "generation failed for the proposal and for the instant fallback"
    assert [a["error"] for a in reply.generation_attempts] == [
        "GenerationFailed: no parse",
        "RuntimeError: CUDA gone",
    ]
    assert due_replies_dispatch(now=trigger.created_at + timedelta(days=30)).delivered == 0


@pytest.mark.django_db
def test_plan_ids_that_are_not_a_person_message_of_the_conversation_are_refused(conversation, other_person):
    # given
    companion_message = MessageFactory(conversation=conversation, role="companion", text="hi")
    trigger = post(conversation, "hello")
    # then
    with pytest.raises(ReplyPlanInvalid, match=f"message {companion_message.pk} is not a person message"):
        reply_plan(conversation_id=conversation.pk, trigger_message_id=companion_message.pk)
    with pytest.raises(
        ReplyPlanInvalid, match=f"message {trigger.pk} is not a person message of conversation 0"
    ):
        reply_plan(conversation_id=0, trigger_message_id=trigger.pk)
    assert ScheduledReply.objects.count() == 0


def test_the_generator_is_loaded_once_per_process(real_generator):
    from scheduling.generation import default_reply_source

    assert default_reply_source() is default_reply_source()


@pytest.mark.django_db
def test_a_conversation_the_transcript_cannot_render_ends_failed_with_the_reason(
    conversation, real_generator
):
    # given: a companion whose name cannot be a speaker label (it would read as the person's)
    conversation.companion.name = "User"
    conversation.companion.save()
    trigger = post(conversation, "hi")
    # when
    reply = reply_plan(conversation_id=conversation.pk, trigger_message_id=trigger.pk)
    # then
    assert reply.state == State.FAILED
    assert reply.outcome_reason == (
        "planning failed: TranscriptError: companion name 'User' cannot be a speaker label"
    )
    assert due_replies_dispatch(now=trigger.created_at + timedelta(days=30)).delivered == 0
