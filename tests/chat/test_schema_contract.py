"""What the schema fuzz test found (issue #13), one regression each, fast enough for every run.

The fuzz test (test_schema_fuzz.py, slow) holds every operation to its schema; these pin the
single answers and schema entries it found wrong: a limit that was silently ignored, HTML and 406
answers the schema never mentioned, numbers taken for strings, and input fields the schema
called nullable or unbounded while the API refused exactly those values.
"""

from __future__ import annotations

import pytest
import yaml
from django.contrib.auth.models import User

from chat.models import Conversation
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

LIMIT_INVALID = {"code": "limit_invalid", "detail": "limit must be a whole number from 1 to 200."}


def messages_url(conversation: Conversation) -> str:
    return f"/api/v1/conversations/{conversation.pk}/messages/"


@pytest.mark.parametrize("limit", ["0", "-1", "201", "abc", "", " 5", "1_0", "\u0663", "9" * 5000])
def test_a_limit_outside_1_to_200_is_a_400_not_the_default_page(api_client, conversation, limit):
    response = api_client.get(messages_url(conversation), {"limit": limit})
    assert (response.status_code, response.json()) == (400, LIMIT_INVALID)


@pytest.mark.parametrize("limit", ["1", "200", "007"])
def test_a_limit_from_1_to_200_pages(api_client, conversation, limit):
    response = api_client.get(messages_url(conversation), {"limit": limit})
    assert (response.status_code, response.json()) == (200, {"next": None, "previous": None, "results": []})


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("query", "accept"),
    [
        ("", BROWSER_ACCEPT),  # was DRF's browsable HTML page
        ("", "text/html"),
        ("", "application/xml"),  # was 406
        ("?format=api", "*/*"),  # was the HTML page
        ("?format=xml", "*/*"),  # was 404
    ],
)
def test_the_api_answers_json_whatever_the_client_asks_for(api_client, conversation, query, accept):
    plain = api_client.get(f"/api/v1/conversations/{conversation.pk}/")
    response = api_client.get(f"/api/v1/conversations/{conversation.pk}/{query}", HTTP_ACCEPT=accept)
    assert (response.status_code, response["Content-Type"]) == (200, "application/json")
    assert response.json() == plain.json()


def test_an_error_asked_for_as_html_is_json_too(anonymous_client):
    response = anonymous_client.get("/api/v1/companions/", HTTP_ACCEPT="text/html")
    assert (response.status_code, response["Content-Type"], response.json()) == (
        401,
        "application/json",
        {"code": "not_authenticated", "detail": "Authentication credentials were not provided."},
    )


def test_the_schema_still_comes_as_yaml_or_json_as_asked(staff_user):
    client = token_client(staff_user)
    as_yaml = client.get("/api/v1/schema/")
    as_json = client.get("/api/v1/schema/", {"format": "json"})
    assert as_yaml["Content-Type"] == "application/vnd.oai.openapi; charset=utf-8"
    assert as_json["Content-Type"] == "application/vnd.oai.openapi+json"
    assert yaml.safe_load(as_yaml.content) == as_json.json()


NOT_A_STRING = ["Not a valid string."]


@pytest.mark.parametrize("value", [0, 1.5, True, ["mina"], {"name": "mina"}])
def test_a_username_that_is_no_string_is_refused_not_turned_into_text(anonymous_client, person, value):
    register = anonymous_client.post(
        "/api/v1/auth/register/", {"username": value, "password": "a long passphrase"}, format="json"
    )
    token = anonymous_client.post(
        "/api/v1/auth/token/", {"username": value, "password": "correct horse battery"}, format="json"
    )
    # The regex field says so in its own words; both are 400 invalid on the username alone.
    assert (register.status_code, register.json()["fields"]) == (
        400,
        {"username": ["This value does not match the required pattern."]},
    )
    assert (token.status_code, token.json()["fields"]) == (400, {"username": NOT_A_STRING})
    assert list(User.objects.values_list("username", flat=True)) == ["mina"]  # {"username": 0} made "0"


def test_passwords_emails_and_time_zones_must_be_strings(anonymous_client, api_client, companion):
    register = anonymous_client.post(
        "/api/v1/auth/register/", {"username": "hana", "password": 12345678901, "email": 7}, format="json"
    )
    zone = api_client.post("/api/v1/conversations/", {"companion": "luda", "time_zone": 9}, format="json")
    assert (register.status_code, register.json()["fields"]) == (
        400,
        {"password": NOT_A_STRING, "email": ["Enter a valid email address."]},
    )
    assert (zone.status_code, zone.json()["fields"]) == (400, {"time_zone": NOT_A_STRING})


@pytest.fixture
def schema(staff_user) -> dict:
    return token_client(staff_user).get("/api/v1/schema/", {"format": "json"}).json()


def test_the_send_input_says_what_the_text_rules_accept(schema):
    # Neither field is nullable (null is refused as text_not_string / client_id_missing).
    assert schema["components"]["schemas"]["MessageSendInput"] == {
        "type": "object",
        "properties": {
            "text": {
                "type": "string",
                "minLength": 1,
                "description": "1..CHAT_MESSAGE_MAX_LENGTH characters after trimming, no control "
                "characters but newline and tab.",
            },
            "client_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "pattern": "^[ -~]+$",
                "description": "Chosen by the client; a retry reuses it.",
            },
        },
        "required": ["client_id", "text"],
    }


def test_the_input_strings_say_they_may_not_be_blank_and_a_slug_is_a_slug(schema):
    components = schema["components"]["schemas"]
    assert components["ConversationCreateInput"]["properties"]["companion"] == {
        "type": "string",
        "pattern": "^[-a-zA-Z0-9_]+$",
        "maxLength": 64,
    }
    assert components["ConversationCreateInput"]["properties"]["time_zone"]["minLength"] == 1
    assert components["RegisterInput"]["properties"]["password"]["minLength"] == 1
    assert {
        name: field.get("minLength") for name, field in components["TokenInput"]["properties"].items()
    } == {
        "username": 1,
        "password": 1,
    }


def test_the_error_component_documents_fields(schema):
    assert schema["components"]["schemas"]["Error"]["properties"] == {
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": 'Only when code is "invalid": the messages of each field that was refused.',
        },
    }
    assert schema["components"]["schemas"]["Error"]["required"] == ["code", "detail"]


def test_the_limit_parameter_and_the_reply_component_are_named_as_they_are(schema):
    parameters = schema["paths"]["/api/v1/conversations/{conversation_id}/messages/"]["get"]["parameters"]
    limit = next(parameter for parameter in parameters if parameter["name"] == "limit")
    replies = schema["paths"]["/api/v1/conversations/{conversation_id}/replies/"]["get"]
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 200}
    assert replies["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/ScheduledReply"},
    }
    assert "Output" not in schema["components"]["schemas"]
