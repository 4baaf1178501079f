"""Reads of the labeling tool: the queue, a task's turns, review lists, agreement and precision."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from itertools import combinations

from django.contrib.auth.models import User
from django.db.models import QuerySet

from chat.models import Message
from companion.generator import TranscriptError, render_training_example
from labeling import time_editor
from labeling.dialogues import label_dialogue
from labeling.models import DelayLabel, DelayTask, LabelIncomplete, minute_floor
from labeling.time_editor import local_time_label

# The six delay buckets of the generator's evaluation (TimelyChat), lower bounds in minutes.
DELAY_BUCKETS: tuple[tuple[str, int], ...] = (
    ("0-5 min", 0),
    ("5-30 min", 5),
    ("30 min-2 h", 30),
    ("2-6 h", 120),
    ("6-12 h", 360),
    ("12 h+", 720),
)
NO_DELAY = "no delay"
ACCEPTED_STATES = (DelayLabel.State.SUBMITTED, DelayLabel.State.APPROVED)
REJECTED_STATES = (DelayLabel.State.SKIPPED, DelayLabel.State.REJECTED)


def delay_bucket(delay: timedelta) -> str:
    minutes = delay.total_seconds() / 60
    name = DELAY_BUCKETS[0][0]
    for bucket, lower in DELAY_BUCKETS:
        if minutes >= lower:
            name = bucket
    return name


def label_bucket(label: DelayLabel) -> str | None:
    """The label's answer as a bucket: "no delay" for a skip or rejection, None while undecided."""
    if label.state in REJECTED_STATES:
        return NO_DELAY
    if label.state in ACCEPTED_STATES and label.delay is not None:
        return delay_bucket(label.delay)
    return None


def task_queue(
    *, rule: str | None = None, companion_id: int | None = None, state: str | None = None
) -> QuerySet[DelayTask]:
    tasks = DelayTask.objects.select_related("conversation__companion", "trigger_message").order_by("id")
    if rule:
        tasks = tasks.filter(rule=rule)
    if companion_id is not None:
        tasks = tasks.filter(conversation__companion_id=companion_id)
    if state:
        tasks = tasks.filter(state=state)
    return tasks


def task_rules() -> list[str]:
    return list(DelayTask.objects.order_by("rule").values_list("rule", flat=True).distinct())


@dataclass(frozen=True)
class TurnRow:
    id: int
    role: str
    text: str
    local_time: str  # "2026-03-02 12:34 (UTC+0900)"
    created_at_iso: str
    is_trigger: bool
    is_suspected: bool
    is_cut: bool  # after the chosen cut: shown struck through, kept in the logs


def task_turns(*, task: DelayTask, cut_after_id: int | None) -> list[TurnRow]:
    """Every turn of the task's conversation with its local time; turns after the cut are marked."""
    zone = task.conversation.time_zone
    turns = Message.objects.filter(
        conversation_id=task.conversation_id, role__in=[Message.Role.PERSON, Message.Role.COMPANION]
    ).order_by("created_at", "id")
    rows: list[TurnRow] = []
    after_cut = False
    for turn in turns:
        rows.append(
            TurnRow(
                id=turn.pk,
                role=turn.role,
                text=turn.text,
                local_time=local_time_label(turn.created_at, zone),
                created_at_iso=minute_floor(turn.created_at).isoformat(),
                is_trigger=turn.pk == task.trigger_message_id,
                is_suspected=turn.pk == task.suspected_message_id,
                is_cut=after_cut,
            )
        )
        if turn.pk == cut_after_id:
            after_cut = True
    return rows


def label_of(*, task: DelayTask, annotator: User) -> DelayLabel | None:
    return DelayLabel.objects.filter(task=task, annotator=annotator).select_related("cut_after").first()


@dataclass(frozen=True)
class TaskPageData:
    label: DelayLabel | None
    turns: list[TurnRow]
    cut_after_id: int
    reply_time: time_editor.ReplyTime | None  # the label's reply time, both notations
    next_task: DelayTask | None


def task_page(*, task: DelayTask, annotator: User) -> TaskPageData:
    """What the task page shows to this annotator: their label (if any), the turns, the cut."""
    label = label_of(task=task, annotator=annotator)
    cut_after_id = label.cut_after_id if label and label.cut_after_id else task.suspected_message_id
    reply_time = None
    if label is not None and label.cut_after is not None and label.delay is not None:
        reply_time = time_editor.from_delay(
            base=label.cut_after.created_at,
            delay_minutes=int(label.delay.total_seconds() // 60),
            time_zone=task.conversation.time_zone,
            max_delay_minutes=task.conversation.companion.max_delay_minutes,
        )
    return TaskPageData(
        label=label,
        turns=task_turns(task=task, cut_after_id=cut_after_id),
        cut_after_id=cut_after_id,
        reply_time=reply_time,
        next_task=task_queue(state=DelayTask.State.OPEN).filter(id__gt=task.pk).first(),
    )


@dataclass(frozen=True)
class ReviewItem:
    label: DelayLabel
    preview: str  # the training example (prompt + completion) the label becomes
    relative: str  # "1 h 30 min later"
    local_reply: str  # "2026-03-02 14:02 (UTC+0900)"
    bucket: str


def review_items(*, reviewer: User) -> list[ReviewItem]:
    """Other people's submitted labels, each with its example, reply time and bucket."""
    items = []
    for label in labels_for_review(reviewer=reviewer):
        try:
            delay = label.required_delay()
        except LabelIncomplete as exc:
            # The database's check constraint rules this out; shown rather than crashing the page.
            items.append(ReviewItem(label, f"(cannot be rendered: {exc})", "-", "-", "-"))
            continue
        reply_at = label.reply_at
        if reply_at is None:  # a delay implies a reply time; checked to keep the page from crashing
            items.append(ReviewItem(label, "(cannot be rendered: no reply time)", "-", "-", "-"))
            continue
        try:
            example = render_training_example(label_dialogue(label), reply_at, label.reply_text)
            preview = example["prompt"] + example["completion"]
        except TranscriptError as exc:
            preview = f"(cannot be rendered: {exc})"
        items.append(
            ReviewItem(
                label=label,
                preview=preview,
                relative=time_editor.format_delay(int(delay.total_seconds() // 60)),
                local_reply=local_time_label(reply_at, label.task.conversation.time_zone),
                bucket=delay_bucket(delay),
            )
        )
    return items


def labels_for_review(*, reviewer: User) -> QuerySet[DelayLabel]:
    """Submitted labels waiting for a decision, other people's only."""
    return (
        DelayLabel.objects.filter(state=DelayLabel.State.SUBMITTED)
        .exclude(annotator=reviewer)
        .select_related("task__conversation__companion", "annotator", "cut_after")
        .order_by("submitted_at", "id")
    )


@dataclass(frozen=True)
class AgreementRow:
    task: DelayTask
    answers: list[tuple[str, str]]  # (annotator username, bucket), side by side
    agreed: bool


@dataclass(frozen=True)
class AgreementReport:
    rows: list[AgreementRow]
    pairs: int
    agreeing_pairs: int

    @property
    def rate(self) -> float | None:
        return self.agreeing_pairs / self.pairs if self.pairs else None


def agreement_report() -> AgreementReport:
    """Tasks answered by two or more annotators: their buckets and the pairwise agreement rate.

    A skip or rejection counts as the answer "no delay"; drafts are not answers yet.
    """
    labels = (
        DelayLabel.objects.filter(state__in=[*ACCEPTED_STATES, *REJECTED_STATES])
        .select_related("task__conversation__companion", "annotator", "cut_after")
        .order_by("task_id", "annotator__username")
    )
    by_task: dict[int, list[DelayLabel]] = defaultdict(list)
    for label in labels:
        by_task[label.task_id].append(label)
    rows: list[AgreementRow] = []
    pairs = agreeing = 0
    for task_labels in by_task.values():
        if len(task_labels) < 2:
            continue
        answers = [(label.annotator.get_username(), label_bucket(label) or "") for label in task_labels]
        task_pairs = list(combinations([bucket for _, bucket in answers], 2))
        pairs += len(task_pairs)
        agreeing += sum(1 for a, b in task_pairs if a == b)
        rows.append(
            AgreementRow(task=task_labels[0].task, answers=answers, agreed=len({b for _, b in answers}) == 1)
        )
    return AgreementReport(rows=rows, pairs=pairs, agreeing_pairs=agreeing)


@dataclass(frozen=True)
class PrecisionRow:
    rule: str
    tasks: int
    accepted: int  # labels submitted or approved: a delay was needed
    rejected: int  # "no delay needed" skips and reviewer rejections
    pending: int  # tasks nobody has answered yet

    @property
    def precision(self) -> float | None:
        decided = self.accepted + self.rejected
        return self.accepted / decided if decided else None


def mining_precision() -> list[PrecisionRow]:
    """Per rule: how often annotators agreed that its hits needed a delay."""
    tasks = Counter(DelayTask.objects.values_list("rule", flat=True))
    accepted: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    answered: set[int] = set()
    for rule, state, task_id in DelayLabel.objects.values_list("task__rule", "state", "task_id"):
        if state in ACCEPTED_STATES:
            accepted[rule] += 1
            answered.add(task_id)
        elif state in REJECTED_STATES:
            rejected[rule] += 1
            answered.add(task_id)
    pending: Counter[str] = Counter(
        rule for task_id, rule in DelayTask.objects.values_list("id", "rule") if task_id not in answered
    )
    return [
        PrecisionRow(
            rule=rule,
            tasks=tasks[rule],
            accepted=accepted[rule],
            rejected=rejected[rule],
            pending=pending[rule],
        )
        for rule in sorted(tasks)
    ]


def approved_labels() -> QuerySet[DelayLabel]:
    """What the export reads: approved labels only, in a stable order."""
    return (
        DelayLabel.objects.filter(state=DelayLabel.State.APPROVED)
        .select_related("task__conversation__companion", "cut_after")
        .order_by("id")
    )


def label_bucket_counts() -> list[tuple[str, int]]:
    """Answered labels per delay bucket, in bucket order, "no delay" last (zeros kept)."""
    labels = DelayLabel.objects.filter(state__in=[*ACCEPTED_STATES, *REJECTED_STATES]).select_related(
        "cut_after"
    )
    counts = Counter(label_bucket(label) for label in labels)
    return [(name, counts[name]) for name, _ in DELAY_BUCKETS] + [(NO_DELAY, counts[NO_DELAY])]
