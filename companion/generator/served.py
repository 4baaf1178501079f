"""What a served model is sent and how its answer is read: the local generator's prompt and parser.

A serving engine (llama.cpp's server, vLLM, TGI) runs the model; this module makes sure it sees
exactly what :class:`~companion.generator.model.ReplyGenerator` would feed a local model through
its text-only path, and that its answer is judged by the same parser:

* the prompt is ``render_prompt(dialogue)`` (plus ``TIME]`` when the time is forced), tokenized
  by our own tokenizer (``tokenizer.json`` beside the model), so the engine's tokenizer never
  decides how a time is split; the oldest turns are dropped until prompt and answer fit the
  model's context, as the local generator does;
* the constraint is :func:`~companion.generator.served_grammar.completion_language` of the same
  :class:`~companion.generator.time_window.TimeWindow`, maximum delay included;
* the answer goes through :func:`~companion.generator.transcript.parse_completion`; anything
  that does not parse is a :class:`GenerationFailed` with the parser's reason.

Plain Python plus the ``tokenizers`` library: no torch, no HTTP (the caller owns the transport).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tokenizers import Tokenizer

from companion.generator.served_grammar import CompletionLanguage, completion_language
from companion.generator.time_window import time_window
from companion.generator.transcript import (
    DEFAULT_MAX_DELAY,
    Dialogue,
    GenerationFailed,
    InvalidCompletion,
    TranscriptError,
    parse_completion,
    render_prompt,
    render_time,
    zone,
)
from companion.generator.types import GeneratedReply

__all__ = ["ServedPrompts", "ServedRequest"]


@dataclass(frozen=True)
class ServedRequest:
    """One generation request for an engine: the prompt (text and our token ids) and its language."""

    dialogue: Dialogue
    prompt: str
    prompt_ids: tuple[int, ...] | None
    forced: str  # "13:10]" when the time is forced, else ""
    forced_at: datetime | None
    max_delay: timedelta
    language: CompletionLanguage


class ServedPrompts:
    """Builds :class:`ServedRequest` s and reads completions back for one model directory.

    ``model_dir`` holds the model's ``tokenizer.json`` (and ``config.json``, whose
    ``max_position_embeddings`` is the context unless ``context_tokens`` is given). Without it the
    prompt is sent as text and the engine tokenizes it (TGI has no token-id prompts).
    """

    def __init__(self, model_dir: str | Path | None, *, context_tokens: int | None = None) -> None:
        self._tokenizer: Tokenizer | None = None
        self.context_tokens = context_tokens
        if model_dir is not None:
            path = Path(model_dir)
            self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
            config = path / "config.json"
            if context_tokens is None and config.is_file():
                limit = json.loads(config.read_text(encoding="utf-8")).get("max_position_embeddings")
                self.context_tokens = int(limit) if limit else None

    def _ids(self, text: str) -> list[int] | None:
        return list(self._tokenizer.encode(text).ids) if self._tokenizer is not None else None

    def request(
        self,
        dialogue: Dialogue,
        *,
        forced_at: datetime | None = None,
        max_delay: timedelta = DEFAULT_MAX_DELAY,
        max_new_tokens: int = 64,
    ) -> ServedRequest:
        """The request for the next companion turn (``forced_at``: only the text is generated)."""
        previous = dialogue.last_at
        forced = ""
        if forced_at is not None:
            if forced_at.tzinfo is None:
                raise TranscriptError("forced_at must be timezone-aware")
            forced = render_time(forced_at, previous=previous, time_zone=dialogue.time_zone) + "]"
            max_delay = max(max_delay, forced_at.astimezone(UTC) - previous.astimezone(UTC))
        window = None if forced else time_window(previous, dialogue.time_zone, max_delay)
        turns = dialogue.turns
        while True:
            shortened = replace(dialogue, turns=turns)
            prompt = render_prompt(shortened) + forced
            ids = self._ids(prompt)
            limit = self.context_tokens
            if ids is None or limit is None or len(ids) + max_new_tokens <= limit or len(turns) == 1:
                if ids is not None and limit is not None:
                    ids = ids[-(limit - max_new_tokens) :]
                return ServedRequest(
                    dialogue=shortened,
                    prompt=prompt,
                    prompt_ids=tuple(ids) if ids is not None else None,
                    forced=forced,
                    forced_at=forced_at,
                    max_delay=max_delay,
                    language=completion_language(window),
                )
            turns = turns[1:]

    @staticmethod
    def reply(request: ServedRequest, completion: str) -> GeneratedReply:
        """The engine's text after the prompt, parsed; :class:`GenerationFailed` when it does not parse."""
        full = request.forced + completion
        dialogue = request.dialogue
        try:
            at, text = parse_completion(
                full, previous=dialogue.last_at, time_zone=dialogue.time_zone, max_delay=request.max_delay
            )
        except InvalidCompletion as error:
            raise GenerationFailed(
                f"the served model's completion does not parse: {error}", completion=full, reason=error.reason
            ) from error
        if request.forced_at is not None:
            at = request.forced_at.astimezone(zone(dialogue.time_zone))
        return GeneratedReply(at=at, text=text, completion=full, constrained=True)
