"""Limits that hold (issue #13): the address is not the client's to choose, logins lock, sockets pay."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache, caches
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from chat.client_address import client_address
from chat.models import Message
from chat.throttles import PersonRateThrottle, person_budget_spend
from tests.chat.conftest import receive_event, token_key, ws_open

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_budgets():
    cache.clear()  # throttle histories and nothing else live in the test run's own Redis
    yield
    cache.clear()


def wrong_password_statuses(client: APIClient, attempts: int, *, remote: str = "127.0.0.1") -> list[int]:
    return [
        client.post(
            "/api/v1/auth/token/",
            {"username": f"nobody{attempt}", "password": "wrong"},
            format="json",
            REMOTE_ADDR=remote,
            HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt % 250}, 198.51.100.{attempt % 250}",
        ).status_code
        for attempt in range(attempts)
    ]


def test_a_new_forwarded_for_header_per_request_does_not_reset_the_anonymous_limit(monkeypatch, settings):
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "60/minute"})
    settings.AXES_ENABLED = False  # the throttle alone, not the lockout
    statuses = wrong_password_statuses(APIClient(), 70)
    assert statuses == [400] * 60 + [429] * 10


def test_a_trusted_proxy_forwarded_for_is_believed(monkeypatch, settings):
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "60/minute"})
    settings.AXES_ENABLED = False
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    # 70 clients behind the proxy: each its own address, none throttled
    assert wrong_password_statuses(APIClient(), 70, remote="10.1.2.3") == [400] * 70


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("192.0.2.7", "1.2.3.4", "192.0.2.7"),  # not from a trusted proxy: the header is ignored
        ("10.0.0.5", "1.2.3.4", "1.2.3.4"),
        ("10.0.0.5", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the client's own prefix is not believed
        ("10.0.0.5", "1.2.3.4, 10.9.9.9", "1.2.3.4"),  # two trusted proxies in a row
        ("10.0.0.5", "", "10.0.0.5"),
        ("10.0.0.5", "not-an-address", "10.0.0.5"),
    ],
)
def test_client_address(settings, remote, forwarded, expected):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_address({"REMOTE_ADDR": remote, "HTTP_X_FORWARDED_FOR": forwarded}) == expected


def test_the_token_api_locks_an_account_after_the_configured_failures(settings, person):
    client = APIClient()
    failures = [
        client.post("/api/v1/auth/token/", {"username": "mina", "password": f"wrong{n}"}, format="json")
        for n in range(settings.AXES_FAILURE_LIMIT)
    ]
    locked = client.post(
        "/api/v1/auth/token/", {"username": "mina", "password": "correct horse battery"}, format="json"
    )
    # the failure that reaches the limit is answered with the lockout already
    assert [response.status_code for response in failures] == [400] * (settings.AXES_FAILURE_LIMIT - 1) + [
        429
    ]
    assert (locked.status_code, locked.json(), locked["Retry-After"]) == (
        429,
        {
            "code": "locked_out",
            "detail": "Too many failed logins for this account or address. Try again in 15 minutes.",
        },
        "900",
    )


def test_the_login_page_locks_an_address_whatever_the_account(settings, person):
    client = Client()
    statuses = [
        client.post("/accounts/login/", {"username": f"guess{n}", "password": "x"}).status_code
        for n in range(settings.AXES_FAILURE_LIMIT)
    ]
    locked = client.post("/accounts/login/", {"username": "mina", "password": "correct horse battery"})
    # the form again, with its error, until the failure that reaches the limit
    assert statuses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    assert (locked.status_code, locked.content.decode()) == (
        429,
        "Too many failed logins for this account or address. Try again in 15 minutes.",
    )
    assert "_auth_user_id" not in client.session


def test_the_window_is_drfs_sliding_window(monkeypatch, person):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/minute"})
    clock = iter([1000.0, 1001.0, 1002.0, 1003.0, 1060.0, 1060.5, 1061.0])
    monkeypatch.setattr(PersonRateThrottle, "timer", staticmethod(lambda: next(clock)))

    waits = [person_budget_spend(person) for _ in range(7)]

    # three allowed; the fourth waits until the first leaves the window (60 - 3 s); at 1060 the
    # first has left (DRF drops a request exactly one period old) and the refused one never counted
    assert waits == [None, None, None, 57.0, None, 0.5, None]


def test_concurrent_requests_of_one_person_never_pass_the_limit(monkeypatch, person):
    # DRF's GET-then-SET let two processes read one history and both pass; one script cannot.
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "5/minute"})
    start = threading.Barrier(20)

    def spend(_: int) -> float | None:
        start.wait()
        return person_budget_spend(person)

    with ThreadPoolExecutor(max_workers=20) as pool:
        waits = list(pool.map(spend, range(20)))

    assert sum(wait is None for wait in waits) == 5
    window = caches["default"].make_key(f"throttle_user_{person.pk}:window")
    client = caches["default"].redis_client(window)
    assert client.zcard(window) == 5
    assert 0 < client.pttl(window) <= 60_000  # it expires with its period


async def test_socket_sends_spend_the_same_budget_as_rest(monkeypatch, person, conversation):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/minute"})
    rest = await database_sync_to_async(_rest_client)(person)
    assert (await database_sync_to_async(rest.get)("/api/v1/conversations/")).status_code == 200
    assert (await database_sync_to_async(rest.get)("/api/v1/conversations/")).status_code == 200
    socket = await ws_open(conversation.pk, query=f"token={await database_sync_to_async(token_key)(person)}")
    await socket.send_json_to({"type": "message.send", "text": "third request", "client_id": "a"})
    assert (await receive_event(socket))["message"]["text"] == "third request"
    await socket.send_json_to({"type": "message.send", "text": "over budget", "client_id": "b"})
    refused = await receive_event(socket)
    assert (refused["type"], refused["code"], refused["client_id"]) == ("error", "rate_limited", "b")
    assert refused["retry_after"] in range(55, 61)
    assert (
        refused["detail"]
        == f"Too many requests; nothing was stored. Try again in {refused['retry_after']} s."
    )
    # then: nothing stored, REST is over budget too, and the socket still works
    assert await database_sync_to_async(lambda: list(Message.objects.values_list("text", flat=True)))() == [
        "third request"
    ]
    assert (await database_sync_to_async(rest.get)("/api/v1/conversations/")).status_code == 429
    await socket.send_json_to({"type": "message.send", "text": "x", "client_id": "c"})
    assert (await receive_event(socket))["code"] == "rate_limited"
    await socket.disconnect()


def _rest_client(person) -> APIClient:
    from tests.conftest import token_client

    return token_client(person)
