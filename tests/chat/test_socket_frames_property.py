"""Hypothesis-generated socket frames: answered with events or not at all, never closed, still usable."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.consumers import max_frame_characters
from tests.chat.conftest import token_key

pytestmark = pytest.mark.django_db(transaction=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)
events = st.fixed_dictionaries(
    {"type": st.sampled_from(["message.send", "typing", "read", "nope"]) | st.text(max_size=12)},
    optional={"text": json_values, "client_id": json_values, "is_typing": json_values, "up_to": json_values},
)
frames = (
    events.map(json.dumps)
    | json_values.map(json.dumps)
    | st.text(min_size=1, max_size=200)  # the test client cannot send an empty frame
    | st.integers(min_value=1, max_value=3000).map(lambda depth: "[" * depth + "]" * depth)
)
PROBE = {"type": "typing", "is_typing": "probe"}


async def frame_round_trip(token: str, conversation_id: int, frame: str) -> list[dict]:
    from companion.asgi import application

    socket = WebsocketCommunicator(application, f"/ws/conversations/{conversation_id}/?token={token}")
    connected, _ = await socket.connect(timeout=10)
    assert connected is True
    await socket.send_to(text_data=frame)
    await socket.send_json_to(PROBE)
    answers: list[dict] = []
    while True:  # every event up to the probe's own error; a close fails the assertion below
        output = await socket.receive_output(timeout=10)
        assert output["type"] == "websocket.send", output
        event = json.loads(output["text"])
        if event == {"type": "error", "code": "typing_invalid", "detail": "is_typing must be true or false."}:
            break
        answers.append(event)
    await socket.disconnect()
    return answers


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frame=frames)
def test_any_frame_under_the_limit_gets_events_and_the_socket_stays_usable(person, conversation, frame):
    assert len(frame) <= max_frame_characters()
    answers = async_to_sync(frame_round_trip)(token_key(person), conversation.pk, frame)
    assert {event["type"] for event in answers} <= {"error", "message.created", "typing", "read"}
