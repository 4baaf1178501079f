"""Inputs from the production probe (issue #13) that used to give a 5xx: each gets a clear 4xx now."""

from __future__ import annotations

import base64
import json

import pytest
from channels.testing import WebsocketCommunicator

from chat.json_limits import MAX_JSON_DEPTH
from chat.models import Conversation, Message
from tests.chat.conftest import receive_event, token_key, ws_open

pytestmark = pytest.mark.django_db(transaction=True)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


TOO_DEEP_DETAIL = f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels."


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1100, 100_000])
def test_deeply_nested_json_is_a_400_on_anonymous_and_authenticated_endpoints(
    anonymous_client, api_client, conversation, depth
):
    register = anonymous_client.generic(
        "POST", "/api/v1/auth/register/", nested(depth), content_type="application/json"
    )
    send = api_client.generic(
        "POST",
        f"/api/v1/conversations/{conversation.pk}/messages/",
        json.dumps({"text": "hi", "client_id": "c", "x": json.loads(nested(50))})[:-1]
        + ', "y": '
        + nested(depth)
        + "}",
        content_type="application/json",
    )
    assert (register.status_code, register.json()) == (
        400,
        {"code": "json_too_deep", "detail": TOO_DEEP_DETAIL},
    )
    assert (send.status_code, send.json()) == (400, {"code": "json_too_deep", "detail": TOO_DEEP_DETAIL})
    assert Message.objects.count() == 0


def test_json_at_the_depth_limit_is_parsed(api_client, conversation):
    body = {"text": "deep but fine", "client_id": "d", "extra": json.loads(nested(MAX_JSON_DEPTH - 1))}
    response = api_client.post(f"/api/v1/conversations/{conversation.pk}/messages/", body, format="json")
    assert response.status_code == 201


async def test_a_deeply_nested_frame_is_an_error_event_and_the_socket_stays(person, conversation):
    socket = await ws_open(conversation.pk, query=f"token={await token_key_async(person)}")
    for depth in (MAX_JSON_DEPTH + 1, 1100, 6000):  # all under the frame limit
        await socket.send_to(text_data='{"type": "message.send", "x": ' + nested(depth) + "}")
        assert await receive_event(socket) == {
            "type": "error",
            "code": "json_too_deep",
            "detail": f"The frame nests deeper than {MAX_JSON_DEPTH} levels.",
        }
    await socket.send_json_to({"type": "message.send", "text": "still open", "client_id": "k"})
    assert (await receive_event(socket))["message"]["text"] == "still open"
    await socket.disconnect()


async def token_key_async(user) -> str:
    from channels.db import database_sync_to_async

    return await database_sync_to_async(token_key)(user)


@pytest.mark.parametrize(
    "cursor",
    [
        base64.b64encode(b"p=abc").decode(),  # the probe's: a position that is no id
        base64.b64encode(b"p=1&r=x").decode(),
        base64.b64encode(b"o=-3").decode(),
        "%%%not-base64",
        base64.b64encode(b"p=\x00").decode(),
        base64.b64encode(b"p=" + b"9" * 5000).decode(),  # was a 500: int() refuses 4,300+ digits
        base64.b64encode(b"p=9223372036854775808").decode(),  # one past bigint: no id ever handed out
    ],
)
def test_a_tampered_cursor_is_a_400(api_client, conversation, cursor):
    response = api_client.get(f"/api/v1/conversations/{conversation.pk}/messages/", {"cursor": cursor})
    assert (response.status_code, response.json()) == (
        400,
        {"code": "cursor_invalid", "detail": "The cursor is not one this API handed out."},
    )


def test_a_cursor_handed_out_still_pages(api_client, conversation):
    for number in range(3):
        api_client.post(
            f"/api/v1/conversations/{conversation.pk}/messages/",
            {"text": f"m{number}", "client_id": f"c{number}"},
            format="json",
        )
    first = api_client.get(f"/api/v1/conversations/{conversation.pk}/messages/", {"limit": 2}).json()
    second = api_client.get(first["next"]).json()
    assert [m["text"] for m in first["results"]] == ["m2", "m1"]
    assert [m["text"] for m in second["results"]] == ["m0"]


@pytest.mark.parametrize("slug", ["lu\x00da", "\x00", "luda\n", "../luda", "x" * 65])
def test_a_companion_slug_that_is_no_slug_is_a_400(api_client, companion, slug):
    response = api_client.post("/api/v1/conversations/", {"companion": slug}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert response.json()["fields"] == {"companion": ["No companion has this slug."]}
    assert Conversation.objects.count() == 0


@pytest.mark.parametrize("value", ["", None])
def test_an_empty_or_null_companion_says_a_slug_is_required(api_client, companion, value):
    response = api_client.post("/api/v1/conversations/", {"companion": value}, format="json")
    assert (response.status_code, response.json()) == (
        400,
        {
            "code": "invalid",
            "detail": "companion: Give the slug of a companion (GET /api/v1/companions/).",
            "fields": {"companion": ["Give the slug of a companion (GET /api/v1/companions/)."]},
        },
    )


def test_nul_bytes_in_text_fields_are_400s(anonymous_client, api_client, companion, conversation):
    token = anonymous_client.post(
        "/api/v1/auth/token/", {"username": "mi\x00na", "password": "x"}, format="json"
    )
    register = anonymous_client.post(
        "/api/v1/auth/register/", {"username": "ok", "password": "pass\x00word-long-enough"}, format="json"
    )
    zone = api_client.post(
        "/api/v1/conversations/", {"companion": "luda", "time_zone": "Asia/\x00Seoul"}, format="json"
    )
    text = api_client.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"text": "a\x00b", "client_id": "n"},
        format="json",
    )
    assert [token.status_code, register.status_code, zone.status_code, text.status_code] == [
        400,
        400,
        400,
        400,
    ]
    assert text.json()["code"] == "text_control_character"
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    "path", ["/ws/nope/", "/ws/conversations/abc/", "/nope", "/ws/conversations/1/extra/"]
)
async def test_an_unknown_socket_path_is_refused_at_the_handshake(person, path):
    from companion.asgi import application

    socket = WebsocketCommunicator(application, path)
    connected, code = await socket.connect(timeout=10)
    assert (connected, code) == (False, 1000)


def test_a_body_over_the_upload_limit_is_a_json_413(api_client, conversation, settings):
    body = json.dumps({"text": "x" * (5 * 1024 * 1024), "client_id": "big"})
    response = api_client.generic(
        "POST", f"/api/v1/conversations/{conversation.pk}/messages/", body, content_type="application/json"
    )
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert (response.status_code, response["Content-Type"], response.json()) == (
        413,
        "application/json",
        {
            "code": "body_too_large",
            "detail": f"The request body has {len(body)} bytes; the limit is {limit}.",
        },
    )
    assert Message.objects.count() == 0


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "right/UTC", "posix/Asia/Seoul"])
def test_time_zones_that_are_no_canonical_iana_names_are_refused(api_client, companion, zone):
    response = api_client.post(
        "/api/v1/conversations/", {"companion": "luda", "time_zone": zone}, format="json"
    )
    assert (response.status_code, response.json()) == (
        400,
        {
            "code": "time_zone_invalid",
            "detail": f"Unknown time zone {zone!r}; use an IANA name such as 'Asia/Seoul'.",
        },
    )
    assert Conversation.objects.count() == 0


def test_iana_names_are_still_accepted(api_client, companion):
    response = api_client.post(
        "/api/v1/conversations/", {"companion": "luda", "time_zone": "Asia/Seoul"}, format="json"
    )
    assert (response.status_code, response.json()["time_zone"]) == (201, "Asia/Seoul")


def test_the_schema_says_avatar_url_may_be_empty(staff_user):
    from tests.conftest import token_client

    schema = token_client(staff_user).get("/api/v1/schema/", {"format": "json"}).json()
    avatar = schema["components"]["schemas"]["Companion"]["properties"]["avatar_url"]
    assert avatar == {
        "type": "string",
        "readOnly": True,
        "description": 'An http(s) URL of the avatar image, or "" when the companion has none.',
    }


def test_ids_beyond_bigint_are_4xx_not_data_errors(api_client, conversation):
    huge = 10**30
    detail = api_client.get(f"/api/v1/conversations/{huge}/")
    after = api_client.get(f"/api/v1/conversations/{conversation.pk}/messages/", {"after": huge})
    read = api_client.post(f"/api/v1/conversations/{conversation.pk}/read/", {"up_to": huge}, format="json")
    assert (detail.status_code, after.status_code, after.json()["results"]) == (404, 200, [])
    assert (read.status_code, read.json()["code"]) == (400, "read_up_to_unknown")


async def test_a_socket_for_an_id_beyond_bigint_is_closed_with_4404(person):
    from tests.chat.conftest import close_code

    socket = await ws_open(10**30, query=f"token={await token_key_async(person)}")
    assert await close_code(socket) == 4404


def test_the_schema_documents_every_error_status_of_each_operation(staff_user):
    from tests.conftest import token_client

    schema = token_client(staff_user).get("/api/v1/schema/", {"format": "json"}).json()
    statuses = {
        (path, method): sorted(operation["responses"])
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/") and not path.startswith(("/api/v1/labeling", "/api/v1/staff"))
        for method, operation in item.items()
    }
    assert statuses == {
        ("/api/v1/auth/register/", "post"): ["201", "400", "413", "415", "429"],
        ("/api/v1/auth/token/", "post"): ["200", "400", "413", "415", "429"],
        ("/api/v1/companions/", "get"): ["200", "401", "429"],
        ("/api/v1/conversations/", "get"): ["200", "401", "429"],
        ("/api/v1/conversations/", "post"): ["200", "201", "400", "401", "413", "415", "429"],
        ("/api/v1/conversations/{conversation_id}/", "get"): ["200", "401", "404", "429"],
        ("/api/v1/conversations/{conversation_id}/messages/", "get"): ["200", "400", "401", "404", "429"],
        ("/api/v1/conversations/{conversation_id}/messages/", "post"): [
            "200",
            "201",
            "400",
            "401",
            "403",
            "404",
            "413",
            "415",
            "429",
        ],
        # scheduling's staff view of a conversation's planned replies
        ("/api/v1/conversations/{conversation_id}/replies/", "get"): [
            "200",
            "400",
            "401",
            "403",
            "404",
            "429",
        ],
        ("/api/v1/conversations/{conversation_id}/read/", "post"): [
            "200",
            "400",
            "401",
            "403",
            "404",
            "413",
            "415",
            "429",
        ],
    }


@pytest.mark.parametrize("path", ["/api/v1/nope/", "/api/v1/conversations/abc/", "/api/"])
def test_an_unknown_api_path_is_a_json_404(api_client, path):
    response = api_client.get(path)
    assert (response.status_code, response["Content-Type"], response.json()) == (
        404,
        "application/json",
        {"code": "not_found", "detail": "No API endpoint at this path."},
    )
