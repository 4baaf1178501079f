"""Real Celery workers and beat: a worker SIGKILLed mid-delivery, a flushed Redis, duplicated wake-ups."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from io import StringIO

import psycopg
import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from chat.models import Message
from scheduling import tasks
from scheduling.models import ScheduledReply
from tests.conftest import subprocess_environment
from tests.factories import ConversationFactory, UserFactory
from tests.scheduling.conftest import pending_reply as planned_reply
from tests.scheduling.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.slow]
State = ScheduledReply.State
SECOND = timedelta(seconds=1)


def pending_reply(conversation, *, due_at, text: str) -> ScheduledReply:
    return planned_reply(
        conversation, due_at=due_at, typing_at=due_at - SECOND, text=text, trigger_text="gotta go"
    )


def delivery_blocked_in_the_database() -> bool:
    """A worker's INSERT of the reply message waits on a row lock (it holds the claimed rows)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO \"chat_message\"%'"
        )
        return cursor.fetchone()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_sigkill_during_delivery_and_a_flushed_redis_still_deliver_every_reply_exactly_once(
    start_celery_worker, start_celery_beat, purged_broker
):
    # given: six replies due now and four due in a few seconds (their ETA wake-ups queued in Redis)
    now = timezone.now()
    person = UserFactory(username="kim")
    conversations = [ConversationFactory(person=person) for _ in range(11)]
    due = [
        pending_reply(c, due_at=now - (10 - i) * SECOND, text=f"due {i}")
        for i, c in enumerate(conversations[:6])
    ]
    soon = [
        pending_reply(c, due_at=now + 4 * SECOND, text=f"soon {i}") for i, c in enumerate(conversations[6:10])
    ]
    for reply in soon:
        tasks.wake_reply.apply_async(args=[reply.pk], eta=reply.typing_at)
    # another session holds an uncommitted message for the first reply's id: the worker's
    # INSERT for that reply must wait on it, in the middle of its delivery transaction
    blocker = psycopg.connect(
        subprocess_environment()["DATABASE_URL"].replace("postgres://", "postgresql://")
    )
    blocker.execute(
        "INSERT INTO chat_message (conversation_id, role, text, created_at, client_id, scheduled_reply_id) "
        "VALUES (%s, 'system', 'blocker', now(), '', %s)",
        (conversations[10].pk, due[0].pk),
    )
    worker = start_celery_worker(concurrency=1)
    tasks.dispatch_due_replies.delay()
    wait_for(delivery_blocked_in_the_database, timeout=60, what="the worker to block inside its delivery")
    # when: the worker dies mid-delivery, then Redis loses every queued and unacknowledged task
    worker.kill()
    blocker.rollback()
    blocker.close()
    redis.Redis.from_url(settings.REDIS_URL).flushall()
    # then: nothing was delivered by the dead worker
    assert set(ScheduledReply.objects.values_list("state", flat=True)) == {State.PENDING}
    # when: a fresh worker and beat come up; the dispatcher recovers everything from PostgreSQL
    call_command("ensure_reply_dispatcher", "--every", "1", stdout=StringIO())
    start_celery_worker(concurrency=2)
    start_celery_beat()
    everything = [reply.pk for reply in due + soon]
    wait_for(
        lambda: ScheduledReply.objects.filter(pk__in=everything, state=State.SENT).count() == 10,
        timeout=60,
        what="every reply to be delivered",
    )
    # and two more delivery passes run over the delivered rows: a reply due after everything was
    # sent, with no wake-up of its own (the beat-driven dispatcher, or any wake-up still about,
    # finds it), is delivered; then another
    later = []
    for number in range(2):
        later.append(
            pending_reply(ConversationFactory(person=person), due_at=timezone.now(), text=f"later {number}")
        )
        wait_for(
            lambda reply_id=later[-1].pk: ScheduledReply.objects.filter(
                pk=reply_id, state=State.SENT
            ).exists(),
            timeout=30,
            what=f"a delivery pass to send later reply {number}",
        )
    # then: exactly one message per reply, each the reply's own text: those passes sent nothing twice
    delivered = list(
        Message.objects.filter(
            scheduled_reply_id__in=[*everything, *(reply.pk for reply in later)]
        ).values_list("scheduled_reply_id", "text")
    )
    assert sorted(delivered) == sorted((reply.pk, reply.text) for reply in due + soon + later)
    assert Message.objects.filter(text="blocker").count() == 0

    # when: one more due reply is woken ten times at once (duplicated wake-ups, real worker)
    extra = pending_reply(ConversationFactory(person=person), due_at=timezone.now(), text="once")
    for _ in range(10):
        tasks.wake_reply.apply_async(args=[extra.pk])
    wait_for(
        BrokerDrained(extra.pk),
        timeout=30,
        what="every wake-up of the reply to have run and been acknowledged",
    )
    # then: one message
    assert list(Message.objects.filter(scheduled_reply_id=extra.pk).values_list("text", flat=True)) == [
        "once"
    ]
    assert ScheduledReply.objects.get(pk=extra.pk).state == State.SENT


def wakeups_held_by_the_broker(reply_id: int) -> int:
    """``wake_reply`` tasks naming the reply that Redis still holds: queued, or taken and unacknowledged.

    With ``acks_late`` a task leaves kombu's ``unacked`` hash only once it has finished, so zero
    means every wake-up of the reply has run (a "busy" one re-queues another, which counts too).
    One transaction reads every queue list and the hash, so no message moves between the reads.
    """
    client = redis.Redis.from_url(settings.REDIS_URL)
    lists = [key for key in client.scan_iter(match="delivery*") if client.type(key) == b"list"]
    with client.pipeline(transaction=True) as pipe:
        for key in lists:
            pipe.lrange(key, 0, -1)
        pipe.hvals("unacked")
        *queued, unacked = pipe.execute()
    messages = [json.loads(raw) for items in queued for raw in items]
    messages += [json.loads(raw)[0] for raw in unacked]
    return sum(
        1
        for message in messages
        if message["headers"]["task"] == "scheduling.wake_reply"
        and json.loads(base64.b64decode(message["body"]))[0] == [reply_id]
    )


class BrokerDrained:
    """True once the broker held no wake-up of the reply twice in a row (polled by ``wait_for``).

    Twice: kombu moves a message from its queue list to ``unacked`` in two commands, so a single
    read can fall between them and miss the last one.
    """

    def __init__(self, reply_id: int) -> None:
        self.reply_id = reply_id
        self.empty_reads = 0

    def __call__(self) -> bool:
        self.empty_reads = self.empty_reads + 1 if wakeups_held_by_the_broker(self.reply_id) == 0 else 0
        return self.empty_reads >= 2
