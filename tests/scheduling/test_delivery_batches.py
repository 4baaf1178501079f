"""Batched delivery on real PostgreSQL and Redis: a batch's events arrive, in order per conversation, once.

A batch's ``message.created`` events leave as one scripted Redis command after its commit; several
batches (several transactions) deliver replies of the same conversations here.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from chat import realtime, services
from chat.models import Message
from chat.services import CompanionDelivery, DuplicateScheduledReply
from scheduling.models import ScheduledReply
from scheduling.services import delivery, due_replies_dispatch
from tests.factories import ConversationFactory
from tests.scheduling.conftest import pending_reply, queued_tasks
from tests.scheduling.test_delivery import GroupListener

State = ScheduledReply.State
SECOND = timedelta(seconds=1)
SENTINEL = 10**9


def events_until_sentinel(listener: GroupListener) -> list[dict[str, Any]]:
    """Every event before the sentinel ``read`` push (pushes from one process arrive in order)."""
    events = []
    while (event := listener.next_event()) != {"type": "read", "role": "person", "up_to": SENTINEL}:
        events.append(event)
    return events


@pytest.mark.django_db(transaction=True)
def test_every_batch_event_arrives_once_in_order_per_conversation(person):
    # given: three conversations with 4, 3 and 1 due replies, interleaved in due order, delivered
    # in batches of 3 (three transactions, three batches of pushes)
    now = timezone.now()
    conversations = [ConversationFactory(person=person) for _ in range(3)]
    plan = [0, 1, 0, 2, 1, 0, 1, 0]
    replies = [
        pending_reply(conversations[c], due_at=now - (len(plan) - i) * SECOND, text=f"bubble {i}")
        for i, c in enumerate(plan)
    ]
    listeners = [GroupListener(c.pk) for c in conversations]
    # when
    report = due_replies_dispatch(now=now, batch_size=3)
    for c in conversations:
        realtime.broadcast_read(conversation_id=c.pk, role="person", up_to=SENTINEL)
    # then: every reply sent with one message; each socket heard its conversation's messages,
    # each once, in due order (= id order), and nothing else
    assert report.delivered == len(plan)
    assert set(ScheduledReply.objects.values_list("state", flat=True)) == {State.SENT}
    for index, (conversation, listener) in enumerate(zip(conversations, listeners, strict=True)):
        messages = list(Message.objects.filter(conversation=conversation, role="companion").order_by("id"))
        expected_texts = [reply.text for reply, c in zip(replies, plan, strict=True) if c == index]
        assert [m.text for m in messages] == expected_texts
        assert events_until_sentinel(listener) == [realtime.message_created_event(m) for m in messages]


@pytest.mark.django_db
def test_a_batch_naming_one_reply_twice_stores_nothing_and_leaves_the_transaction_usable(conversation):
    # given / when: the same reply twice in one batch
    with transaction.atomic():
        with pytest.raises(DuplicateScheduledReply):
            services.companion_messages_store(
                deliveries=[
                    CompanionDelivery(conversation_id=conversation.pk, scheduled_reply_id=201, text="a"),
                    CompanionDelivery(conversation_id=conversation.pk, scheduled_reply_id=202, text="b"),
                    CompanionDelivery(conversation_id=conversation.pk, scheduled_reply_id=201, text="c"),
                ]
            )
        # then: nothing of it was kept, and the transaction still works
        assert Message.objects.filter(conversation=conversation).count() == 0
        stored = services.companion_messages_store(
            deliveries=[CompanionDelivery(conversation_id=conversation.pk, scheduled_reply_id=203, text="d")]
        )
    [message] = Message.objects.filter(conversation=conversation)
    assert stored == {203: message.pk}
    assert (message.text, message.role, message.client_id, message.log_external_id) == (
        "d",
        "companion",
        "",
        None,
    )


@pytest.mark.django_db(transaction=True)
def test_a_batch_stores_and_pushes_every_text_exactly_as_chat_normalized_it(person):
    # given: texts with quotes, backslashes, braces, newlines, tabs, emoji and Korean
    now = timezone.now()
    texts = ['say "hi" \\ back', "{a,b}\tnull", "  안녕 👋\r\nsee you  ", "'; DROP TABLE x; --"]
    conversations = [ConversationFactory(person=person) for _ in texts]
    for i, (conversation, text) in enumerate(zip(conversations, texts, strict=True)):
        pending_reply(conversation, due_at=now - (len(texts) - i) * SECOND, text=text)
    listeners = [GroupListener(c.pk) for c in conversations]
    # when
    assert due_replies_dispatch(now=now).delivered == len(texts)
    # then
    expected = ['say "hi" \\ back', "{a,b}\tnull", "안녕 👋\nsee you", "'; DROP TABLE x; --"]
    for conversation, listener, text in zip(conversations, listeners, expected, strict=True):
        [message] = Message.objects.filter(conversation=conversation, role="companion")
        assert message.text == text
        assert listener.next_event() == realtime.message_created_event(message)


@pytest.mark.django_db(transaction=True)
def test_overlapped_batches_are_handed_over_without_waiting_and_arrive_in_order_when_the_block_ends(
    conversation,
):
    # given: a listener, and the push loop held by a gate that only this test opens
    listener = GroupListener(conversation.pk)
    loop, _ = realtime._push_loop._started()
    gate = asyncio.Event()

    async def closed_gate() -> None:
        await gate.wait()

    batches = [[(conversation.pk, realtime.read_event(role="person", up_to=n))] for n in (1, 2, 3)]
    with realtime.pushes_overlapped(in_flight=8):
        overlapped = realtime._overlapped.get()
        assert overlapped is not None
        overlapped.submit(closed_gate())
        # when: three batches are broadcast while the gate is shut
        for batch in batches:
            realtime.broadcast_events(batch)
        # then: each call returned with its batch handed over and not sent (a waiting call
        # would have timed out behind the gate)
        assert [future.done() for future in overlapped._in_flight] == [False, False, False, False]
        loop.call_soon_threadsafe(gate.set)
    # and leaving the block waited for them: all three arrived, in the order they were broadcast
    assert all(future.done() for future in overlapped._in_flight) and not overlapped._in_flight
    assert [listener.next_event() for _ in batches] == [batch[0][1] for batch in batches]


@pytest.mark.django_db(transaction=True)
def test_a_batch_reaches_a_redis_that_forgot_the_publish_script(conversation):
    # given: the script ran once, then Redis dropped its script cache (as after a restart)
    listener = GroupListener(conversation.pk)
    realtime.broadcast_events([(conversation.pk, realtime.read_event(role="person", up_to=1))])
    assert listener.next_event() == realtime.read_event(role="person", up_to=1)
    client = redis.Redis.from_url(django_settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0])
    client.script_flush()
    assert client.script_exists(realtime._PUBLISH_BATCH_SHA) == [False]
    # when
    realtime.broadcast_events(
        [(conversation.pk, realtime.read_event(role="person", up_to=n)) for n in (2, 3)]
    )
    # then: both events arrived, in order, and the script is cached again
    assert [listener.next_event(), listener.next_event()] == [
        realtime.read_event(role="person", up_to=2),
        realtime.read_event(role="person", up_to=3),
    ]
    assert client.script_exists(realtime._PUBLISH_BATCH_SHA) == [True]


def _follow_up_tasks() -> list[tuple[str, list[Any]]]:
    return [(task, args) for task, args, _ in queued_tasks("plan")]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("hold_seconds", "expected_batches"),
    [(3600.0, [[0, 1, 2, 3, 4]]), (0.0, [[0, 1], [2, 3], [4]])],
    ids=["held for the run: one task", "held for no time: one task a batch"],
)
def test_a_dispatch_run_queues_the_follow_up_plans_of_its_batches_together(
    person, purged_broker, monkeypatch, hold_seconds, expected_batches
):
    # given: five due replies (follow-ups on, as by default), delivered in batches of two
    monkeypatch.setattr(delivery, "FOLLOW_UP_QUEUE_SECONDS", hold_seconds)
    now = timezone.now()
    conversations = [ConversationFactory(person=person) for _ in range(5)]
    replies = [
        pending_reply(conversation, due_at=now - (5 - i) * SECOND)
        for i, conversation in enumerate(conversations)
    ]
    # when
    assert due_replies_dispatch(now=now, batch_size=2).delivered == 5
    # then: the fan-out tasks carry every delivered message, in delivery order
    messages = [Message.objects.get(scheduled_reply_id=reply.pk).pk for reply in replies]
    assert _follow_up_tasks() == [
        ("scheduling.plan_follow_ups", [[messages[i] for i in batch]]) for batch in expected_batches
    ]
