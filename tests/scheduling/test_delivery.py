"""Delivery on real PostgreSQL and Redis: typing then message, cancellation, races, duplicate wake-ups.

Pending replies are set up directly as rows (the state the planner leaves behind); what is
under test is what the wake-ups, the dispatcher and the person's messages do to them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from chat import realtime
from chat.models import Message
from chat.services import message_post
from scheduling import tasks
from scheduling.models import ScheduledReply
from scheduling.services import due_replies_dispatch, reply_deliver, reply_wake, reply_wakes_queue
from tests.conftest import subprocess_environment
from tests.factories import ConversationFactory, MessageFactory
from tests.scheduling.conftest import (
    delivered_messages,
    pending_reply,
    post,
    queued_wakeups,
    run_in_threads,
    sent_once_or_cancelled,
    wait_for,
)

State = ScheduledReply.State
SECOND = timedelta(seconds=1)


class GroupListener:
    """A real Redis channel-layer channel in the conversation's group.

    The pub/sub layer keeps channels per process and per event loop, so the listener owns one
    loop, in a thread of its own, for its whole life (a consumer does the same in daphne).
    """

    def __init__(self, conversation_id: int) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.layer = get_channel_layer()
        self.channel = self._run(self.layer.new_channel())
        self._run(self.layer.group_add(realtime.conversation_group(conversation_id), self.channel))

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def next_event(self) -> dict[str, Any]:
        return self._run(asyncio.wait_for(self.layer.receive(self.channel), timeout=5))["event"]


@pytest.mark.django_db(transaction=True)
def test_a_reply_shows_typing_at_its_typing_time_then_arrives_at_its_due_time(conversation):
    # given
    now = timezone.now()
    reply = pending_reply(conversation, typing_at=now + 10 * SECOND, due_at=now + 13 * SECOND)
    listener = GroupListener(conversation.pk)
    # when / then: early wake-ups only say when to come back
    assert reply_wake(reply_id=reply.pk, now=now) == ("waiting", reply.typing_at)
    assert reply_wake(reply_id=reply.pk, now=reply.typing_at) == ("typing", reply.due_at)
    assert listener.next_event() == {"type": "typing", "role": "companion", "is_typing": True}
    # a duplicate typing wake-up does not type twice
    assert reply_wake(reply_id=reply.pk, now=reply.typing_at + SECOND) == ("typing", reply.due_at)
    assert reply_wake(reply_id=reply.pk, now=reply.due_at) == ("delivered", None)
    event = listener.next_event()
    assert (event["type"], event["message"]["text"], event["message"]["role"]) == (
        "message.created",
        "back~",
        "companion",
    )
    reply.refresh_from_db()
    [message] = delivered_messages(reply)
    assert (reply.state, reply.message_id, reply.sent_at, reply.typing_started_at) == (
        State.SENT,
        message.pk,
        reply.due_at,
        reply.typing_at,
    )
    assert reply_wake(reply_id=reply.pk, now=reply.due_at + SECOND) == ("done", None)
    assert reply_wake(reply_id=0, now=now) == ("done", None)


@pytest.mark.django_db(transaction=True)
def test_the_person_writing_cancels_the_pending_reply_and_takes_back_its_typing(conversation, purged_broker):
    # given: the companion is already "typing"
    now = timezone.now()
    reply = pending_reply(conversation, typing_at=now, due_at=now + 5 * SECOND)
    reply_wake(reply_id=reply.pk, now=now)
    listener = GroupListener(conversation.pk)
    # when
    newer = post(conversation, "wait, before you go")
    # then
    reply.refresh_from_db()
    assert (reply.state, reply.cancelled_at is not None) == (State.CANCELLED, True)
    assert reply.outcome_reason == f"cancelled by person message {newer.pk}"
    events = [listener.next_event(), listener.next_event()]
    assert {"type": "typing", "role": "companion", "is_typing": False} in events
    assert due_replies_dispatch(now=now + timedelta(days=1)).delivered == 0
    assert delivered_messages(reply) == []


@pytest.mark.django_db
def test_the_dispatcher_delivers_only_due_rows_and_requeues_a_lost_wakeup_after_the_horizon(
    conversation, person, purged_broker, django_capture_on_commit_callbacks
):
    # given: one reply due, one typing within the minute (due in 90 s), one an hour away; a clock
    # on a whole minute so every time below is a literal
    now = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)
    others = [ConversationFactory(person=person) for _ in range(2)]
    due = pending_reply(conversation, due_at=now - SECOND)
    soon = pending_reply(others[0], typing_at=now + 30 * SECOND, due_at=now + 90 * SECOND)
    later = pending_reply(others[1], due_at=now + timedelta(hours=1))
    # when
    report = due_replies_dispatch(now=now)
    # then: the due row is sent, the one typing within the 60 s horizon gets a wake-up
    assert (report.delivered, report.wakeups_queued) == (1, 1)
    states = dict(ScheduledReply.objects.values_list("id", "state"))
    assert states == {due.pk: State.SENT, soon.pk: State.PENDING, later.pk: State.PENDING}
    assert ScheduledReply.objects.get(pk=soon.pk).wake_queued_at == now
    # when: a second run inside the horizon: the wake-up may still be on its way, nothing is queued
    assert due_replies_dispatch(now=now + SECOND).wakeups_queued == 0
    # when: 61 s later that wake-up never ran (this test's transaction never committed it: lost)
    with django_capture_on_commit_callbacks(execute=True):
        requeue = due_replies_dispatch(now=now + 61 * SECOND)
    # then: the re-queue itself: counted, stamped on the row, and a wake-up naming the reply is in
    # the broker, for the end of the 100 ms slot of its typing time 12:00:30.000 (on a slot
    # boundary, so the slot ends at 12:00:30.000 itself)
    assert (requeue.delivered, requeue.wakeups_queued) == (0, 1)
    assert ScheduledReply.objects.get(pk=soon.pk).wake_queued_at == datetime(2031, 5, 1, 12, 1, 1, tzinfo=UTC)
    assert queued_wakeups() == [
        ("scheduling.wake_reply", [soon.pk], datetime(2031, 5, 1, 12, 0, 30, tzinfo=UTC)),
    ]


@pytest.mark.django_db
def test_chat_refusing_the_text_marks_the_reply_failed_with_the_reason(conversation):
    # given: a text chat's rules refuse (empty after trimming)
    reply = pending_reply(conversation, due_at=timezone.now(), text="   ")
    # when
    assert reply_deliver(reply_id=reply.pk, now=reply.due_at) is False
    # then
    reply.refresh_from_db()
    assert reply.state == State.FAILED
    assert reply.outcome_reason.startswith("chat refused the text: ")
    assert delivered_messages(reply) == []


@pytest.mark.django_db
def test_a_person_message_whose_plan_wakeup_was_lost_is_planned_again(conversation, purged_broker):
    # given: a message two minutes old and no plan row (its Celery message was lost)
    MessageFactory(conversation=conversation, text="hello?", created_at=timezone.now() - timedelta(minutes=2))
    # when
    first = due_replies_dispatch()
    second = due_replies_dispatch()
    # then: queued once; the second run is damped while that plan may still be running
    assert (first.plans_requeued, second.plans_requeued) == (1, 0)


class LockstepThreads:
    """Two long-lived threads (each with its own database connection) released together per round."""

    def __init__(self, count: int) -> None:
        self.start = threading.Barrier(count + 1)
        self.done = threading.Barrier(count + 1)
        self.work: list[Any] = [None] * count
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._loop, args=(index,), daemon=True) for index in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def _loop(self, index: int) -> None:
        try:
            while True:
                self.start.wait()
                work = self.work[index]
                if work is None:
                    return
                try:
                    work()
                except BaseException as exc:  # asserted on by the test
                    self.errors.append(exc)
                self.done.wait()
        finally:
            connection.close()

    def run_round(self, *work: Any) -> None:
        self.work = list(work)
        self.start.wait()
        self.done.wait()

    def stop(self) -> None:
        self.work = [None] * len(self.threads)
        self.start.wait()
        for thread in self.threads:
            thread.join(timeout=10)


def in_forced_order(*, first: Callable[[], Any], then: Callable[[], Any]) -> tuple[Any, Any, bool]:
    """Run ``first`` and commit it only after ``then`` has started; return both results and a flag.

    ``first`` runs in a thread of its own, inside a transaction that stays open (so its row locks
    stay held) until ``then``, run here, has returned or is waiting on a lock in PostgreSQL. So
    ``first`` always holds its locks before ``then`` starts: the interleaving is forced, not
    hoped for. The flag says whether ``then`` was seen waiting on those locks.
    """
    holding, then_done, then_waited = threading.Event(), threading.Event(), threading.Event()
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def then_returned_or_waits() -> bool:
        if then_done.is_set():
            return True
        if session_waiting_on_a_row_lock():
            then_waited.set()
            return True
        return False

    def hold() -> None:
        try:
            with transaction.atomic():
                results["first"] = first()
                holding.set()
                wait_for(
                    then_returned_or_waits,
                    timeout=30,
                    what="the second session to finish or to wait on the first one's locks",
                )
        except BaseException as exc:  # asserted on below
            errors.append(exc)
        finally:
            holding.set()
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(timeout=30)
    try:
        results["then"] = then()
    finally:
        then_done.set()
        thread.join(timeout=30)
    assert errors == []
    return results["first"], results["then"], then_waited.is_set()


@pytest.mark.django_db(transaction=True)
def test_race_person_message_against_delivery_both_orders_forced_then_1000_free_rounds(
    conversation, purged_broker
):
    """Each order forced once, each with its own outcome; then 1000 rounds released together.

    Delivery first: the person's message waits for the delivery's locks and the reply is sent.
    Message first: the delivery skips the locked row and the reply is cancelled. Released
    together, every round ends sent with one message or cancelled with none.
    """
    person = conversation.person

    # given: a due reply; when: a delivery holds it while the person writes
    reply = pending_reply(conversation, due_at=timezone.now() - SECOND)
    delivered, (message, _), message_waited = in_forced_order(
        first=lambda: reply_deliver(reply_id=reply.pk),
        then=lambda: message_post(conversation=conversation, author=person, text="hi", client_id="forced-1"),
    )
    # then: the message waited for the delivery; sent with its one message, nothing cancelled
    assert (delivered, message_waited) == (True, True)
    assert (sent_once_or_cancelled(reply), reply.outcome_reason) == (State.SENT, "")
    assert message.pk > reply.message_id

    # given: another due reply; when: the person's message holds it while a delivery runs
    reply = pending_reply(conversation, due_at=timezone.now() - SECOND)
    (message, _), delivered, delivery_waited = in_forced_order(
        first=lambda: message_post(
            conversation=conversation, author=person, text="hey", client_id="forced-2"
        ),
        then=lambda: reply_deliver(reply_id=reply.pk),
    )
    # then: the delivery skipped the locked row without waiting; cancelled with no message
    assert (delivered, delivery_waited, sent_once_or_cancelled(reply)) == (False, False, State.CANCELLED)
    assert reply.outcome_reason == f"cancelled by person message {message.pk}"

    # and released together, 1000 times
    outcomes: Counter[str] = Counter()
    threads = LockstepThreads(2)
    try:
        for round_number in range(1000):
            # given: a due reply
            reply = pending_reply(conversation, due_at=timezone.now() - SECOND)
            # when: the person's message and the delivery are released together
            threads.run_round(
                lambda n=round_number: message_post(
                    conversation=conversation, author=person, text=f"round {n}", client_id=f"r{n}"
                ),
                lambda reply_id=reply.pk: reply_deliver(reply_id=reply_id),
            )
            # then
            assert threads.errors == []
            outcomes[sent_once_or_cancelled(reply)] += 1
    finally:
        threads.stop()
    assert outcomes[State.SENT] + outcomes[State.CANCELLED] == 1000
    assert (
        Message.objects.filter(conversation=conversation, role="person", client_id__startswith="r").count()
        == 1000
    )
    print(f"race outcomes: {dict(outcomes)}")


@pytest.mark.django_db(transaction=True)
def test_ten_duplicate_wakeups_at_once_make_one_message(conversation, purged_broker):
    # given
    reply = pending_reply(conversation, due_at=timezone.now() - SECOND)
    results: list[str] = []
    lock = threading.Lock()

    def wake() -> None:
        action = tasks.wake_reply.apply(args=(reply.pk,)).get()
        with lock:
            results.append(action)

    # when
    errors = run_in_threads(*[wake] * 10)
    # then
    assert errors == []
    assert len(delivered_messages(reply)) == 1
    reply.refresh_from_db()
    assert reply.state == State.SENT
    assert results.count("delivered") == 1
    assert len(results) == 10
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_one_wakeup_advances_every_reply_whose_time_came_and_a_duplicate_finds_nothing_left(
    person, purged_broker
):
    # given: three conversations with a due reply, two whose typing time came, one an hour away
    now = timezone.now()
    conversations = [ConversationFactory(person=person) for _ in range(6)]
    due = [
        pending_reply(c, due_at=now - (3 - i) * SECOND, text=f"due {i}")
        for i, c in enumerate(conversations[:3])
    ]
    # due about a minute from now, 30 ms into a whole second: 12:34:56.030 say
    typing_due = (now + 60 * SECOND).replace(microsecond=30_000)
    typing = [pending_reply(c, typing_at=now - SECOND, due_at=typing_due) for c in conversations[3:5]]
    later = pending_reply(conversations[5], due_at=now + timedelta(hours=1))
    due_listener, typing_listener = GroupListener(conversations[2].pk), GroupListener(conversations[3].pk)
    # when: the first due reply's wake-up runs (through Celery, in this process)
    assert tasks.wake_reply.apply(args=(due[0].pk,)).get() == "delivered"
    # then: every due reply is sent with its one message, every due typing started, at one moment
    for reply in [*due, *typing, later]:
        reply.refresh_from_db()
    [woke_at] = {reply.sent_at for reply in due} | {reply.typing_started_at for reply in typing}
    for reply in due:
        [message] = delivered_messages(reply)
        assert (reply.state, reply.message_id, message.text) == (State.SENT, message.pk, reply.text)
    assert [(reply.state, delivered_messages(reply)) for reply in typing] == [(State.PENDING, [])] * 2
    assert (later.state, later.typing_started_at, delivered_messages(later)) == (State.PENDING, None, [])
    event = due_listener.next_event()
    assert (event["type"], event["message"]["text"]) == ("message.created", "due 2")
    assert typing_listener.next_event() == {"type": "typing", "role": "companion", "is_typing": True}
    # and one wake-up is queued for the typing replies' shared due time, at the end of its 100 ms
    # slot: :56.030 lies in the slot (:56.000, :56.100], so the wake-up is for :56.100
    [(task, [named], eta)] = queued_wakeups()
    assert (task, named in {typing[0].pk, typing[1].pk}, eta) == (
        "scheduling.wake_reply",
        True,
        typing_due.replace(microsecond=100_000),
    )

    # when: the same wake-up again, a delivered reply's own wake-up, a typing reply's own wake-up
    again = [tasks.wake_reply.apply(args=(reply.pk,)).get() for reply in (due[0], due[2], typing[1])]
    # then: nothing left to do; no second message, no second typing, no new wake-up
    assert again == ["done", "done", "typing"]
    assert Message.objects.filter(role=Message.Role.COMPANION).count() == 3
    assert set(
        ScheduledReply.objects.filter(pk__in=[reply.pk for reply in typing]).values_list(
            "typing_started_at", flat=True
        )
    ) == {woke_at}
    assert queued_wakeups() == []


def test_wakeups_are_queued_one_per_slot_naming_the_first_reply_of_each(settings, purged_broker):
    # given: 100 ms slots and a clock on a slot boundary
    settings.SCHEDULING_WAKE_RESOLUTION_SECONDS = 0.1
    now = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)
    ms = timedelta(milliseconds=1)
    # when: events in two slots, one already past, then a late event in a queued slot
    wakes = [(11, 1010 * ms), (12, 1050 * ms), (13, 1100 * ms), (14, 1130 * ms), (15, -5 * SECOND)]
    first = reply_wakes_queue(wakes=[(reply_id, now + offset) for reply_id, offset in wakes], now=now)
    again = reply_wakes_queue(wakes=[(16, now + 1199 * ms)], now=now)
    # then: one task per slot, at the slot's end; a past event gets the next slot, never now
    assert (first, again) == (3, 0)
    assert queued_wakeups() == [
        ("scheduling.wake_reply", [15], now + 100 * ms),
        ("scheduling.wake_reply", [11], now + 1100 * ms),
        ("scheduling.wake_reply", [14], now + 1200 * ms),
    ]


def session_waiting_on_a_row_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_a_person_message_that_waits_on_a_typing_wakeup_takes_that_typing_back(conversation, purged_broker):
    # given: a wake-up (another session) has marked the reply typing and not committed yet
    now = timezone.now()
    reply = pending_reply(conversation, typing_at=now - SECOND, due_at=now + 30 * SECOND)
    listener = GroupListener(conversation.pk)
    wakeup = psycopg.connect(subprocess_environment()["DATABASE_URL"].replace("postgres://", "postgresql://"))
    wakeup.execute(
        "UPDATE scheduling_scheduledreply SET typing_started_at = now() WHERE id = %s", (reply.pk,)
    )
    # when: the person writes (the cancellation waits for the row), then the wake-up commits
    errors: list[BaseException] = []

    def write() -> None:
        try:
            post(conversation, "one more thing")
        except BaseException as exc:  # asserted below
            errors.append(exc)
        finally:
            connection.close()

    writer = threading.Thread(target=write)
    writer.start()
    wait_for(session_waiting_on_a_row_lock, timeout=30, what="the cancellation to wait on the reply row")
    wakeup.commit()
    wakeup.close()
    writer.join(timeout=30)
    # then: the reply is cancelled and the typing it showed is taken back
    assert errors == []
    reply.refresh_from_db()
    assert reply.state == State.CANCELLED
    events = [listener.next_event(), listener.next_event()]
    assert {"type": "typing", "role": "companion", "is_typing": False} in events
    assert sorted(event["type"] for event in events) == ["message.created", "typing"]


@pytest.mark.django_db(transaction=True)
def test_a_dispatched_batch_with_one_refused_text_delivers_the_others_and_fails_that_one(person):
    # given: three due replies in three conversations, the middle one's text refused by chat
    now = timezone.now()
    conversations = [ConversationFactory(person=person) for _ in range(3)]
    texts = ["back~", "   ", "  see you\r\nsoon  "]
    replies = [
        pending_reply(c, due_at=now - (3 - i) * SECOND, text=text)
        for i, (c, text) in enumerate(zip(conversations, texts, strict=True))
    ]
    listeners = [GroupListener(c.pk) for c in conversations]
    # when
    report = due_replies_dispatch(now=now)
    # then: one INSERT for two messages, the refused row failed with chat's reason
    assert report.delivered == 2
    for reply in replies:
        reply.refresh_from_db()
    sent, refused, normalized = replies
    assert (sent.state, refused.state, normalized.state) == (State.SENT, State.FAILED, State.SENT)
    assert refused.outcome_reason == "chat refused the text: The message is empty."
    assert (refused.sent_at, refused.message_id, delivered_messages(refused)) == (None, None, [])
    for reply, text in ((sent, "back~"), (normalized, "see you\nsoon")):
        [message] = delivered_messages(reply)
        assert (reply.message_id, reply.sent_at, message.text, message.role, message.conversation_id) == (
            message.pk,
            now,
            text,
            "companion",
            reply.conversation_id,
        )
        event = listeners[replies.index(reply)].next_event()
        assert (event["type"], event["message"]["id"], event["message"]["text"]) == (
            "message.created",
            message.pk,
            text,
        )


@pytest.mark.django_db
def test_a_batch_meeting_an_existing_message_records_it_and_still_delivers_the_rest(person):
    # given: a writer that bypassed the state check already stored the first reply's message
    now = timezone.now()
    first, second = (
        pending_reply(ConversationFactory(person=person), due_at=now - 2 * SECOND),
        pending_reply(ConversationFactory(person=person), due_at=now - SECOND),
    )
    existing = MessageFactory(
        conversation=first.conversation,
        role=Message.Role.COMPANION,
        text="back~",
        scheduled_reply_id=first.pk,
    )
    # when
    report = due_replies_dispatch(now=now)
    # then: no second message; the first row points at the existing one, the second is delivered
    assert report.delivered == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, first.message_id, delivered_messages(first)) == (State.SENT, existing.pk, [existing])
    [message] = delivered_messages(second)
    assert (second.state, second.message_id) == (State.SENT, message.pk)


@pytest.mark.django_db(transaction=True)
def test_race_person_message_against_a_dispatched_batch_both_orders_forced_then_200_free_rounds(
    conversation, person, purged_broker
):
    """The batch path under the same race: each order forced once, then 200 rounds released together."""
    other = ConversationFactory(person=person)

    def due_pair() -> tuple[ScheduledReply, ScheduledReply]:
        """A due reply in the person's conversation and one in another conversation."""
        return (
            pending_reply(conversation, due_at=timezone.now() - SECOND),
            pending_reply(other, due_at=timezone.now() - SECOND),
        )

    def post_now(client_id: str) -> Message:
        return message_post(conversation=conversation, author=person, text="hi", client_id=client_id)[0]

    # given: two due replies; when: a dispatcher holds both while the person writes
    reply, bystander = due_pair()
    report, message, message_waited = in_forced_order(
        first=due_replies_dispatch, then=lambda: post_now("forced-1")
    )
    # then: the message waited; both are sent, each with its one message; nothing is cancelled
    assert (report.delivered, message_waited) == (2, True)
    assert (sent_once_or_cancelled(reply), sent_once_or_cancelled(bystander)) == (
        State.SENT,
        State.SENT,
    )
    assert message.pk > reply.message_id

    # given: two more; when: the person's message holds its conversation while a dispatcher runs
    reply, bystander = due_pair()
    message, report, dispatcher_waited = in_forced_order(
        first=lambda: post_now("forced-2"), then=due_replies_dispatch
    )
    # then: the dispatcher skipped the locked rows without waiting and delivered the bystander
    # only; the person's reply is cancelled with no message
    assert (report.delivered, dispatcher_waited) == (1, False)
    assert (sent_once_or_cancelled(reply), sent_once_or_cancelled(bystander)) == (
        State.CANCELLED,
        State.SENT,
    )
    assert reply.outcome_reason == f"cancelled by person message {message.pk}"

    # and released together, 200 times
    outcomes: Counter[str] = Counter()
    threads = LockstepThreads(2)
    try:
        for round_number in range(200):
            # given: a due reply in the person's conversation and one in another conversation
            reply, bystander = due_pair()
            # when: the person's message and a dispatcher run are released together
            threads.run_round(
                lambda n=round_number: message_post(
                    conversation=conversation, author=person, text=f"batch round {n}", client_id=f"b{n}"
                ),
                due_replies_dispatch,
            )
            # then
            assert threads.errors == []
            outcomes[sent_once_or_cancelled(reply)] += 1
            bystander.refresh_from_db()
            assert [m.pk for m in delivered_messages(bystander)] == [bystander.message_id]
            assert bystander.state == State.SENT
    finally:
        threads.stop()
    assert outcomes[State.SENT] + outcomes[State.CANCELLED] == 200
    print(f"batch race outcomes: {dict(outcomes)}")


@pytest.mark.django_db
def test_synchronous_pushes_share_one_loop_and_a_forked_worker_starts_its_own(conversation):
    # given: pushes from this process (a Celery prefork parent would have made some before forking)
    listener = GroupListener(conversation.pk)
    realtime.broadcast_typing(conversation_id=conversation.pk, role="companion", is_typing=True)
    loop = realtime._push_loop._started()
    realtime.broadcast_typing(conversation_id=conversation.pk, role="companion", is_typing=False)
    assert realtime._push_loop._started() == loop
    assert [listener.next_event(), listener.next_event()] == [
        {"type": "typing", "role": "companion", "is_typing": True},
        {"type": "typing", "role": "companion", "is_typing": False},
    ]
    # when: a forked child pushes (the parent's loop thread does not exist there)
    child = os.fork()
    if child == 0:
        code = 1
        try:
            realtime.broadcast_read(conversation_id=conversation.pk, role="person", up_to=7)
            code = 0 if realtime._push_loop._started()[1] is not loop[1] else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20
    while (waited := os.waitpid(child, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    if waited == (0, 0):
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    # then: the child's push arrived through its own loop; the parent's loop still works
    assert os.waitstatus_to_exitcode(waited[1]) == 0
    assert listener.next_event() == {"type": "read", "role": "person", "up_to": 7}
    realtime.broadcast_read(conversation_id=conversation.pk, role="person", up_to=8)
    assert listener.next_event() == {"type": "read", "role": "person", "up_to": 8}
    assert realtime._push_loop._started() == loop
