"""The one training loop, shared by the from-scratch build and the LoRA fine-tune.

Examples are prompt/completion pairs; the loss covers the completion (and its EOS) only:
prompt tokens get label -100, so the model learns to answer, not to imitate the person. Two
optional weights shape it further: ``prompt_weight`` (the prompt's own next-token loss, for
training from scratch) and ``time_weight`` (the completion's ``TIME]`` tokens, the part of the
answer that carries the decision).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

__all__ = ["TextIndex", "TrainConfig", "TrainingExample", "encode_example", "train_loop", "vector_table"]

IGNORE = -100


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer schedule: AdamW, linear warm-up, cosine decay to 10% of the peak rate."""

    steps: int = 200
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup: int = 20
    weight_decay: float = 0.01
    seed: int = 0
    log_every: int = 25
    # Weight of the prompt tokens' next-token loss relative to the completion's. 0 (the LoRA
    # default) trains on the completion only. Building from scratch uses a small weight: every
    # earlier turn's time is a free lesson in copying and advancing the clock, which the reply's
    # time needs, and it costs no extra compute.
    prompt_weight: float = 0.0
    # Weight of the completion's time tokens (up to and including "]") relative to its text. The
    # time is a handful of tokens against a dozen of text, yet it is the decision the model exists
    # for; weighting it spends the same compute on what the metrics measure.
    time_weight: float = 1.0


class TrainingExample(NamedTuple):
    """One encoded pair: ids, labels (-100 over the prompt), how many completion tokens are the time,
    and (for a sentence-conditioned model) each token's row in the vector table, -1 for none, and
    its clock-hint row (``clock_hints.py``), -1 for none."""

    input_ids: list[int]
    labels: list[int]
    time_tokens: int
    vector_rows: list[int] | None = None
    hint_rows: list[int] | None = None


class TextIndex:
    """Interns the turn texts of encoded examples: row ``i`` of the vector table is ``texts[i]``."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}

    def __call__(self, text: str | None) -> int:
        if text is None:
            return -1
        return self.rows.setdefault(text, len(self.rows))

    @property
    def texts(self) -> list[str]:
        return list(self.rows)


def _encode_completion(tokenizer: Any, completion: str) -> tuple[list[int], int, list[int] | None]:
    """The completion's ids, how many leading ones spell ``TIME]`` (the token holding "]" too), and
    where each token ends in the text.

    One tokenizer call: a fast tokenizer returns the offsets with the ids. A slow one has no
    offsets, and its completions get no time weighting (count 0) and no ends.
    """
    end = completion.find("]")
    try:
        encoded = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, TypeError, ValueError):
        return list(tokenizer(completion, add_special_tokens=False)["input_ids"]), 0, None
    ends = [stop for _, stop in encoded["offset_mapping"]]
    offsets = encoded["offset_mapping"] if end >= 0 else []
    return list(encoded["input_ids"]), sum(1 for start, _ in offsets if start <= end), ends


def _hint_rows(prompt: str, completion: str, prompt_length: int, ends: list[int] | None) -> list[int]:
    """Each token's clock-hint row: the prompt's last ``[`` and the completion's time positions."""
    from companion.generator.clock_hints import NO_HINT, hint_row, last_clock

    rows = [NO_HINT] * prompt_length
    clock = last_clock(prompt)
    if clock is None or ends is None or not prompt.endswith("["):
        return rows + [NO_HINT] * (len(ends or ()) + 1)
    rows[-1] = hint_row("", clock)
    return rows + [hint_row(completion[:stop], clock) for stop in ends] + [NO_HINT]  # the EOS


def encode_example(
    tokenizer: Any,
    prompt: str,
    completion: str,
    *,
    max_length: int,
    text_index: TextIndex | None = None,
    clock_hints: bool = False,
) -> TrainingExample:
    """One pair encoded; a long prompt loses its oldest tokens, never the completion.

    With ``text_index`` each token also records the row of the turn text whose vector it carries
    (the sentence-vector conditioning, see ``conditioning.token_turn_texts``); with
    ``clock_hints`` its clock-hint row (``clock_hints.py``).
    """
    rows: list[int] | None = None
    if text_index is None:
        prompt_ids = list(tokenizer(prompt)["input_ids"])
    else:
        from companion.generator.conditioning import token_turn_texts

        prompt_ids, owners = token_turn_texts(tokenizer, prompt)
        rows = [text_index(owner) for owner in owners]
    text_ids, time_tokens, ends = _encode_completion(tokenizer, completion)
    hints = _hint_rows(prompt, completion, len(prompt_ids), ends) if clock_hints else None
    completion_ids = [*text_ids, tokenizer.eos_token_id][: max_length // 2]
    keep = max_length - len(completion_ids)
    if hints is not None:
        hints = hints[: len(prompt_ids)][-keep:] + hints[len(prompt_ids) :][: len(completion_ids)]
    prompt_ids = prompt_ids[-keep:]
    if rows is not None:
        rows = rows[-keep:] + [-1] * len(completion_ids)
    return TrainingExample(
        prompt_ids + completion_ids,
        [IGNORE] * len(prompt_ids) + completion_ids,
        min(time_tokens, len(completion_ids)),
        rows,
        hints,
    )


def _batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """One epoch of index batches of similar lengths (less padding), in random order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    chunk = batch_size * 32
    for start in range(0, len(order), chunk):
        group = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(group[i : i + batch_size] for i in range(0, len(group), batch_size))
    rng.shuffle(batches)
    return batches


def _collate(
    examples: Sequence[TrainingExample],
    pad_id: int,
    device: torch.device,
    vectors: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The model's inputs (``input_ids``, ``labels``, ``attention_mask``) for a batch, right-padded;
    with a vector table (``(texts + 1, 512)``, its last row zeros) also ``token_vectors``."""
    width = max(len(example.input_ids) for example in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        input_ids[row, : len(example.input_ids)] = torch.tensor(example.input_ids)
        labels[row, : len(example.labels)] = torch.tensor(example.labels)
        attention[row, : len(example.input_ids)] = 1
    batch = {
        "input_ids": input_ids.to(device),
        "labels": labels.to(device),
        "attention_mask": attention.to(device),
    }
    if vectors is not None:
        zero_row = vectors.shape[0] - 1
        rows = torch.full((len(examples), width), zero_row, dtype=torch.long)
        for row, example in enumerate(examples):
            if example.vector_rows is None:
                raise ValueError("a conditioned model needs examples encoded with a text index")
            rows[row, : len(example.vector_rows)] = torch.tensor(
                [zero_row if r < 0 else r for r in example.vector_rows]
            )
        batch["token_vectors"] = vectors[rows].to(device)
    if examples[0].hint_rows is not None:
        hints = torch.full((len(examples), width), -1, dtype=torch.long)
        for row, example in enumerate(examples):
            if example.hint_rows is None:
                raise ValueError("clock hints need every example encoded with them")
            hints[row, : len(example.hint_rows)] = torch.tensor(example.hint_rows)
        batch["clock_hints"] = hints.to(device)
    return batch


def _time_mask(examples: Sequence[TrainingExample], width: int, device: torch.device) -> torch.Tensor:
    """True at the positions of each example's completion time tokens."""
    mask = torch.zeros((len(examples), width), dtype=torch.bool)
    for row, example in enumerate(examples):
        start = len(example.labels) - sum(label != IGNORE for label in example.labels)
        mask[row, start : start + example.time_tokens] = True
    return mask.to(device)


def _weighted_loss(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], time_mask: torch.Tensor, config: TrainConfig
) -> torch.Tensor:
    """Next-token loss: completion text 1, its time tokens ``time_weight``, prompt ``prompt_weight``."""
    extra = {key: batch[key] for key in ("token_vectors", "clock_hints") if key in batch}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra).logits[
        :, :-1
    ]
    targets = batch["input_ids"][:, 1:]
    completion = batch["labels"][:, 1:] != IGNORE
    present = batch["attention_mask"][:, 1:] == 1
    completion_weight = torch.where(time_mask[:, 1:], config.time_weight, 1.0)
    weights = torch.where(completion, completion_weight, torch.where(present, config.prompt_weight, 0.0))
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    return (losses * weights).sum() / weights.sum()


def train_loop(
    model: torch.nn.Module,
    examples: Sequence[TrainingExample],
    config: TrainConfig,
    *,
    pad_id: int,
    progress: Callable[[str], None] | None = None,
    vectors: torch.Tensor | None = None,
) -> list[float]:
    """Train the parameters that require grad; returns the loss of every step.

    ``vectors`` is the sentence-vector table of a conditioned model (see :func:`_collate`).
    """
    if not examples:
        raise ValueError("no training examples")
    device = next(model.parameters()).device
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)

    def rate(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        progress_fraction = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_fraction)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    rng = random.Random(config.seed)
    lengths = [len(example.input_ids) for example in examples]
    queue: list[list[int]] = []
    losses: list[float] = []
    model.train()
    for step in range(config.steps):
        if not queue:
            queue = _batches(lengths, config.batch_size, rng)
        chosen = [examples[i] for i in queue.pop()]
        batch = _collate(chosen, pad_id, device, vectors)
        if config.prompt_weight or config.time_weight != 1.0:
            loss = _weighted_loss(
                model, batch, _time_mask(chosen, batch["input_ids"].shape[1], device), config
            )
        else:
            loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        if progress and (step + 1) % config.log_every == 0:
            recent = losses[-config.log_every :]
            progress(f"step {step + 1}/{config.steps} loss {sum(recent) / len(recent):.4f}")
    model.eval()
    return losses


def vector_table(
    texts: Sequence[str], vectors: Any = None, progress: Callable[[str], None] | None = None
) -> torch.Tensor:
    """The ``(len(texts) + 1, 512)`` float table of the texts' sentence vectors; the last row is zeros.

    By default a fresh cache encodes them in this exact order and these batches: vectors computed
    earlier in the process (other batches, so other float rounding) must not change a build.
    """
    import numpy as np

    from companion.generator.sentence_vectors import DIMENSION, SentenceVectors, shared_encoder

    encoder = vectors or SentenceVectors(shared_encoder())
    rows = [np.zeros((0, DIMENSION), dtype=np.float32)]
    step = 2048
    for start in range(0, len(texts), step):
        rows.append(encoder.encode(list(texts[start : start + step])))
        if progress:
            progress(f"sentence vectors: {min(start + step, len(texts))}/{len(texts)}")
    rows.append(np.zeros((1, DIMENSION), dtype=np.float32))
    return torch.from_numpy(np.concatenate(rows))
