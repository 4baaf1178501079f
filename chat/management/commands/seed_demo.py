"""``manage.py seed_demo``: a demo person, the demo companion "Luda" and two labeling staff accounts.

Everything is created only if missing. The demo person's password is ``DEMO_PASSWORD`` when set
(and then applied to an existing demo user too); otherwise a random one is generated once and
kept in ``<data dir>/demo_password.txt`` so a second ``make run`` can print it again.

The labeling tool (``/labeling/``) admits staff only (``is_staff``; no group or permission is
read), and a label may not be reviewed by its own annotator. So two staff accounts, neither a
superuser, are seeded: ``annotator`` labels, ``reviewer`` reviews. Their passwords are generated
once and kept the same way, in ``<data dir>/annotator_password.txt`` and
``<data dir>/reviewer_password.txt``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from chat.models import Companion
from chat.services import person_token

# (username, what the account is for in the labeling tool)
LABELING_STAFF = (
    ("annotator", "labels the mined conversations"),
    ("reviewer", "approves, sends back or rejects other people's labels"),
)

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
    help = (
        "Create the demo person, the demo companion Luda and the labeling staff (annotator, "
        "reviewer) if missing; print how to log in."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="demo")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        demo_password = self._password("demo", env_variable="DEMO_PASSWORD")
        with transaction.atomic():
            companion, companion_created = Companion.objects.get_or_create(slug="luda", defaults=LUDA)
            user, user_created = self._account(username, demo_password, is_staff=False)
            token = person_token(user=user)
        made = [
            name for name, created in (("person", user_created), ("companion", companion_created)) if created
        ]
        self.stdout.write(f"Demo data: {'created ' + ' and '.join(made) if made else 'already present'}.")
        self.stdout.write(
            f"Companion: {companion.name} (slug {companion.slug}, {companion.default_time_zone})"
        )
        self.stdout.write(
            f"Log in at /accounts/login/ as {username!r} with password {demo_password.value!r} "
            f"({demo_password.note})"
        )
        self.stdout.write(f"API token for {username!r}: {token.key}")
        self._seed_labeling_staff()

    def _seed_labeling_staff(self) -> None:
        passwords = {name: self._password(name) for name, _ in LABELING_STAFF}
        with transaction.atomic():
            accounts = {
                name: self._account(name, passwords[name], is_staff=True) for name, _ in LABELING_STAFF
            }
        made = [name for name, (_, created) in accounts.items() if created]
        self.stdout.write(
            f"Labeling staff: {'created ' + ' and '.join(made) if made else 'already present'}."
        )
        for name, purpose in LABELING_STAFF:
            user, _ = accounts[name]
            if not user.is_staff:
                self.stdout.write(f"  warning: {name!r} exists but is not staff, so /labeling/ refuses it.")
            self.stdout.write(
                f"Labeling tool: open /labeling/ and log in as {name!r} with password "
                f"{passwords[name].value!r} ({passwords[name].note}); {purpose}"
            )

    def _account(self, username: str, password: SeedPassword, *, is_staff: bool) -> tuple[Any, bool]:
        """The user named ``username``, created with ``password`` if missing; ``(user, created)``."""
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None:
            user = user_model.objects.create_user(
                username=username, password=password.value, is_staff=is_staff
            )
            return user, True
        if password.is_new:
            # An env password or a freshly generated password file: make the account match it.
            user.set_password(password.value)
            user.save(update_fields=["password"])
        return user, False

    def _password(self, name: str, *, env_variable: str | None = None) -> SeedPassword:
        """From ``env_variable`` when set, else generated once, kept in ``<data dir>/<name>_password.txt``."""
        if env_variable and os.environ.get(env_variable):
            return SeedPassword(os.environ[env_variable], f"from {env_variable}", is_new=True)
        path = Path(settings.DATA_DIR) / f"{name}_password.txt"
        if path.exists():
            return SeedPassword(path.read_text().strip(), f"kept in {path}", is_new=False)
        password = secrets.token_urlsafe(12)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(password + "\n")
        path.chmod(0o600)
        return SeedPassword(password, f"generated, kept in {path}", is_new=True)


@dataclass(frozen=True)
class SeedPassword:
    value: str
    note: str  # where it comes from, printed next to it
    is_new: bool  # whether an existing account must be set to it
