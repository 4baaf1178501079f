"""Mining the chat logs for turns where the companion should have waited.

Rules live in a data file (``labeling/data/delay_triggers.json``): per rule a name, the speaker
whose messages it reads, a kind and bilingual regular expressions. Two kinds exist:

* ``phrase``: a message of that speaker matches. The matched turn is the suspected turn.
* ``unkept_plan``: a companion message announces leaving ("밥 먹고 올게", "brb, going to eat")
  and the companion's *next* message comes within its instant threshold, so the plan was not
  kept. The suspected turn is the one that instant reply answered.

:func:`mine_delay_candidates` turns hits into :class:`~labeling.models.DelayTask` rows; the
unique ``(rule, trigger_message)`` constraint plus ``get_or_create`` make re-runs harmless.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from django.db import transaction

from chat.models import Conversation, Message
from labeling.models import DelayTask

DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "data" / "delay_triggers.json"

RuleKind = Literal["phrase", "unkept_plan"]


class MiningRulesError(ValueError):
    """The rules file is missing, malformed, or holds an invalid rule or pattern."""


@dataclass(frozen=True)
class MiningRule:
    name: str
    speaker: Literal["person", "companion"]
    kind: RuleKind
    patterns: tuple[re.Pattern[str], ...]
    description: str = ""

    def first_match(self, text: str) -> str | None:
        for pattern in self.patterns:
            match = pattern.search(text)
            if match:
                return match.group(0)
        return None


@dataclass(frozen=True)
class Hit:
    rule: str
    trigger_message: Message
    suspected_message: Message
    matched_text: str


@dataclass
class MiningResult:
    scanned_messages: int = 0
    scanned_conversations: int = 0
    hits_per_rule: dict[str, int] = field(default_factory=dict)
    new_per_rule: dict[str, int] = field(default_factory=dict)

    @property
    def hits(self) -> int:
        return sum(self.hits_per_rule.values())

    @property
    def new_tasks(self) -> int:
        return sum(self.new_per_rule.values())


def load_rules(path: Path | str = DEFAULT_RULES_FILE) -> list[MiningRule]:
    """Read and validate the rules file; every problem names the file and the rule."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MiningRulesError(f"Rules file {path} does not exist.") from exc
    except json.JSONDecodeError as exc:
        raise MiningRulesError(f"Rules file {path} is not valid JSON: {exc}") from exc
    raw_rules = document.get("rules") if isinstance(document, dict) else None
    if not isinstance(raw_rules, list) or not raw_rules:
        raise MiningRulesError(f"Rules file {path} needs a non-empty 'rules' list.")
    rules: list[MiningRule] = []
    for index, raw in enumerate(raw_rules):
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"{path}, rule {name or index!r}"
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,64}", name):
            raise MiningRulesError(f"{where}: 'name' must be 1-64 characters of a-z, 0-9 and _.")
        if name in {rule.name for rule in rules}:
            raise MiningRulesError(f"{where}: the name is used twice.")
        speaker = raw.get("speaker")
        if speaker not in ("person", "companion"):
            raise MiningRulesError(f"{where}: 'speaker' must be 'person' or 'companion'.")
        kind = raw.get("kind", "phrase")
        if kind not in ("phrase", "unkept_plan"):
            raise MiningRulesError(f"{where}: 'kind' must be 'phrase' or 'unkept_plan'.")
        if kind == "unkept_plan" and speaker != "companion":
            raise MiningRulesError(f"{where}: an 'unkept_plan' rule reads the companion's messages.")
        patterns = raw.get("patterns")
        if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
            raise MiningRulesError(f"{where}: 'patterns' must be a non-empty list of strings.")
        compiled = []
        for pattern in patterns:
            try:
                compiled.append(re.compile(pattern, re.IGNORECASE))
            except re.error as exc:
                raise MiningRulesError(f"{where}: bad pattern {pattern!r}: {exc}") from exc
        rules.append(
            MiningRule(
                name=name,
                speaker=speaker,
                kind=kind,
                patterns=tuple(compiled),
                description=str(raw.get("description", "")),
            )
        )
    return rules


def find_hits(
    *, messages: Sequence[Message], rules: Iterable[MiningRule], since: datetime | None, instant: timedelta
) -> tuple[int, list[Hit]]:
    """Scan one conversation's messages (oldest first); returns (messages scanned, hits).

    Only messages at or after ``since`` can fire, but the look-ahead of ``unkept_plan`` reads
    the whole list. System messages are not turns and are ignored.
    """
    turns = [m for m in messages if m.role in (Message.Role.PERSON, Message.Role.COMPANION)]
    rules = list(rules)
    # next_companion[i]: index of the first companion turn after turn i (None if there is none).
    next_companion: list[int | None] = [None] * len(turns)
    upcoming: int | None = None
    for index in range(len(turns) - 1, -1, -1):
        next_companion[index] = upcoming
        if turns[index].role == Message.Role.COMPANION:
            upcoming = index
    scanned = 0
    hits: list[Hit] = []
    for index, message in enumerate(turns):
        if since is not None and message.created_at < since:
            continue
        scanned += 1
        for rule in rules:
            if message.role != rule.speaker:
                continue
            matched = rule.first_match(message.text)
            if matched is None:
                continue
            if rule.kind == "phrase":
                hits.append(Hit(rule.name, message, message, matched[:200]))
                continue
            follow_up = next_companion[index]
            if follow_up is not None and turns[follow_up].created_at - message.created_at < instant:
                # The companion should have waited after the turn its instant reply answered.
                hits.append(Hit(rule.name, message, turns[follow_up - 1], matched[:200]))
    return scanned, hits


def mine_delay_candidates(
    *,
    since: datetime | None = None,
    companion_id: int | None = None,
    rules: Sequence[MiningRule] | None = None,
) -> MiningResult:
    """Scan the logs and create one task per new hit; existing tasks are left as they are."""
    rules = list(rules) if rules is not None else load_rules()
    result = MiningResult(
        hits_per_rule={rule.name: 0 for rule in rules}, new_per_rule={rule.name: 0 for rule in rules}
    )
    conversations = Conversation.objects.select_related("companion").order_by("id")
    if companion_id is not None:
        conversations = conversations.filter(companion_id=companion_id)
    if since is not None:
        conversations = conversations.filter(messages__created_at__gte=since).distinct()
    for conversation in conversations.iterator(chunk_size=200):
        messages = list(conversation.messages.order_by("created_at", "id"))
        instant = timedelta(minutes=conversation.companion.instant_threshold_minutes)
        scanned, hits = find_hits(messages=messages, rules=rules, since=since, instant=instant)
        result.scanned_conversations += 1
        result.scanned_messages += scanned
        with transaction.atomic():
            for hit in hits:
                _, created = DelayTask.objects.get_or_create(
                    rule=hit.rule,
                    trigger_message=hit.trigger_message,
                    defaults={
                        "conversation": conversation,
                        "suspected_message": hit.suspected_message,
                        "matched_text": hit.matched_text,
                    },
                )
                result.hits_per_rule[hit.rule] += 1
                result.new_per_rule[hit.rule] += int(created)
    return result
