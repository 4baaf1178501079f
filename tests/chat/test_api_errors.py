"""Every JSON error of the API has one shape, ``{"code", "detail"}``, whatever raised it."""

from __future__ import annotations

import pytest
from rest_framework.throttling import UserRateThrottle

from tests.conftest import token_client

pytestmark = pytest.mark.django_db


def test_authentication_permission_and_not_found_errors_have_code_and_detail(
    anonymous_client, api_client, staff_user, conversation
):
    anonymous = anonymous_client.get("/api/v1/conversations/")
    bad_token = anonymous_client.get("/api/v1/conversations/", HTTP_AUTHORIZATION="Token nope")
    missing = api_client.get("/api/v1/conversations/999999/messages/")
    staff_read = token_client(staff_user).post(
        f"/api/v1/conversations/{conversation.pk}/read/", {"up_to": 1}, format="json"
    )
    assert (anonymous.status_code, anonymous.json()) == (
        401,
        {"code": "not_authenticated", "detail": "Authentication credentials were not provided."},
    )
    assert anonymous["WWW-Authenticate"] == "Token"
    assert (bad_token.status_code, bad_token.json()) == (
        401,
        {"code": "authentication_failed", "detail": "Invalid token."},
    )
    assert (missing.status_code, missing.json()) == (
        404,
        {"code": "not_found", "detail": "No such conversation."},
    )
    # up_to=1 is no message of it either, but the service checks who is reading first
    assert (staff_read.status_code, staff_read.json()) == (
        403,
        {"code": "forbidden", "detail": "Only the person of this conversation can do that."},
    )


def test_malformed_json_method_and_media_type_errors_have_code_and_detail(api_client, conversation):
    url = f"/api/v1/conversations/{conversation.pk}/messages/"
    malformed = api_client.generic("POST", url, "{not json", content_type="application/json")
    wrong_method = api_client.delete(url)
    wrong_media = api_client.generic("POST", url, "text=hi", content_type="text/plain")
    assert (malformed.status_code, malformed.json()) == (
        400,
        {
            "code": "parse_error",
            "detail": "JSON parse error - Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        },
    )
    assert (wrong_method.status_code, wrong_method.json()) == (
        405,
        {"code": "method_not_allowed", "detail": 'Method "DELETE" not allowed.'},
    )
    assert (wrong_media.status_code, wrong_media.json()) == (
        415,
        {"code": "unsupported_media_type", "detail": 'Unsupported media type "text/plain" in request.'},
    )


def test_validation_errors_name_the_first_field_and_keep_every_message(api_client, conversation):
    response = api_client.post(f"/api/v1/conversations/{conversation.pk}/read/", {"up_to": 0}, format="json")
    assert (response.status_code, response.json()) == (
        400,
        {
            "code": "invalid",
            "detail": "up_to: Ensure this value is greater than or equal to 1.",
            "fields": {"up_to": ["Ensure this value is greater than or equal to 1."]},
        },
    )


def test_throttled_requests_say_so_and_keep_retry_after(monkeypatch, api_client):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "1/minute"})
    api_client.get("/api/v1/conversations/")
    throttled = api_client.get("/api/v1/conversations/")
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled"
    assert throttled.json()["detail"].startswith("Request was throttled. Expected available in ")
    assert int(throttled["Retry-After"]) in range(1, 61)
