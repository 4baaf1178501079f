"""Writing first: follow-ups after silence and replies in several bubbles, on real PostgreSQL.

The generator is the scripted source (an exact proposal is what these tests are about: the
guards, the rows and the order of delivery); every clock is injected. The follow-up guards are
also tested as pure functions, and a long randomized run checks the unanswered cap against any
sequence of plans, deliveries and person messages.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.test import Client

from chat.models import Companion, Conversation, Message
from scheduling.guard_rules import (
    FollowUpHistory,
    FollowUpSettings,
    PersonTurn,
    QuietHours,
    apply_follow_up_rules,
    follow_up_precheck,
    quiet_hours_rule,
)
from scheduling.lexicon import leave_alone_phrases
from scheduling.models import ScheduledReply
from scheduling.services import (
    due_replies_dispatch,
    follow_up_plan,
    follow_up_plans_fan_out,
    replies_cancel_pending,
    reply_deliver,
    reply_plan,
    reply_wake,
)
from tests.conftest import token_client
from tests.factories import MessageFactory
from tests.scheduling.conftest import ScriptedSource, Step, post, queued_wakeups

State = ScheduledReply.State
Kind = ScheduledReply.Kind
SEOUL = ZoneInfo("Asia/Seoul")
MINUTE = timedelta(minutes=1)


def seoul(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=SEOUL)


def person_says(conversation: Conversation, text: str, at: datetime) -> Message:
    return MessageFactory.create(conversation=conversation, text=text, created_at=at)


def answered(conversation: Conversation, person_text: str, answer: str, at: datetime) -> Message:
    """The person wrote at ``at`` and the companion's instant answer was delivered in that minute."""
    trigger = person_says(conversation, person_text, at)
    reply = reply_plan(
        conversation_id=conversation.pk,
        trigger_message_id=trigger.pk,
        source=ScriptedSource([Step(answer)]),
        now=at,
    )
    assert reply_deliver(reply_id=reply.pk, now=reply.due_at) is True
    message = Message.objects.get(scheduled_reply_id=reply.pk)
    # The delivered message is stamped by the database clock; the conversation lives at ``at``.
    Message.objects.filter(pk=message.pk).update(created_at=at)
    message.refresh_from_db()
    return message


@pytest.fixture(autouse=True)
def default_quiet_hours(companion):
    """The companion model's own defaults (the test factory turns quiet hours off)."""
    field = Companion._meta.get_field
    companion.quiet_hours_start = field("quiet_hours_start").default
    companion.quiet_hours_end = field("quiet_hours_end").default
    companion.save()
    assert (companion.quiet_hours_start, companion.quiet_hours_end) == (time(23, 0), time(8, 0))
    return companion


def rules(reply: ScheduledReply) -> list[tuple[str, bool]]:
    return [(decision["rule"], decision["changed"]) for decision in reply.guard_decisions]


# --- the follow-up guards, pure ---------------------------------------------------------------

FOLLOW_UP_SETTINGS = FollowUpSettings(
    enabled=True,
    max_unanswered=1,
    per_day=2,
    min_gap=timedelta(minutes=10),
    horizon=timedelta(hours=24),
    quiet_hours=QuietHours(time(23, 0), time(8, 0)),
)
QUIET_HISTORY = FollowUpHistory(unanswered=0, follow_up_days=[], person_turns=[])


@pytest.mark.parametrize(
    ("clock", "inside"),
    [
        (time(22, 59), False),
        (time(23, 0), True),
        (time(2, 30), True),
        (time(7, 59), True),
        (time(8, 0), False),
    ],
)
def test_quiet_hours_wrap_past_midnight(clock, inside):
    local = datetime.combine(date(2026, 3, 3), clock, tzinfo=SEOUL)
    assert QuietHours(time(23, 0), time(8, 0)).contains(local) is inside


def test_a_message_in_quiet_hours_waits_for_their_end_unless_asked_for():
    quiet = QuietHours(time(23, 0), time(8, 0))
    moved, decision = quiet_hours_rule(seoul(3, 23, 40), quiet, asked_for_time=False)
    assert moved == seoul(4, 8, 0)
    assert (decision.rule, decision.changed, decision.after_seconds) == (
        "quiet_hours",
        True,
        8 * 3600 + 20 * 60,
    )
    assert decision.reason == "23:40 is within the quiet hours 23:00-08:00: moved to 08:00"
    # the same minute, asked for ("wake me at ..."): kept
    kept, asked = quiet_hours_rule(seoul(4, 6, 30), quiet, asked_for_time=True)
    assert (kept, asked.changed) == (seoul(4, 6, 30), False)
    assert asked.reason == "06:30 is within 23:00-08:00, but the person asked for a time"
    # equal start and end: no quiet hours at all
    never = QuietHours(time(0, 0), time(0, 0))
    assert quiet_hours_rule(seoul(4, 3, 0), never, asked_for_time=False)[0] == seoul(4, 3, 0)


def test_the_precheck_declines_when_off_left_alone_or_at_the_unanswered_cap():
    leave_alone = leave_alone_phrases()
    off = FollowUpSettings(**{**FOLLOW_UP_SETTINGS.__dict__, "enabled": False})
    declined = follow_up_precheck(off, QUIET_HISTORY, leave_alone)
    assert declined is not None
    assert [(d.rule, d.reason) for d in declined.decisions] == [
        ("follow_ups_enabled", "follow-ups are off for this companion")
    ]
    alone = FollowUpHistory(
        unanswered=0, follow_up_days=[], person_turns=[PersonTurn(seoul(3, 12, 0), "제발 연락하지마")]
    )
    declined = follow_up_precheck(FOLLOW_UP_SETTINGS, alone, leave_alone)
    assert declined is not None
    assert declined.decisions[0].reason == "the person asked to be left alone ('연락하지마')"
    capped = FollowUpHistory(unanswered=1, follow_up_days=[], person_turns=[])
    declined = follow_up_precheck(FOLLOW_UP_SETTINGS, capped, leave_alone)
    assert declined is not None
    assert declined.decisions[0].reason == "1 follow-up(s) since the person last wrote; at most 1"
    assert follow_up_precheck(FOLLOW_UP_SETTINGS, QUIET_HISTORY, leave_alone) is None


@pytest.mark.parametrize(
    ("proposed", "expected", "reason"),
    [
        (seoul(3, 12, 5), None, "5 min is sooner than 10 min"),
        (seoul(4, 12, 1), None, "1441 min is later than the horizon 1440 min"),
        (seoul(3, 13, 0), seoul(3, 13, 0), "1 follow-up(s) on 2026-03-03; at most 2"),
        (seoul(4, 7, 0), seoul(4, 8, 0), "0 follow-up(s) on 2026-03-04; at most 2"),
    ],
)
def test_the_follow_up_time_meets_the_window_quiet_hours_and_daily_cap(proposed, expected, reason):
    history = FollowUpHistory(unanswered=0, follow_up_days=[date(2026, 3, 3)], person_turns=[])
    outcome = apply_follow_up_rules(
        base_local=seoul(3, 12, 0),
        proposed_local=proposed,
        settings=FOLLOW_UP_SETTINGS,
        history=history,
        asked_for_time=False,
    )
    assert outcome.at == expected
    assert outcome.decisions[-1].reason == reason


def test_the_daily_cap_counts_the_final_local_day():
    history = FollowUpHistory(unanswered=0, follow_up_days=[date(2026, 3, 3)] * 2, person_turns=[])
    outcome = apply_follow_up_rules(
        base_local=seoul(3, 12, 0),
        proposed_local=seoul(3, 15, 0),
        settings=FOLLOW_UP_SETTINGS,
        history=history,
        asked_for_time=False,
    )
    assert outcome.declined is True
    assert [(d.rule, d.changed) for d in outcome.decisions] == [
        ("follow_up_window", False),
        ("quiet_hours", False),
        ("daily_cap", True),
    ]


# --- follow-ups in the reply loop -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_follow_up_is_planned_after_the_companion_s_message_and_cancelled_when_the_person_writes(
    conversation,
):
    # given: "going to eat" answered at once at 12:00
    said = answered(conversation, "ok going to eat now", "enjoy your lunch!", seoul(3, 12, 0))
    source = ScriptedSource([Step("so how was lunch?", delay=50 * MINUTE)])
    # when: the follow-up is planned 30 s later
    follow_up = follow_up_plan(message_id=said.pk, source=source, now=seoul(3, 12, 0) + timedelta(seconds=30))
    # then: the model read the transcript ending with the companion's message
    assert follow_up is not None
    assert [call.last_at for call in source.calls] == [seoul(3, 12, 0)]
    assert (follow_up.kind, follow_up.state, follow_up.trigger_message_id) == (
        Kind.FOLLOW_UP,
        State.PENDING,
        said.pk,
    )
    assert (follow_up.text, follow_up.final_at, follow_up.is_delayed) == (
        "so how was lunch?",
        seoul(3, 12, 50),
        True,
    )
    assert rules(follow_up) == [("follow_up_window", False), ("quiet_hours", False), ("daily_cap", False)]
    # and a duplicated plan task changes nothing
    assert follow_up_plan(message_id=said.pk, source=ScriptedSource([])) == follow_up
    # when: the person writes before it is due
    back = post(conversation, "back! it was good")
    # then: the follow-up is cancelled with the answer-to-be still to plan
    follow_up.refresh_from_db()
    assert (follow_up.state, follow_up.outcome_reason) == (
        State.CANCELLED,
        f"cancelled by person message {back.pk}",
    )
    assert Message.objects.filter(scheduled_reply_id=follow_up.pk).count() == 0


@pytest.mark.django_db
def test_a_delivered_follow_up_is_not_followed_again_while_the_person_stays_silent(conversation):
    # given: a follow-up delivered at 12:50 after "enjoy your lunch!" at 12:00
    said = answered(conversation, "lunch time brb", "enjoy your lunch!", seoul(3, 12, 0))
    follow_up = follow_up_plan(
        message_id=said.pk,
        source=ScriptedSource([Step("how was it?", delay=50 * MINUTE)]),
        now=seoul(3, 12, 1),
    )
    assert follow_up is not None
    assert reply_deliver(reply_id=follow_up.pk, now=follow_up.due_at) is True
    sent = Message.objects.get(scheduled_reply_id=follow_up.pk)
    # when: the follow-up's own delivery plans the next one
    again = follow_up_plan(message_id=sent.pk, source=ScriptedSource([]), now=seoul(3, 12, 51))
    # then: declined by the unanswered cap before any model time (the script has no step)
    assert again is not None
    assert (again.kind, again.state) == (Kind.FOLLOW_UP, State.DECLINED)
    assert rules(again) == [("unanswered_cap", True)]
    assert again.outcome_reason == "declined: 1 follow-up(s) since the person last wrote; at most 1"
    # and once the person answers, the companion may follow up again
    person_says(conversation, "sry was busy", seoul(3, 14, 0))
    answer = answered(conversation, "what r u doing", "just reading!", seoul(3, 14, 1))
    after = follow_up_plan(
        message_id=answer.pk,
        source=ScriptedSource([Step("still there?", delay=3 * 60 * MINUTE)]),
        now=seoul(3, 14, 2),
    )
    assert after is not None and after.state == State.PENDING


@pytest.mark.django_db
def test_nothing_is_planned_when_the_person_wrote_after_the_message(conversation):
    said = answered(conversation, "hi", "hey!! what's up", seoul(3, 10, 0))
    person_says(conversation, "not much", seoul(3, 10, 1))
    assert follow_up_plan(message_id=said.pk, source=ScriptedSource([]), now=seoul(3, 10, 2)) is None
    assert ScheduledReply.objects.filter(kind=Kind.FOLLOW_UP).count() == 0


@pytest.mark.django_db
def test_a_follow_up_in_quiet_hours_waits_until_they_end_with_words_for_the_new_time(conversation):
    # given: the companion's good night at 23:30; the model proposes writing at 02:00
    said = answered(conversation, "gonna sleep now", "good night!! sweet dreams", seoul(3, 23, 30))
    source = ScriptedSource(
        [Step("are you up?", delay=150 * MINUTE), Step("good morning!! did you sleep ok?")]
    )
    # when
    follow_up = follow_up_plan(message_id=said.pk, source=source, now=seoul(3, 23, 31))
    # then: moved to 08:00, and the words were written again for 08:00
    assert follow_up is not None and follow_up.state == State.PENDING
    assert follow_up.final_at == seoul(4, 8, 0)
    assert follow_up.proposed_at == seoul(4, 2, 0)
    assert [call.forced_at for call in source.calls] == [None, seoul(4, 8, 0)]
    assert follow_up.text == "good morning!! did you sleep ok?"
    assert rules(follow_up) == [("follow_up_window", False), ("quiet_hours", True), ("daily_cap", False)]


@pytest.mark.django_db
def test_wake_me_at_7_still_arrives_at_7_and_a_plain_good_night_waits_for_8(conversation):
    # given: "wake me up at 7" at 23:10; the model answers at 07:00
    trigger = person_says(conversation, "wake me up at 7 pls", seoul(3, 23, 10))
    asked = reply_plan(
        conversation_id=conversation.pk,
        trigger_message_id=trigger.pk,
        source=ScriptedSource([Step("good morning! it's 7, time to get up!!", delay=470 * MINUTE)]),
        now=seoul(3, 23, 10),
    )
    # then: quiet hours do not hold for an asked-for time
    assert (asked.state, asked.final_at, asked.due_at) == (State.PENDING, seoul(4, 7, 0), seoul(4, 7, 0))
    assert rules(asked)[-1] == ("quiet_hours", False)
    assert reply_deliver(reply_id=asked.pk, now=seoul(4, 6, 59)) is False
    assert reply_deliver(reply_id=asked.pk, now=seoul(4, 7, 0)) is True
    # given: another person says only good night, and the model answers at 07:00 too
    other = Conversation.objects.create(
        person=MessageFactory.create().conversation.person,
        companion=conversation.companion,
        time_zone="Asia/Seoul",
    )
    night = person_says(other, "good night", seoul(3, 23, 10))
    plain = reply_plan(
        conversation_id=other.pk,
        trigger_message_id=night.pk,
        source=ScriptedSource([Step("morning!", delay=470 * MINUTE), Step("good morning!")]),
        now=seoul(3, 23, 10),
    )
    # then: it waits for the end of the quiet hours, with its words rewritten for 08:00
    assert (plain.final_at, plain.text) == (seoul(4, 8, 0), "good morning!")
    assert rules(plain)[-1] == ("quiet_hours", True)


@pytest.mark.django_db
def test_a_person_who_asked_to_be_left_alone_gets_no_follow_up(conversation):
    person_says(conversation, "just stop texting me for today", seoul(3, 15, 0))
    said = answered(conversation, "i mean it", "okay. i'm here when you want to talk", seoul(3, 15, 1))
    declined = follow_up_plan(message_id=said.pk, source=ScriptedSource([]), now=seoul(3, 15, 2))
    assert declined is not None
    assert (declined.state, rules(declined)) == (State.DECLINED, [("leave_alone", True)])
    assert declined.outcome_reason == "declined: the person asked to be left alone ('stop texting me')"


@pytest.mark.django_db
def test_the_dispatcher_requeues_a_follow_up_plan_a_lost_task_never_ran(conversation, settings):
    settings.SCHEDULING_FOLLOW_UP_PLAN_DELAY_SECONDS = 30.0
    cache.clear()
    said = answered(conversation, "off to the gym", "have a good workout!", seoul(3, 18, 0))
    # too early: the fan-out may still come
    assert due_replies_dispatch(now=seoul(3, 18, 1)).follow_up_plans_requeued == 0
    # after the delay and a minute's grace, the plan is queued again, once
    assert due_replies_dispatch(now=seoul(3, 18, 2)).follow_up_plans_requeued == 1
    assert due_replies_dispatch(now=seoul(3, 18, 2)).follow_up_plans_requeued == 0
    # and the fan-out keeps a message only while it still ends the conversation
    assert follow_up_plans_fan_out(message_ids=[said.pk]) == 1
    person_says(conversation, "back", seoul(3, 19, 0))
    assert follow_up_plans_fan_out(message_ids=[said.pk]) == 0


# --- bubbles ----------------------------------------------------------------------------------


@pytest.fixture
def three_bubbles_flat_typing(companion, settings):
    """Replies of up to 3 bubbles; typing a flat 2 s before each."""
    companion.max_bubbles = 3
    companion.save()
    settings.SCHEDULING_TYPING_MIN_SECONDS = 2.0
    settings.SCHEDULING_TYPING_SECONDS_PER_CHAR = 0.0
    settings.SCHEDULING_TYPING_MAX_SECONDS = 2.0
    return companion


@pytest.mark.django_db
def test_bubbles_are_delivered_in_order_with_typing_before_each_and_the_rest_cancelled_mid_way(
    conversation, three_bubbles_flat_typing
):
    # given: up to 3 bubbles; typing takes a flat 2 s; the model answers at once in three bubbles
    now = seoul(3, 20, 0)
    second_ = timedelta(seconds=1)
    trigger = person_says(conversation, "I GOT THE JOB", now)
    source = ScriptedSource(
        [Step("WAIT WHAT", more=((timedelta(0), "congrats!!!"), (MINUTE, "tell me everything")))]
    )
    first = reply_plan(conversation_id=conversation.pk, trigger_message_id=trigger.pk, source=source, now=now)
    # then: one row per bubble, chained, each typed after the one before it is due
    assert source.calls[0].max_bubbles == 3
    rows = list(ScheduledReply.objects.filter(conversation=conversation).order_by("id"))
    assert [(r.kind, r.bubble_index, r.text, r.after_reply_id) for r in rows] == [
        (Kind.ANSWER, 0, "WAIT WHAT", None),
        (Kind.BUBBLE, 1, "congrats!!!", first.pk),
        (Kind.BUBBLE, 2, "tell me everything", rows[1].pk),
    ]
    assert [(r.typing_at, r.due_at) for r in rows] == [
        (now, now + 2 * second_),
        (now + 2 * second_, now + 4 * second_),
        (now + 58 * second_, now + 60 * second_),
    ]
    assert [r.final_at for r in rows] == [now, now, now + MINUTE]
    # when: everything is overdue, a delivery run still sends one bubble at a time, in order
    late = now + 10 * MINUTE
    for expected in (rows[0], rows[1], rows[2]):
        due_replies_dispatch(now=late)
        sent = ScheduledReply.objects.filter(conversation=conversation, state=State.SENT).order_by("id")
        assert list(sent)[-1].pk == expected.pk
    messages = list(
        Message.objects.filter(conversation=conversation, role=Message.Role.COMPANION).order_by("id")
    )
    assert [m.text for m in messages] == ["WAIT WHAT", "congrats!!!", "tell me everything"]


@pytest.mark.django_db
def test_delivering_a_bubble_queues_the_wake_up_of_the_next_at_its_typing_time(
    conversation, three_bubbles_flat_typing, purged_broker, settings
):
    # given: 100 ms wake-up slots; a reply in three bubbles a minute apart, the first one due
    settings.SCHEDULING_WAKE_RESOLUTION_SECONDS = 0.1
    now = seoul(3, 20, 0)
    trigger = person_says(conversation, "guess what", now)
    source = ScriptedSource([Step("what??", more=((MINUTE, "tell me!!"), (MINUTE, "i'm dying here")))])
    first = reply_plan(conversation_id=conversation.pk, trigger_message_id=trigger.pk, source=source, now=now)
    second = first.next_bubble
    assert first.due_at is not None
    assert second.typing_at == now + timedelta(seconds=58)  # due a minute later, typed 2 s before
    queued_wakeups()  # what planning queued
    # when: the first bubble is delivered
    assert reply_deliver(reply_id=first.pk, now=first.due_at) is True
    # then: one wake-up is queued, for the second bubble, at its typing time (on a slot boundary,
    # so the slot ends there); the third is woken once the second is out
    assert queued_wakeups() == [("scheduling.wake_reply", [second.pk], now + timedelta(seconds=58))]


@pytest.mark.django_db
def test_a_bubble_is_typed_only_after_the_one_before_it_is_out_and_cancelled_when_the_person_writes(
    conversation, three_bubbles_flat_typing
):
    now = seoul(3, 20, 0)
    trigger = person_says(conversation, "guess what", now)
    source = ScriptedSource([Step("what??", more=((MINUTE, "tell me!!"), (MINUTE, "i'm dying here")))])
    first = reply_plan(conversation_id=conversation.pk, trigger_message_id=trigger.pk, source=source, now=now)
    second, third = first.next_bubble, first.next_bubble.next_bubble
    # when: a wake-up at the second bubble's typing time, before the first went out
    assert first.due_at is not None and second.typing_at is not None
    reply_wake(reply_id=second.pk, now=second.typing_at)
    # then: the first is delivered, and the second is not typing yet (its turn comes after)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state, second.typing_started_at) == (State.SENT, State.PENDING, None)
    # when: the next wake-up
    reply_wake(reply_id=second.pk, now=second.typing_at + timedelta(seconds=1))
    second.refresh_from_db()
    assert second.typing_started_at == second.typing_at + timedelta(seconds=1)
    # when: the person writes before the second bubble is due
    cause = post(conversation, "ok ok calm down lol")
    # then: the rest of the reply is cancelled, and nothing more arrives
    for row in (second, third):
        row.refresh_from_db()
        assert (row.state, row.outcome_reason) == (State.CANCELLED, f"cancelled by person message {cause.pk}")
    due_replies_dispatch(now=now + timedelta(hours=1))
    assert list(
        Message.objects.filter(conversation=conversation, role=Message.Role.COMPANION).values_list(
            "text", flat=True
        )
    ) == ["what??"]


# --- the unanswered cap, under any sequence of events ------------------------------------------


def _unanswered_follow_ups_in_a_row(conversation: Conversation) -> int:
    """Follow-ups delivered since the person's last message, counted from the messages themselves."""
    last_person = (
        Message.objects.filter(conversation=conversation, role=Message.Role.PERSON).order_by("-id").first()
    )
    after = last_person.pk if last_person else 0
    sent_ids = Message.objects.filter(
        conversation=conversation, role=Message.Role.COMPANION, id__gt=after
    ).values_list("scheduled_reply_id", flat=True)
    return ScheduledReply.objects.filter(id__in=list(sent_ids), kind=Kind.FOLLOW_UP).count()


@pytest.mark.django_db
@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_never_more_than_n_unanswered_follow_ups_across_random_deliveries_and_cancellations(
    conversation, companion, seed
):
    # given: a random cap, and a model that always proposes a follow-up 30-120 minutes later
    rng = random.Random(seed)
    companion.follow_up_max_unanswered = rng.randint(1, 3)
    companion.follow_ups_per_day = 50
    companion.quiet_hours_start = companion.quiet_hours_end = time(0, 0)
    companion.save()
    clock = seoul(3, 9, 0)
    person_says(conversation, "hi", clock)
    for step in range(120):
        clock += timedelta(minutes=rng.randint(1, 90))
        action = rng.choice(["person", "deliver", "deliver", "plan", "plan", "plan"])
        if action == "person":
            trigger = person_says(conversation, f"msg {step}", clock)
            replies_cancel_pending(conversation_id=conversation.pk, cause_message_id=trigger.pk, now=clock)
            reply_plan(
                conversation_id=conversation.pk,
                trigger_message_id=trigger.pk,
                source=ScriptedSource([Step(f"answer {step}")]),
                now=clock,
            )
        elif action == "deliver":
            due_replies_dispatch(now=clock)
            # delivered messages carry the database clock; the conversation lives at ``clock``
            Message.objects.filter(conversation=conversation, created_at__gt=clock).update(created_at=clock)
        else:
            # a plan for the newest companion message, as the fan-out (or a duplicate of it) would queue
            newest = (
                Message.objects.filter(conversation=conversation, role=Message.Role.COMPANION)
                .order_by("-id")
                .first()
            )
            if newest is not None:
                follow_up_plan(
                    message_id=newest.pk,
                    source=ScriptedSource([Step(f"follow {step}", delay=rng.randint(30, 120) * MINUTE)] * 3),
                    now=clock,
                )
        # then, after every event: the cap holds on the delivered messages themselves
        assert _unanswered_follow_ups_in_a_row(conversation) <= companion.follow_up_max_unanswered
    # and the run reached the cap at least once, so the check was not vacuous
    capped = ScheduledReply.objects.filter(conversation=conversation, state=State.DECLINED).count()
    assert capped > 0


# --- what staff see -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_staff_see_follow_ups_and_bubbles_with_their_guard_decisions(conversation, staff_user):
    # given: an answer in two bubbles, delivered, then a follow-up the leave-alone guard declined
    person_says(conversation, "leave me alone tonight ok", seoul(3, 21, 0))
    trigger = person_says(conversation, "jk. but seriously", seoul(3, 21, 1))
    first = reply_plan(
        conversation_id=conversation.pk,
        trigger_message_id=trigger.pk,
        source=ScriptedSource([Step("lol ok", more=((timedelta(0), "i'll be quiet 🤐"),))]),
        now=seoul(3, 21, 1),
    )
    bubble = first.next_bubble
    for row in (first, bubble):
        assert reply_deliver(reply_id=row.pk, now=seoul(3, 21, 5)) is True
    last = Message.objects.get(scheduled_reply_id=bubble.pk)
    declined = follow_up_plan(message_id=last.pk, source=ScriptedSource([]), now=seoul(3, 21, 6))
    assert declined is not None
    client = token_client(staff_user)
    url = f"/api/v1/conversations/{conversation.pk}/replies/"
    # when: staff list the follow-ups, then the bubbles
    follow_ups = client.get(url, {"kind": "follow_up"}).json()
    bubbles = client.get(url, {"kind": "bubble"}).json()
    # then: each row says what it is, what it follows, and why
    assert [(r["id"], r["kind"], r["state"], r["trigger_message_id"]) for r in follow_ups] == [
        (declined.pk, "follow_up", "declined", last.pk)
    ]
    assert follow_ups[0]["guard_decisions"] == [
        {
            "rule": "leave_alone",
            "changed": True,
            "before_seconds": 0.0,
            "after_seconds": 0.0,
            "reason": "the person asked to be left alone ('leave me alone')",
        }
    ]
    assert [(r["id"], r["after_reply_id"], r["bubble_index"], r["trigger_message_id"]) for r in bubbles] == [
        (bubble.pk, first.pk, 1, None)
    ]
    bad = client.get(url, {"kind": "nudge"})
    assert (bad.status_code, bad.json()) == (
        400,
        {"code": "kind_invalid", "detail": "kind must be one of answer, follow_up, bubble."},
    )
    # and the admin lists them with their kind and the rules that decided
    staff_user.is_superuser = True
    staff_user.save()
    admin = Client()
    admin.force_login(staff_user)
    page = admin.get("/admin/scheduling/scheduledreply/?kind=follow_up").content.decode()
    assert "Follow-up" in page and "leave_alone" in page
