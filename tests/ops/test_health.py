"""/healthz and /readyz on a real daphne, and the readiness command against a real worker."""

from __future__ import annotations

import json
import socket
import sys
import urllib.error
import urllib.request
from io import StringIO

import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command

from companion.ops.workers import LOADED_SET, loaded_processes
from tests.conftest import subprocess_environment
from tests.live import free_port, spawn, wait_until_ready
from tests.scheduling.conftest import wait_for

pytestmark = [pytest.mark.slow]


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def check_states(body: dict) -> dict[str, bool]:
    return {name: check["ok"] for name, check in body["checks"].items()}


@pytest.mark.django_db(transaction=True)
def test_readyz_fails_while_redis_is_stopped_and_recovers_when_it_returns(private_redis, tmp_path):
    # given: a real daphne whose Redis is a private redis-server (the suite's own is never stopped)
    port = free_port()
    env = {**subprocess_environment(), "REDIS_URL": private_redis.url, "DATABASE_POOL": "1"}
    web = spawn(
        "daphne-readyz",
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "companion.asgi:application"],
        log_dir=tmp_path,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(web, lambda: _answers(f"{base}/healthz"), what="daphne")
        # then: ready, every check ok
        status, body = get_json(f"{base}/readyz")
        assert (status, body["status"], check_states(body)) == (
            200,
            "ready",
            {"database": True, "migrations": True, "redis": True},
        )
        # when: Redis stops
        private_redis.stop()
        status, body = get_json(f"{base}/readyz")
        # then: unready, Redis named as the failed check, and no URL in the report
        assert (status, body["status"], check_states(body)) == (
            503,
            "unready",
            {"database": True, "migrations": True, "redis": False},
        )
        assert body["checks"]["redis"]["detail"] == "ConnectionError"
        assert str(private_redis.port) not in json.dumps(body)
        # and liveness is unaffected
        assert get_json(f"{base}/healthz") == (200, {"status": "ok"})
        # when: Redis comes back on the same port
        private_redis.start()
        status, body = get_json(f"{base}/readyz")
        # then: ready again, without restarting the web process
        assert (status, body["status"], check_states(body)) == (
            200,
            "ready",
            {"database": True, "migrations": True, "redis": True},
        )
    finally:
        web.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_readiness_command_pings_a_named_celery_worker(start_celery_worker):
    # given: one running worker (its node name is test-worker-N@<host>)
    worker = start_celery_worker(concurrency=1)
    node = _node_name(worker)
    # when / then: pinging it is ready
    out = StringIO()
    call_command("readiness", "--celery-worker", node, stdout=out)
    report = json.loads(out.getvalue())
    assert (report["status"], report["checks"]["celery_worker"]["ok"]) == ("ready", True)
    # when / then: a worker that does not exist makes the command fail with the report printed
    out = StringIO()
    with pytest.raises(CommandError, match="not ready"):
        call_command("readiness", "--celery-worker", "nobody@nowhere", "--timeout", "1", stdout=out)
    report = json.loads(out.getvalue())
    assert (report["status"], report["checks"]["celery_worker"]) == (
        "unready",
        {
            "ok": False,
            "detail": "WorkerSilent: no pong from nobody@nowhere within 1s",
            "seconds": report["checks"]["celery_worker"]["seconds"],
        },
    )


def _node_name(worker) -> str:
    number = worker.name.rsplit("-", 1)[1]
    return f"test-worker-{number}@{socket.gethostname()}"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_planner_that_preloads_the_generator_makes_the_generator_check_ready(
    start_celery_worker, tiny_model_dir
):
    redis.Redis.from_url(settings.REDIS_URL).delete(LOADED_SET.format(host=socket.gethostname()))
    # given: no planner process has loaded a model on this host
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("readiness", "--generator", stdout=out)
    assert json.loads(out.getvalue())["checks"]["generator"]["detail"] == (
        "GeneratorNotLoaded: no planner process on this host has loaded the generator"
    )
    # when: a planner with two processes starts and preloads the tiny model
    worker = start_celery_worker(
        concurrency=2,
        queues="plan",
        extra_env={"OPS_PRELOAD_GENERATOR": "1", "GENERATOR_MODEL_DIR": str(tiny_model_dir)},
    )
    wait_for(lambda: loaded_processes() == 2, timeout=120, what="both processes to load the model")
    # then: the planner's check (its ping and its loaded model) is ready
    out = StringIO()
    call_command("readiness", "--generator", "--celery-worker", _node_name(worker), stdout=out)
    report = json.loads(out.getvalue())
    assert (report["status"], report["checks"]["generator"]["detail"]) == ("ready", "loaded in 2 process(es)")
    # when: the planner stops, its processes leave the set
    worker.stop()
    assert loaded_processes() == 0


@pytest.mark.django_db
def test_health_endpoints_answer_json_and_refuse_other_methods_with_the_error_shape(client):
    assert (client.get("/healthz").status_code, client.get("/healthz").json()) == (200, {"status": "ok"})
    response = client.post("/readyz")
    assert (response.status_code, response.json(), response["Allow"]) == (
        405,
        {"code": "method_not_allowed", "detail": "POST is not allowed here; use GET."},
        "GET, HEAD",
    )
