"""Pushes to the sockets of a conversation through the Redis channel layer.

Synchronous on purpose: services call them from ``transaction.on_commit`` and Celery tasks
call them directly. The socket consumer, already on an event loop, awaits
:func:`abroadcast_message` instead of blocking a database thread on a loop round trip.

A push is a notification, never the delivery itself: a client that missed one re-syncs
with ``?after=<last id>`` (REST or the socket's replay).

Every push is a group message ``{"type": "chat.event", "event": <client event>}``; the
consumer forwards ``event`` unchanged, so the event shapes are defined only here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from chat.serializers import message_payload

if TYPE_CHECKING:
    from chat.models import Message

logger = logging.getLogger(__name__)


def conversation_group(conversation_id: int) -> str:
    """The channel-layer group that every socket of the conversation joins."""
    return f"chat.conversation.{conversation_id}"


def message_created_event(message: Message) -> dict[str, Any]:
    return {"type": "message.created", "message": message_payload(message)}


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


def _push(conversation_id: int, event: dict[str, Any]) -> None:
    async_to_sync(_apush)(conversation_id, event)


def broadcast_message(message: Message) -> None:
    """Send ``message.created`` to every socket of the message's conversation."""
    _push(message.conversation_id, message_created_event(message))


async def abroadcast_message(message: Message) -> None:
    """:func:`broadcast_message` for code on an event loop; errors are logged, never raised.

    Like the synchronous one run from ``on_commit(..., robust=True)``: a push is a
    notification, and a failed one must not turn a stored message into an error.
    """
    try:
        await _apush(message.conversation_id, message_created_event(message))
    except Exception:
        logger.exception("Broadcasting message %s failed", message.pk)


def broadcast_typing(*, conversation_id: int, role: str, is_typing: bool) -> None:
    """Send ``typing`` (``role`` is "person" or "companion") to every socket of the conversation."""
    _push(conversation_id, typing_event(role=role, is_typing=is_typing))


def broadcast_read(*, conversation_id: int, role: str, up_to: int) -> None:
    """Send ``read``: the ``role`` side has read every message with id <= ``up_to``."""
    _push(conversation_id, read_event(role=role, up_to=up_to))
