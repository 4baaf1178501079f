"""``manage.py export_delay_dataset --out FILE [--val-fraction 0.1] [--format prompt|conversation]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.export import DEFAULT_CONTEXT_TURNS, FORMATS, ExportError, export_delay_dataset


class Command(BaseCommand):
    help = (
        "Write approved labels as JSONL: the training split to --out, the validation split to "
        "<name>.val.jsonl and a manifest (counts per rule and bucket, sha256) to <name>.manifest.json."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="Training split file, e.g. data/delays.jsonl.")
        parser.add_argument(
            "--val-fraction", type=float, default=0.1, help="Share of conversations for validation."
        )
        parser.add_argument(
            "--format", choices=FORMATS, default="prompt", help="prompt (training) or conversation (eval)."
        )
        parser.add_argument(
            "--context-turns", type=int, default=DEFAULT_CONTEXT_TURNS, help="Turns kept before the cut."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = export_delay_dataset(
                out=Path(options["out"]),
                val_fraction=options["val_fraction"],
                fmt=options["format"],
                context_turns=options["context_turns"],
            )
        except ExportError as exc:
            raise CommandError(str(exc)) from exc
        files = result.manifest["files"]
        self.stdout.write(
            f"Exported {result.manifest['examples']} examples ({files['train']['rows']} train, "
            f"{files['val']['rows']} validation) as {result.manifest['format']}."
        )
        self.stdout.write(f"  train: {result.train_path}")
        self.stdout.write(f"  validation: {result.val_path}")
        self.stdout.write(f"  manifest: {result.manifest_path} (sha256 {result.manifest['sha256']})")
