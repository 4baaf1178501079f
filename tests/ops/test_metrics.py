"""/metrics on the real stack: refused without the token, the table's gauges, real workers' metrics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import multiprocess

from companion.ops import metrics as ops_metrics
from scheduling import tasks
from scheduling.models import ScheduledReply
from tests.factories import ConversationFactory, UserFactory
from tests.ops.conftest import METRICS_TOKEN, json_events, sample, scrape
from tests.scheduling.conftest import pending_reply, post, wait_for

State = ScheduledReply.State
LAG_COUNT = "companion_reply_delivery_lag_seconds_count"
OVERDUE = "companion_reply_oldest_overdue_seconds"


@pytest.mark.django_db
def test_metrics_refuses_a_request_without_the_token_and_is_off_without_one(client, settings):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert (response.status_code, response.json()) == (
        404,
        {"code": "metrics_disabled", "detail": "Set METRICS_TOKEN to enable /metrics."},
    )
    settings.METRICS_TOKEN = METRICS_TOKEN
    response = client.get("/metrics")
    assert (response.status_code, response.json(), response["WWW-Authenticate"]) == (
        401,
        {"code": "not_authenticated", "detail": "Send Authorization: Bearer <METRICS_TOKEN>."},
        'Bearer realm="metrics"',
    )
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert (response.status_code, response.json()) == (
        403,
        {"code": "permission_denied", "detail": "The metrics token is wrong."},
    )
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Token {METRICS_TOKEN}")
    assert response.status_code == 403
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert (response.status_code, response["Content-Type"].split(";")[0]) == (200, "text/plain")


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_overdue_gauge_rises_while_no_dispatcher_runs_and_falls_once_one_does(
    client, metrics_dir, monkeypatch, start_celery_worker, purged_broker
):
    # given: a reply due a second ago, and no worker running
    due_at = timezone.now() - timedelta(seconds=1)
    reply = pending_reply(ConversationFactory(person=UserFactory(username="kim")), due_at=due_at)
    # when: the scrape happens ten seconds before it was due
    monkeypatch.setattr(ops_metrics, "clock", lambda: due_at - timedelta(seconds=10))
    assert sample(scrape(client), OVERDUE) == 0.0
    # when: 90 seconds after its due time, still with no dispatcher
    monkeypatch.setattr(ops_metrics, "clock", lambda: due_at + timedelta(seconds=90))
    samples = scrape(client)
    # then: the gauge says 90 s overdue, and one pending reply
    assert (sample(samples, OVERDUE), sample(samples, "companion_replies", state="pending")) == (90.0, 1.0)
    # when: a worker runs the dispatcher
    start_celery_worker(concurrency=1, extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    tasks.dispatch_due_replies.delay()
    wait_for(
        lambda: ScheduledReply.objects.filter(pk=reply.pk, state=State.SENT).exists(),
        timeout=60,
        what="the dispatcher to deliver the reply",
    )
    samples = scrape(client)
    # then: nothing overdue, the reply counted as sent and in the lag histogram
    assert (
        sample(samples, OVERDUE),
        sample(samples, "companion_replies", state="pending"),
        sample(samples, "companion_replies", state="sent"),
        sample(samples, LAG_COUNT),
    ) == (0.0, 0.0, 1.0, 1.0)


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_pending_count_and_lag_histogram_move_as_a_real_planner_plans_and_a_worker_delivers(
    client, metrics_dir, tiny_model_dir, start_celery_worker, purged_broker
):
    # given: a planner with the real tiny model and no delivery worker, both writing metrics
    common = {
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "GENERATOR_MODEL_DIR": str(tiny_model_dir),
        # seven days of proposed delay become a minute at most: the test never waits for the model's clock
        "REPLY_TIME_SCALE": "0.0001",
        "LOG_FORMAT": "json",
    }
    planner = start_celery_worker(concurrency=1, queues="plan", extra_env=common)
    before = scrape(client)
    assert (sample(before, "companion_replies", state="pending"), sample(before, LAG_COUNT)) == (0.0, 0.0)
    # when: two people write to their companions
    person = UserFactory(username="mina")
    # Follow-ups off: a delivered answer would otherwise get a follow-up planned a few ms later
    # (the plan delay times REPLY_TIME_SCALE), a pending row racing the final count of pending ones.
    triggers = [
        post(ConversationFactory(person=person, companion__follow_ups_enabled=False), text)
        for text in ("hi luda", "are you there?")
    ]
    replies = wait_for(
        lambda: (
            (rows := list(ScheduledReply.objects.filter(trigger_message__in=triggers)))
            and len(rows) == 2
            and rows
        ),
        timeout=120,
        what="both plans",
    )
    assert sorted(reply.state for reply in replies) == [State.PENDING, State.PENDING]
    # The planner times and logs a plan once its transaction has committed, so a reader can
    # see the second row a moment before it sees the second plan's timing and log line.
    wait_for(
        lambda: (
            sample(scrape(client), "companion_reply_plan_seconds_count", outcome="pending") == 2.0
            and len(json_events(planner, "reply_planned")) == 2
        ),
        timeout=30,
        what="the planner's metrics and log lines of both plans",
    )
    samples = scrape(client)
    # then: two pending, nothing delivered yet, two plans timed
    assert (
        sample(samples, "companion_replies", state="pending"),
        sample(samples, LAG_COUNT),
        sample(samples, "companion_reply_plan_seconds_count", outcome="pending"),
        sample(samples, "companion_generation_attempts_total", purpose="propose", result="ok"),
    ) == (2.0, 0.0, 2.0, 2.0)
    # and the planner wrote one JSON line per plan
    planned = json_events(planner, "reply_planned")
    assert sorted((entry["reply_id"], entry["state"]) for entry in planned) == sorted(
        (reply.pk, State.PENDING) for reply in replies
    )
    # when: a delivery worker comes up (the replies' wake-ups are waiting in its queue)
    delivery = start_celery_worker(concurrency=1, queues="delivery,celery", extra_env=common)
    tasks.dispatch_due_replies.delay()
    wait_for(
        lambda: ScheduledReply.objects.filter(pk__in=[r.pk for r in replies], state=State.SENT).count() == 2,
        timeout=90,
        what="both deliveries",
    )
    # The worker observes the lag and logs once the batch's transaction has committed, so a
    # reader can see the rows sent a moment before it sees the histogram and the log lines.
    wait_for(
        lambda: (
            sample(scrape(client), LAG_COUNT) == 2.0 and len(json_events(delivery, "reply_delivered")) == 2
        ),
        timeout=30,
        what="the delivery worker's metrics and log lines",
    )
    samples = scrape(client)
    # then: none pending, two sent, the lag histogram holds both deliveries
    assert (
        sample(samples, "companion_replies", state="pending"),
        sample(samples, "companion_replies", state="sent"),
        sample(samples, LAG_COUNT),
        sample(samples, "companion_reply_delivery_lag_seconds_bucket", le="+Inf"),
        sample(samples, "companion_messages_posted_total", role="companion"),
    ) == (0.0, 2.0, 2.0, 2.0, 2.0)
    # and the delivery worker wrote one JSON line per delivered reply
    delivered = json_events(delivery, "reply_delivered")
    assert sorted(
        (entry["reply_id"], entry["conversation_id"], entry["state"]) for entry in delivered
    ) == sorted((reply.pk, reply.conversation_id, State.SENT) for reply in replies)


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_metrics_of_two_worker_processes_add_up(client, metrics_dir, start_celery_worker, purged_broker):
    person = UserFactory(username="jun")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    # given: a first worker process delivers two due replies, and stops
    first_batch = [
        pending_reply(ConversationFactory(person=person), due_at=timezone.now(), text=f"one {i}")
        for i in range(2)
    ]
    first = start_celery_worker(concurrency=1, extra_env=env)
    tasks.dispatch_due_replies.delay()
    wait_for(lambda: _sent(first_batch) == 2, timeout=60, what="the first worker's deliveries")
    first.stop()
    # when: a second worker process delivers three more
    second_batch = [
        pending_reply(ConversationFactory(person=person), due_at=timezone.now(), text=f"two {i}")
        for i in range(3)
    ]
    start_celery_worker(concurrency=1, extra_env=env)
    tasks.dispatch_due_replies.delay()
    wait_for(lambda: _sent(second_batch) == 3, timeout=60, what="the second worker's deliveries")
    samples = scrape(client)
    # then: the scrape sums both processes' files
    assert (
        sample(samples, LAG_COUNT),
        sample(samples, "companion_messages_posted_total", role="companion"),
    ) == (5.0, 5.0)
    # and each process kept its own file: one with two deliveries, one with three
    per_process = sorted(
        count for path in metrics_dir.glob("histogram_*.db") if (count := _lag_count(path)) > 0
    )
    assert per_process == [2.0, 3.0]


def _lag_count(path) -> float:
    merged = multiprocess.MultiProcessCollector.merge([str(path)], accumulate=True)
    return sum(sample.value for metric in merged for sample in metric.samples if sample.name == LAG_COUNT)


def _sent(replies: list[ScheduledReply]) -> int:
    return ScheduledReply.objects.filter(pk__in=[reply.pk for reply in replies], state=State.SENT).count()
