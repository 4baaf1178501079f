"""Sentence-vector conditioning: each turn's encoder vector, projected, added to its tokens' embeddings.

The transcript text stays exactly the grammar of DESIGN.md. Beside it, every token of a turn's
line (``[user] [12:34] 밥 먹고 올게``) gets ``W @ v`` added to its input embedding, where ``v`` is
that turn's 512-d sentence vector (``sentence_vectors.py``) and ``W`` a learned ``(hidden, 512)``
projection without bias (so a token without a vector, such as a header line, is unchanged).
The LM itself is any HF causal LM, saved and loadable as usual: a plain
``AutoModelForCausalLM`` user of the directory gets the text-only path.

Files next to the model (or inside a LoRA adapter directory, which then carries its own tuned
projection): ``sentence_conditioning.json`` and ``sentence_conditioning.safetensors``.

The open reply line (``[luda] [`` and the completion after it) carries no sentence vector. Its
time positions carry clock hints instead (``clock_hints.py``): a learned embedding of the last
turn's clock digit that the next time character would copy, stored beside the projection. Shapes:
``input_ids (B, T)``, ``token_vectors (B, T, 512)`` (zeros where a token has none),
``clock_hints (B, T)`` (a row of ``clock_hints.HINT_ROWS``, or ``NO_HINT``).
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import load_file, save_file

from companion.generator.clock_hints import HINT_ROWS
from companion.generator.sentence_vectors import DIMENSION, ENCODER_NAME, turn_texts

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "ConditionedLM",
    "SentenceConditioning",
    "has_conditioning",
    "token_turn_texts",
]

CONFIG_FILE = "sentence_conditioning.json"
WEIGHTS_FILE = "sentence_conditioning.safetensors"


class SentenceConditioning(torch.nn.Module):
    """The learned projection of sentence vectors into the LM's embedding space, and (for models
    built with them) the clock-hint embeddings of the reply's time positions."""

    def __init__(self, hidden_size: int, dimension: int = DIMENSION, *, clock_hints: bool = False) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.dimension = dimension
        self.projection = torch.nn.Linear(dimension, hidden_size, bias=False)
        self.clock_hints: torch.nn.Embedding | None = None
        if clock_hints:
            # Row HINT_ROWS is "no hint": zeros, never trained. Small init, like the LM's embeddings.
            self.clock_hints = torch.nn.Embedding(HINT_ROWS + 1, hidden_size, padding_idx=HINT_ROWS)
            with torch.no_grad():
                self.clock_hints.weight.normal_(0.0, 0.02)
                self.clock_hints.weight[HINT_ROWS].zero_()

    def forward(self, token_vectors: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.projection(token_vectors))

    def hints(self, rows: torch.Tensor) -> torch.Tensor | None:
        """The embeddings of clock-hint rows (``NO_HINT``, -1, adds nothing); None without hints."""
        if self.clock_hints is None:
            return None
        return cast(torch.Tensor, self.clock_hints(torch.where(rows < 0, HINT_ROWS, rows)))

    def save(self, directory: str | Path) -> None:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {"projection.weight": self.projection.weight.detach().cpu().contiguous()}
        if self.clock_hints is not None:
            tensors["clock_hints.weight"] = self.clock_hints.weight.detach().cpu().contiguous()
        save_file(tensors, out / WEIGHTS_FILE)
        config = {
            "encoder": ENCODER_NAME,
            "dimension": self.dimension,
            "hidden_size": self.hidden_size,
            "clock_hints": self.clock_hints is not None,
        }
        (out / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> SentenceConditioning:
        path = Path(directory)
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        if config.get("encoder") != ENCODER_NAME:
            raise ValueError(f"{path / CONFIG_FILE}: unknown sentence encoder {config.get('encoder')!r}")
        module = cls(
            int(config["hidden_size"]), int(config["dimension"]), clock_hints=bool(config.get("clock_hints"))
        )
        weights = load_file(path / WEIGHTS_FILE)
        module.projection.weight.data.copy_(weights["projection.weight"])
        if module.clock_hints is not None:
            if "clock_hints.weight" not in weights:
                raise ValueError(f"{path / WEIGHTS_FILE}: the config promises clock hints; none are stored")
            module.clock_hints.weight.data.copy_(weights["clock_hints.weight"])
        return module


def has_conditioning(directory: str | Path) -> bool:
    """Whether a model or adapter directory carries a sentence projection."""
    path = Path(directory)
    return (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


class ConditionedLM(torch.nn.Module):
    """A causal LM whose input embeddings get the projected turn vectors added."""

    def __init__(self, lm: Any, conditioning: SentenceConditioning) -> None:
        super().__init__()
        self.lm = lm
        self.conditioning = conditioning

    @property
    def config(self) -> Any:
        return self.lm.config

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_vectors: torch.Tensor | None = None,
        clock_hints: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        embeds = self.lm.get_input_embeddings()(input_ids)
        if token_vectors is not None:
            embeds = embeds + self.conditioning(token_vectors.to(embeds.dtype))
        hinted = self.conditioning.hints(clock_hints) if clock_hints is not None else None
        if hinted is not None:
            embeds = embeds + hinted.to(embeds.dtype)
        return self.lm(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)


def token_turn_texts(
    tokenizer: Any, text: str, *, add_special_tokens: bool = True
) -> tuple[list[int], list[str | None]]:
    """Token ids of ``text`` and, per token, the text of the turn whose vector it carries (or None).

    A token of a turn's line carries that turn's vector; header lines, the open reply line and
    special tokens carry none. (Giving the reply line the last turn's vector too was tried: the
    vector, different in every conversation, added to the digits of the time blurred them, and
    the model no longer copied the clock exactly: val FPR 0.85 against 0.22, same recipe.)
    """
    encoded = tokenizer(
        text,
        add_special_tokens=add_special_tokens,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    lines = turn_texts(text)
    newlines = [index for index, character in enumerate(text) if character == "\n"]
    owners: list[str | None] = []
    for (start, end), special in zip(encoded["offset_mapping"], encoded["special_tokens_mask"], strict=True):
        if special or end <= start or text[start] == "\n":
            owners.append(None)
            continue
        owners.append(lines[bisect.bisect_right(newlines, start - 1)])
    return list(encoded["input_ids"]), owners
