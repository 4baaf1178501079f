"""Pushes to the sockets of a conversation through the Redis channel layer.

Synchronous on purpose: services call them from ``transaction.on_commit`` and Celery tasks
call them directly. The socket consumer, already on an event loop, awaits
:func:`abroadcast_message` instead of blocking a database thread on a loop round trip.

Synchronous pushes run on one long-lived event loop per process (a daemon thread, started on
first use and again after a fork). The pub/sub layer keeps its Redis connection per event
loop, so ``async_to_sync`` per push paid for a thread, a loop and a new Redis connection every
time; that was most of the dispatcher's time per delivered reply.

A push is a notification, never the delivery itself: a client that missed one re-syncs
with ``?after=<last id>`` (REST or the socket's replay).

Every push is a group message ``{"type": "chat.event", "event": <client event>}``; the
consumer forwards ``event`` unchanged, so the event shapes are defined only here.

A batch of pushes (a delivery batch's ``message.created`` events, a wake-up's ``typing``) goes
out as one Redis command per shard: a server-side script that runs the batch's ``PUBLISH``
commands in order. One round trip and one reply for the batch instead of one of each per
message (parsing two hundred replies was most of a pipeline's cost), and Redis delivers each
group's messages in the order they were published.

A loop that pushes batch after batch (scheduling's delivery) opens :func:`pushes_overlapped`:
inside it a batch of pushes is handed to the push loop and the caller goes on with its next
batch at once, so the database work of one batch overlaps the Redis round trip of the one
before; the batches still go out one after another, in order, and leaving the block waits for
the last of them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from redis.exceptions import NoScriptError

from chat.serializers import message_payload, message_payload_of

if TYPE_CHECKING:
    from chat.models import Message

logger = logging.getLogger(__name__)

# Long enough for a Redis that is slow to answer, short enough that a dead one cannot hold a
# Celery task or a request thread for good (the caller logs the error; a push is a notification).
PUSH_TIMEOUT_SECONDS = 10.0


def conversation_group(conversation_id: int) -> str:
    """The channel-layer group that every socket of the conversation joins."""
    return f"chat.conversation.{conversation_id}"


def message_created_event(message: Message) -> dict[str, Any]:
    return {"type": "message.created", "message": message_payload(message)}


def message_created_event_of(
    *, message_id: int, conversation_id: int, role: str, text: str, created_at: str, client_id: str
) -> dict[str, Any]:
    """:func:`message_created_event` from the message's values (``created_at`` rendered once per batch)."""
    payload = message_payload_of(
        message_id=message_id,
        conversation_id=conversation_id,
        role=role,
        text=text,
        created_at=created_at,
        client_id=client_id,
    )
    return {"type": "message.created", "message": payload}


def typing_event(*, role: str, is_typing: bool) -> dict[str, Any]:
    return {"type": "typing", "role": role, "is_typing": is_typing}


def read_event(*, role: str, up_to: int) -> dict[str, Any]:
    return {"type": "read", "role": role, "up_to": up_to}


async def _apush(conversation_id: int, event: dict[str, Any]) -> None:
    channel_layer = get_channel_layer()
    if channel_layer is None:  # no CHANNEL_LAYERS configured: nobody can be listening
        return
    group_message = {"type": "chat.event", "event": event}
    await channel_layer.group_send(conversation_group(conversation_id), group_message)


class _PushLoop:
    """The process's event loop for synchronous pushes, in a daemon thread; one per process id.

    A forked child (a Celery prefork worker) inherits the object but not the thread, so the
    loop is keyed by ``os.getpid()`` and started anew in the child; the parent's loop and its
    Redis connection are left alone (closing them there would touch the parent's socket).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # One attribute, so a reader never sees the loop of one start with the pid of another.
        self._current: tuple[int, asyncio.AbstractEventLoop, threading.Thread] | None = None

    def after_fork_in_child(self) -> None:
        # A thread of the parent may have held the lock at the fork: it would never be released here.
        self._lock = threading.Lock()
        self._current = None

    def _started(self) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
        current = self._current
        if current is None or current[0] != os.getpid() or not current[2].is_alive():
            with self._lock:
                current = self._current
                if current is None or current[0] != os.getpid() or not current[2].is_alive():
                    loop = asyncio.new_event_loop()
                    thread = threading.Thread(target=loop.run_forever, name="chat-realtime-push", daemon=True)
                    thread.start()
                    current = self._current = (os.getpid(), loop, thread)
        return current[1], current[2]

    def submit(self, coroutine: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
        """Start ``coroutine`` on the loop; the future is done when it is."""
        loop, thread = self._started()
        if threading.current_thread() is thread:
            coroutine.close()
            raise RuntimeError("a synchronous push cannot wait on its own loop; await _apush there")
        return asyncio.run_coroutine_threadsafe(coroutine, loop)

    def run(self, coroutine: Coroutine[Any, Any, None], *, timeout: float) -> None:
        """Run ``coroutine`` on the loop and wait for it; its exception, or ``TimeoutError``, is raised."""
        future = self.submit(coroutine)
        try:
            future.result(timeout=timeout)
        except TimeoutError:
            future.cancel()
            raise


_push_loop = _PushLoop()
os.register_at_fork(after_in_child=_push_loop.after_fork_in_child)


async def _after(
    previous: concurrent.futures.Future[None] | None, coroutine: Coroutine[Any, Any, None]
) -> None:
    """``coroutine`` once ``previous`` (the batch handed over before it) has finished, however it ended."""
    if previous is not None:
        await asyncio.wait({asyncio.wrap_future(previous)})
    await coroutine


class _OverlappedPushes:
    """The batches of one :func:`pushes_overlapped` block that are handed over and not yet waited for."""

    def __init__(self, *, limit: int) -> None:
        self._limit = limit
        self._in_flight: deque[concurrent.futures.Future[None]] = deque()

    def submit(self, coroutine: Coroutine[Any, Any, None]) -> None:
        previous = self._in_flight[-1] if self._in_flight else None
        self._in_flight.append(_push_loop.submit(_after(previous, coroutine)))
        while len(self._in_flight) > self._limit:  # a slow Redis holds the caller back, not its memory
            self._wait(self._in_flight.popleft(), timeout=PUSH_TIMEOUT_SECONDS)

    def wait_all(self) -> None:
        """Wait for every batch under one :data:`PUSH_TIMEOUT_SECONDS`; a failure is logged."""
        deadline = time.monotonic() + PUSH_TIMEOUT_SECONDS
        while self._in_flight:
            self._wait(self._in_flight.popleft(), timeout=max(deadline - time.monotonic(), 0.0))

    @staticmethod
    def _wait(future: concurrent.futures.Future[None], *, timeout: float) -> None:
        try:
            future.result(timeout=timeout)
        except TimeoutError:
            future.cancel()
            logger.error("A batch of pushes did not finish within %.1fs; it is dropped", timeout)
        except Exception:
            logger.exception("A batch of pushes failed")


_overlapped: contextvars.ContextVar[_OverlappedPushes | None] = contextvars.ContextVar(
    "chat_realtime_overlapped_pushes", default=None
)


@contextmanager
def pushes_overlapped(*, in_flight: int = 4) -> Iterator[None]:
    """Inside the block, a batch of pushes (:func:`broadcast_events`) does not wait for Redis.

    The caller goes on while the push loop sends it, each batch after the one before it, so
    their order is kept; at most ``in_flight`` batches are outstanding (the next hand-over waits
    for the oldest). Leaving the block waits until every batch has gone out (or failed, logged,
    or timed out after :data:`PUSH_TIMEOUT_SECONDS`), so what was pushed inside it has reached
    Redis when the block ends. Single pushes (:func:`broadcast_message`, typing, read) still wait.
    """
    pending = _OverlappedPushes(limit=in_flight)
    token = _overlapped.set(pending)
    try:
        yield
    finally:
        _overlapped.reset(token)
        pending.wait_all()


def _push(conversation_id: int, event: dict[str, Any]) -> None:
    _push_loop.run(_apush(conversation_id, event), timeout=PUSH_TIMEOUT_SECONDS)


def broadcast_message(message: Message) -> None:
    """Send ``message.created`` to every socket of the message's conversation."""
    _push(message.conversation_id, message_created_event(message))


async def abroadcast_message(message: Message) -> None:
    """:func:`broadcast_message` for code on an event loop; errors are logged, never raised.

    Like the synchronous one run from ``on_commit(..., robust=True)``: a push is a
    notification, and a failed one must not turn a stored message into an error.
    """
    await _apush_logged(message.conversation_id, message_created_event(message))


def broadcast_typing(*, conversation_id: int, role: str, is_typing: bool) -> None:
    """Send ``typing`` (``role`` is "person" or "companion") to every socket of the conversation."""
    _push(conversation_id, typing_event(role=role, is_typing=is_typing))


def broadcast_typing_each(*, conversation_ids: Sequence[int], role: str, is_typing: bool) -> None:
    """:func:`broadcast_typing` to several conversations in one hand-off to the push loop.

    For scheduling's wake-ups, which start typing for every reply whose time came at once: one
    scripted batch per Redis shard, whose failure is logged, never raised, under one
    :data:`PUSH_TIMEOUT_SECONDS`.
    """
    event = typing_event(role=role, is_typing=is_typing)
    _push_each([(conversation_id, event) for conversation_id in conversation_ids])


def broadcast_events(pushes: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """``(conversation_id, event)`` pushes, in order, in one hand-off and one scripted batch per Redis shard.

    For batches built without model instances (scheduling's delivery): a failed batch is
    logged, never raised (a push is a notification), under one :data:`PUSH_TIMEOUT_SECONDS`.
    Inside :func:`pushes_overlapped` it returns once the batch is handed over.
    """
    if not pushes:
        return
    overlapped = _overlapped.get()
    if overlapped is None:
        _push_each(pushes)
    else:
        overlapped.submit(_apush_each(pushes))


def _push_each(pushes: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """``(conversation_id, event)`` pushes, in order, in one hand-off under one timeout."""
    if pushes:
        _push_loop.run(_apush_each(pushes), timeout=PUSH_TIMEOUT_SECONDS)


async def _apush_each(pushes: Sequence[tuple[int, dict[str, Any]]]) -> None:
    channel_layer = get_channel_layer()
    if channel_layer is None:
        return
    if not isinstance(channel_layer, RedisPubSubChannelLayer):
        for conversation_id, event in pushes:  # another layer: one group_send each, in order
            await _apush_logged(conversation_id, event)
        return
    await _apublish_batched(channel_layer, pushes)


# What _apublish_batched uses of a channels_redis 4.3 shard connection.
_SHARD_INTERNALS = ("_lock", "_ensure_redis", "_redis")

# PUBLISH ARGV[i] ARGV[n + i] for i = 1..n, in order: the channels, then their payloads. Channels
# are arguments, not KEYS: they are not keys, and a shard is one Redis, never a cluster.
_PUBLISH_BATCH_LUA = """
local count = #ARGV / 2
for i = 1, count do
  redis.call('PUBLISH', ARGV[i], ARGV[count + i])
end
return count
"""
_PUBLISH_BATCH_SHA = hashlib.sha1(_PUBLISH_BATCH_LUA.encode()).hexdigest()


async def _apublish_batched(
    channel_layer: RedisPubSubChannelLayer, pushes: Sequence[tuple[int, dict[str, Any]]]
) -> None:
    """What ``group_send`` does for each push, as one scripted batch of ``PUBLISH`` per shard.

    channels_redis 4.3's pub/sub layer: its per-loop layer names each group's Redis channel and
    picks its shard, and a shard holds one connection (guarded by its lock) that it opens on
    first use. ``group_send`` is exactly ``shard.publish(group channel, serialize(message))``;
    here the same commands run in one ``EVALSHA`` (``EVAL`` the first time a Redis has not seen
    the script). A failed batch is logged, not raised.
    """
    loop_layer = channel_layer._get_layer()
    by_shard: dict[Any, tuple[list[str], list[bytes]]] = {}
    for conversation_id, event in pushes:
        channel = loop_layer._get_group_channel_name(conversation_group(conversation_id))
        data = channel_layer.serialize({"type": "chat.event", "event": event})
        channels, payloads = by_shard.setdefault(loop_layer._get_shard(channel), ([], []))
        channels.append(channel)
        payloads.append(data)
    if not all(hasattr(shard, name) for shard in by_shard for name in _SHARD_INTERNALS):
        for conversation_id, event in pushes:  # another channels_redis: its own group_send, in order
            await _apush_logged(conversation_id, event)
        return
    for shard, (channels, payloads) in by_shard.items():
        try:
            async with shard._lock:
                shard._ensure_redis()
                try:
                    await shard._redis.evalsha(_PUBLISH_BATCH_SHA, 0, *channels, *payloads)
                except NoScriptError:  # a Redis that restarted, or never ran it: EVAL caches it there
                    await shard._redis.eval(_PUBLISH_BATCH_LUA, 0, *channels, *payloads)
        except Exception:
            logger.exception("Broadcasting a batch of %s events failed", len(channels))


async def _apush_logged(conversation_id: int, event: dict[str, Any]) -> None:
    """One push whose failure is logged, never raised: a push is a notification."""
    try:
        await _apush(conversation_id, event)
    except Exception:
        logger.exception("Broadcasting %s to conversation %s failed", event["type"], conversation_id)


def broadcast_read(*, conversation_id: int, role: str, up_to: int) -> None:
    """Send ``read``: the ``role`` side has read every message with id <= ``up_to``."""
    _push(conversation_id, read_event(role=role, up_to=up_to))
