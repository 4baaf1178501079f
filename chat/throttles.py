"""REST throttles keyed by :mod:`chat.client_address`, and the same per-person budget for sockets.

DRF's stock throttles read ``X-Forwarded-For`` as given (``NUM_PROXIES`` unset), so a client that
sent a new header value with every request was never throttled. A person's budget
(``UserRateThrottle``) is also what a socket's ``message.send`` spends.

The window is DRF's (a request is allowed while fewer than N were allowed in the last period,
and ``wait()`` is computed as DRF computes it), but it is kept in Redis as a sorted set that
one Lua script trims, counts and appends to. DRF's own read-modify-write (``GET`` the pickled
list of timestamps, ``SET`` it back) let two requests of one person, on two processes, both
read the same history and both pass; it also moved the whole list (up to 600 timestamps)
through Redis twice per request. The script is atomic and one round trip.
"""

from __future__ import annotations

import hashlib
import secrets
from types import SimpleNamespace
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import NoScriptError
from rest_framework.request import Request
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from chat.client_address import client_address

# KEYS[1]: the window (a sorted set of allowed requests, scored by their time).
# ARGV: now, the period in seconds, the allowed count, a member unique to this request.
# Returns {1} when allowed (the request is added), else {0, requests in the window, the oldest's
# time}: what wait() needs, and DRF asks wait() only of a refused request. The oldest is returned
# as ZRANGE gives it, a string: Lua numbers come back as integers.
_WINDOW_SCRIPT = """
local now = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local count = redis.call('ZCARD', KEYS[1])
if count < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(period * 1000))
  return {1}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, count, oldest[2]}
"""


_WINDOW_SHA = hashlib.sha1(_WINDOW_SCRIPT.encode()).hexdigest()


class _AtomicWindow(SimpleRateThrottle):
    """DRF's sliding window, counted by one atomic Redis script instead of GET and SET."""

    # Set by SimpleRateThrottle.__init__ from the rate (djangorestframework-stubs omit them).
    num_requests: int
    duration: int
    # Of a refused request's window (allow_request sets them; DRF calls wait() only then).
    window_count: int
    window_oldest: float

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        cache = caches[DEFAULT_CACHE_ALIAS]
        redis_client = getattr(cache, "redis_client", None)  # companion.redis_cache.RedisCache's
        if redis_client is None:
            raise ImproperlyConfigured(
                "the API throttles need CACHES['default'] to be companion.redis_cache.RedisCache"
            )
        window_key = cache.make_key(f"{self.key}:window")
        self.now = self.timer()
        member = f"{self.now:.6f}:{secrets.token_hex(4)}"  # two requests in one microsecond stay two
        client = redis_client(window_key)
        arguments = (window_key, repr(self.now), self.duration, self.num_requests, member)
        try:
            answer = client.evalsha(_WINDOW_SHA, 1, *arguments)
        except NoScriptError:  # a Redis that restarted, or never ran it: EVAL caches it there
            answer = client.eval(_WINDOW_SCRIPT, 1, *arguments)
        if answer[0]:
            return True
        self.window_count, self.window_oldest = int(answer[1]), float(answer[2])
        return False

    def wait(self) -> float | None:
        """DRF's ``wait()`` of a refused request, from the window the script counted."""
        remaining = self.duration - (self.now - self.window_oldest)
        available = self.num_requests - self.window_count + 1
        if available <= 0:
            return None
        return remaining / available


class AddressRateThrottle(_AtomicWindow, AnonRateThrottle):
    """Anonymous requests, per client address (``REMOTE_ADDR`` unless a trusted proxy says)."""

    def get_ident(self, request: Request) -> str:
        return client_address(request.META)


class PersonRateThrottle(_AtomicWindow, UserRateThrottle):
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
