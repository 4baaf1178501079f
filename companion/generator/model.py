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

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from companion.generator.clock_hints import hint_row
from companion.generator.clock_scoring import ClockScoring
from companion.generator.conditioning import SentenceConditioning, has_conditioning, token_turn_texts
from companion.generator.constraint import DecodeState, TimeWindow, VocabularyIndex, time_window
from companion.generator.lean_llama import LeanLlama, lean_supported
from companion.generator.sentence_vectors import SentenceVectors, shared_vectors
from companion.generator.time_choice import INSTANT_THRESHOLD, LATER_THRESHOLD
from companion.generator.transcript import (
    DEFAULT_MAX_DELAY,
    Dialogue,
    GenerationFailed,
    InvalidCompletion,
    TranscriptError,
    companion_label,
    parse_bubbles,
    render_prompt,
    render_time,
    zone,
)
from companion.generator.types import GeneratedReply, SamplingConfig

if TYPE_CHECKING:
    from peft import PeftModel

__all__ = ["BUBBLE_MAX_GAP", "ReplyGenerator", "default_device"]


def default_device() -> str:
    """CUDA when available, else CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _eos_ids(model: PreTrainedModel | PeftModel, tokenizer: Any) -> set[int]:
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


TimeDecoding = Literal["distribution", "greedy"]
# A further bubble of the same reply comes in the same minute as the one before it or the next
# (what the corpus teaches); a longer silence is a follow-up, planned on its own after delivery.
# Its time carries no clock hint (training gives none after the first time), and a wider window
# let the small model write "12:24" after "12:20" for half the bubbles of the dev set.
BUBBLE_MAX_GAP = timedelta(minutes=1)


@dataclass
class _Decoded:
    """One decoded stretch: its ids (EOS excluded), the KV cache after them, and whether a line
    break asked for another bubble."""

    ids: list[int]
    past: Any
    another_bubble: bool


# Repeating a 3-token sequence inside one reply is how a small model loops ("ok ok ok ok").
NO_REPEAT_NGRAM = 3


class ReplyGenerator(ClockScoring):
    """Turns a :class:`Dialogue` into a :class:`GeneratedReply` with a causal LM.

    ``conditioning`` (a sentence projection, see ``conditioning.py``) makes the model read each
    turn's sentence vector beside its tokens; without it any causal LM works from the text alone.
    ``time_decoding="distribution"`` (the default) picks the time from the model's probabilities of
    whole times (``time_choice.py``) when the tokenizer writes a time one character per token (ours
    does); ``"greedy"``, and any other tokenizer, decodes it digit by digit under the grammar
    automaton, which works with every tokenizer.
    """

    def __init__(
        self,
        model: PreTrainedModel | PeftModel,
        tokenizer: Any,
        *,
        device: str | None = None,
        conditioning: SentenceConditioning | None = None,
        vectors: SentenceVectors | None = None,
        time_decoding: TimeDecoding = "distribution",
        instant_threshold: float = INSTANT_THRESHOLD,
        later_threshold: float = LATER_THRESHOLD,
    ) -> None:
        if time_decoding not in ("distribution", "greedy"):
            raise ValueError(f"time_decoding must be 'distribution' or 'greedy', not {time_decoding!r}")
        self.device = torch.device(device or default_device())
        # transformers wraps PreTrainedModel.to with @wraps(Module.to), which types it unbound.
        self.model = model.to(self.device).eval()  # type: ignore[arg-type]
        self.conditioning = conditioning.to(self.device).eval() if conditioning is not None else None
        self.vectors = (vectors or shared_vectors()) if conditioning is not None else None
        self.time_decoding = time_decoding
        self.instant_threshold = instant_threshold
        self.later_threshold = later_threshold
        self._time_ids: dict[str, list[int]] = {}
        self._written: dict[str, list[str]] = {}
        self._digits: dict[str, int] | None = None
        self.tokenizer = tokenizer
        self.eos_ids = _eos_ids(model, tokenizer)
        vocab_size = model.get_output_embeddings().weight.shape[0]
        self.index = VocabularyIndex(
            tokenizer, vocab_size=vocab_size, eos_ids=self.eos_ids, device=self.device
        )
        self.max_length = int(getattr(model.config, "max_position_embeddings", 0) or 4096)
        # The lean forward of ``self.model`` (None: transformers' own forward), rebuilt when
        # ``self.model`` is replaced (a LoRA wrapped around it, say).
        self._lean: LeanLlama | None = None
        self._lean_of: Any = None

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        *,
        adapter_dir: str | Path | None = None,
        device: str | None = None,
        merge: bool = False,
        time_decoding: TimeDecoding = "distribution",
    ) -> ReplyGenerator:
        """Load a local model directory (any HF causal LM) and optionally a peft LoRA adapter over it.

        A sentence projection next to the model (or a tuned one inside the adapter) is loaded with it.
        """
        model_path = Path(model_dir)
        if not (model_path / "config.json").is_file():
            raise FileNotFoundError(f"no model at {model_path} (expected a directory with config.json)")
        tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        model: PreTrainedModel | PeftModel = AutoModelForCausalLM.from_pretrained(
            model_path, local_files_only=True, dtype=torch.float32
        )
        conditioning = SentenceConditioning.load(model_path) if has_conditioning(model_path) else None
        if adapter_dir is not None and has_conditioning(adapter_dir):
            conditioning = SentenceConditioning.load(adapter_dir)
        if adapter_dir is not None:
            from peft import PeftModel  # imported here: only adapter users pay for peft

            adapter_path = Path(adapter_dir)
            if not (adapter_path / "adapter_config.json").is_file():
                raise FileNotFoundError(f"no LoRA adapter at {adapter_path} (expected adapter_config.json)")
            model = PeftModel.from_pretrained(model, adapter_path, local_files_only=True)
            if merge:
                model = model.merge_and_unload()
        return cls(model, tokenizer, device=device, conditioning=conditioning, time_decoding=time_decoding)

    def _prompt_inputs(
        self, dialogue: Dialogue, suffix: str, budget: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token ids of the prompt (``(1, T)``), dropping the oldest turns until prompt + budget fits
        the context, and for a conditioned model each token's turn vector (``(1, T, 512)``)."""
        turns = dialogue.turns
        while True:
            shortened = Dialogue(
                turns=turns,
                time_zone=dialogue.time_zone,
                companion_name=dialogue.companion_name,
                persona=dialogue.persona,
                age_group=dialogue.age_group,
            )
            text = render_prompt(shortened) + suffix
            owners: list[str | None] | None = None
            if self.conditioning is not None:
                ids, owners = token_turn_texts(self.tokenizer, text)
            else:
                ids = list(self.tokenizer(text)["input_ids"])
            if len(ids) + budget <= self.max_length or len(turns) == 1:
                keep = self.max_length - budget
                input_ids = torch.tensor([ids[-keep:]], device=self.device)
                if owners is None or self.vectors is None:
                    return input_ids, None
                owners = owners[-keep:]
                distinct = [t for t in dict.fromkeys(owners) if t is not None]
                # self.vectors is set only together with self.conditioning (__init__).
                table = torch.zeros(
                    (len(distinct) + 1, cast(SentenceConditioning, self.conditioning).dimension)
                )
                if distinct:
                    table[: len(distinct)] = torch.from_numpy(self.vectors.encode(distinct))
                row_of = {text: row for row, text in enumerate(distinct)}
                rows = torch.tensor([row_of[o] if o is not None else len(distinct) for o in owners])
                return input_ids, table[rows].unsqueeze(0).to(self.device)
            turns = turns[1:]

    def _forward(self, input_ids: torch.Tensor, past: Any, added: torch.Tensor | None = None) -> Any:
        """One forward pass with the KV cache. ``added`` is already projected (``(B, T, hidden)``, or
        ``(1, 1, hidden)`` broadcast over every token) and joins the token embeddings.

        A plain Llama runs through :class:`~companion.generator.lean_llama.LeanLlama` (the same
        arithmetic without transformers' per-call Python), any other model through its own forward.
        """
        if self._lean_of is not self.model:
            self._lean = LeanLlama(self.model) if lean_supported(self.model) else None
            self._lean_of = self.model
        run: Any = self._lean or self.model
        if added is None:
            return run(input_ids=input_ids, past_key_values=past, use_cache=True)
        embeds = self.model.get_input_embeddings()(input_ids) + added
        return run(inputs_embeds=embeds, past_key_values=past, use_cache=True)

    def _projected(self, token_vectors: torch.Tensor | None) -> torch.Tensor | None:
        """The prompt's projected turn vectors (tokens after the prompt, on the open reply line,
        carry none: see ``conditioning.token_turn_texts``)."""
        if token_vectors is None or self.conditioning is None:
            return None
        return cast(torch.Tensor, self.conditioning(token_vectors))

    def _prompt_added(
        self,
        input_ids: torch.Tensor,
        token_vectors: torch.Tensor | None,
        suffix_ids: list[int],
        clock: int | None,
    ) -> torch.Tensor | None:
        """What joins the prompt's token embeddings: its projected turn vectors, plus the clock hints
        of the open ``[`` and of the ``suffix_ids`` after it (a forced time) at the prompt's end."""
        added = self._projected(token_vectors)
        if clock is None:
            return added
        rows = [hint_row("", clock), *self._time_hint_rows(suffix_ids, clock)]
        hints = self._hints(rows)
        if hints is None:
            return added
        tail = torch.zeros((1, input_ids.shape[1], hints.shape[2]), device=self.device)
        tail[:, -len(rows) :] = hints
        return tail if added is None else added + tail

    @torch.no_grad()
    def generate(
        self,
        dialogue: Dialogue,
        *,
        sampling: SamplingConfig | None = None,
        forced_at: datetime | None = None,
        max_delay: timedelta = DEFAULT_MAX_DELAY,
        constrained: bool = True,
        max_bubbles: int = 1,
    ) -> GeneratedReply:
        """Generate the next companion turn. Raises GenerationFailed when the output does not parse.

        ``forced_at`` fixes the reply's time (the guard rules use it to rewrite the text for a new
        time); only the text is generated then. With ``max_bubbles > 1`` the model may go on with
        further companion turns of the same reply (``GeneratedReply.more``): a line break ends a
        bubble instead of EOS, and each further TIME is constrained to at most
        :data:`BUBBLE_MAX_GAP` after the bubble before it.
        """
        if max_bubbles < 1:
            raise ValueError("max_bubbles must be >= 1")
        sampling = sampling or SamplingConfig()
        previous = dialogue.last_at
        window = time_window(previous, dialogue.time_zone, max_delay)
        forced = ""
        if (
            constrained
            and forced_at is None
            and self.time_decoding == "distribution"
            and self._digit_token_ids() is not None
        ):
            return self._generate_from_distribution(dialogue, sampling, window, max_delay, max_bubbles)
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
        input_ids, token_vectors = self._prompt_inputs(dialogue, forced, sampling.max_new_tokens)
        state = (
            DecodeState(self.index, window, prefix=forced, another_bubble=max_bubbles > 1)
            if constrained
            else None
        )
        clock = self._hint_clock(window)
        forced_ids = self._time_token_ids(forced[:-1]) if forced else []
        added = self._prompt_added(input_ids, token_vectors, forced_ids, clock)
        decoded = self._decode(input_ids, sampling, state, added, hint_clock=clock, written=forced)
        completion = self._more_bubbles(
            forced + self.index.decode(decoded.ids), decoded, dialogue, sampling, max_bubbles, max_delay
        )
        reply = self._parsed(completion, dialogue, max_delay, max_bubbles, constrained=constrained)
        if forced_at is not None:
            return replace(reply, at=forced_at.astimezone(zone(dialogue.time_zone)))
        return reply

    def _generate_from_distribution(
        self,
        dialogue: Dialogue,
        sampling: SamplingConfig,
        window: TimeWindow,
        max_delay: timedelta,
        max_bubbles: int,
    ) -> GeneratedReply:
        """One prompt pass: score whole times on it, then decode the text on from its KV cache."""
        input_ids, token_vectors = self._prompt_inputs(dialogue, "", sampling.max_new_tokens)
        clock = self._hint_clock(window)
        output = self._forward(input_ids, None, self._prompt_added(input_ids, token_vectors, [], clock))
        time = self._choose_time(output, window, sampling)
        state = DecodeState(self.index, window, prefix=time + "]", another_bubble=max_bubbles > 1)
        time_ids = self._time_token_ids(time)
        hints = self._hints(self._time_hint_rows(time_ids, clock)) if clock is not None else None
        decoded = self._decode(
            torch.tensor([time_ids], device=self.device), sampling, state, hints, past=output.past_key_values
        )
        completion = self._more_bubbles(
            time + "]" + self.index.decode(decoded.ids), decoded, dialogue, sampling, max_bubbles, max_delay
        )
        return self._parsed(completion, dialogue, max_delay, max_bubbles, constrained=True)

    def _more_bubbles(
        self,
        completion: str,
        decoded: _Decoded,
        dialogue: Dialogue,
        sampling: SamplingConfig,
        max_bubbles: int,
        max_delay: timedelta,
    ) -> str:
        """Decode the further bubbles a line break asked for, on the same KV cache; the whole completion.

        Each opens with ``\n[<companion>] [`` (written here, as in the training completions) and
        its TIME is constrained to :data:`BUBBLE_MAX_GAP` after the bubble before it. Bubbles after
        the first carry no clock hint (training gives them none either: see ``clock_hints``).
        """
        head = f"\n[{companion_label(dialogue.companion_name)}] ["
        head_ids = list(self.tokenizer(head, add_special_tokens=False)["input_ids"])
        count = 1
        while decoded.another_bubble and count < max_bubbles:
            try:
                bubbles = parse_bubbles(
                    completion,
                    previous=dialogue.last_at,
                    time_zone=dialogue.time_zone,
                    companion_name=dialogue.companion_name,
                    max_delay=max_delay,
                    max_bubbles=count,
                )
            except InvalidCompletion:
                break  # the bubble so far does not parse: _parsed reports it
            if len(bubbles) < count:
                break
            window = time_window(bubbles[-1][0], dialogue.time_zone, BUBBLE_MAX_GAP)
            count += 1
            state = DecodeState(self.index, window, another_bubble=count < max_bubbles)
            decoded = self._decode(
                torch.tensor([head_ids], device=self.device), sampling, state, None, past=decoded.past
            )
            completion += head + self.index.decode(decoded.ids)
        return completion

    def _parsed(
        self,
        completion: str,
        dialogue: Dialogue,
        max_delay: timedelta,
        max_bubbles: int,
        *,
        constrained: bool,
    ) -> GeneratedReply:
        try:
            bubbles = parse_bubbles(
                completion,
                previous=dialogue.last_at,
                time_zone=dialogue.time_zone,
                companion_name=dialogue.companion_name,
                max_delay=max_delay,
                max_bubbles=max_bubbles,
            )
        except InvalidCompletion as error:
            raise GenerationFailed(
                f"the model's completion does not parse: {error}", completion=completion, reason=error.reason
            ) from error
        (at, text), *more = bubbles
        return GeneratedReply(
            at=at, text=text, completion=completion, constrained=constrained, more=tuple(more)
        )

    def _decode(
        self,
        input_ids: torch.Tensor,
        sampling: SamplingConfig,
        state: DecodeState | None,
        first_added: torch.Tensor | None = None,
        past: Any = None,
        hint_clock: int | None = None,
        written: str = "",
    ) -> _Decoded:
        """Sample up to ``max_new_tokens`` ids after ``input_ids`` (shape ``(1, T)``), EOS excluded.

        ``past`` is the KV cache of what came before ``input_ids`` (None: ``input_ids`` is the whole
        prompt). ``first_added`` joins the embeddings of ``input_ids`` (the first pass only: the
        tokens after them are on the open reply line, which carries no vector). With
        ``hint_clock``, each new token of the time carries its clock hint; ``written`` is the time
        text already in the context after the open ``[``. Under the constraint, the text never
        repeats a 3-token sequence (no loops). A line break the state allows ends the text with
        ``another_bubble`` set; it is not fed, so the returned cache ends at the text's last token.
        """
        generator = None
        if sampling.seed is not None and sampling.temperature > 0:
            generator = torch.Generator(device=self.device).manual_seed(sampling.seed)
        generated: list[int] = []
        step_input = input_ids
        text_tokens: list[int] = []
        for step in range(sampling.max_new_tokens):
            added = first_added
            if step > 0:
                added = None
                if hint_clock is not None and "]" not in written:
                    written = written + self.tokenizer.decode(generated[-1:])
                    added = self._hints([hint_row(written, hint_clock)])
            output = self._forward(step_input, past, added)
            past = output.past_key_values
            logits = output.logits[0, -1].float()
            if state is not None:
                mask = state.mask(remaining=sampling.max_new_tokens - step)
                if mask is None:
                    raise GenerationFailed(
                        f"no token of this tokenizer can continue the time {state.prefix!r}"
                    )
                logits = logits + mask
                if state.in_text:
                    banned = _repeating(text_tokens, NO_REPEAT_NGRAM)
                    if banned:
                        logits[list(banned)] = float("-inf")
                        if torch.isinf(logits).all():
                            break
            token = self._pick(logits, sampling, generator)
            if token in self.eos_ids:
                break
            if (
                state is not None
                and state.another_bubble
                and state.in_text
                and token == self.index.newline_id
            ):
                return _Decoded(generated, past, another_bubble=True)
            generated.append(token)
            if state is not None:
                if state.in_text:
                    text_tokens.append(token)
                state.advance(token)
            step_input = torch.tensor([[token]], device=self.device)
        return _Decoded(generated, past, another_bubble=False)

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


def _repeating(tokens: list[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in ``tokens``."""
    if len(tokens) < n - 1:
        return set()
    tail = tuple(tokens[len(tokens) - (n - 1) :])
    return {tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i : i + n - 1]) == tail}
