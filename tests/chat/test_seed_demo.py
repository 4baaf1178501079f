"""``manage.py seed_demo``: idempotent demo data and a password the person can log in with."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from chat.models import Companion

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_creates_once_and_the_printed_password_logs_in(monkeypatch):
    # given
    monkeypatch.setenv("DEMO_PASSWORD", "demo pass phrase")
    # when
    first, second = seed(), seed()
    # then
    assert first.splitlines()[0] == "Demo data: created person and companion."
    assert second.splitlines()[0] == "Demo data: already present."
    assert "as 'demo' with password 'demo pass phrase' (from DEMO_PASSWORD)" in second
    luda = Companion.objects.get()
    assert (luda.slug, luda.name, luda.default_time_zone) == ("luda", "Luda", "Asia/Seoul")
    assert get_user_model().objects.count() == 1
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
