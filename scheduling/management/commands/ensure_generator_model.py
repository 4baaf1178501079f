"""Build the default generator model when ``settings.GENERATOR_MODEL_DIR`` holds none.

``make run`` calls it on every start: the first start builds the model (a few minutes on a
CPU, with progress printed), later starts find it and return at once. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scheduling import conf


def model_present(model_dir: Path) -> bool:
    """A model directory is one with a ``config.json`` (what ReplyGenerator.load requires)."""
    return (model_dir / "config.json").is_file()


class Command(BaseCommand):
    help = "Build the default generator model under GENERATOR_MODEL_DIR unless one is there."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--preset", choices=["default", "tiny"], default="default")
        parser.add_argument("--force", action="store_true", help="Rebuild even if a model is present.")

    def handle(self, *args: Any, **options: Any) -> None:
        model_dir = conf.generator_model_dir()
        if model_present(model_dir) and not options["force"]:
            self.stdout.write(f"generator model present: {model_dir}")
            return
        if model_dir.exists() and not model_dir.is_dir():
            raise CommandError(f"GENERATOR_MODEL_DIR {model_dir} exists and is not a directory.")
        from companion.generator import build_default_model

        self.stdout.write(
            f"building the {options['preset']} generator model into {model_dir} (first start only)"
        )

        def progress(line: str) -> None:
            self.stdout.write(f"  {line}")
            self.stdout.flush()

        try:
            built = build_default_model(model_dir, preset=options["preset"], progress=progress)
        except Exception as exc:
            raise CommandError(f"building the generator model failed: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(f"generator model ready: {built}")
