"""Approved labels -> training or evaluation data, through the generator's one grammar.

``prompt`` format: one ``{"prompt", "completion"}`` line per example, rendered by
:func:`companion.generator.render_training_example` (LoRA training data).
``conversation`` format: :func:`companion.generator.dialogue_to_json` lines (the generator's
evaluation format). Both carry a ``meta`` object (label, task, rule, conversation) for tracing.

``--out data/delays.jsonl`` writes the training split there, the validation split to
``data/delays.val.jsonl`` and a manifest to ``data/delays.manifest.json`` (counts per split, rule
and delay bucket, and the sha256 of each data file and of the whole export). The split is by
conversation, from a hash of its id, so it is the same on every run and a conversation never
straddles train and validation. Every example is parsed back with the generator's parser
before it is written; nothing is written unless every example round-trips.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from django.utils import timezone

from companion.generator import (
    TranscriptError,
    dialogue_from_json,
    dialogue_to_json,
    parse_completion,
    render_training_example,
)
from labeling.dialogues import DEFAULT_CONTEXT_TURNS, dialogue_until, label_dialogue
from labeling.models import DelayLabel, LabelIncomplete
from labeling.selectors import approved_labels, delay_bucket

# dialogue_until and label_dialogue were defined here first; importing them from here still works.
__all__ = [
    "DEFAULT_CONTEXT_TURNS",
    "FORMATS",
    "ExportError",
    "ExportResult",
    "dialogue_until",
    "export_delay_dataset",
    "is_validation",
    "label_dialogue",
]

ExportFormat = Literal["prompt", "conversation"]
FORMATS: tuple[str, ...] = ("prompt", "conversation")
_SPLIT_SALT = "labeling-split-v1"


class ExportError(ValueError):
    """The export cannot be written as asked; ``str()`` says why. Nothing has been written."""


@dataclass(frozen=True)
class ExportResult:
    train_path: Path
    val_path: Path
    manifest_path: Path
    manifest: dict[str, Any]


def is_validation(conversation_id: int, val_fraction: float) -> bool:
    """Deterministic split: a conversation goes to validation when its hash falls below the fraction."""
    digest = hashlib.sha256(f"{_SPLIT_SALT}:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction


def _row(label: DelayLabel, fmt: ExportFormat, context_turns: int) -> dict[str, Any]:
    if label.reply_at is None:  # ruled out for approved labels by a database constraint
        raise LabelIncomplete(f"Label {label.pk} has no reply time.")
    dialogue = label_dialogue(label, context_turns=context_turns)
    max_delay = timedelta(minutes=label.task.conversation.companion.max_delay_minutes)
    meta = {
        "label_id": label.pk,
        "task_id": label.task_id,
        "rule": label.task.rule,
        "conversation_id": label.task.conversation_id,
    }
    try:
        if fmt == "prompt":
            row: dict[str, Any] = render_training_example(dialogue, label.reply_at, label.reply_text)
            at, text = parse_completion(
                row["completion"],
                previous=dialogue.last_at,
                time_zone=dialogue.time_zone,
                max_delay=max_delay,
            )
            # A transcript turn is one line: the grammar turns line breaks into spaces.
            expected_text = " ".join(label.reply_text.splitlines()).strip()
        else:
            row = dialogue_to_json(dialogue, (label.reply_at, label.reply_text))
            _, reply = dialogue_from_json(row)
            if reply is None:
                raise TranscriptError("the exported conversation lost its reply when parsed back")
            at, text = reply
            expected_text = label.reply_text
    except TranscriptError as exc:
        raise ExportError(f"Label {label.pk} cannot be exported: {exc}") from exc
    if at != label.reply_at or text != expected_text:
        raise ExportError(f"Label {label.pk} does not round-trip through the transcript format.")
    row["meta"] = meta
    return row


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def sibling_paths(out: Path) -> tuple[Path, Path]:
    """``delays.jsonl`` -> (``delays.val.jsonl``, ``delays.manifest.json``)."""
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.val.jsonl"), out.with_name(f"{stem}.manifest.json")


def export_delay_dataset(
    *,
    out: Path,
    val_fraction: float = 0.1,
    fmt: str = "prompt",
    context_turns: int = DEFAULT_CONTEXT_TURNS,
) -> ExportResult:
    """Write the approved examples (train + validation + manifest); see the module docstring."""
    if fmt not in FORMATS:
        raise ExportError(f"Unknown format {fmt!r}; use one of: {', '.join(FORMATS)}.")
    if not 0.0 <= val_fraction < 1.0:
        raise ExportError(f"--val-fraction must be at least 0 and below 1, not {val_fraction}.")
    if context_turns < 1:
        raise ExportError(f"--context-turns must be at least 1, not {context_turns}.")
    out = Path(out)
    if not out.parent.is_dir():
        raise ExportError(f"The folder {out.parent} does not exist.")
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give a file name such as {out / 'delays.jsonl'}.")
    labels = list(approved_labels())
    if not labels:
        raise ExportError("There are no approved labels to export yet.")

    rows = {"train": [], "val": []}  # type: dict[str, list[dict[str, Any]]]
    per_rule: Counter[str] = Counter()
    per_bucket: Counter[str] = Counter()
    for label in labels:
        row = _row(label, fmt, context_turns)  # type: ignore[arg-type]
        split = "val" if is_validation(label.task.conversation_id, val_fraction) else "train"
        rows[split].append(row)
        per_rule[label.task.rule] += 1
        per_bucket[delay_bucket(label.required_delay())] += 1

    val_path, manifest_path = sibling_paths(out)
    payloads = {
        split: "".join(
            json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in split_rows
        ).encode()
        for split, split_rows in rows.items()
    }
    files = {
        "train": {
            "path": out.name,
            "rows": len(rows["train"]),
            "sha256": hashlib.sha256(payloads["train"]).hexdigest(),
        },
        "val": {
            "path": val_path.name,
            "rows": len(rows["val"]),
            "sha256": hashlib.sha256(payloads["val"]).hexdigest(),
        },
    }
    manifest: dict[str, Any] = {
        "format": fmt,
        "examples": len(labels),
        "val_fraction": val_fraction,
        "context_turns": context_turns,
        "split": f"sha256('{_SPLIT_SALT}:' + conversation id) < val_fraction -> val",
        "per_rule": dict(sorted(per_rule.items())),
        "per_bucket": dict(sorted(per_bucket.items())),
        "files": files,
        # The dataset's version: identical labels and options give the identical hash.
        "sha256": hashlib.sha256(payloads["train"] + b"\0" + payloads["val"]).hexdigest(),
        "exported_at": timezone.now().isoformat(),
    }
    _write_atomically(out, payloads["train"])
    _write_atomically(val_path, payloads["val"])
    _write_atomically(
        manifest_path, (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
    )
    return ExportResult(train_path=out, val_path=val_path, manifest_path=manifest_path, manifest=manifest)
