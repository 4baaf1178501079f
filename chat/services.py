"""Writes of the messenger: posting messages, creating conversations, read marks, accounts.

Every service takes keyword-only arguments, owns its transaction and pushes its realtime
event only after commit, so a socket never hears of a row that was rolled back.

Lock order (scheduling relies on it): a write that adds a message to a conversation first
locks that conversation's row (``SELECT ... FOR UPDATE``). ``message_post`` does, so the
reply planner, which also locks the conversation row before it inserts a reply, either runs
entirely before a new person message (and the in-transaction hook cancels its reply) or
entirely after it (and sees that its trigger is no longer the latest person message).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from chat import hooks, metrics, realtime
from chat.models import Companion, Conversation, Message, validate_time_zone
from chat.serializers import render_created_at
from chat.text_rules import ChatInputInvalid, validate_client_id, validate_message_text


class NotConversationPerson(ChatInputInvalid):
    """Only the conversation's own person may write in it (staff may read, not speak for them)."""

    def __init__(self) -> None:
        super().__init__("forbidden", "Only the person of this conversation can do that.")


class ReadMarkInvalid(ChatInputInvalid):
    """``up_to`` is not the id of a message of this conversation, or the role is unknown."""


class TimeZoneInvalid(ChatInputInvalid):
    """A conversation's time zone is not an IANA name this machine knows."""


class DuplicateScheduledReply(Exception):
    """A message for this scheduled reply already exists (a duplicate delivery wake-up)."""


class RegistrationInvalid(ChatInputInvalid):
    """The username is taken or the password fails the password validators."""


# One statement locks the conversation row and inserts the message unless its client_id was
# already stored: a retry costs no savepoint and a first send no SELECT-before-INSERT. The
# CTE's FOR UPDATE runs before the INSERT reads its row, so the lock order is unchanged.
_MESSAGE_INSERT_SQL = """
WITH locked AS (SELECT id FROM chat_conversation WHERE id = %s FOR UPDATE)
INSERT INTO chat_message (conversation_id, role, text, created_at, client_id)
SELECT locked.id, %s, %s, %s, %s FROM locked
ON CONFLICT (conversation_id, client_id) WHERE NOT (client_id = '') DO NOTHING
RETURNING id
"""


@transaction.atomic
def message_post(
    *,
    conversation: Conversation,
    author: User,
    text: str,
    client_id: str,
    push: Callable[[Message], None] = realtime.broadcast_message,
) -> tuple[Message, bool]:
    """Store the person's message; return ``(message, created)``.

    Idempotent on ``(conversation, client_id)``: a retried send returns the stored message
    with ``created=False`` and announces / broadcasts nothing again (its text is not
    compared: the first send wins). Raises ``MessageTextInvalid`` / ``ClientIdInvalid`` /
    ``NotConversationPerson`` before anything is written.

    ``push`` runs after commit with the new message (default: broadcast ``message.created``).
    The socket consumer passes its own, to await the broadcast on its event loop instead of
    holding a database thread while the loop does it.
    """
    normalized_text = validate_message_text(text)
    validate_client_id(client_id)
    if author.pk != conversation.person_id:
        raise NotConversationPerson()
    created_at = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _MESSAGE_INSERT_SQL,
            [conversation.pk, Message.Role.PERSON, normalized_text, created_at, client_id],
        )
        inserted = cursor.fetchone()
    if inserted is None:
        # A retry (we hold the row lock, so the first send has committed), or no such conversation.
        existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
        if existing is None:
            raise Conversation.DoesNotExist(f"Conversation {conversation.pk} does not exist.")
        return existing, False
    message = Message(
        pk=inserted[0],
        conversation=conversation,
        role=Message.Role.PERSON,
        text=normalized_text,
        created_at=created_at,
        client_id=client_id,
    )
    message._state.adding = False
    message._state.db = connection.alias
    metrics.messages_posted(role=Message.Role.PERSON)
    hooks.announce_person_message(message)
    transaction.on_commit(partial(push, message), robust=True)
    return message, True


@transaction.atomic
def companion_message_create(
    *, conversation: Conversation, text: str, scheduled_reply_id: int | None
) -> Message:
    """Store a companion message and broadcast ``message.created`` once the caller commits.

    Meant to run inside the caller's transaction (scheduling's delivery). The text goes
    through the same ``validate_message_text`` (raises ``MessageTextInvalid``). A second
    message for the same ``scheduled_reply_id`` raises ``DuplicateScheduledReply`` and
    leaves the caller's transaction usable (the insert ran in a savepoint).
    """
    normalized_text = validate_message_text(text)
    try:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation,
                role=Message.Role.COMPANION,
                text=normalized_text,
                scheduled_reply_id=scheduled_reply_id,
            )
    except IntegrityError as exc:
        duplicate = Message.objects.filter(scheduled_reply_id=scheduled_reply_id)
        if scheduled_reply_id is not None and duplicate.exists():
            raise DuplicateScheduledReply(
                f"A message for scheduled reply {scheduled_reply_id} already exists."
            ) from exc
        raise
    metrics.messages_posted(role=Message.Role.COMPANION)
    transaction.on_commit(partial(realtime.broadcast_message, message), robust=True)
    return message


@dataclass(frozen=True)
class CompanionDelivery:
    """One companion message to store for one scheduled reply (see companion_messages_create)."""

    conversation_id: int
    scheduled_reply_id: int
    text: str


# One statement for the whole batch, however many rows: the rows travel as one JSON parameter
# (built by json.dumps in C; Django's bulk_create builds and adapts every field of every row, and
# psycopg's client-side quoting of text arrays cost as much as the statement). Every message of
# a batch shares one created_at; their ids keep the order. Nothing is inserted when any of the
# batch's replies already has a message (NOT EXISTS), and ON CONFLICT skips one a concurrent
# writer stores meanwhile, so the statement never fails on the unique reference: no savepoint
# (two round trips) is needed to keep the caller's transaction usable. RETURNING names each
# row's reply. It begins as Django's own INSERTs do (``INSERT INTO "chat_message"``), for
# whoever reads pg_stat_activity. (Chat's texts hold no NUL, which JSON text could not carry.)
_COMPANION_MESSAGES_INSERT_SQL = """
INSERT INTO "chat_message" (conversation_id, role, text, created_at, client_id, scheduled_reply_id)
SELECT (batch.row->>0)::bigint, %s, batch.row->>1, %s, '', (batch.row->>2)::bigint
FROM json_array_elements(%s::json) WITH ORDINALITY AS batch(row, position)
WHERE NOT EXISTS (SELECT 1 FROM "chat_message" WHERE scheduled_reply_id = ANY(%s::bigint[]))
ORDER BY batch.position
ON CONFLICT (scheduled_reply_id) DO NOTHING
RETURNING id, scheduled_reply_id
""".strip()


def companion_messages_store(*, deliveries: Sequence[CompanionDelivery]) -> dict[int, int]:
    """Store several companion messages with one INSERT; return ``{scheduled_reply_id: message_id}``.

    The batch form of :func:`companion_message_create`, for scheduling's delivery: the caller's
    transaction holds the locks. Every text goes through ``validate_message_text`` (raises
    ``MessageTextInvalid``; nothing is stored then). If any ``scheduled_reply_id`` already has a
    message, ``DuplicateScheduledReply`` is raised, nothing of the batch is stored, and the
    caller's transaction stays usable. Once the caller commits, ``message.created`` is pushed for
    every message, in order, in one Redis pipeline.
    """
    texts = [validate_message_text(delivery.text) for delivery in deliveries]
    if not deliveries:
        return {}
    created_at = timezone.now()
    rows = json.dumps(
        [
            [delivery.conversation_id, text, delivery.scheduled_reply_id]
            for delivery, text in zip(deliveries, texts, strict=True)
        ],
        ensure_ascii=False,
    )
    reply_ids = "{" + ",".join(str(delivery.scheduled_reply_id) for delivery in deliveries) + "}"
    with connection.cursor() as cursor:
        cursor.execute(
            _COMPANION_MESSAGES_INSERT_SQL, [Message.Role.COMPANION.value, created_at, rows, reply_ids]
        )
        stored: dict[int, int] = {reply_id: message_id for message_id, reply_id in cursor.fetchall()}
        if len(stored) != len(deliveries):
            # Some reply had its message already (or came twice): keep none of this batch.
            cursor.execute("DELETE FROM chat_message WHERE id = ANY(%s)", [list(stored.values())])
            raise DuplicateScheduledReply(
                "A message already exists for one of scheduled replies "
                f"{sorted(delivery.scheduled_reply_id for delivery in deliveries)}."
            )
    metrics.messages_posted(role=Message.Role.COMPANION, count=len(stored))
    created = render_created_at(created_at)
    events = [
        (
            delivery.conversation_id,
            realtime.message_created_event_of(
                message_id=stored[delivery.scheduled_reply_id],
                conversation_id=delivery.conversation_id,
                role=Message.Role.COMPANION.value,
                text=text,
                created_at=created,
                client_id="",
            ),
        )
        for delivery, text in zip(deliveries, texts, strict=True)
    ]
    transaction.on_commit(partial(realtime.broadcast_events, events), robust=True)
    return stored


def companion_messages_create(*, deliveries: Sequence[CompanionDelivery]) -> list[Message]:
    """:func:`companion_messages_store`, returning the stored messages (in the order given)."""
    stored = companion_messages_store(deliveries=deliveries)
    if not stored:
        return []
    return list(Message.objects.filter(pk__in=stored.values()).order_by("id"))


_READ_FIELDS = {
    Message.Role.PERSON: "person_read_up_to",
    Message.Role.COMPANION: "companion_read_up_to",
}


@transaction.atomic
def conversation_mark_read(*, conversation: Conversation, reader_role: str, up_to: int) -> Conversation:
    """Raise the ``reader_role`` side's read mark to ``up_to`` (never lower it); return the conversation.

    ``up_to`` must be the id of a message of this conversation (``ReadMarkInvalid`` otherwise).
    A ``read`` event is broadcast after commit only when the mark actually moved.
    """
    field = _READ_FIELDS.get(reader_role)  # type: ignore[call-overload]
    if field is None:
        raise ReadMarkInvalid("read_role_invalid", f"Unknown reader role {reader_role!r}.")
    if isinstance(up_to, bool) or not isinstance(up_to, int):
        raise ReadMarkInvalid("read_up_to_invalid", "up_to must be a message id (an integer).")
    if not Message.objects.filter(conversation=conversation, pk=up_to).exists():
        raise ReadMarkInvalid("read_up_to_unknown", f"Message {up_to} is not in this conversation.")
    before = Conversation.objects.select_for_update().values_list(field, flat=True).get(pk=conversation.pk)
    # GREATEST in SQL keeps the mark monotonic even against writers that skip the lock.
    raised_mark = Greatest(Coalesce(F(field), up_to), up_to)
    Conversation.objects.filter(pk=conversation.pk).update(**{field: raised_mark})
    conversation.refresh_from_db(fields=[field])
    after: int = getattr(conversation, field)
    if before != after:
        transaction.on_commit(
            partial(realtime.broadcast_read, conversation_id=conversation.pk, role=reader_role, up_to=after),
            robust=True,
        )
    return conversation


def person_mark_read(*, conversation: Conversation, user: User, up_to: int) -> Conversation:
    """The person has read every message up to ``up_to``; only the conversation's own person may say so.

    The one place that rule lives: the REST endpoint and the socket both call this (staff may
    look at a conversation, but never mark it read for its person).
    """
    if user.pk != conversation.person_id:
        raise NotConversationPerson()
    return conversation_mark_read(conversation=conversation, reader_role=Message.Role.PERSON, up_to=up_to)


@transaction.atomic
def conversation_get_or_create(
    *,
    person: User,
    companion: Companion,
    time_zone: str | None = None,
    person_age_group: str = Conversation.AgeGroup.ADULT,
) -> tuple[Conversation, bool]:
    """The person's conversation with ``companion``, created if missing; ``(conversation, created)``.

    ``time_zone`` defaults to the companion's ``default_time_zone`` and must be an IANA
    name (``TimeZoneInvalid``). An existing conversation is returned unchanged.
    """
    zone = time_zone or companion.default_time_zone
    try:
        validate_time_zone(zone)
    except ValidationError as exc:
        raise TimeZoneInvalid("time_zone_invalid", exc.messages[0]) from exc
    existing = Conversation.objects.filter(person=person, companion=companion).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(
                person=person, companion=companion, time_zone=zone, person_age_group=person_age_group
            )
    except IntegrityError:
        return Conversation.objects.get(person=person, companion=companion), False
    return conversation, True


@transaction.atomic
def person_register(*, username: str, password: str, email: str = "") -> tuple[User, Token]:
    """Create a person (a plain, non-staff user) and their API token."""
    user_model = get_user_model()
    if user_model.objects.filter(username__iexact=username).exists():
        raise RegistrationInvalid("username_taken", f"The username {username!r} is taken.")
    candidate = user_model(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise RegistrationInvalid("password_invalid", " ".join(exc.messages)) from exc
    try:
        with transaction.atomic():
            user = user_model.objects.create_user(username=username, email=email, password=password)
    except IntegrityError as exc:
        raise RegistrationInvalid("username_taken", f"The username {username!r} is taken.") from exc
    token = Token.objects.create(user=user)
    return user, token


def person_token(*, user: User) -> Token:
    """The user's API token, created on first use."""
    token, _ = Token.objects.get_or_create(user=user)
    return token


def typing_announce(*, conversation: Conversation, user: User, is_typing: bool) -> None:
    """Tell the conversation's sockets that its person is (not) typing; nothing is stored."""
    if user.pk != conversation.person_id:
        raise NotConversationPerson()
    realtime.broadcast_typing(conversation_id=conversation.pk, role=Message.Role.PERSON, is_typing=is_typing)
