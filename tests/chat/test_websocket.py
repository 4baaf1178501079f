"""The conversation socket on the full ASGI stack with the real Redis channel layer and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.db import transaction

from chat import realtime, services
from chat.consumers import max_frame_characters
from chat.models import Conversation, Message
from chat.serializers import message_payload
from tests.chat.conftest import close_code, receive_event, session_cookie, token_key, ws_open
from tests.conftest import token_client
from tests.factories import ConversationFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


async def open_as(user, conversation, query: str = ""):
    key = await db(token_key)(user)
    return await ws_open(conversation.pk, query=f"token={key}" + (f"&{query}" if query else ""))


async def stored_messages(conversation) -> list[tuple[str, str, str]]:
    return await db(lambda: list(conversation.messages.values_list("role", "text", "client_id")))()


MARKER = {"type": "typing", "role": "companion", "is_typing": True}


async def next_event_after_pushing_a_marker(socket, conversation_id: int) -> dict:
    """Push MARKER through the conversation's group; return the socket's next event.

    A test asserts that this is MARKER itself. That shows "nothing else was sent" by order, not
    by a timeout: whatever the test forbids was sent by the consumer, or published to the group,
    before the marker is published, and the consumer forwards a subscriber's group messages in
    the order Redis published them.
    """
    await db(realtime.broadcast_typing)(conversation_id=conversation_id, role="companion", is_typing=True)
    return await receive_event(socket)


async def test_a_sent_message_is_stored_and_pushed_to_every_socket(person, conversation, hook_recorder):
    # given: two sockets of the same conversation (two devices)
    phone = await open_as(person, conversation)
    laptop = await open_as(person, conversation)
    # when
    await phone.send_json_to({"type": "message.send", "text": "good morning ☀", "client_id": "m-1"})
    # then
    on_phone, on_laptop = await receive_event(phone), await receive_event(laptop)
    message = await db(Message.objects.get)()
    expected = {"type": "message.created", "message": await db(message_payload)(message)}
    assert on_phone == on_laptop == expected
    assert expected["message"]["role"] == "person"
    assert expected["message"]["text"] == "good morning ☀"
    assert hook_recorder.in_transaction == hook_recorder.after_commit == [message.pk]
    await phone.disconnect()
    await laptop.disconnect()


async def test_token_in_authorization_header_and_session_cookie_both_authenticate(person, conversation):
    key = await db(token_key)(person)
    cookie = await db(session_cookie)(person)
    by_header = await ws_open(conversation.pk, headers=[(b"authorization", f"Token {key}".encode())])
    by_session = await ws_open(
        conversation.pk,
        headers=[(b"cookie", f"sessionid={cookie}".encode()), (b"origin", b"http://127.0.0.1")],
    )
    await by_header.send_json_to({"type": "message.send", "text": "hi", "client_id": "h"})
    assert (await receive_event(by_header))["message"]["client_id"] == "h"
    assert (await receive_event(by_session))["message"]["client_id"] == "h"
    await by_header.disconnect()
    await by_session.disconnect()


async def test_unauthenticated_sockets_are_closed_with_4401(conversation):
    anonymous = await ws_open(conversation.pk)
    bad_token = await ws_open(conversation.pk, query="token=not-a-token")
    bad_header = await ws_open(conversation.pk, headers=[(b"authorization", b"Token nope")])
    assert [await close_code(anonymous), await close_code(bad_token), await close_code(bad_header)] == [
        4401,
        4401,
        4401,
    ]


async def test_other_peoples_and_missing_conversations_are_closed_with_4404(
    conversation, other_person, staff_user
):
    stranger = await open_as(other_person, conversation)
    missing_id = (await db(ConversationFactory)(person=conversation.person)).pk
    await db(lambda: Conversation.objects.filter(pk=missing_id).delete())()
    missing = await ws_open(missing_id, query=f"token={await db(token_key)(conversation.person)}")
    assert [await close_code(stranger), await close_code(missing)] == [4404, 4404]
    # staff may watch any conversation
    watcher = await open_as(staff_user, conversation)
    assert await next_event_after_pushing_a_marker(watcher, conversation.pk) == MARKER
    await watcher.disconnect()


async def test_a_foreign_browser_origin_is_refused(person, conversation):
    from channels.testing import WebsocketCommunicator

    from companion.asgi import application

    cookie = await db(session_cookie)(person)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/conversations/{conversation.pk}/",
        headers=[(b"cookie", f"sessionid={cookie}".encode()), (b"origin", b"https://evil.example")],
    )
    connected, _ = await communicator.connect(timeout=10)
    assert connected is False


async def test_connect_with_after_replays_the_missed_messages_in_order(person, conversation):
    # given
    seen, *missed = [await db(MessageFactory)(conversation=conversation) for _ in range(4)]
    await db(MessageFactory)()  # another conversation's message is never replayed
    # when
    socket = await open_as(person, conversation, query=f"after={seen.pk}")
    # then
    replayed = [await receive_event(socket) for _ in missed]
    assert replayed == [{"type": "message.created", "message": await db(message_payload)(m)} for m in missed]
    assert await next_event_after_pushing_a_marker(socket, conversation.pk) == MARKER
    await socket.disconnect()


async def test_replay_with_a_bad_after_is_an_error_and_the_socket_stays(person, conversation):
    socket = await open_as(person, conversation, query="after=soon")
    assert await receive_event(socket) == {
        "type": "error",
        "code": "after_invalid",
        "detail": "after must be a message id, not 'soon'; nothing replayed.",
    }
    await socket.send_json_to({"type": "message.send", "text": "still here", "client_id": "s"})
    assert (await receive_event(socket))["message"]["text"] == "still here"
    await socket.disconnect()


async def test_bad_frames_get_error_events_store_nothing_and_the_socket_stays_usable(
    person, conversation, hook_recorder
):
    socket = await open_as(person, conversation)
    bad_frames = [
        ("not json {", "json_invalid"),
        ("[1, 2]", "type_missing"),
        (json.dumps({"text": "no type"}), "type_missing"),
        (json.dumps({"type": "message.delete"}), "type_unknown"),
        ("x" * (max_frame_characters() + 1), "frame_too_large"),
        (json.dumps({"type": "message.send", "text": "", "client_id": "e1"}), "text_empty"),
        (json.dumps({"type": "message.send", "text": "a" * 2001, "client_id": "e2"}), "text_too_long"),
        (
            json.dumps({"type": "message.send", "text": "esc\x1b[2J", "client_id": "e3"}),
            "text_control_character",
        ),
        (json.dumps({"type": "message.send", "text": ["hi"], "client_id": "e4"}), "text_not_string"),
        (json.dumps({"type": "message.send", "text": "hi"}), "client_id_missing"),
        (json.dumps({"type": "typing", "is_typing": "yes"}), "typing_invalid"),
        (json.dumps({"type": "read", "up_to": "all"}), "read_up_to_invalid"),
    ]
    for frame, code in bad_frames:
        await socket.send_to(text_data=frame)
        event = await receive_event(socket)
        assert (event["type"], event["code"]) == ("error", code), frame[:80]
    await socket.send_to(bytes_data=b"\x00\x01")
    assert (await receive_event(socket))["code"] == "frame_binary"
    # then: nothing was stored or announced, and the same socket still sends
    assert await stored_messages(conversation) == []
    assert hook_recorder.in_transaction == []
    await socket.send_json_to({"type": "message.send", "text": "ok now", "client_id": "good"})
    assert (await receive_event(socket))["message"]["text"] == "ok now"
    assert await stored_messages(conversation) == [("person", "ok now", "good")]
    await socket.disconnect()


async def test_a_text_error_names_the_client_id_it_refers_to(person, conversation):
    socket = await open_as(person, conversation)
    await socket.send_json_to({"type": "message.send", "text": " ", "client_id": "abc"})
    assert await receive_event(socket) == {
        "type": "error",
        "code": "text_empty",
        "detail": "The message is empty.",
        "client_id": "abc",
    }
    await socket.disconnect()


async def test_a_retried_send_is_stored_once_and_broadcast_once(person, conversation, hook_recorder):
    # given
    sender = await open_as(person, conversation)
    other_device = await open_as(person, conversation)
    # when: the same client_id twice, then a new message
    for client_id in ["same", "same", "next"]:
        await sender.send_json_to({"type": "message.send", "text": client_id, "client_id": client_id})
    # then: the sender hears the retry confirmed; the other device hears each message once
    to_sender = [(await receive_event(sender))["message"]["client_id"] for _ in range(3)]
    to_other = [(await receive_event(other_device))["message"]["client_id"] for _ in range(2)]
    assert to_sender == ["same", "same", "next"]
    assert to_other == ["same", "next"]
    assert await stored_messages(conversation) == [("person", "same", "same"), ("person", "next", "next")]
    assert len(hook_recorder.in_transaction) == 2
    await sender.disconnect()
    await other_device.disconnect()


async def test_rest_send_and_socket_send_produce_the_same_broadcast(person, conversation):
    # given
    socket = await open_as(person, conversation)
    # when
    response = await db(
        lambda: token_client(person).post(
            f"/api/v1/conversations/{conversation.pk}/messages/",
            {"text": "via rest", "client_id": "r"},
            format="json",
        )
    )()
    # then
    assert response.status_code == 201
    assert await receive_event(socket) == {"type": "message.created", "message": response.json()}
    await socket.disconnect()


async def test_typing_is_relayed_to_the_conversation(person, conversation, staff_user):
    # given
    phone = await open_as(person, conversation)
    watcher = await open_as(staff_user, conversation)
    # when
    await phone.send_json_to({"type": "typing", "is_typing": True})
    person_typing = await receive_event(watcher)
    await db(realtime.broadcast_typing)(conversation_id=conversation.pk, role="companion", is_typing=False)
    # then
    expected = [
        {"type": "typing", "role": "person", "is_typing": True},
        {"type": "typing", "role": "companion", "is_typing": False},
    ]
    assert [person_typing, await receive_event(watcher)] == expected
    assert [await receive_event(phone) for _ in range(2)] == expected
    # a watcher (staff) cannot type for the person
    await watcher.send_json_to({"type": "typing", "is_typing": True})
    assert (await receive_event(watcher))["code"] == "forbidden"
    await phone.disconnect()
    await watcher.disconnect()


async def test_read_over_the_socket_moves_the_mark_and_is_broadcast(person, conversation):
    # given
    first, second = [await db(MessageFactory)(conversation=conversation, role="companion") for _ in range(2)]
    foreign = await db(MessageFactory)()
    socket = await open_as(person, conversation)
    # when
    await socket.send_json_to({"type": "read", "up_to": second.pk})
    await socket.send_json_to({"type": "read", "up_to": first.pk})  # backwards: no change, no event
    await socket.send_json_to({"type": "read", "up_to": foreign.pk})
    # then: the broadcast comes back through Redis, the error straight from the consumer, so
    # their order is not defined; exactly these two events arrive.
    events = [await receive_event(socket), await receive_event(socket)]
    assert sorted(events, key=lambda event: event["type"]) == [
        {
            "type": "error",
            "code": "read_up_to_unknown",
            "detail": f"Message {foreign.pk} is not in this conversation.",
        },
        {"type": "read", "role": "person", "up_to": second.pk},
    ]
    # the error came after the consumer had handled (and published for) the backwards read
    assert await next_event_after_pushing_a_marker(socket, conversation.pk) == MARKER
    await db(conversation.refresh_from_db)()
    assert conversation.person_read_up_to == second.pk
    await socket.disconnect()


async def test_companion_messages_are_broadcast_only_after_commit(person, conversation):
    """The scheduling contract: companion_message_create inside the caller's transaction."""
    socket = await open_as(person, conversation)

    def deliver(text: str, reply_id: int, *, roll_back: bool) -> None:
        with transaction.atomic():
            services.companion_message_create(
                conversation=conversation, text=text, scheduled_reply_id=reply_id
            )
            services.conversation_mark_read(
                conversation=conversation, reader_role="companion", up_to=conversation.messages.last().pk
            )
            if roll_back:
                transaction.set_rollback(True)

    # when: one delivery rolls back, the next commits, a duplicate wake-up fails cleanly
    await db(deliver)("never sent", 1, roll_back=True)
    await db(deliver)("back~ that was good", 2, roll_back=False)
    with pytest.raises(services.DuplicateScheduledReply):
        await db(deliver)("again", 2, roll_back=False)
    # then: the socket heard only the committed delivery, message first, then the read mark
    created, read = await receive_event(socket), await receive_event(socket)
    assert created["message"]["text"] == "back~ that was good"
    assert created["message"]["role"] == "companion"
    assert read == {"type": "read", "role": "companion", "up_to": created["message"]["id"]}
    assert await stored_messages(conversation) == [("companion", "back~ that was good", "")]
    assert await next_event_after_pushing_a_marker(socket, conversation.pk) == MARKER
    await socket.disconnect()


async def test_an_in_transaction_hook_failure_stores_nothing(person, conversation):
    from chat import hooks

    def refuse(message: Message) -> None:
        raise RuntimeError("scheduling is broken")

    hooks.register_person_message_hook(in_transaction=refuse)
    try:
        with pytest.raises(RuntimeError):
            await db(services.message_post)(
                conversation=conversation, author=person, text="hi", client_id="x"
            )
    finally:
        hooks.unregister_person_message_hook(in_transaction=refuse)
    assert await stored_messages(conversation) == []


async def test_two_people_never_hear_each_other(person, conversation, companion):
    # given
    jun = await db(UserFactory)(username="jun")
    juns_conversation = await db(ConversationFactory)(person=jun, companion=companion)
    mine, theirs = await open_as(person, conversation), await open_as(jun, juns_conversation)
    # when
    await theirs.send_json_to({"type": "message.send", "text": "secret", "client_id": "j"})
    await mine.send_json_to({"type": "message.send", "text": "hello", "client_id": "m"})
    # then
    assert (await receive_event(mine))["message"]["text"] == "hello"
    assert (await receive_event(theirs))["message"]["text"] == "secret"
    # a socket handles its frames one at a time: once Jun's socket answers the next one, the
    # "secret" frame is done, every push of it published
    await theirs.send_json_to({"type": "ping"})
    assert (await receive_event(theirs))["code"] == "type_unknown"
    assert await next_event_after_pushing_a_marker(mine, conversation.pk) == MARKER
    await mine.disconnect()
    await theirs.disconnect()
