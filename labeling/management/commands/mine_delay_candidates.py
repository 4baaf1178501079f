"""``manage.py mine_delay_candidates [--since DATE] [--companion ID] [--rules FILE] [--regex-only] [--json]``.

With ``--json`` stdout carries one JSON object per hit (``conversation_id``, ``log_external_id``,
``message_id``, ``rule``, ``score``) and the human-readable summary goes to stderr. ``score`` is the
cosine similarity of a semantic hit and null for a regular-expression hit.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.models import Companion
from labeling.mining import DEFAULT_RULES_FILE, Hit, MiningRulesError, load_rules, mine_delay_candidates


def parse_since(value: str) -> datetime:
    """``2026-03-01`` (midnight UTC) or an ISO datetime (naive means UTC)."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--since {value!r} is not a date (YYYY-MM-DD) or an ISO datetime.") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def hit_json(hit: Hit) -> dict[str, Any]:
    message = hit.trigger_message
    return {
        "conversation_id": message.conversation_id,
        # Set on messages imported from a chat-log file; live messages have none.
        "log_external_id": getattr(message, "log_external_id", None),
        "message_id": message.pk,
        "rule": hit.rule,
        "score": hit.score,
    }


class Command(BaseCommand):
    help = "Scan chat messages for trigger phrases and create labeling tasks (re-runs add no duplicates)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since", help="Only messages at or after this date (YYYY-MM-DD, UTC) or datetime."
        )
        parser.add_argument("--companion", help="Only this companion (id or slug).")
        parser.add_argument("--rules", default=str(DEFAULT_RULES_FILE), help="Rules file (JSON).")
        parser.add_argument(
            "--regex-only", action="store_true", help="Skip the example phrases (no sentence encoder)."
        )
        parser.add_argument(
            "--json", action="store_true", help="One JSON line per hit on stdout; the summary on stderr."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        since = parse_since(options["since"]) if options["since"] else None
        companion_id = None
        if options["companion"]:
            key = options["companion"]
            lookup = {"pk": int(key)} if key.isdigit() else {"slug": key}
            companion = Companion.objects.filter(**lookup).first()
            if companion is None:
                raise CommandError(f"--companion {key!r}: no companion with that id or slug.")
            companion_id = companion.pk
        try:
            rules = load_rules(options["rules"])
        except MiningRulesError as exc:
            raise CommandError(str(exc)) from exc
        result = mine_delay_candidates(
            since=since, companion_id=companion_id, rules=rules, semantic=not options["regex_only"]
        )
        summary = self.stderr if options["json"] else self.stdout
        if options["json"]:
            for hit in result.found:
                self.stdout.write(json.dumps(hit_json(hit), ensure_ascii=False))
        summary.write(
            f"Scanned {result.scanned_messages} messages in {result.scanned_conversations} conversations."
        )
        for rule in rules:
            hits, new = result.hits_per_rule[rule.name], result.new_per_rule[rule.name]
            summary.write(f"  {rule.name}: {hits} hits, {new} new tasks")
        summary.write(f"Found {result.hits} hits; created {result.new_tasks} new tasks.")
        if not options["regex_only"]:
            summary.write(
                f"Sentence vectors: {result.vectors.encoded} encoded, {result.vectors.reused} reused."
            )
