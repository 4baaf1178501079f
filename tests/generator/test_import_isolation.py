"""The generator is plain Python: importing any of its modules loads no Django, Celery or Channels."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import companion.generator

FORBIDDEN = ("django", "celery", "rest_framework", "channels", "kombu")
REPO_ROOT = Path(__file__).resolve().parents[2]


def generator_modules() -> list[str]:
    names = [
        f"companion.generator.{module.name}"
        for module in pkgutil.iter_modules(companion.generator.__path__)
        if module.name != "__main__"  # runs the command line when imported
    ]
    return ["companion.generator", *sorted(names)]


def test_every_generator_module_imports_without_django_or_celery() -> None:
    modules = generator_modules()
    assert "companion.generator.model" in modules and "companion.generator.lora" in modules
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    # A clean environment: no settings module named, so nothing can configure Django by accident.
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
