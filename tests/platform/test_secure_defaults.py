"""Secure by default: HTTPS settings outside development, check --deploy, CSP, a login for the docs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from labeling.models import DelayTask
from tests.factories import MessageFactory

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "companion.settings",
    "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "DJANGO_SECRET_KEY": "production-like-secret-for-this-test-only-9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "DJANGO_ALLOWED_HOSTS": "companion.example",
}
SWITCHES = (
    "DJANGO_DEBUG",
    "DJANGO_INSECURE_HTTP",
    "COMPANION_EMBEDDED",
    "COMPANION_DEV_SECRET",
    "API_DOCS_PUBLIC",
)
CSP = {
    "default-src": "'self'",
    "connect-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data: https:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def directives(header: str) -> dict[str, str]:
    """A policy header as {directive: sources} (django-csp does not keep the directives' order)."""
    return dict(part.strip().partition(" ")[::2] for part in header.split(";"))


def run_in_production(args: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in SWITCHES}
    env.update(PRODUCTION_ENV, **extra)
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def production_settings(**extra: str) -> dict[str, object]:
    names = [
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_SSL_REDIRECT",
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
    ]
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {names!r}}} | "
        "{'SERVE_PERMISSIONS': s.SPECTACULAR_SETTINGS['SERVE_PERMISSIONS']}))"
    )
    result = run_in_production(["-c", script], **extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_settings_are_https_and_docs_need_a_login():
    assert production_settings() == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    }


def test_insecure_http_and_public_docs_only_when_asked_for():
    assert production_settings(DJANGO_INSECURE_HTTP="1", API_DOCS_PUBLIC="1") == {
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_PROXY_SSL_HEADER": None,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    }


def test_check_deploy_finds_no_security_issue_in_the_production_configuration():
    result = run_in_production(["manage.py", "check", "--deploy"])
    issues = re.findall(r"^\?: \((\S+)\) (\S+)", result.stdout + result.stderr, flags=re.MULTILINE)
    assert [check for check, _ in issues if check.startswith("security.")] == []
    # Nothing else either (labeling's page endpoints are left out of the schema on purpose).
    assert issues == []


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/login/", "/"])
def test_pages_carry_the_content_security_policy(client, person, path):
    client.force_login(person)
    response = client.get(path, follow=False)
    assert directives(response["Content-Security-Policy"]) == CSP


@pytest.mark.django_db
def test_labeling_pages_carry_the_same_policy_and_no_inline_script(client, staff_user, conversation):
    # Their start calls moved into labeling.js (issue #13): 'unsafe-inline' is gone from /labeling/.
    first, second = (
        MessageFactory.create(conversation=conversation),
        MessageFactory.create(conversation=conversation),
    )
    task = DelayTask.objects.create(
        conversation=conversation, rule="person_left", trigger_message=first, suspected_message=second
    )
    client.force_login(staff_user)
    for path in ["/labeling/", f"/labeling/tasks/{task.pk}/", "/labeling/review/", "/labeling/agreement/"]:
        response = client.get(path)
        scripts = re.findall(r"<script[^>]*>", response.content.decode())
        assert (response.status_code, directives(response["Content-Security-Policy"])) == (200, CSP), path
        assert scripts == ['<script src="/static/labeling/labeling.js">'], path


@pytest.mark.django_db
def test_the_schema_and_docs_need_a_login(client, person):
    schema = client.get("/api/v1/schema/", {"format": "json"})
    docs = client.get("/api/v1/docs/")
    client.force_login(person)
    schema_logged_in = client.get("/api/v1/schema/", {"format": "json"})
    docs_logged_in = client.get("/api/v1/docs/")
    assert (schema.status_code, json.loads(schema.content)) == (
        401,
        {"code": "not_authenticated", "detail": "Authentication credentials were not provided."},
    )
    assert docs.status_code == 401
    assert (schema_logged_in.status_code, docs_logged_in.status_code) == (200, 200)
    assert json.loads(schema_logged_in.content)["info"]["title"] == "Timely companion API"
