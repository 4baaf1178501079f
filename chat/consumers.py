"""The conversation socket: ``ws/conversations/<id>/``.

An async consumer: an idle socket then costs a coroutine, not a thread. Every ORM call
goes through ``database_sync_to_async`` with ``thread_sensitive=False`` so the sockets'
database work runs in parallel in the thread pool (the default, thread-sensitive mode
would funnel every socket of the process through one thread). Each call is one short
transaction inside a service; no ORM object is shared between threads while in use.

The consumer is thin: it parses a frame, calls one service, and forwards the group's
``chat.event`` pushes (built in :mod:`chat.realtime`) unchanged. Every bad frame gets an
``error`` event and the socket stays open.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import connections

from chat import metrics, realtime, selectors, services
from chat.db_threads import in_db_thread as _db
from chat.json_limits import MAX_JSON_DEPTH, JsonTooDeep, loads_bounded
from chat.models import Conversation, Message
from chat.text_rules import ChatInputInvalid
from chat.throttles import person_budget_spend

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
REPLAY_BATCH = 200


def max_frame_characters() -> int:
    """Largest text frame accepted: room for a maximal message with JSON escaping and envelope."""
    return settings.CHAT_MESSAGE_MAX_LENGTH * 6 + 1024


class ConversationConsumer(AsyncWebsocketConsumer):
    """One socket of one conversation; see the README's "Chat API" for the event reference."""

    conversation: Conversation
    group_name: str
    counted_open: bool = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        conversation = await _db(selectors.conversation_get)(user=user, conversation_id=conversation_id)
        if conversation is None:
            await self._refuse(CLOSE_NOT_FOUND)
            return
        self.conversation = conversation
        self.group_name = realtime.conversation_group(conversation.pk)
        # Join before accepting: once the client sees the socket open, every later push reaches
        # it. Join before replaying too, so a message stored meanwhile is pushed (perhaps twice;
        # clients de-duplicate by id) rather than lost between the replay query and the join.
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        self.counted_open = True
        metrics.websocket_opened()
        await self._replay()

    async def _refuse(self, code: int) -> None:
        # Accept, then close with our code: a close before accept is a bare HTTP 403, and the
        # client could not tell "log in" (4401) from "not yours" (4404).
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        if self.counted_open:
            self.counted_open = False
            metrics.websocket_closed()
        if hasattr(self, "group_name"):
            await self.channel_layer.group_discard(self.group_name, self.channel_name)
        # A persistent connection (CONN_MAX_AGE > 0) lives in this socket's context: end it with it.
        await _db(connections.close_all)()

    async def _replay(self) -> None:
        raw = _query_parameter(self.scope, "after")
        if raw is None:
            return
        try:
            after = int(raw)
        except ValueError:
            await self._error("after_invalid", f"after must be a message id, not {raw!r}; nothing replayed.")
            return
        while True:
            batch = await _db(_replay_batch)(conversation=self.conversation, after=after)
            for event in batch:
                await self.send_json(event)
            if len(batch) < REPLAY_BATCH:
                return
            after = batch[-1]["message"]["id"]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self._error("frame_binary", "Send JSON text frames, not binary frames.")
            return
        if len(text_data) > max_frame_characters():
            await self._error(
                "frame_too_large",
                f"The frame has {len(text_data)} characters; the limit is {max_frame_characters()}.",
            )
            return
        try:
            event = loads_bounded(text_data)
        except JsonTooDeep:
            await self._error("json_too_deep", f"The frame nests deeper than {MAX_JSON_DEPTH} levels.")
            return
        except ValueError:
            await self._error("json_invalid", "The frame is not valid JSON.")
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            await self._error("type_missing", 'Every event is a JSON object with a string "type".')
            return
        handler = self._handlers.get(event["type"])
        if handler is None:
            await self._error(
                "type_unknown",
                f"Unknown event type {event['type']!r}; send one of: {', '.join(sorted(self._handlers))}.",
            )
            return
        await handler(self, event)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch first runs close_old_connections through a thread-sensitive
        # sync_to_async hop, for every frame and every push. Our ORM calls already do that
        # housekeeping around themselves, in their own context (chat.db_threads), where it
        # sees the connection they used; skip the extra thread round trip.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def _message_send(self, event: dict[str, Any]) -> None:
        client_id = event.get("client_id")
        committed: list[Message] = []
        try:
            # One trip to a database thread for the budget and the post together.
            outcome = await _db(_budget_then_post)(
                conversation=self.conversation,
                author=self.scope["user"],
                text=event.get("text"),
                client_id=client_id,
                push=committed.append,  # called after commit; we broadcast from the loop below
            )
        except ChatInputInvalid as exc:
            await self._error(exc.code, exc.detail, client_id=client_id)
            return
        if isinstance(outcome, float):
            retry_after = max(1, math.ceil(outcome))
            await self._error(
                "rate_limited",
                f"Too many requests; nothing was stored. Try again in {retry_after} s.",
                client_id=client_id,
                retry_after=retry_after,
            )
            return
        message, created = outcome
        if not created:
            # A retry: the group heard this message the first time; only the retrying socket
            # needs its confirmation again.
            await self.send_json(realtime.message_created_event(message))
            return
        for stored in committed:
            await realtime.abroadcast_message(stored)

    async def _typing(self, event: dict[str, Any]) -> None:
        is_typing = event.get("is_typing")
        if not isinstance(is_typing, bool):
            await self._error("typing_invalid", "is_typing must be true or false.")
            return
        try:
            await _db(services.typing_announce)(
                conversation=self.conversation, user=self.scope["user"], is_typing=is_typing
            )
        except ChatInputInvalid as exc:
            await self._error(exc.code, exc.detail)

    async def _read(self, event: dict[str, Any]) -> None:
        try:
            await _db(services.person_mark_read)(
                conversation=self.conversation, user=self.scope["user"], up_to=event.get("up_to")
            )
        except ChatInputInvalid as exc:
            await self._error(exc.code, exc.detail)

    _handlers = {"message.send": _message_send, "typing": _typing, "read": _read}

    async def chat_event(self, push: dict[str, Any]) -> None:
        """A push from :mod:`chat.realtime` to this conversation's group."""
        await self.send_json(push["event"])

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content, ensure_ascii=False))

    async def _error(
        self, code: str, detail: str, *, client_id: Any = None, retry_after: int | None = None
    ) -> None:
        event: dict[str, Any] = {"type": "error", "code": code, "detail": detail}
        if isinstance(client_id, str):  # echoed only when it is one a client could match
            event["client_id"] = client_id
        if retry_after is not None:
            event["retry_after"] = retry_after
        await self.send_json(event)


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """Every socket path that is no route: the handshake is refused (HTTP 403), nothing more."""

    async def connect(self) -> None:
        await self.close()


def _query_parameter(scope: dict[str, Any], name: str) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin1")).get(name)
    return values[0] if values else None


def _budget_then_post(
    *, conversation: Conversation, author: Any, text: Any, client_id: Any, push: Callable[[Message], None]
) -> float | tuple[Message, bool]:
    """Spend the person's budget, then post: seconds to wait when over budget (nothing stored).

    The person's REST budget (chat.throttles), shared in Redis: a socket is no way around it.
    Otherwise ``message_post``'s ``(message, created)``; its ``ChatInputInvalid`` propagates.
    """
    wait = person_budget_spend(author)
    if wait is not None:
        return float(wait)
    return services.message_post(
        conversation=conversation, author=author, text=text, client_id=client_id, push=push
    )


def _replay_batch(*, conversation: Conversation, after: int) -> list[dict[str, Any]]:
    messages = selectors.message_list(conversation=conversation, after=after)[:REPLAY_BATCH]
    return [realtime.message_created_event(message) for message in messages]
