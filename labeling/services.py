"""Writes of the labeling tool: annotators save, skip and submit labels; reviewers decide on them.

Every service locks the task row first, so two people acting on one task are serialised, and
records a :class:`~labeling.models.LabelEvent` (who, what, when, the label's content then).
Nothing here writes to the chat tables: a label only references messages.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Literal

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from chat.models import Message
from labeling import time_editor
from labeling.models import DelayLabel, DelayTask, LabelEvent

AnnotatorAction = Literal["draft", "skip", "submit"]
ReviewDecision = Literal["approve", "send_back", "reject"]

_EDITABLE = (DelayLabel.State.DRAFT, DelayLabel.State.SKIPPED, DelayLabel.State.SENT_BACK)


class LabelingError(ValueError):
    """A labeling request that cannot be carried out; ``str()`` is the reason to show.

    ``code`` is stable (the JSON error's ``code``); the text is for people.
    """

    def __init__(self, detail: str, *, code: str = "invalid") -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class LabelingForbidden(LabelingError):
    """The request is well-formed but this person may not do it (reviewing their own label)."""


def task_state_refresh(task: DelayTask) -> DelayTask:
    """Summarise the task's labels into ``task.state`` (approved > submitted > in progress > no delay)."""
    states = set(task.labels.values_list("state", flat=True))
    S = DelayLabel.State
    if S.APPROVED in states:
        task.state = DelayTask.State.APPROVED
    elif S.SUBMITTED in states:
        task.state = DelayTask.State.SUBMITTED
    elif states & {S.DRAFT, S.SENT_BACK}:
        task.state = DelayTask.State.IN_PROGRESS
    elif states & {S.SKIPPED, S.REJECTED}:
        task.state = DelayTask.State.NO_DELAY
    else:
        task.state = DelayTask.State.OPEN
    task.save(update_fields=["state"])
    return task


def _snapshot(label: DelayLabel) -> dict[str, object]:
    return {
        "state": label.state,
        "cut_after_id": label.cut_after_id,
        "reply_at": label.reply_at.isoformat() if label.reply_at else None,
        "reply_text": label.reply_text,
    }


def _cut_turn(task: DelayTask, cut_after_id: int) -> Message:
    turn = (
        Message.objects.filter(
            pk=cut_after_id,
            conversation_id=task.conversation_id,
            role__in=[Message.Role.PERSON, Message.Role.COMPANION],
        )
        .only("id", "created_at", "conversation_id")
        .first()
    )
    if turn is None:
        raise LabelingError(
            f"Message {cut_after_id} is not a turn of this task's conversation.", code="cut_not_a_turn"
        )
    return turn


def reply_time(
    *,
    task: DelayTask,
    cut_after_id: int,
    delay_minutes: int | None = None,
    local_date: date | None = None,
    local_clock: time | None = None,
) -> time_editor.ReplyTime:
    """The reply time after the task's cut turn, from a delay or from a local date and clock.

    The one place where a cut turn and a reply time meet: the page's converter and
    :func:`label_save` both come here, so they can never disagree.
    """
    return _reply_time_after(
        task,
        _cut_turn(task, cut_after_id),
        delay_minutes=delay_minutes,
        local_date=local_date,
        local_clock=local_clock,
    )


def _reply_time_after(
    task: DelayTask,
    cut: Message,
    *,
    delay_minutes: int | None = None,
    local_date: date | None = None,
    local_clock: time | None = None,
) -> time_editor.ReplyTime:
    zone = task.conversation.time_zone
    max_delay = task.conversation.companion.max_delay_minutes
    try:
        if delay_minutes is not None:
            return time_editor.from_delay(
                base=cut.created_at, delay_minutes=delay_minutes, time_zone=zone, max_delay_minutes=max_delay
            )
        if local_date is None or local_clock is None:
            raise LabelingError("Send either delay_minutes or local_date with local_time.")
        return time_editor.from_local(
            base=cut.created_at,
            local_date=local_date,
            local_clock=local_clock,
            time_zone=zone,
            max_delay_minutes=max_delay,
        )
    except time_editor.TimeEditorError as exc:
        raise LabelingError(str(exc), code="reply_time_invalid") from exc


@transaction.atomic
def label_save(
    *,
    task: DelayTask,
    annotator: User,
    action: AnnotatorAction,
    cut_after_id: int | None = None,
    delay_minutes: int | None = None,
    reply_text: str = "",
    now: datetime | None = None,
) -> DelayLabel:
    """Save the annotator's label on ``task`` as a draft, as "no delay needed", or submit it.

    A draft keeps whatever is filled in (each part still validated); a submission needs the cut
    turn, a delay (1 minute .. the companion's maximum) and the reply text. Once submitted, a
    label changes only through review (sent back, it becomes editable again).
    """
    now = now or timezone.now()
    if action not in ("draft", "skip", "submit"):
        raise LabelingError(
            f"Unknown action {action!r}; use 'draft', 'skip' or 'submit'.", code="action_unknown"
        )
    task = DelayTask.objects.select_for_update().select_related("conversation__companion").get(pk=task.pk)
    label, created = DelayLabel.objects.get_or_create(
        task=task, annotator=annotator, defaults={"created_at": now, "updated_at": now}
    )
    if not created and label.state not in _EDITABLE:
        raise LabelingError(
            f"This label is {label.get_state_display().lower()}; it can no longer be edited.",
            code="label_not_editable",
        )

    if action != "skip":
        cut = _cut_turn(task, cut_after_id) if cut_after_id is not None else None
        if delay_minutes is not None and cut is None:
            raise LabelingError(
                "Pick the turn after which the companion waits before setting the delay.", code="cut_missing"
            )
        reply_at = None
        if cut is not None and delay_minutes is not None:
            reply_at = _reply_time_after(task, cut, delay_minutes=delay_minutes).at
        text = reply_text.strip()
        max_length = getattr(settings, "CHAT_MESSAGE_MAX_LENGTH", 2000)
        if len(text) > max_length:
            raise LabelingError(
                f"The reply is {len(text)} characters; at most {max_length} are allowed.",
                code="reply_too_long",
            )
        if action == "submit":
            missing = [
                name
                for name, value in (
                    ("the cut turn", cut),
                    ("the reply time", reply_at),
                    ("the reply text", text),
                )
                if not value
            ]
            if missing:
                raise LabelingError(f"Cannot submit without {', '.join(missing)}.", code="label_incomplete")
        label.cut_after = cut
        label.reply_at = reply_at
        label.reply_text = text

    label.state = {
        "draft": DelayLabel.State.DRAFT,
        "skip": DelayLabel.State.SKIPPED,
        "submit": DelayLabel.State.SUBMITTED,
    }[action]
    label.updated_at = now
    label.submitted_at = now if action == "submit" else None
    label.reviewer = None
    label.reviewed_at = None
    label.save()
    LabelEvent.objects.create(
        label=label,
        actor=annotator,
        action={"draft": "saved", "skip": "skipped", "submit": "submitted"}[action],
        at=now,
        snapshot=_snapshot(label),
    )
    task_state_refresh(task)
    return label


@transaction.atomic
def label_review(
    *,
    label: DelayLabel,
    reviewer: User,
    decision: ReviewDecision,
    note: str = "",
    now: datetime | None = None,
) -> DelayLabel:
    """A second person approves a submitted label, sends it back for changes, or rejects it.

    Rejecting means "no delay was needed here" and counts against the rule's precision;
    sending back returns the label to its annotator. Nobody reviews their own label.
    """
    now = now or timezone.now()
    if decision not in ("approve", "send_back", "reject"):
        raise LabelingError(
            f"Unknown decision {decision!r}; use 'approve', 'send_back' or 'reject'.", code="decision_unknown"
        )
    DelayTask.objects.select_for_update().filter(pk=label.task_id).first()
    label = DelayLabel.objects.select_for_update().get(pk=label.pk)
    if label.annotator_id == reviewer.pk:
        raise LabelingForbidden("You cannot review your own label; another person has to.", code="own_label")
    if label.state != DelayLabel.State.SUBMITTED:
        raise LabelingError(
            f"Only submitted labels can be reviewed; this one is {label.get_state_display()}.",
            code="label_not_submitted",
        )
    label.state = {
        "approve": DelayLabel.State.APPROVED,
        "send_back": DelayLabel.State.SENT_BACK,
        "reject": DelayLabel.State.REJECTED,
    }[decision]
    label.reviewer = reviewer
    label.reviewed_at = now
    label.review_note = note.strip()
    label.save(update_fields=["state", "reviewer", "reviewed_at", "review_note"])
    LabelEvent.objects.create(
        label=label,
        actor=reviewer,
        action={"approve": "approved", "send_back": "sent_back", "reject": "rejected"}[decision],
        at=now,
        snapshot={**_snapshot(label), "note": label.review_note},
    )
    task_state_refresh(label.task)
    return label
