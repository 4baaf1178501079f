"""Labeling data: mined tasks, the annotators' labels on them, and the history of every change.

Labels never touch the chat logs. A label *references* messages: ``cut_after`` is the last turn
kept in the training example (everything later is shown struck through, never deleted), and
``reply_at`` / ``reply_text`` are the delayed reply the annotator wrote. Times are stored in UTC
and rendered in the conversation's time zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from chat.models import Conversation, Message


class DelayTask(models.Model):
    """One mining hit: a conversation and the turn where a delayed reply was probably needed.

    ``(rule, trigger_message)`` is unique, so mining the same logs twice never duplicates a task.
    ``state`` summarises the labels (see :func:`labeling.services.task_state_refresh`) so the queue
    can filter on it cheaply.
    """

    class State(models.TextChoices):
        OPEN = "open", "Open"
        IN_PROGRESS = "in_progress", "In progress"
        SUBMITTED = "submitted", "Submitted"
        APPROVED = "approved", "Approved"
        NO_DELAY = "no_delay", "No delay needed"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="delay_tasks")
    rule = models.CharField(max_length=64, db_index=True)
    # The message whose text fired the rule.
    trigger_message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    # The turn after which the companion should (probably) have waited: the default cut.
    suspected_message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    matched_text = models.CharField(max_length=200, blank=True)
    # A semantic hit: the rule's example phrase closest to the trigger, and their cosine similarity.
    # Both empty for a regular-expression hit.
    matched_example = models.CharField(max_length=300, blank=True)
    similarity = models.FloatField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "trigger_message"], name="delay_task_one_per_rule_trigger"
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule} #{self.trigger_message_id}"


class LabelIncomplete(ValueError):
    """A label that should be complete (submitted or approved) has no cut turn or reply time."""


class DelayLabel(models.Model):
    """One annotator's answer for one task: a cut and a delayed reply, or "no delay needed"."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        SKIPPED = "skipped", "No delay needed"
        SUBMITTED = "submitted", "Submitted"
        SENT_BACK = "sent_back", "Sent back"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    task = models.ForeignKey(DelayTask, on_delete=models.CASCADE, related_name="labels")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT, db_index=True)
    cut_after = models.ForeignKey(Message, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    reply_at = models.DateTimeField(null=True, blank=True, help_text="UTC, whole minutes.")
    reply_text = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["task", "annotator"], name="delay_label_one_per_annotator"),
            # An approved or submitted label is complete: the export never meets half a label.
            models.CheckConstraint(
                condition=~Q(state__in=["submitted", "approved"])
                | (Q(cut_after__isnull=False) & Q(reply_at__isnull=False) & ~Q(reply_text="")),
                name="delay_label_complete_when_submitted",
            ),
            models.CheckConstraint(
                condition=~Q(reviewer=models.F("annotator")), name="delay_label_not_self_reviewed"
            ),
        ]

    def __str__(self) -> str:
        return f"label {self.pk} ({self.state}) on task {self.task_id}"

    @property
    def delay(self) -> timedelta | None:
        """Reply time minus the cut turn's minute (the clock the transcript shows)."""
        if self.reply_at is None or self.cut_after is None:
            return None
        return self.reply_at - minute_floor(self.cut_after.created_at)

    def required_delay(self) -> timedelta:
        """The delay of a label that must have one; :class:`LabelIncomplete` if it has none."""
        delay = self.delay
        if delay is None:
            raise LabelIncomplete(f"Label {self.pk} has no cut turn or reply time.")
        return delay


class LabelEvent(models.Model):
    """Append-only history: who did what to which label, and when, with what it held then."""

    class Action(models.TextChoices):
        SAVED = "saved", "Saved draft"
        SKIPPED = "skipped", "No delay needed"
        SUBMITTED = "submitted", "Submitted"
        APPROVED = "approved", "Approved"
        SENT_BACK = "sent_back", "Sent back"
        REJECTED = "rejected", "Rejected"

    label = models.ForeignKey(DelayLabel, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=16, choices=Action.choices)
    at = models.DateTimeField(default=timezone.now)
    snapshot = models.JSONField(default=dict)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.actor_id} {self.action} label {self.label_id}"


def minute_floor(moment: datetime) -> datetime:
    """The moment with seconds dropped: transcripts (and so delays) have minute resolution."""
    return moment.replace(second=0, microsecond=0)


class MessageVector(models.Model):
    """A message's sentence vector (float32 bytes), so mining never encodes a message twice.

    Keyed by the message; ``encoder`` names the model that made it (a vector of another encoder
    is a miss). Messages are immutable logs, so a stored vector never goes stale.
    """

    message = models.OneToOneField(Message, on_delete=models.CASCADE, primary_key=True, related_name="+")
    encoder = models.CharField(max_length=32)
    vector = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"vector of message {self.message_id} ({self.encoder})"
