"""Messenger data: companions (personas), conversations and messages.

Every timestamp is stored in UTC; a conversation's ``time_zone`` is used only when
rendering (the chat page, the generator's transcript, the labeling tool).
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


@functools.cache
def iana_zone_names() -> frozenset[str]:
    """The IANA zone names of this machine's tz database, without its local aliases.

    ``ZoneInfo`` opens any file under the tz folder, so ``localtime`` (the host's zone),
    ``posixrules``, ``right/UTC`` and ``posix/Asia/Seoul`` all "worked" although no client can
    mean them; the zone list names only real zones (and lists ``localtime`` where the host has it).
    """
    return frozenset(zoneinfo.available_timezones() - {"localtime", "posixrules"})


def validate_time_zone(value: str) -> None:
    """Accept only IANA zone names that this machine's tz database knows."""
    if value not in iana_zone_names():
        raise ValidationError(f"Unknown time zone {value!r}; use an IANA name such as 'Asia/Seoul'.")


class Companion(models.Model):
    """A chat character and the delay settings the reply loop reads for it."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=80)
    description = models.TextField(blank=True, help_text="Who the companion is (the persona).")
    speaking_style = models.TextField(blank=True, help_text="How the companion writes.")
    avatar_url = models.URLField(blank=True)
    default_time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])

    # Guard-rule settings (scheduling reads them; defaults follow the Luda write-up).
    instant_threshold_minutes = models.PositiveIntegerField(
        default=10, help_text="A proposed delay shorter than this becomes an instant reply."
    )
    delay_ration_turns = models.PositiveIntegerField(
        default=3, help_text="At most one delayed reply within this many recent companion turns."
    )
    complaint_cooldown_minutes = models.PositiveIntegerField(
        default=60, help_text="After the person complains about slowness, no delays for this long."
    )
    max_delay_minutes = models.PositiveIntegerField(
        default=7 * 24 * 60, help_text="Delays beyond this are clamped."
    )
    # Writing first: bubbles and follow-ups (scheduling's follow-up guards read these).
    max_bubbles = models.PositiveSmallIntegerField(
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="A reply may come in up to this many consecutive messages (1: one message).",
    )
    follow_ups_enabled = models.BooleanField(
        default=True, help_text="Whether the companion writes again when the person stays silent."
    )
    follow_up_max_unanswered = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="At most this many follow-ups in a row while the person does not answer.",
    )
    follow_ups_per_day = models.PositiveSmallIntegerField(
        default=3, help_text="At most this many follow-ups on one day of the person's calendar."
    )
    follow_up_horizon_minutes = models.PositiveIntegerField(
        default=24 * 60,
        validators=[MinValueValidator(1)],
        help_text="A follow-up the model places later than this is not sent (nothing to follow up on soon).",
    )
    quiet_hours_start = models.TimeField(
        default=time(23, 0), help_text="From this local time of the person, no message the companion starts."
    )
    quiet_hours_end = models.TimeField(
        default=time(8, 0),
        help_text="Until this local time (equal to the start: no quiet hours). Asked-for times are exempt.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Conversation(models.Model):
    """One person talking with one companion."""

    class AgeGroup(models.TextChoices):
        CHILD = "child", "Child"
        ADULT = "adult", "Adult"
        SENIOR = "senior", "Senior"

    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    companion = models.ForeignKey(Companion, on_delete=models.PROTECT, related_name="conversations")
    time_zone = models.CharField(max_length=64, validators=[validate_time_zone])
    person_age_group = models.CharField(max_length=16, choices=AgeGroup.choices, default=AgeGroup.ADULT)
    # Read state as high-water marks: every message with id <= the mark has been read by that side.
    person_read_up_to = models.BigIntegerField(null=True, blank=True)
    companion_read_up_to = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["person", "companion"], name="conversation_one_per_person_companion"
            )
        ]

    def __str__(self) -> str:
        return f"{self.person} ↔ {self.companion}"


class Message(models.Model):
    """One message in a conversation, written by the person, the companion or the system."""

    class Role(models.TextChoices):
        PERSON = "person", "Person"
        COMPANION = "companion", "Companion"
        SYSTEM = "system", "System"

    # No index of its own: message_conversation_id (conversation, id) serves every lookup by
    # conversation, and one index fewer is less work for every message stored.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Chosen by the sending client so a retried send stores nothing twice.
    client_id = models.CharField(max_length=64, blank=True, default="")
    # The scheduled reply that produced this message. Scheduling owns that table; chat keeps
    # only the id, unique, so a duplicate delivery wake-up can never create a second message.
    scheduled_reply_id = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)
    # The ``external_id`` of the imported chat log this message came from (``import_chat_logs``);
    # NULL (not "") for live messages: "live or imported" is the question every reader asks, and
    # ``log_external_id__isnull=True`` is how the reply loop leaves imported messages alone.
    log_external_id = models.CharField(  # noqa: DJ001
        max_length=100, null=True, blank=True, editable=False
    )

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["conversation", "id"], name="message_conversation_id")]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=~Q(client_id=""),
                name="message_unique_client_id",
            ),
            models.CheckConstraint(
                condition=Q(role__in=["person", "companion", "system"]), name="message_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:40]}"


class ImportedLog(models.Model):
    """One chat log stored by ``import_chat_logs``; its unique ``external_id`` makes re-imports no-ops."""

    external_id = models.CharField(max_length=100, unique=True)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="imported_logs")
    message_count = models.PositiveIntegerField()
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.message_count} messages)"
