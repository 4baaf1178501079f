"""Mining the chat logs for turns where the companion should have waited.

Rules live in a data file (``labeling/data/delay_triggers.json``, read by
:mod:`labeling.mining_rules`): per rule a name, the speaker whose messages it reads, a kind, and
bilingual regular expressions and/or example phrases matched by sentence similarity
(:mod:`labeling.semantic`). A message matches a rule by a regular expression first; only when
none matches are the example phrases tried. Kinds:

* ``phrase``: a message of that speaker matches. The matched turn is the suspected turn.
* ``kept_talking``: it matches and the companion's next turn came within its instant threshold
  (the person left, or begged it to stop, and it answered anyway); for a person's rule the
  ``companion_turns`` turns right after it must all be the companion's. The matched turn is
  suspected.
* ``unkept_plan``: a companion message announces leaving ("밥 먹고 올게", "brb, going to eat")
  and the companion's *next* message comes within its instant threshold, so the plan was not
  kept. The suspected turn is the one that instant reply answered.
* ``loop``: at least ``min_matches`` turns of the speaker match within one stretch of turns, each
  sent within the instant threshold of the turn before (good night, good night, good night...).
  The first one is both trigger and suspected turn: after it the companion should have gone quiet.

A message fires at most one rule: the first in the file that fires on it names the hit, so one
turn never becomes two tasks. :func:`mine_delay_candidates` turns hits into
:class:`~labeling.models.DelayTask` rows; the unique ``(rule, trigger_message)`` constraint plus
``get_or_create`` make re-runs harmless.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db import transaction

from chat.models import Conversation, Message
from labeling.mining_rules import (
    DEFAULT_RULES_FILE,
    MiningRule,
    MiningRulesError,
    load_rules,
    regex_only,
)
from labeling.models import DelayTask
from labeling.semantic import Encoder, ExampleIndex, VectorStats, example_index, message_vectors

__all__ = [
    "DEFAULT_RULES_FILE",
    "Hit",
    "MiningResult",
    "MiningRule",
    "MiningRulesError",
    "find_hits",
    "load_rules",
    "mine_delay_candidates",
    "regex_only",
    "scan_conversations",
]


@dataclass(frozen=True)
class Match:
    text: str  # what the regular expression matched, or "" for a semantic match
    example: str = ""  # the closest example phrase of a semantic match
    score: float | None = None  # its cosine similarity


@dataclass(frozen=True)
class Hit:
    rule: str
    trigger_message: Message
    suspected_message: Message
    matched_text: str
    example: str = ""
    score: float | None = None


@dataclass(frozen=True)
class Semantic:
    """What semantic matching needs: message vectors by id and the rules' example vectors."""

    vectors: Mapping[int, np.ndarray]
    examples: ExampleIndex


@dataclass
class MiningResult:
    scanned_messages: int = 0
    scanned_conversations: int = 0
    hits_per_rule: dict[str, int] = field(default_factory=dict)
    new_per_rule: dict[str, int] = field(default_factory=dict)
    vectors: VectorStats = field(default_factory=VectorStats)
    found: list[Hit] = field(default_factory=list)

    @property
    def hits(self) -> int:
        return sum(self.hits_per_rule.values())

    @property
    def new_tasks(self) -> int:
        return sum(self.new_per_rule.values())


def match(rule: MiningRule, message: Message, semantic: Semantic | None) -> Match | None:
    """Does ``message`` match ``rule``: by a regular expression, else by an example phrase."""
    matched = rule.first_match(message.text)
    if matched is not None:
        return Match(text=matched[:200])
    if semantic is None or not rule.examples or message.pk not in semantic.vectors:
        return None
    example, score = semantic.examples.best(rule, semantic.vectors[message.pk])
    if score < (rule.threshold if rule.threshold is not None else 1.0):
        return None
    return Match(text="", example=example, score=round(score, 4))


def find_hits(
    *,
    messages: Sequence[Message],
    rules: Sequence[MiningRule],
    since: datetime | None,
    instant: timedelta,
    semantic: Semantic | None = None,
) -> tuple[int, list[Hit]]:
    """Scan one conversation's messages (oldest first); returns (messages scanned, hits).

    Only messages at or after ``since`` can fire, but look-aheads read the whole list. System
    messages are not turns and are ignored. ``semantic`` None means regular expressions only.
    """
    turns = [m for m in messages if m.role in (Message.Role.PERSON, Message.Role.COMPANION)]
    # next_companion[i]: index of the first companion turn after turn i (None if there is none).
    next_companion: list[int | None] = [None] * len(turns)
    upcoming: int | None = None
    for index in range(len(turns) - 1, -1, -1):
        next_companion[index] = upcoming
        if turns[index].role == Message.Role.COMPANION:
            upcoming = index

    def instant_follow_up(index: int) -> int | None:
        """The companion's next turn after turn ``index`` if it came within the instant threshold."""
        follow_up = next_companion[index]
        if follow_up is not None and turns[follow_up].created_at - turns[index].created_at < instant:
            return follow_up
        return None

    fired: set[int] = set()  # message ids that already made a hit
    hits: list[Hit] = []
    for rule in rules:
        if rule.kind == "loop":
            hits.extend(_loop_hit(rule, turns, since, instant, semantic, fired))
            continue
        for index, message in enumerate(turns):
            if message.role != rule.speaker or message.pk in fired:
                continue
            if since is not None and message.created_at < since:
                continue
            found = match(rule, message, semantic)
            if found is None:
                continue
            follow_up = instant_follow_up(index)
            if rule.kind == "kept_talking" and follow_up is not None and message.role == Message.Role.PERSON:
                run = turns[index + 1 : index + 1 + rule.companion_turns]
                if len(run) < rule.companion_turns or any(t.role != Message.Role.COMPANION for t in run):
                    continue  # the person spoke again first: the companion did not keep talking
            if rule.kind == "phrase" or (rule.kind == "kept_talking" and follow_up is not None):
                suspected = message
            elif rule.kind == "unkept_plan" and follow_up is not None:
                # The companion should have waited after the turn its instant reply answered.
                suspected = turns[follow_up - 1]
            else:
                continue
            fired.add(message.pk)
            hits.append(Hit(rule.name, message, suspected, found.text, found.example, found.score))
    hits.sort(key=lambda hit: (hit.trigger_message.created_at, hit.trigger_message.pk))
    scanned = sum(1 for m in turns if since is None or m.created_at >= since)
    return scanned, hits


def _loop_hit(
    rule: MiningRule,
    turns: Sequence[Message],
    since: datetime | None,
    instant: timedelta,
    semantic: Semantic | None,
    fired: set[int],
) -> list[Hit]:
    """One hit per stretch of quick turns (a pause of the instant threshold ends a stretch)
    in which at least ``min_matches`` of the speaker's turns match."""
    hits: list[Hit] = []
    looped: list[tuple[Message, Match]] = []

    def close() -> None:
        if len(looped) >= rule.min_matches:
            first, found = looped[0]
            if first.pk not in fired and (since is None or first.created_at >= since):
                fired.add(first.pk)
                hits.append(Hit(rule.name, first, first, found.text, found.example, found.score))
        looped.clear()

    for index, message in enumerate(turns):
        if index > 0 and message.created_at - turns[index - 1].created_at >= instant:
            close()  # a good night said after a pause is a new evening, not the same loop
        if message.role != rule.speaker or index == 0:
            continue
        found = match(rule, message, semantic)
        if found is not None:
            looped.append((message, found))
    close()
    return hits


def _conversations(
    *, since: datetime | None, companion_id: int | None, conversation_ids: Sequence[int] | None
) -> Iterator[Conversation]:
    conversations = Conversation.objects.select_related("companion").order_by("id")
    if conversation_ids is not None:
        conversations = conversations.filter(pk__in=list(conversation_ids))
    if companion_id is not None:
        conversations = conversations.filter(companion_id=companion_id)
    if since is not None:
        conversations = conversations.filter(messages__created_at__gte=since).distinct()
    return conversations.iterator(chunk_size=200)


def scan_conversations(
    *,
    rules: Sequence[MiningRule],
    since: datetime | None = None,
    companion_id: int | None = None,
    semantic: bool = True,
    encoder: Encoder | None = None,
    result: MiningResult | None = None,
    conversation_ids: Sequence[int] | None = None,
) -> Iterator[tuple[Conversation, list[Hit]]]:
    """Each conversation with its hits; writes no task (message vectors are stored, a cache)."""
    result = result if result is not None else MiningResult()
    semantic_rules = [rule for rule in rules if rule.examples] if semantic else []
    examples = example_index(semantic_rules, encoder=encoder) if semantic_rules else None
    speakers = {rule.speaker for rule in semantic_rules}
    for conversation in _conversations(
        since=since, companion_id=companion_id, conversation_ids=conversation_ids
    ):
        messages = list(conversation.messages.order_by("created_at", "id"))
        context = None
        if examples is not None:
            readable = [m for m in messages if m.role in speakers]
            vectors = message_vectors(readable, encoder=encoder, stats=result.vectors)
            context = Semantic(vectors=vectors, examples=examples)
        instant = timedelta(minutes=conversation.companion.instant_threshold_minutes)
        scanned, hits = find_hits(
            messages=messages, rules=rules, since=since, instant=instant, semantic=context
        )
        result.scanned_conversations += 1
        result.scanned_messages += scanned
        yield conversation, hits


def mine_delay_candidates(
    *,
    since: datetime | None = None,
    companion_id: int | None = None,
    rules: Sequence[MiningRule] | None = None,
    semantic: bool = True,
    encoder: Encoder | None = None,
) -> MiningResult:
    """Scan the logs and create one task per new hit; existing tasks are left as they are."""
    rules = list(rules) if rules is not None else load_rules()
    result = MiningResult(
        hits_per_rule={rule.name: 0 for rule in rules}, new_per_rule={rule.name: 0 for rule in rules}
    )
    for conversation, hits in scan_conversations(
        rules=rules,
        since=since,
        companion_id=companion_id,
        semantic=semantic,
        encoder=encoder,
        result=result,
    ):
        with transaction.atomic():
            for hit in hits:
                _, created = DelayTask.objects.get_or_create(
                    rule=hit.rule,
                    trigger_message=hit.trigger_message,
                    defaults={
                        "conversation": conversation,
                        "suspected_message": hit.suspected_message,
                        "matched_text": hit.matched_text,
                        "matched_example": hit.example[:300],
                        "similarity": hit.score,
                    },
                )
                result.hits_per_rule[hit.rule] += 1
                result.new_per_rule[hit.rule] += int(created)
                result.found.append(hit)
    return result
