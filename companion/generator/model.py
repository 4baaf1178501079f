"""ReplyGenerator: a local causal LM (plus optional LoRA adapter) that answers with ``(time, text)``.

Decoding is a short explicit loop (nanoGPT's ``generate``, with a KV cache) rather than
``model.generate``: the order "constraint mask -> temperature -> top-p -> sample" matters (top-p
must renormalize over the *allowed* tokens, or a constrained step could be left with nothing),
and one loop serves the constrained and the unconstrained path, so the benchmark compares like
with like. :class:`~companion.generator.constraint.TimePrefixLogitsProcessor` offers the same
constraint to callers who prefer ``model.generate``.

Nothing is ever downloaded: every ``from_pretrained`` is ``local_files_only``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from companion.generator.constraint import DecodeState, VocabularyIndex, time_window
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
from companion.generator.types import GeneratedReply, SamplingConfig

__all__ = ["ReplyGenerator", "default_device"]


def default_device() -> str:
    """CUDA when available, else CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _eos_ids(model: PreTrainedModel, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    for value in (tokenizer.eos_token_id, configured):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    if not ids:
        raise ValueError("the tokenizer has no EOS token; the generator needs one to end a reply")
    return ids


class ReplyGenerator:
    """Turns a :class:`Dialogue` into a :class:`GeneratedReply` with a causal LM."""

    def __init__(self, model: PreTrainedModel, tokenizer: Any, *, device: str | None = None) -> None:
        self.device = torch.device(device or default_device())
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.eos_ids = _eos_ids(model, tokenizer)
        vocab_size = model.get_output_embeddings().weight.shape[0]
        self.index = VocabularyIndex(
            tokenizer, vocab_size=vocab_size, eos_ids=self.eos_ids, device=self.device
        )
        self.max_length = int(getattr(model.config, "max_position_embeddings", 0) or 4096)

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        *,
        adapter_dir: str | Path | None = None,
        device: str | None = None,
        merge: bool = False,
    ) -> ReplyGenerator:
        """Load a local model directory (any HF causal LM) and optionally a peft LoRA adapter over it."""
        model_path = Path(model_dir)
        if not (model_path / "config.json").is_file():
            raise FileNotFoundError(f"no model at {model_path} (expected a directory with config.json)")
        tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True, dtype=torch.float32)
        if adapter_dir is not None:
            from peft import PeftModel  # imported here: only adapter users pay for peft

            adapter_path = Path(adapter_dir)
            if not (adapter_path / "adapter_config.json").is_file():
                raise FileNotFoundError(f"no LoRA adapter at {adapter_path} (expected adapter_config.json)")
            model = PeftModel.from_pretrained(model, adapter_path, local_files_only=True)
            if merge:
                model = model.merge_and_unload()
        return cls(model, tokenizer, device=device)

    def _prompt_ids(self, dialogue: Dialogue, suffix: str, budget: int) -> torch.Tensor:
        """Token ids of the prompt, dropping the oldest turns until prompt + budget fits the context."""
        turns = dialogue.turns
        while True:
            shortened = Dialogue(
                turns=turns,
                time_zone=dialogue.time_zone,
                companion_name=dialogue.companion_name,
                persona=dialogue.persona,
                age_group=dialogue.age_group,
            )
            ids = self.tokenizer(render_prompt(shortened) + suffix, return_tensors="pt")["input_ids"]
            if ids.shape[1] + budget <= self.max_length or len(turns) == 1:
                return ids[:, -(self.max_length - budget) :].to(self.device)
            turns = turns[1:]

    @torch.no_grad()
    def generate(
        self,
        dialogue: Dialogue,
        *,
        sampling: SamplingConfig | None = None,
        forced_at: datetime | None = None,
        max_delay: timedelta = DEFAULT_MAX_DELAY,
        constrained: bool = True,
    ) -> GeneratedReply:
        """Generate the next companion turn. Raises GenerationFailed when the output does not parse.

        ``forced_at`` fixes the reply's time (the guard rules use it to rewrite the text for a new
        time); only the text is generated then.
        """
        sampling = sampling or SamplingConfig()
        previous = dialogue.last_at
        window = time_window(previous, dialogue.time_zone, max_delay)
        forced = ""
        if forced_at is not None:
            if forced_at.tzinfo is None:
                raise TranscriptError("forced_at must be timezone-aware")
            forced = render_time(forced_at, previous=previous, time_zone=dialogue.time_zone) + "]"
            max_delay = max(max_delay, forced_at.astimezone(UTC) - previous.astimezone(UTC))
        elif constrained and sampling.max_new_tokens < self.index.min_new_tokens(window):
            raise ValueError(
                f"max_new_tokens={sampling.max_new_tokens} is too small to write a time and a text "
                f"(need {self.index.min_new_tokens(window)})"
            )
        input_ids = self._prompt_ids(dialogue, forced, sampling.max_new_tokens)
        state = DecodeState(self.index, window, prefix=forced) if constrained else None
        generated = self._decode(input_ids, sampling, state)
        completion = forced + self.index.decode(generated)
        try:
            at, text = parse_completion(
                completion, previous=previous, time_zone=dialogue.time_zone, max_delay=max_delay
            )
        except InvalidCompletion as error:
            raise GenerationFailed(
                f"the model's completion does not parse: {error}", completion=completion, reason=error.reason
            ) from error
        if forced_at is not None:
            at = forced_at.astimezone(zone(dialogue.time_zone))
        return GeneratedReply(at=at, text=text, completion=completion, constrained=constrained)

    def _decode(
        self, input_ids: torch.Tensor, sampling: SamplingConfig, state: DecodeState | None
    ) -> list[int]:
        """Sample up to ``max_new_tokens`` ids after ``input_ids`` (shape ``(1, T)``), EOS excluded."""
        generator = None
        if sampling.seed is not None and sampling.temperature > 0:
            generator = torch.Generator(device=self.device).manual_seed(sampling.seed)
        generated: list[int] = []
        past: Any = None
        step_input = input_ids
        for step in range(sampling.max_new_tokens):
            output = self.model(input_ids=step_input, past_key_values=past, use_cache=True)
            past = output.past_key_values
            logits = output.logits[0, -1].float()
            if state is not None:
                mask = state.mask(remaining=sampling.max_new_tokens - step)
                if mask is None:
                    raise GenerationFailed(
                        f"no token of this tokenizer can continue the time {state.prefix!r}"
                    )
                logits = logits + mask
            token = self._pick(logits, sampling, generator)
            if token in self.eos_ids:
                break
            generated.append(token)
            if state is not None:
                state.advance(token)
            step_input = torch.tensor([[token]], device=self.device)
        return generated

    @staticmethod
    def _pick(logits: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator | None) -> int:
        if sampling.temperature == 0:
            return int(torch.argmax(logits))
        logits = logits / sampling.temperature
        if sampling.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True)
            cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
            # Drop a token when the tokens before it already reach top_p (the first always stays).
            drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= sampling.top_p
            logits = logits.scatter(0, order[drop], float("-inf"))
        probabilities = torch.softmax(logits, dim=-1)
        return int(torch.multinomial(probabilities, 1, generator=generator))
