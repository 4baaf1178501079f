"""The people of ``bench/scale_out.py``: one WebSocket client each, a closed loop of message and reply.

A person sends a message, waits for its own ``message.created`` (the echo) and for the companion's
reply ``message.created`` (the first companion message with a larger id), then sends the next.
Every message the socket shows is remembered by id, so repeats (a replay after a reconnect, a push
that raced the replay) count once.

When the socket drops (its web process was killed), the person reconnects to the next web process
in its list with ``?after=<the largest id seen>``, the documented re-sync (README, "WebSocket"):
the server joins the conversation's group, then replays every later message in id order. A
message whose echo never came is sent again with the same ``client_id``; the server stores it at
most once and confirms the retry to the retrying socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

CONNECT_TIMEOUT_SECONDS = 30.0
RECONNECT_BACKOFF_SECONDS = (0.05, 1.0)


@dataclass
class Exchange:
    """One message of a person and the companion's reply to it, with their arrival times."""

    client_id: str
    sent_at: float
    message_id: int | None = None
    echoed_at: float | None = None
    reply_id: int | None = None
    replied_at: float | None = None
    error: str | None = None

    @property
    def echo_seconds(self) -> float | None:
        return None if self.echoed_at is None else self.echoed_at - self.sent_at

    @property
    def reply_seconds(self) -> float | None:
        return None if self.replied_at is None else self.replied_at - self.sent_at


@dataclass
class Person:
    """A person's conversation, token, the web ports it may use (home first) and what it saw."""

    number: int
    conversation_id: int
    token: str
    ports: Sequence[int]
    port_index: int = 0
    seen: dict[int, str] = field(default_factory=dict)  # message id -> role, each id once
    companion_ids: list[int] = field(default_factory=list)
    deliveries: int = 0  # message.created frames received, repeats included
    reconnects: int = 0
    resends: int = 0  # messages sent again (same client_id) after a reconnect, their echo unseen
    exchanges: list[Exchange] = field(default_factory=list)

    def url(self) -> str:
        port = self.ports[self.port_index]
        after = f"&after={max(self.seen)}" if self.seen else ""
        return f"ws://127.0.0.1:{port}/ws/conversations/{self.conversation_id}/?token={self.token}{after}"

    def take(self, raw: str | bytes, exchange: Exchange) -> None:
        """Read one server frame: remember a message by id, note the echo and the reply."""
        event: dict[str, Any] = json.loads(raw)
        if event.get("type") == "error":
            exchange.error = f"{event.get('code')}: {event.get('detail')}"
            return
        if event.get("type") != "message.created":
            return  # typing and read marks
        message = event["message"]
        message_id = int(message["id"])
        self.deliveries += 1
        if message_id not in self.seen:
            self.seen[message_id] = message["role"]
            if message["role"] == "companion":
                self.companion_ids.append(message_id)
        now = time.perf_counter()
        is_echo = message["role"] == "person" and message.get("client_id") == exchange.client_id
        if is_echo and exchange.message_id is None:
            exchange.message_id, exchange.echoed_at = message_id, now
        if exchange.message_id is not None and exchange.reply_id is None:
            later = [cid for cid in self.companion_ids if cid > exchange.message_id]
            if later:
                exchange.reply_id, exchange.replied_at = min(later), now


@dataclass
class Progress:
    """Replies received so far in a phase, and an event set once ``threshold`` of them arrived."""

    threshold: int | None = None
    replies: int = 0
    reached: asyncio.Event = field(default_factory=asyncio.Event)

    def count(self, exchange: Exchange) -> None:
        if exchange.reply_id is not None:
            self.replies += 1
        if self.threshold is not None and self.replies >= self.threshold:
            self.reached.set()


async def open_socket(person: Person) -> Any:
    import websockets

    return await websockets.connect(person.url(), open_timeout=CONNECT_TIMEOUT_SECONDS, max_size=2**20)


async def reopen_socket(person: Person, deadline: float) -> Any:
    """Connect to the next web process in the person's list (then round and round) with ``?after=``."""
    import websockets

    person.reconnects += 1
    backoff = RECONNECT_BACKOFF_SECONDS[0]
    while True:
        person.port_index = (person.port_index + 1) % len(person.ports)
        try:
            return await open_socket(person)
        except (OSError, TimeoutError, websockets.exceptions.InvalidHandshake):
            if time.monotonic() + backoff > deadline:
                raise
            await asyncio.sleep(backoff)  # pacing between attempts; the deadline decides
            backoff = min(backoff * 2, RECONNECT_BACKOFF_SECONDS[1])


async def person_loop(
    person: Person,
    connection: Any,
    *,
    messages: int,
    tag: str,
    reply_timeout: float,
    progress: Progress,
) -> None:
    """``messages`` exchanges in a closed loop over ``connection``, reconnecting when it drops."""
    import websockets

    try:
        for number in range(messages):
            exchange = Exchange(client_id=f"{tag}-p{person.number}-m{number}", sent_at=time.perf_counter())
            person.exchanges.append(exchange)
            frame = json.dumps(
                {
                    "type": "message.send",
                    "text": f"message {number} from {person.number}",
                    "client_id": exchange.client_id,
                }
            )
            deadline = time.monotonic() + reply_timeout
            unsent = True
            while exchange.reply_id is None and exchange.error is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    exchange.error = "timeout"
                    break
                try:
                    if unsent:
                        await connection.send(frame)
                        unsent = False
                    raw = await asyncio.wait_for(connection.recv(), remaining)
                except TimeoutError:
                    exchange.error = "timeout"
                    break
                except (OSError, websockets.exceptions.ConnectionClosed):
                    connection = await reopen_socket(person, deadline)
                    unsent = exchange.message_id is None  # the same client_id: stored at most once
                    if unsent:
                        person.resends += 1
                    continue
                person.take(raw, exchange)
            progress.count(exchange)
            if exchange.error is not None:
                return  # reported with the phase's figures; the loop cannot go on without its reply
    finally:
        await connection.close()


async def run_people(
    people: Sequence[Person],
    *,
    messages: int,
    tag: str,
    reply_timeout: float,
    progress: Progress,
    fault: Any = None,
) -> float:
    """Open every socket, then run every person's loop together; the seconds from start to last reply.

    ``fault``: a coroutine function ``fault(progress)`` run beside the loops (the kill test).
    """
    connections = await asyncio.gather(*(open_socket(person) for person in people))
    started = time.perf_counter()
    loops = [
        person_loop(
            person, connection, messages=messages, tag=tag, reply_timeout=reply_timeout, progress=progress
        )
        for person, connection in zip(people, connections, strict=True)
    ]
    fault_task = asyncio.ensure_future(fault(progress)) if fault is not None else None
    try:
        await asyncio.gather(*loops)
        elapsed = time.perf_counter() - started
    finally:
        if fault_task is not None and not fault_task.done():
            fault_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fault_task
    if fault_task is not None and not fault_task.cancelled():
        fault_task.result()  # a failed kill is a failed run
    return elapsed
