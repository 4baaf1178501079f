"""Real Celery workers and beat: a worker SIGKILLed mid-delivery, a flushed Redis, duplicated wake-ups."""

from __future__ import annotations

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
    recovery = start_celery_worker(concurrency=2)
    start_celery_beat()
    everything = [reply.pk for reply in due + soon]
    wait_for(
        lambda: ScheduledReply.objects.filter(pk__in=everything, state=State.SENT).count() == 10,
        timeout=60,
        what="every reply to be delivered",
    )
    # and two more dispatcher runs find nothing left to do
    runs_before = recovery.log_text().count("dispatch_due_replies[")
    wait_for(
        lambda: recovery.log_text().count("dispatch_due_replies[") >= runs_before + 4,
        timeout=30,
        what="two more dispatcher runs",
    )
    # then: exactly one message per reply, each the reply's own text
    delivered = list(
        Message.objects.filter(scheduled_reply_id__in=everything).values_list("scheduled_reply_id", "text")
    )
    assert sorted(delivered) == sorted((reply.pk, reply.text) for reply in due + soon)
    assert Message.objects.filter(text="blocker").count() == 0

    # when: one more due reply is woken ten times at once (duplicated wake-ups, real worker)
    extra = pending_reply(ConversationFactory(person=person), due_at=timezone.now(), text="once")
    succeeded_before = wake_successes(recovery)
    for _ in range(10):
        tasks.wake_reply.apply_async(args=[extra.pk])
    wait_for(lambda: wake_successes(recovery) >= succeeded_before + 10, timeout=30, what="ten wake-ups")
    # then: one message
    assert list(Message.objects.filter(scheduled_reply_id=extra.pk).values_list("text", flat=True)) == [
        "once"
    ]
    assert ScheduledReply.objects.get(pk=extra.pk).state == State.SENT


def wake_successes(worker) -> int:
    return sum(
        1
        for line in worker.log_text().splitlines()
        if "scheduling.wake_reply[" in line and "succeeded" in line
    )
