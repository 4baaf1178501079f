"""``manage.py seed_demo``: a demo person and the demo companion "Luda", created only if missing.

The password is ``DEMO_PASSWORD`` when set (and then applied to an existing demo user too);
otherwise a random one is generated once and kept in ``<data dir>/demo_password.txt`` so a
second ``make run`` can print it again.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from chat.models import Companion
from chat.services import person_token

LUDA = {
    "name": "Luda",
    "description": (
        "Lee Luda, a 20-year-old college student in Seoul. Loves tteokbokki, cats and late-night "
        "music; has classes, meals and sleep like anyone, so she is not always at her phone."
    ),
    "speaking_style": "casual and warm, short messages, lots of ㅋㅋ and ~, mixes Korean and English",
    "default_time_zone": "Asia/Seoul",
}


class Command(BaseCommand):
    help = "Create the demo person and the demo companion Luda if missing; print how to log in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="demo")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        password, password_note, password_is_new = self._password()
        with transaction.atomic():
            companion, companion_created = Companion.objects.get_or_create(slug="luda", defaults=LUDA)
            user_model = get_user_model()
            user = user_model.objects.filter(username=username).first()
            user_created = user is None
            if user is None:
                user = user_model.objects.create_user(username=username, password=password)
            elif password_is_new:
                # DEMO_PASSWORD or a freshly generated password file: make the account match it.
                user.set_password(password)
                user.save(update_fields=["password"])
            token = person_token(user=user)
        made = [
            name for name, created in (("person", user_created), ("companion", companion_created)) if created
        ]
        self.stdout.write(f"Demo data: {'created ' + ' and '.join(made) if made else 'already present'}.")
        self.stdout.write(
            f"Companion: {companion.name} (slug {companion.slug}, {companion.default_time_zone})"
        )
        self.stdout.write(
            f"Log in at /accounts/login/ as {username!r} with password {password!r} ({password_note})"
        )
        self.stdout.write(f"API token for {username!r}: {token.key}")

    def _password(self) -> tuple[str, str, bool]:
        """``(password, where it comes from, whether the account must be set to it)``."""
        if os.environ.get("DEMO_PASSWORD"):
            return os.environ["DEMO_PASSWORD"], "from DEMO_PASSWORD", True
        path = Path(settings.DATA_DIR) / "demo_password.txt"
        if path.exists():
            return path.read_text().strip(), f"kept in {path}", False
        password = secrets.token_urlsafe(12)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(password + "\n")
        path.chmod(0o600)
        return password, f"generated, kept in {path}", True
