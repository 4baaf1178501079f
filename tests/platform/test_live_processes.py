"""The child processes the suite relies on really start and talk to this run's engines."""

import urllib.request

import pytest

from companion.celery import app as celery_app


@pytest.mark.worker
def test_celery_worker_answers_a_ping_over_the_real_broker(start_celery_worker) -> None:
    start_celery_worker()

    replies = celery_app.control.ping(timeout=5.0)

    # ping() returns None when no broadcast was sent; here one was, so a list must come back.
    assert replies is not None, "control.ping() sent no broadcast"
    (reply,) = replies
    ((hostname, answer),) = reply.items()
    assert hostname.startswith("test-worker-")
    assert answer == {"ok": "pong"}


@pytest.mark.django_db(transaction=True)
def test_live_asgi_server_serves_the_admin_login(live_asgi_server: str) -> None:
    with urllib.request.urlopen(f"{live_asgi_server}/admin/login/", timeout=10) as response:
        body = response.read().decode()

    assert response.status == 200
    assert 'name="username"' in body
