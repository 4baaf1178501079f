"""Django's Redis cache, with one ``redis.Redis`` client per connection pool instead of one per call.

``django.core.cache.backends.redis.RedisCacheClient.get_client`` builds a new ``redis.Redis``
around its pool for every cache operation; in redis-py 8 that constructor (its argument
handling, its response-callback table) was about 7 % of the web process's CPU per socket
message (two operations for the person's budget). A client is only a handle on its pool and is
safe to share between threads, so one per pool is kept; the pool still hands out the
connections (and starts afresh after a fork, as redis-py's pools do).
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class _SharedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        # Django's own private helpers (django-stubs does not declare them): the pool for this
        # operation, and the client class (redis.Redis).
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class RedisCache(DjangoRedisCache):
    """``django.core.cache.backends.redis.RedisCache`` with :class:`_SharedClientRedisCacheClient`."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _SharedClientRedisCacheClient

    def redis_client(self, key: str) -> Any:
        """The ``redis.Redis`` that writes ``key`` (already made with :meth:`make_key`), for the
        few callers that need a command the cache API has not (a Lua script)."""
        return self._cache.get_client(key, write=True)  # type: ignore[attr-defined]
