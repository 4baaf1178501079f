"""``manage.py import_chat_logs FILE [--dry-run]``: conversations from JSONL (see :mod:`chat.log_import`).

Refused lines are listed with their line number and reason; the good lines are imported anyway
and the command then fails (non-zero exit) with a summary. Progress goes to stderr, at most once
a second, so a large file shows it is moving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.log_import import ImportReport, Progress, import_chat_logs


class Command(BaseCommand):
    help = (
        "Import chat logs from a JSONL file, one conversation per line; re-importing skips logs "
        "already imported (by external_id). Exit status 1 when any line was refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="JSONL file, one log per line.")
        parser.add_argument("--dry-run", action="store_true", help="Validate and report; write nothing.")

    def handle(self, *args: Any, file: Path, dry_run: bool, verbosity: int, **options: Any) -> None:
        if not file.is_file():
            raise CommandError(f"{file}: no such file.")
        report = import_chat_logs(
            path=file, dry_run=dry_run, progress=Progress(write=lambda text: self.stderr.write(text))
        )
        for refusal in report.refusals:
            self.stdout.write(f"refused {refusal}")
        if verbosity >= 2:
            for external_id in report.skipped:
                self.stdout.write(f"skipped {external_id} (already imported)")
        self.stdout.write(summary(report))
        if report.refusals:
            outcome = "nothing was written (dry run)" if dry_run else "the other lines were imported"
            raise CommandError(f"{len(report.refusals)} of {report.lines} lines refused; {outcome}.")


def summary(report: ImportReport) -> str:
    verb = "would import" if report.dry_run else "imported"
    prefix = "Dry run, nothing written: " if report.dry_run else ""
    return (
        f"{prefix}{report.lines} lines: {verb} {report.imported_logs} logs "
        f"({report.imported_messages} messages) into {report.conversations} conversations "
        f"({report.conversations_created} new, {report.persons_created} new persons); "
        f"skipped {len(report.skipped)} already imported; refused {len(report.refusals)}."
    )
