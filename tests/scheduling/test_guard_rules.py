"""Guard rules through the public path: a person message in, what arrives and when.

The model boundary is a scripted ReplySource here (and only for the guard rules): a rule can
only be shown to change a time if the proposed time is known exactly. Time is injected
(``now``), never slept through: the dispatcher runs at ``due_at - 1s`` (nothing arrives) and at
``due_at`` (the reply arrives).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from chat.models import Message
from scheduling.guard_rules import INSTANT, GuardHistory, GuardSettings, PersonTurn, apply_guard_rules
from scheduling.lexicon import complaint_phrases
from scheduling.models import ScheduledReply
from scheduling.services import due_replies_dispatch, reply_plan
from tests.factories import MessageFactory
from tests.scheduling.conftest import ScriptedSource, Step, delivered_messages, post

pytestmark = pytest.mark.django_db

SECOND = timedelta(seconds=1)
# Typing leads below are worked out by hand from the default settings: 1 s + 0.08 s per
# character, at most 8 s.


def plan(conversation, text: str, source: ScriptedSource, *, after: timedelta = 2 * SECOND):
    """Post ``text`` and plan its answer ``after`` the message (the debounce), with time injected."""
    trigger = post(conversation, text)
    now = trigger.created_at + after
    reply = reply_plan(conversation_id=conversation.pk, trigger_message_id=trigger.pk, source=source, now=now)
    return trigger, reply, now


def arrives_exactly_at(reply: ScheduledReply) -> Message:
    """Nothing is delivered a second before ``due_at``; exactly one message at ``due_at``."""
    assert reply.due_at is not None, f"reply {reply.pk} has no due time"
    assert due_replies_dispatch(now=reply.due_at - SECOND).delivered == 0
    assert delivered_messages(reply) == []
    assert due_replies_dispatch(now=reply.due_at).delivered == 1
    [message] = delivered_messages(reply)
    reply.refresh_from_db()
    assert (reply.state, reply.message_id) == (ScheduledReply.State.SENT, message.pk)
    return message


def changed_rules(reply: ScheduledReply) -> list[str]:
    return [decision["rule"] for decision in reply.guard_decisions if decision["changed"]]


def test_a_delay_no_rule_objects_to_is_kept_and_the_text_is_not_regenerated(conversation):
    # given
    source = ScriptedSource([Step("back! lunch was great", delay=timedelta(minutes=40))])
    # when
    trigger, reply, _now = plan(conversation, "I'm going to eat now", source)
    # then
    assert reply.state == ScheduledReply.State.PENDING
    assert reply.proposed_at == reply.final_at == trigger.created_at + timedelta(minutes=40)
    assert reply.due_at == trigger.created_at + timedelta(minutes=40)
    # "back! lunch was great" is 21 characters: 1 s + 21 x 0.08 s = 2.68 s of typing
    assert reply.typing_at == reply.due_at - timedelta(seconds=2, milliseconds=680)
    assert reply.is_delayed is True
    assert changed_rules(reply) == []
    assert [decision["rule"] for decision in reply.guard_decisions] == [
        "max_delay",
        "complaint_cooldown",
        "delay_ration",
        "instant_threshold",
        "quiet_hours",  # a delayed answer meets them too (off for the test companion)
    ]
    assert [call.forced_at for call in source.calls] == [None]
    assert arrives_exactly_at(reply).text == "back! lunch was great"


def test_a_delay_under_the_threshold_becomes_instant_with_text_written_for_now(conversation):
    # given: 5 minutes proposed, threshold 10 minutes
    source = ScriptedSource([Step("brb", delay=timedelta(minutes=5)), Step("haha right, what's up?")])
    # when
    trigger, reply, now = plan(conversation, "you there?", source)
    # then
    assert reply.proposed_at == trigger.created_at + timedelta(minutes=5)
    assert reply.final_at == now
    # "haha right, what's up?" is 22 characters: 1 s + 22 x 0.08 s = 2.76 s of typing
    assert (reply.typing_at, reply.due_at) == (now, now + timedelta(seconds=2, milliseconds=760))
    assert reply.is_delayed is False
    assert changed_rules(reply) == ["instant_threshold"]
    decision = next(d for d in reply.guard_decisions if d["rule"] == "instant_threshold")
    assert (decision["before_seconds"], decision["after_seconds"]) == (300.0, 0.0)
    assert decision["reason"] == "5 min is shorter than 10 min"
    assert [call.forced_at for call in source.calls] == [None, now]
    assert [attempt["purpose"] for attempt in reply.generation_attempts] == ["propose", "guard_retime"]
    assert arrives_exactly_at(reply).text == "haha right, what's up?"


def test_one_delayed_reply_within_the_last_k_companion_turns_rations_the_next_delay(conversation):
    # given: the companion's last reply was a delayed one (delivered)
    _first_trigger, first, _ = plan(
        conversation, "going to eat", ScriptedSource([Step("back~", delay=timedelta(minutes=40))])
    )
    arrives_exactly_at(first)
    source = ScriptedSource([Step("later!", delay=timedelta(minutes=30)), Step("oh hey, tell me more")])
    # when
    _trigger, reply, now = plan(conversation, "what did you eat?", source)
    # then
    assert changed_rules(reply) == ["delay_ration"]
    decision = next(d for d in reply.guard_decisions if d["rule"] == "delay_ration")
    assert decision["reason"] == "companion turn 1 of the last 3 was already delayed"
    assert (reply.final_at, reply.is_delayed) == (now, False)
    assert arrives_exactly_at(reply).text == "oh hey, tell me more"


def test_the_ration_ends_after_k_instant_companion_turns(conversation, companion):
    # given: K = 1 and one instant companion turn since the delayed one
    companion.delay_ration_turns = 1
    companion.save()
    _, first, _ = plan(
        conversation, "going to eat", ScriptedSource([Step("back~", delay=timedelta(minutes=40))])
    )
    arrives_exactly_at(first)
    _, second, _ = plan(conversation, "yay", ScriptedSource([Step("hehe")]))
    arrives_exactly_at(second)
    # when
    trigger, reply, _ = plan(
        conversation, "ok I'm off to class", ScriptedSource([Step("good luck!", delay=timedelta(hours=2))])
    )
    # then
    assert changed_rules(reply) == []
    assert reply.due_at == trigger.created_at + timedelta(hours=2)


@pytest.mark.parametrize(
    "complaint", ["Why aren't you answering??", "stop ignoring me", "왜자꾸 답장 안해", "그만 씹어 ㅠㅠ"]
)
def test_a_complaint_makes_replies_instant_for_the_cooldown(conversation, complaint):
    # given: the person complained about 20 minutes ago (cool-down 60 minutes)
    complained_at = timezone.now() - timedelta(minutes=20)
    MessageFactory(conversation=conversation, text=complaint, created_at=complained_at)
    source = ScriptedSource([Step("see you later", delay=timedelta(minutes=45)), Step("sorry! I'm here")])
    # when
    _trigger, reply, _now = plan(conversation, "anyway", source)
    # then
    assert changed_rules(reply) == ["complaint_cooldown"]
    decision = next(d for d in reply.guard_decisions if d["rule"] == "complaint_cooldown")
    assert decision["reason"].startswith("the person complained (")
    assert decision["reason"].endswith(" ago, within the 60 min cool-down")
    assert arrives_exactly_at(reply).text == "sorry! I'm here"


def test_a_complaint_older_than_the_cooldown_no_longer_prevents_a_delay(conversation):
    # given: the complaint was at least 61 minutes before the plan
    MessageFactory(
        conversation=conversation, text="stop ignoring me", created_at=timezone.now() - timedelta(minutes=59)
    )
    trigger = post(conversation, "ok gotta go study")
    source = ScriptedSource([Step("how did it go?", delay=timedelta(minutes=90))])
    now = trigger.created_at + timedelta(minutes=2)
    # when
    reply = reply_plan(conversation_id=conversation.pk, trigger_message_id=trigger.pk, source=source, now=now)
    # then
    assert changed_rules(reply) == []
    assert reply.due_at == trigger.created_at + timedelta(minutes=90)


def test_a_delay_beyond_the_maximum_is_clamped_and_the_text_rewritten_for_the_new_time(
    conversation, companion
):
    # given: maximum 60 minutes, the model proposes 3 hours
    companion.max_delay_minutes = 60
    companion.save()
    source = ScriptedSource(
        [Step("good morning!", delay=timedelta(hours=3)), Step("I'm back, sorry it took a while")]
    )
    # when
    trigger, reply, _now = plan(conversation, "see you tomorrow", source)
    # then
    clamped = trigger.created_at + timedelta(minutes=60)
    assert (reply.proposed_at, reply.final_at, reply.due_at) == (
        trigger.created_at + timedelta(hours=3),
        clamped,
        clamped,
    )
    assert changed_rules(reply) == ["max_delay"]
    assert [call.forced_at for call in source.calls] == [None, clamped]
    assert arrives_exactly_at(reply).text == "I'm back, sorry it took a while"


def test_reply_time_scale_compresses_the_delay_and_the_typing_lead(conversation, settings):
    # given: 30 minutes at scale 0.01 pass in 18 seconds
    settings.REPLY_TIME_SCALE = 0.01
    source = ScriptedSource([Step("back!", delay=timedelta(minutes=30))])
    # when
    trigger, reply, _now = plan(conversation, "brb shower", source)
    # then
    assert reply.final_at == trigger.created_at + timedelta(minutes=30)
    assert reply.due_at == trigger.created_at + timedelta(seconds=18)
    # "back!" is 5 characters: (1 s + 5 x 0.08 s) x 0.01 = 1.4 s x 0.01 = 14 ms of typing
    assert reply.typing_at == reply.due_at - timedelta(milliseconds=14)
    assert arrives_exactly_at(reply).text == "back!"


def test_the_rules_as_pure_functions_record_every_decision_in_order():
    # given
    settings = GuardSettings(
        instant_threshold=timedelta(minutes=10),
        delay_ration_turns=3,
        complaint_cooldown=timedelta(hours=1),
        max_delay=timedelta(days=7),
    )
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    history = GuardHistory(
        now=now,
        companion_turns_delayed=[False, False, False],
        person_turns=[PersonTurn(at=now - timedelta(hours=2), text="stop ignoring me")],
    )
    # when
    outcome = apply_guard_rules(
        proposed_delay=timedelta(days=9), settings=settings, history=history, complaints=complaint_phrases()
    )
    # then
    assert outcome.final_delay == timedelta(days=7)
    assert [(d.rule, d.changed) for d in outcome.decisions] == [
        ("max_delay", True),
        ("complaint_cooldown", False),
        ("delay_ration", False),
        ("instant_threshold", False),
    ]
    assert outcome.decisions[0].reason == "12960 min exceeds the maximum 10080 min"
    assert (
        apply_guard_rules(
            proposed_delay=-timedelta(minutes=1),
            settings=settings,
            history=history,
            complaints=complaint_phrases(),
        ).final_delay
        == INSTANT
    )
