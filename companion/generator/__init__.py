"""The companion's brain: a causal LM that writes the *time* of its reply, then the reply.

Public API (the contract in API.md). The transcript grammar and the data classes are plain
Python and import instantly; the torch-backed parts (:class:`ReplyGenerator`,
:func:`build_default_model`, :func:`train_lora`) are imported lazily on first use, so an app
that only renders transcripts or parses completions never pays for importing torch.
No Django import anywhere in this package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from companion.generator.dialogue_json import dialogue_from_json, dialogue_to_json, reply_bubbles_from_json
from companion.generator.transcript import (
    DEFAULT_MAX_DELAY,
    PERSON_LABEL,
    Dialogue,
    GenerationFailed,
    InvalidCompletion,
    TranscriptError,
    Turn,
    companion_label,
    parse_bubbles,
    parse_completion,
    parse_transcript,
    render_prompt,
    render_time,
    render_training_example,
    render_transcript,
    resolve_time,
)
from companion.generator.types import GeneratedReply, SamplingConfig

if TYPE_CHECKING:
    from companion.generator.build import build_default_model
    from companion.generator.lora import train_lora
    from companion.generator.model import ReplyGenerator

__all__ = [
    "DEFAULT_MAX_DELAY",
    "PERSON_LABEL",
    "Dialogue",
    "GeneratedReply",
    "GenerationFailed",
    "InvalidCompletion",
    "ReplyGenerator",
    "SamplingConfig",
    "TranscriptError",
    "Turn",
    "build_default_model",
    "companion_label",
    "dialogue_from_json",
    "dialogue_to_json",
    "parse_bubbles",
    "parse_completion",
    "parse_transcript",
    "render_prompt",
    "render_time",
    "render_training_example",
    "render_transcript",
    "reply_bubbles_from_json",
    "resolve_time",
    "train_lora",
]

# name -> module that defines it; imported on first attribute access (PEP 562).
_LAZY = {
    "ReplyGenerator": "companion.generator.model",
    "build_default_model": "companion.generator.build",
    "train_lora": "companion.generator.lora",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'companion.generator' has no attribute {name!r}")
