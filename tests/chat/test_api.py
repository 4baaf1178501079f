"""The REST API under /api/v1/: every endpoint, its bad inputs and the access rules."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token
from rest_framework.throttling import UserRateThrottle

from chat import urls as chat_urls
from chat.models import Conversation, Message
from tests.conftest import token_client
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


def messages_url(conversation: Conversation) -> str:
    return f"/api/v1/conversations/{conversation.pk}/messages/"


# --- accounts -----------------------------------------------------------------------------------


def test_register_creates_a_person_and_returns_a_working_token(anonymous_client):
    # when
    response = anonymous_client.post(
        "/api/v1/auth/register/", {"username": "sora", "password": "a long pass phrase"}, format="json"
    )
    # then
    assert response.status_code == 201
    user = get_user_model().objects.get(username="sora")
    assert response.json() == {"id": user.pk, "username": "sora", "token": Token.objects.get(user=user).key}
    assert user.is_staff is False
    assert token_client(user).get("/api/v1/companions/").status_code == 200


def test_register_refuses_a_taken_username_and_a_weak_password(anonymous_client, person):
    # when
    taken = anonymous_client.post(
        "/api/v1/auth/register/", {"username": "MINA", "password": "a long pass phrase"}, format="json"
    )
    weak = anonymous_client.post(
        "/api/v1/auth/register/", {"username": "new", "password": "123"}, format="json"
    )
    # then
    assert (taken.status_code, taken.json()["code"]) == (400, "username_taken")
    assert (weak.status_code, weak.json()["code"]) == (400, "password_invalid")
    assert "too short" in weak.json()["detail"]
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["mina"]


def test_token_for_valid_credentials_and_400_for_wrong_ones(anonymous_client, person):
    # when
    good = anonymous_client.post(
        "/api/v1/auth/token/", {"username": "mina", "password": "correct horse battery"}, format="json"
    )
    bad = anonymous_client.post(
        "/api/v1/auth/token/", {"username": "mina", "password": "wrong"}, format="json"
    )
    # then
    assert good.status_code == 200
    assert good.json() == {"token": Token.objects.get(user=person).key}
    assert bad.status_code == 400
    assert bad.json() == {"code": "credentials_invalid", "detail": "Unknown username or wrong password."}


def test_every_chat_endpoint_needs_authentication(anonymous_client, conversation):
    for method, url in [
        ("get", "/api/v1/companions/"),
        ("get", "/api/v1/conversations/"),
        ("post", "/api/v1/conversations/"),
        ("get", f"/api/v1/conversations/{conversation.pk}/"),
        ("get", messages_url(conversation)),
        ("post", messages_url(conversation)),
        ("post", f"/api/v1/conversations/{conversation.pk}/read/"),
    ]:
        assert getattr(anonymous_client, method)(url, {}, format="json").status_code == 401, url


# --- companions and conversations ---------------------------------------------------------------


def test_companions_are_listed_with_their_persona(api_client, companion):
    response = api_client.get("/api/v1/companions/")
    assert response.status_code == 200
    assert response.json() == [
        {
            "id": companion.pk,
            "slug": "luda",
            "name": "Luda",
            "description": "A cheerful college student who loves food and music.",
            "speaking_style": "casual, warm, short messages",
            "avatar_url": "",
            "default_time_zone": "Asia/Seoul",
        }
    ]


def test_creating_a_conversation_defaults_to_the_companions_time_zone_and_is_idempotent(
    api_client, person, companion
):
    # when
    first = api_client.post("/api/v1/conversations/", {"companion": "luda"}, format="json")
    second = api_client.post(
        "/api/v1/conversations/", {"companion": "luda", "time_zone": "Europe/Paris"}, format="json"
    )
    # then
    assert first.status_code == 201
    conversation = Conversation.objects.get()
    assert first.json()["id"] == conversation.pk
    assert first.json()["time_zone"] == "Asia/Seoul"
    assert first.json()["person"] == "mina"
    assert first.json()["companion"]["slug"] == "luda"
    assert (first.json()["person_read_up_to"], first.json()["companion_read_up_to"]) == (None, None)
    assert second.status_code == 200
    assert second.json() == first.json()
    assert (conversation.person, conversation.time_zone, conversation.person_age_group) == (
        person,
        "Asia/Seoul",
        "adult",
    )


def test_conversation_takes_an_explicit_time_zone_and_age_group(api_client, companion):
    response = api_client.post(
        "/api/v1/conversations/",
        {"companion": "luda", "time_zone": "America/New_York", "person_age_group": "senior"},
        format="json",
    )
    assert response.status_code == 201
    assert (response.json()["time_zone"], response.json()["person_age_group"]) == (
        "America/New_York",
        "senior",
    )


def test_conversation_refuses_unknown_time_zone_companion_and_age_group(api_client, companion):
    # when
    zone = api_client.post(
        "/api/v1/conversations/", {"companion": "luda", "time_zone": "Mars/Olympus"}, format="json"
    )
    nobody = api_client.post("/api/v1/conversations/", {"companion": "ghost"}, format="json")
    age = api_client.post(
        "/api/v1/conversations/", {"companion": "luda", "person_age_group": "teen"}, format="json"
    )
    # then
    assert zone.status_code == 400
    assert zone.json() == {
        "code": "time_zone_invalid",
        "detail": "Unknown time zone 'Mars/Olympus'; use an IANA name such as 'Asia/Seoul'.",
    }
    assert nobody.status_code == 400
    assert nobody.json() == {
        "code": "invalid",
        "detail": "companion: No companion has this slug.",
        "fields": {"companion": ["No companion has this slug."]},
    }
    assert age.status_code == 400
    assert age.json() == {
        "code": "invalid",
        "detail": 'person_age_group: "teen" is not a valid choice.',
        "fields": {"person_age_group": ['"teen" is not a valid choice.']},
    }
    assert Conversation.objects.count() == 0


def test_a_person_sees_only_their_conversations_and_staff_see_all(
    person, other_person, staff_user, companion
):
    # given
    mine = ConversationFactory(person=person, companion=companion)
    theirs = ConversationFactory(person=other_person, companion=companion)
    # when / then
    assert [c["id"] for c in token_client(person).get("/api/v1/conversations/").json()] == [mine.pk]
    assert token_client(person).get(f"/api/v1/conversations/{theirs.pk}/").status_code == 404
    assert token_client(person).get(f"/api/v1/conversations/{mine.pk}/").json()["id"] == mine.pk
    assert token_client(person).get("/api/v1/conversations/999999999/").status_code == 404
    assert [c["id"] for c in token_client(staff_user).get("/api/v1/conversations/").json()] == [
        theirs.pk,
        mine.pk,
    ]
    assert token_client(staff_user).get(f"/api/v1/conversations/{theirs.pk}/").status_code == 200


# --- messages -----------------------------------------------------------------------------------


def test_posting_a_message_stores_it_once_and_a_retry_returns_the_same_message(
    api_client, conversation, hook_recorder
):
    # when
    first = api_client.post(
        messages_url(conversation), {"text": "  hi luda\r\n", "client_id": "c-1"}, format="json"
    )
    retry = api_client.post(
        messages_url(conversation), {"text": "hi luda", "client_id": "c-1"}, format="json"
    )
    # then
    message = Message.objects.get()
    expected = {
        "id": message.pk,
        "conversation": conversation.pk,
        "role": "person",
        "text": "hi luda",
        "created_at": message.created_at.isoformat().replace("+00:00", "Z"),
        "client_id": "c-1",
    }
    assert (first.status_code, first.json()) == (201, expected)
    assert (retry.status_code, retry.json()) == (200, expected)
    assert hook_recorder.in_transaction == [message.pk]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"text": "", "client_id": "x"}, "text_empty"),
        ({"text": " \n\t ", "client_id": "x"}, "text_empty"),
        ({"text": "a" * 2001, "client_id": "x"}, "text_too_long"),
        ({"text": "bell\x07", "client_id": "x"}, "text_control_character"),
        ({"text": "nul\x00", "client_id": "x"}, "text_control_character"),
        ({"text": 42, "client_id": "x"}, "text_not_string"),
        ({"text": None, "client_id": "x"}, "text_not_string"),
        ({"text": "hi", "client_id": ""}, "client_id_missing"),
        ({"text": "hi", "client_id": "x" * 65}, "client_id_too_long"),
        ({"text": "hi", "client_id": "é"}, "client_id_invalid"),
    ],
)
def test_bad_messages_are_refused_with_a_reason_and_nothing_is_stored(
    api_client, conversation, hook_recorder, payload, code
):
    response = api_client.post(messages_url(conversation), payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert Message.objects.count() == 0
    assert hook_recorder.in_transaction == []


def test_message_text_at_the_limit_is_accepted(api_client, conversation):
    response = api_client.post(
        messages_url(conversation), {"text": "가" * 2000, "client_id": "x"}, format="json"
    )
    assert response.status_code == 201
    assert Message.objects.get().text == "가" * 2000


def test_missing_fields_are_400(api_client, conversation):
    response = api_client.post(messages_url(conversation), {}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "detail": "text: This field is required.",
        "fields": {"text": ["This field is required."], "client_id": ["This field is required."]},
    }


def test_another_persons_conversation_is_404_and_staff_cannot_speak_for_a_person(
    conversation, other_person, staff_user
):
    # when
    stranger = token_client(other_person).post(messages_url(conversation), {"text": "hi", "client_id": "a"})
    stranger_read = token_client(other_person).get(messages_url(conversation))
    staff = token_client(staff_user).post(messages_url(conversation), {"text": "hi", "client_id": "a"})
    # then
    assert (stranger.status_code, stranger_read.status_code) == (404, 404)
    assert staff.status_code == 403
    assert staff.json() == {
        "code": "forbidden",
        "detail": "Only the person of this conversation can do that.",
    }
    assert token_client(staff_user).get(messages_url(conversation)).status_code == 200
    assert Message.objects.count() == 0


def test_history_pages_newest_first_and_after_resyncs_oldest_first(api_client, conversation):
    # given
    ids = [MessageFactory(conversation=conversation).pk for _ in range(5)]
    MessageFactory()  # another conversation's message never shows up
    # when
    first_page = api_client.get(messages_url(conversation), {"limit": 2}).json()
    second_page = api_client.get(first_page["next"]).json()
    resync = api_client.get(messages_url(conversation), {"after": ids[1], "limit": 2}).json()
    resync_rest = api_client.get(resync["next"]).json()
    # then
    assert [m["id"] for m in first_page["results"]] == [ids[4], ids[3]]
    assert [m["id"] for m in second_page["results"]] == [ids[2], ids[1]]
    assert [m["id"] for m in resync["results"]] == [ids[2], ids[3]]
    assert [m["id"] for m in resync_rest["results"]] == [ids[4]]
    assert resync_rest["next"] is None


def test_after_must_be_an_id(api_client, conversation):
    response = api_client.get(messages_url(conversation), {"after": "yesterday"})
    assert response.status_code == 400
    assert response.json() == {
        "code": "after_invalid",
        "detail": "after must be a message id, not 'yesterday'.",
    }


# --- read marks ---------------------------------------------------------------------------------


def test_read_mark_only_moves_forward(api_client, conversation):
    # given
    first, second = MessageFactory(conversation=conversation), MessageFactory(conversation=conversation)
    url = f"/api/v1/conversations/{conversation.pk}/read/"
    # when
    forward = api_client.post(url, {"up_to": second.pk}, format="json")
    backward = api_client.post(url, {"up_to": first.pk}, format="json")
    # then
    assert (forward.status_code, forward.json()["person_read_up_to"]) == (200, second.pk)
    assert (backward.status_code, backward.json()["person_read_up_to"]) == (200, second.pk)
    conversation.refresh_from_db()
    assert (conversation.person_read_up_to, conversation.companion_read_up_to) == (second.pk, None)


def test_read_mark_refuses_messages_of_other_conversations_and_other_people(
    api_client, conversation, other_person, staff_user
):
    # given
    foreign = MessageFactory()
    own = MessageFactory(conversation=conversation)
    url = f"/api/v1/conversations/{conversation.pk}/read/"
    # when
    unknown = api_client.post(url, {"up_to": foreign.pk}, format="json")
    not_a_number = api_client.post(url, {"up_to": "x"}, format="json")
    stranger = token_client(other_person).post(url, {"up_to": own.pk}, format="json")
    staff = token_client(staff_user).post(url, {"up_to": own.pk}, format="json")
    # then
    assert unknown.status_code == 400
    assert unknown.json() == {
        "code": "read_up_to_unknown",
        "detail": f"Message {foreign.pk} is not in this conversation.",
    }
    assert not_a_number.json() == {
        "code": "invalid",
        "detail": "up_to: A valid integer is required.",
        "fields": {"up_to": ["A valid integer is required."]},
    }
    assert (stranger.status_code, staff.status_code) == (404, 403)
    conversation.refresh_from_db()
    assert conversation.person_read_up_to is None


# --- throttling and schema ----------------------------------------------------------------------


def test_throttling_counts_per_person(monkeypatch, conversation, other_person, companion):
    # given: a narrow rate for this test only (the real limit comes from settings)
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/minute"})
    person_client = token_client(conversation.person)
    # when
    codes = [person_client.get("/api/v1/companions/").status_code for _ in range(4)]
    other_code = token_client(other_person).get("/api/v1/companions/").status_code
    # then
    assert codes == [200, 200, 200, 429]
    assert other_code == 200


def test_openapi_schema_and_docs_page(api_client):
    # given: only chat's routes, so other apps' work in progress cannot fail this test
    GENERATOR_STATS.reset()
    # when
    SchemaGenerator(patterns=chat_urls.urlpatterns).get_schema(request=None, public=True)
    # then: chat's views describe themselves completely, and the served schema lists them
    assert (dict(GENERATOR_STATS._warn_cache), dict(GENERATOR_STATS._error_cache)) == ({}, {})
    schema = api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    assert {path for path in schema["paths"] if "/api/v1/" in path} >= {
        "/api/v1/auth/register/",
        "/api/v1/auth/token/",
        "/api/v1/companions/",
        "/api/v1/conversations/",
        "/api/v1/conversations/{conversation_id}/",
        "/api/v1/conversations/{conversation_id}/messages/",
        "/api/v1/conversations/{conversation_id}/read/",
    }
    assert api_client.get("/api/v1/docs/").status_code == 200


def test_chat_page_needs_login(client, person):
    # when
    anonymous = client.get("/")
    client.force_login(person)
    logged_in = client.get("/")
    # then
    assert (anonymous.status_code, anonymous["Location"]) == (302, "/accounts/login/?next=/")
    assert logged_in.status_code == 200
    assert b'id="typing-indicator"' in logged_in.content
    assert client.get("/accounts/login/").status_code == 200
