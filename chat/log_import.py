"""Importing chat logs (``manage.py import_chat_logs``): validate JSONL lines, then bulk-write them.

The format and the rules of a line are :mod:`chat.log_format`'s. On top of them, the writer's:

* an ``external_id`` already imported is *skipped*, not refused;
* logs of the same person and companion share their one conversation. Messages are ordered by
  id, so a file's logs of a conversation are appended in start-time order, and a log that starts
  before the conversation's last message (an earlier log, or a live message) overlaps: refused;
  a log whose ``time_zone`` differs from the conversation's is refused as well.

A log is stored whole or not at all. Everything is validated (:mod:`chat.log_format`) before
anything is written; then whole conversations (never part of one) are written a few thousand
messages per transaction, which first locks their conversation rows (chat's lock order) and
re-checks the overlaps.
Messages go in with ``bulk_create``, which never calls chat's message hooks, so no reply is
ever planned for history (and the dispatcher's lost-plan sweep skips imported messages).
Blank lines are ignored. The whole file is read first: a conversation's logs may be anywhere in it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, connection, transaction

from chat.log_format import (
    ChatLog,
    ImportReport,
    LineRefusal,
    Progress,
    decode_lines,
    person_username,
    validate_logs,
)
from chat.models import Companion, Conversation, ImportedLog, Message

__all__ = ["ImportReport", "LogImportInvariantViolated", "Progress", "import_chat_logs", "person_username"]

# Rows per query: IN-lists and multi-row INSERTs stay well below PostgreSQL's parameter limit.
_QUERY_BATCH = 2000

T = TypeVar("T")


class LogImportInvariantViolated(RuntimeError):
    """The import broke an invariant it relies on; its transaction rolls back."""


def import_chat_logs(
    *,
    path: Path,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the logs of the JSONL file at ``path``; refused lines are reported, never raised.

    With ``dry_run`` every line is validated against the database as it is (companions, imported
    ids, the conversations' last messages) and nothing is written.
    """
    progress = progress or Progress()
    report = ImportReport(dry_run=dry_run)
    with path.open("rb") as handle:
        raw_lines = handle.read().splitlines()
    report.lines = len(raw_lines)
    decoded = decode_lines(raw_lines, report=report, progress=progress)
    companions = _companion_ids({str(value.get("companion")) for _, value in decoded})
    logs = validate_logs(decoded, companions=companions, report=report, progress=progress)
    logs = _without_imported(logs, report=report)
    groups = _group_by_conversation(logs)
    targets = _conversation_targets(groups, dry_run=dry_run, report=report)
    progress.report(f"{len(groups)} conversations ready ({report.conversations_created} new), writing")
    written_groups = written_messages = 0
    for batch in _transaction_batches(groups):
        _write_batch(batch, targets=targets, dry_run=dry_run, report=report)
        written_groups += len(batch)
        written_messages += sum(len(log.messages) for _, group_logs in batch for log in group_logs)
        progress.report(
            f"imported {written_groups}/{len(groups)} conversations ({written_messages} messages)"
        )
    report.refusals.sort(key=lambda refusal: refusal.line)
    return report


def _companion_ids(slugs: set[str]) -> dict[str, int]:
    return dict(Companion.objects.filter(slug__in=slugs).values_list("slug", "id"))


# --- planning the writes -----------------------------------------------------------------------


def _batches(items: Sequence[T], size: int = _QUERY_BATCH) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _without_imported(logs: list[ChatLog], *, report: ImportReport) -> list[ChatLog]:
    imported: set[str] = set()
    for batch in _batches([log.external_id for log in logs]):
        imported.update(
            ImportedLog.objects.filter(external_id__in=batch).values_list("external_id", flat=True)
        )
    report.skipped = [log.external_id for log in logs if log.external_id in imported]
    return [log for log in logs if log.external_id not in imported]


GroupKey = tuple[str, int]  # (person, companion id)


def _group_by_conversation(logs: Iterable[ChatLog]) -> dict[GroupKey, list[ChatLog]]:
    groups: dict[GroupKey, list[ChatLog]] = defaultdict(list)
    for log in logs:
        groups[(log.person, log.companion_id)].append(log)
    for group_logs in groups.values():
        group_logs.sort(key=lambda log: (log.starts_at, log.line))
    return dict(groups)


@dataclass(frozen=True)
class ConversationTarget:
    """Where a group's logs go: an existing conversation, or (dry run only) one to be created."""

    conversation_id: int | None
    created: bool


def _conversation_targets(
    groups: dict[GroupKey, list[ChatLog]], *, dry_run: bool, report: ImportReport
) -> dict[GroupKey, ConversationTarget]:
    """Every group's conversation, creating the missing persons and conversations (not in a dry run).

    A new conversation takes the time zone and start of its first log. Rows another importer
    created meanwhile are found again (``ignore_conflicts``), never duplicated.
    """
    usernames = sorted({person_username(person) for person, _ in groups})
    users = _user_ids(usernames)
    missing_users = [name for name in usernames if name not in users]
    report.persons_created = len(missing_users)
    if missing_users and not dry_run:
        user_model = get_user_model()
        for names in _batches(missing_users):
            user_model.objects.bulk_create(
                [user_model(username=name, is_active=False, password=make_password(None)) for name in names],
                ignore_conflicts=True,
            )
        users.update(_user_ids(missing_users))

    existing = _conversation_ids(list(users.values()))
    targets: dict[GroupKey, ConversationTarget] = {}
    to_create: list[Conversation] = []
    for (person, companion_id), group_logs in groups.items():
        user_id = users.get(person_username(person))
        conversation_id = existing.get((user_id, companion_id)) if user_id is not None else None
        if conversation_id is not None:
            targets[(person, companion_id)] = ConversationTarget(conversation_id, created=False)
            continue
        targets[(person, companion_id)] = ConversationTarget(None, created=True)
        if not dry_run:
            if user_id is None:  # every person's user was created above unless this is a dry run
                raise LogImportInvariantViolated(f"no user for person {person!r}")
            first = group_logs[0]
            to_create.append(
                Conversation(
                    person_id=user_id,
                    companion_id=companion_id,
                    time_zone=first.time_zone,
                    created_at=first.starts_at,
                )
            )
    report.conversations_created = sum(1 for target in targets.values() if target.created)
    if to_create:
        for rows in _batches(to_create):
            Conversation.objects.bulk_create(rows, ignore_conflicts=True)
        created = _conversation_ids(list(users.values()))
        for (person, companion_id), target in targets.items():
            if target.conversation_id is None:
                conversation_id = created[(users[person_username(person)], companion_id)]
                targets[(person, companion_id)] = ConversationTarget(conversation_id, created=True)
    return targets


def _user_ids(usernames: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    user_model = get_user_model()
    for batch in _batches(usernames):
        found.update(user_model.objects.filter(username__in=batch).values_list("username", "id"))
    return found


def _conversation_ids(user_ids: Sequence[int]) -> dict[tuple[int, int], int]:
    found: dict[tuple[int, int], int] = {}
    for batch in _batches(user_ids):
        for conversation_id, person_id, companion_id in Conversation.objects.filter(
            person_id__in=batch
        ).values_list("id", "person_id", "companion_id"):
            found[(person_id, companion_id)] = conversation_id
    return found


# --- writing the logs, whole conversations per transaction --------------------------------------

# Messages per transaction, roughly: a batch holds whole conversations only (never part of one),
# so every log is stored whole or not at all, while a file of 10k short conversations costs a
# few dozen commits rather than 10k (a commit is the dearest statement of the import).
_TRANSACTION_MESSAGES = 5000

Batch = list[tuple[GroupKey, list[ChatLog]]]

# The conversation rows are locked first (chat's lock order), in id order so two importers never
# deadlock, and the same statement reads what a new log must not overlap: each conversation's
# last message (by id, the order of the chat).
_CONVERSATION_STATE_SQL = """
SELECT c.id, c.time_zone,
       (SELECT m.created_at FROM chat_message m WHERE m.conversation_id = c.id ORDER BY m.id DESC LIMIT 1)
FROM chat_conversation c WHERE c.id = ANY(%s) ORDER BY c.id
"""


def _transaction_batches(groups: dict[GroupKey, list[ChatLog]]) -> Iterator[Batch]:
    batch: Batch = []
    size = 0
    for key, group_logs in groups.items():
        batch.append((key, group_logs))
        size += sum(len(log.messages) for log in group_logs)
        if size >= _TRANSACTION_MESSAGES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _write_batch(
    batch: Batch, *, targets: dict[GroupKey, ConversationTarget], dry_run: bool, report: ImportReport
) -> None:
    """Append each conversation's fitting logs; in a dry run only decide which would fit."""
    ids = [target.conversation_id for key, _ in batch if (target := targets[key]).conversation_id is not None]
    refusals_before = len(report.refusals)
    try:
        with transaction.atomic():
            states = _conversation_states(ids, lock=not dry_run)
            accepted: list[tuple[int, ChatLog]] = []
            touched = 0
            for key, group_logs in batch:
                conversation_id = targets[key].conversation_id
                zone, last_at = (
                    states[conversation_id]
                    if conversation_id is not None
                    else (group_logs[0].time_zone, None)
                )
                fitting = _fitting_logs(group_logs, zone=zone, last_at=last_at, report=report)
                touched += bool(fitting)
                accepted.extend((conversation_id or 0, log) for log in fitting)
            if not dry_run:
                _insert_logs(accepted)
    except IntegrityError:
        # Another import stored one of these external ids since we looked; nothing of ours stayed.
        del report.refusals[refusals_before:]
        if len(batch) > 1:
            for single in batch:  # so only the conversation that collided is refused
                _write_batch([single], targets=targets, dry_run=dry_run, report=report)
            return
        for log in batch[0][1]:
            report.refusals.append(
                LineRefusal(
                    log.line,
                    log.external_id,
                    "conflict",
                    "another import wrote this conversation at the same time; run the import again",
                )
            )
        return
    report.conversations += touched
    report.imported_logs += len(accepted)
    report.imported_messages += sum(len(log.messages) for _, log in accepted)


def _conversation_states(ids: list[int], *, lock: bool) -> dict[int, tuple[str, datetime | None]]:
    """``{conversation id: (time zone, created_at of its last message or None)}``."""
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_CONVERSATION_STATE_SQL + (" FOR UPDATE OF c" if lock else ""), [ids])
        return {conversation_id: (zone, last_at) for conversation_id, zone, last_at in cursor.fetchall()}


def _fitting_logs(
    group_logs: Sequence[ChatLog], *, zone: str, last_at: datetime | None, report: ImportReport
) -> list[ChatLog]:
    accepted: list[ChatLog] = []
    for log in group_logs:
        if log.time_zone != zone:
            report.refusals.append(
                LineRefusal(
                    log.line,
                    log.external_id,
                    "time_zone_mismatch",
                    f"time_zone {log.time_zone!r} differs from the conversation's {zone!r}",
                )
            )
            continue
        if last_at is not None and log.starts_at < last_at:
            report.refusals.append(
                LineRefusal(
                    log.line,
                    log.external_id,
                    "overlap",
                    f"starts at {log.starts_at.isoformat()}, before the conversation's last message "
                    f"at {last_at.astimezone(UTC).isoformat()} (an earlier log or a live message)",
                )
            )
            continue
        accepted.append(log)
        last_at = log.ends_at
    return accepted


def _insert_logs(accepted: Sequence[tuple[int, ChatLog]]) -> None:
    """Store ``(conversation id, log)`` pairs: the messages in order, then the import records."""
    if not accepted:
        return
    Message.objects.bulk_create(
        [
            Message(
                conversation_id=conversation_id,
                role=message.role,
                text=message.text,
                created_at=message.at,
                log_external_id=log.external_id,
            )
            for conversation_id, log in accepted
            for message in log.messages
        ],
        batch_size=_QUERY_BATCH,
    )
    ImportedLog.objects.bulk_create(
        [
            ImportedLog(
                external_id=log.external_id, conversation_id=conversation_id, message_count=len(log.messages)
            )
            for conversation_id, log in accepted
        ],
        batch_size=_QUERY_BATCH,
    )
