"""REST throttles keyed by :mod:`chat.client_address`, and the same per-person budget for sockets.

DRF's stock throttles read ``X-Forwarded-For`` as given (``NUM_PROXIES`` unset), so a client that
sent a new header value with every request was never throttled. A person's budget
(``UserRateThrottle``, cached in Redis) is also what a socket's ``message.send`` spends.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from chat.client_address import client_address


class AddressRateThrottle(AnonRateThrottle):
    """Anonymous requests, per client address (``REMOTE_ADDR`` unless a trusted proxy says)."""

    def get_ident(self, request: Request) -> str:
        return client_address(request.META)


class PersonRateThrottle(UserRateThrottle):
    """Signed-in requests per person (anonymous ones per client address)."""

    def get_ident(self, request: Request) -> str:
        return client_address(request.META)


def person_budget_spend(user: Any) -> float | None:
    """Spend one request of ``user``'s REST budget; ``None`` if allowed, else seconds to wait.

    The same cache key and history as :class:`PersonRateThrottle`, so REST calls and socket sends
    of one person draw from one budget, across every web process.
    """
    throttle = PersonRateThrottle()
    if throttle.allow_request(SimpleNamespace(user=user, META={}), None):  # type: ignore[arg-type]
        return None
    wait = throttle.wait()
    return wait if wait is not None else 1.0
