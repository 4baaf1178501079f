"""What the schema fuzz test found (issue #13), one regression each, fast enough for every run.

The fuzz test (test_schema_fuzz.py, slow) holds every operation to its schema; these pin the
single answers and schema entries it found wrong: a limit that was silently ignored, HTML and 406
answers the schema never mentioned, numbers taken for strings, and input fields the schema
called nullable or unbounded while the API refused exactly those values.
"""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import token_client

pytestmark = pytest.mark.django_db

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
