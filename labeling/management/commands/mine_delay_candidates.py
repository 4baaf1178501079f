"""``manage.py mine_delay_candidates [--since DATE] [--companion ID] [--rules FILE]``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.models import Companion
from labeling.mining import DEFAULT_RULES_FILE, MiningRulesError, load_rules, mine_delay_candidates


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


class Command(BaseCommand):
    help = "Scan chat messages for trigger phrases and create labeling tasks (re-runs add no duplicates)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since", help="Only messages at or after this date (YYYY-MM-DD, UTC) or datetime."
        )
        parser.add_argument("--companion", help="Only this companion (id or slug).")
        parser.add_argument("--rules", default=str(DEFAULT_RULES_FILE), help="Rules file (JSON).")

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
        result = mine_delay_candidates(since=since, companion_id=companion_id, rules=rules)
        self.stdout.write(
            f"Scanned {result.scanned_messages} messages in {result.scanned_conversations} conversations."
        )
        for rule in rules:
            hits, new = result.hits_per_rule[rule.name], result.new_per_rule[rule.name]
            self.stdout.write(f"  {rule.name}: {hits} hits, {new} new tasks")
        self.stdout.write(f"Found {result.hits} hits; created {result.new_tasks} new tasks.")
