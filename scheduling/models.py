"""Scheduled replies: what the companion will say, when, and every decision that led there.

A row is the single source of truth for one planned answer. Its life is
``pending -> sent | cancelled | superseded | failed``; only ``pending`` rows are ever
delivered, and the transition out of ``pending`` is always a conditional write in the same
transaction as its effect (the chat message, the person's new message). Celery and Redis
carry wake-ups only; losing or doubling them changes nothing here.

Three kinds of row: an ``answer`` to a person message (its trigger), a ``follow_up`` the
companion writes first when the person stayed silent after a companion message (its trigger is
that companion message), and a ``bubble``: a further message of the answer or follow-up before
it (``after_reply``), delivered only once that one is no longer pending. A follow-up the guard
rules decide against is stored ``declined``, with its decisions, and never delivered.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from chat.models import Conversation, Message


class ScheduledReply(models.Model):
    """One planned companion message: an answer, a follow-up, or a further bubble of either."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        CANCELLED = "cancelled", "Cancelled"
        SUPERSEDED = "superseded", "Superseded"
        FAILED = "failed", "Failed"
        DECLINED = "declined", "Declined"

    class Kind(models.TextChoices):
        ANSWER = "answer", "Answer"
        FOLLOW_UP = "follow_up", "Follow-up"
        BUBBLE = "bubble", "Bubble"

    # No index of its own: sched_reply_conversation (conversation, -id) serves every lookup by
    # conversation, and every delivery's UPDATE (not HOT: it changes the state) writes one
    # entry fewer.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="scheduled_replies", db_index=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.ANSWER)
    # One plan per trigger: a duplicated plan task finds the row and stops (idempotency). An
    # answer's trigger is the person's message, a follow-up's the companion message it follows;
    # a bubble has none (its plan is the first row's).
    trigger_message = models.OneToOneField(
        Message, on_delete=models.CASCADE, related_name="planned_reply", null=True, blank=True
    )
    after_reply = models.OneToOneField(
        "self",
        on_delete=models.CASCADE,
        related_name="next_bubble",
        null=True,
        blank=True,
        help_text="The message of the same reply this bubble follows (delivered after it).",
    )
    bubble_index = models.PositiveSmallIntegerField(
        default=0, help_text="0 for the first message of a reply."
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    text = models.TextField(blank=True)
    # The model's own proposal and the time after the guard rules, both on the companion's clock
    # (real time, unscaled): what the transcript says. ``due_at`` is when delivery really happens,
    # with REPLY_TIME_SCALE applied to the delay.
    proposed_at = models.DateTimeField(null=True, blank=True)
    final_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    typing_at = models.DateTimeField(null=True, blank=True, help_text="When the typing indicator starts.")
    is_delayed = models.BooleanField(
        default=False, help_text="Final delay at or above the instant threshold."
    )
    guard_decisions = models.JSONField(default=list, blank=True)
    generation_attempts = models.JSONField(default=list, blank=True)
    safety_hits = models.JSONField(default=list, blank=True)
    outcome_reason = models.TextField(blank=True, help_text="Why the row is superseded, failed or cancelled.")
    planned_at = models.DateTimeField(default=timezone.now)
    wake_queued_at = models.DateTimeField(null=True, blank=True)
    typing_started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    message_id = models.BigIntegerField(null=True, blank=True, help_text="The chat message it became.")

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The dispatcher's claim: only due pending rows, oldest due first.
            models.Index(fields=["due_at"], condition=Q(state="pending"), name="sched_reply_pending_due"),
            # Wake-ups start typing for pending rows whose typing time came, in one statement.
            models.Index(
                fields=["typing_at"],
                condition=Q(state="pending", typing_started_at__isnull=True),
                name="sched_reply_pending_typing",
            ),
            # The cancel hook: pending rows of one conversation.
            models.Index(
                fields=["conversation"], condition=Q(state="pending"), name="sched_reply_pending_conv"
            ),
            models.Index(fields=["conversation", "-id"], name="sched_reply_conversation"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["pending", "sent", "cancelled", "superseded", "failed", "declined"]),
                name="sched_reply_state_valid",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["answer", "follow_up", "bubble"]), name="sched_reply_kind_valid"
            ),
            # A bubble hangs on the message before it; answers and follow-ups on their trigger.
            models.CheckConstraint(
                condition=(
                    Q(
                        kind="bubble",
                        after_reply__isnull=False,
                        trigger_message__isnull=True,
                        bubble_index__gte=1,
                    )
                    | (
                        ~Q(kind="bubble")
                        & Q(after_reply__isnull=True, trigger_message__isnull=False, bubble_index=0)
                    )
                ),
                name="sched_reply_bubble_shape",
            ),
            models.CheckConstraint(
                condition=~Q(state="pending") | Q(due_at__isnull=False, typing_at__isnull=False),
                name="sched_reply_pending_has_times",
            ),
            models.CheckConstraint(
                condition=~Q(state="sent") | Q(message_id__isnull=False, sent_at__isnull=False),
                name="sched_reply_sent_has_message",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.pk} ({self.state}) due {self.due_at}"
