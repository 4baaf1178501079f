"""``manage.py seed_demo``: idempotent demo data and passwords that the person and the staff log in with."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import Client

from chat.models import Companion

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_creates_once_and_the_printed_password_logs_in(monkeypatch, settings, tmp_path):
    # given
    monkeypatch.setenv("DEMO_PASSWORD", "demo pass phrase")
    settings.DATA_DIR = tmp_path
    # when
    first, second = seed(), seed()
    # then
    assert first.splitlines()[0] == "Demo data: created person and companion."
    assert second.splitlines()[0] == "Demo data: already present."
    assert "as 'demo' with password 'demo pass phrase' (from DEMO_PASSWORD)" in second
    luda = Companion.objects.get()
    assert (luda.slug, luda.name, luda.default_time_zone) == ("luda", "Luda", "Asia/Seoul")
    assert sorted(get_user_model().objects.values_list("username", flat=True)) == [
        "annotator",
        "demo",
        "reviewer",
    ]
    assert authenticate(username="demo", password="demo pass phrase") is not None


def test_seed_demo_generates_and_keeps_a_password_without_demo_password(monkeypatch, settings, tmp_path):
    # given
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    settings.DATA_DIR = tmp_path
    # when
    first, second = seed(), seed()
    # then
    password = (tmp_path / "demo_password.txt").read_text().strip()
    assert len(password) == 16
    assert f"with password {password!r} (generated, kept in {tmp_path / 'demo_password.txt'})" in first
    assert f"with password {password!r} (kept in {tmp_path / 'demo_password.txt'})" in second
    assert authenticate(username="demo", password=password) is not None


STAFF_LINE = re.compile(
    r"^Labeling tool: open /labeling/ and log in as '(\w+)' with password '([^']+)' \((.+?)\); "
)


def printed_staff_logins(output: str) -> dict[str, tuple[str, str]]:
    """``{username: (password, where it is kept)}`` from seed_demo's labeling lines."""
    found = (STAFF_LINE.match(line) for line in output.splitlines())
    return {match[1]: (match[2], match[3]) for match in found if match}


def test_seed_demo_creates_an_annotator_and_a_reviewer_who_are_staff_but_not_superusers(
    monkeypatch, settings, tmp_path
):
    # given
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    settings.DATA_DIR = tmp_path
    # when
    output = seed()
    # then
    assert "Labeling staff: created annotator and reviewer." in output.splitlines()
    users = get_user_model().objects.filter(username__in=["annotator", "reviewer"]).order_by("username")
    assert [(u.username, u.is_staff, u.is_superuser, u.is_active) for u in users] == [
        ("annotator", True, False, True),
        ("reviewer", True, False, True),
    ]
    logins = printed_staff_logins(output)
    assert sorted(logins) == ["annotator", "reviewer"]
    for name, (password, note) in logins.items():
        kept = tmp_path / f"{name}_password.txt"
        assert note == f"generated, kept in {kept}"
        assert kept.read_text() == password + "\n"
        assert len(password) == 16
    assert logins["annotator"][0] != logins["reviewer"][0]


def test_the_printed_staff_passwords_open_the_labeling_tool(monkeypatch, settings, tmp_path):
    # given
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    settings.DATA_DIR = tmp_path
    logins = printed_staff_logins(seed())
    for name, (password, _) in logins.items():
        client = Client()
        # when
        logged_in = client.post("/accounts/login/", {"username": name, "password": password})
        queue = client.get("/labeling/")
        # then
        assert (logged_in.status_code, logged_in["Location"]) == (302, "/")
        assert queue.status_code == 200


def test_seed_demo_keeps_the_staff_accounts_and_passwords_on_a_second_run(monkeypatch, settings, tmp_path):
    # given
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    settings.DATA_DIR = tmp_path
    first = seed()
    # when
    second = seed()
    # then
    assert "Labeling staff: already present." in second.splitlines()
    first_logins, second_logins = printed_staff_logins(first), printed_staff_logins(second)
    for name in ("annotator", "reviewer"):
        password = first_logins[name][0]
        assert second_logins[name] == (password, f"kept in {tmp_path / f'{name}_password.txt'}")
        assert authenticate(username=name, password=password) is not None
    assert get_user_model().objects.count() == 3
