"""LoRA fine-tuning (peft) of a local causal LM on prompt/completion pairs; the loss is on the completion.

Saves only the adapter (``adapter_config.json`` + ``adapter_model.safetensors``), the tokenizer
it was trained with, ``training.json`` and a model card ``README.md`` (data, steps, metrics).
Over a sentence-conditioned base (``conditioning.py``) the turn-vector projection and its clock
hints are trained too, in full (they are small), and saved beside the adapter, which then loads
with its own.
Reload it with ``ReplyGenerator.load(base_dir, adapter_dir=out_dir)`` (optionally ``merge=True``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from companion.generator.build import read_jsonl, training_pairs
from companion.generator.conditioning import ConditionedLM, SentenceConditioning, has_conditioning
from companion.generator.training import (
    TextIndex,
    TrainConfig,
    TrainingExample,
    _collate,
    encode_example,
    train_loop,
    vector_table,
)

__all__ = ["train_lora"]


@torch.no_grad()
def _mean_loss(
    model: torch.nn.Module,
    examples: Sequence[TrainingExample],
    pad_id: int,
    vectors: torch.Tensor | None = None,
) -> float:
    """Mean completion loss over (at most 64 of) the examples, in batches of 8."""
    model.eval()
    device = next(model.parameters()).device
    sample = list(examples[:64])
    total = 0.0
    for start in range(0, len(sample), 8):
        chunk = sample[start : start + 8]
        total += float(model(**_collate(chunk, pad_id, device, vectors)).loss) * len(chunk)
    return total / len(sample)


def train_lora(
    data: str | Path | Sequence[Mapping[str, Any]],
    *,
    base_dir: str | Path,
    out_dir: str | Path,
    steps: int = 200,
    learning_rate: float = 1e-3,
    seed: int = 0,
    rank: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    batch_size: int = 8,
    target_modules: str | list[str] = "all-linear",
    max_length: int | None = None,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Fine-tune a LoRA adapter on ``data`` (JSONL path or rows) over the model in ``base_dir``.

    Rows are ``{"prompt", "completion"}`` pairs or evaluation-format dialogues with a ``reply``
    (rendered with :func:`render_training_example`). Returns ``out_dir``.
    """
    base = Path(base_dir)
    if not (base / "config.json").is_file():
        raise FileNotFoundError(f"no base model at {base} (expected a directory with config.json)")
    if isinstance(data, str | Path):
        source = str(data)
        raw = Path(data).read_bytes()
        rows = read_jsonl(data)
    else:
        rows = [dict(row) for row in data]
        raw = json.dumps(rows, ensure_ascii=False, sort_keys=True).encode()
        source = "in-memory rows"
    pairs = training_pairs(rows)
    if not pairs:
        raise ValueError("no training rows")
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    base_model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=torch.float32)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # transformers wraps PreTrainedModel.to with @wraps(Module.to), which types it unbound.
    base_model.to(target)  # type: ignore[arg-type]
    config = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, task_type="CAUSAL_LM"
    )
    model = get_peft_model(base_model, config)
    conditioning = SentenceConditioning.load(base).to(target) if has_conditioning(base) else None
    trained: torch.nn.Module = model if conditioning is None else ConditionedLM(model, conditioning)
    text_index = TextIndex() if conditioning is not None else None
    limit = max_length or int(getattr(model.config, "max_position_embeddings", 0) or 1024)
    hinted = conditioning is not None and conditioning.clock_hints is not None
    examples = [
        encode_example(
            tokenizer,
            p["prompt"],
            p["completion"],
            max_length=limit,
            text_index=text_index,
            clock_hints=hinted,
        )
        for p in pairs
    ]
    vectors = vector_table(text_index.texts) if text_index is not None else None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    loss_before = _mean_loss(trained, examples, pad_id, vectors)
    schedule = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        warmup=max(1, steps // 10),
        seed=seed,
        log_every=max(1, min(25, steps // 4)),
    )
    started = time.perf_counter()
    losses = train_loop(trained, examples, schedule, pad_id=pad_id, progress=progress, vectors=vectors)
    seconds = time.perf_counter() - started
    loss_after = _mean_loss(trained, examples, pad_id, vectors)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)  # type: ignore[arg-type]  # peft annotates str; it joins paths with os.path
    tokenizer.save_pretrained(out)
    if conditioning is not None:
        conditioning.save(out)
    trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad)
    info: dict[str, Any] = {
        "base_model": str(base.resolve()),
        "data": {"source": source, "rows": len(pairs), "sha256": hashlib.sha256(raw).hexdigest()},
        "lora": {"rank": rank, "alpha": alpha, "dropout": dropout, "target_modules": target_modules},
        "sentence_conditioning": conditioning is not None,
        "steps": steps,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "seed": seed,
        "trainable_parameters": trainable,
        "train_seconds": seconds,
        "metrics": {
            "completion_loss_before": loss_before,
            "completion_loss_after": loss_after,
            "final_step_loss": losses[-1],
        },
    }
    (out / "training.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    card = [
        "---",  # the metadata block peft and the hub expect at the top of a model card
        "library_name: peft",
        "tags: [lora, companion-reply-time]",
        "---",
        "",
        "# LoRA adapter for the reply-time model",
        "",
        f"- base model: `{info['base_model']}`",
        f"- data: {source} ({len(pairs)} prompt/completion pairs, sha256 {info['data']['sha256'][:16]})",
        f"- LoRA: rank {rank}, alpha {alpha}, dropout {dropout}, targets {target_modules}",
        f"- steps: {steps}, learning rate {learning_rate}, batch size {batch_size}, seed {seed}",
        f"- trainable parameters: {trainable:,}; training time {seconds:.1f} s",
        f"- completion loss on the training data: {loss_before:.4f} before, {loss_after:.4f} after",
        "",
        "Load: `ReplyGenerator.load(base_dir, adapter_dir=this_dir)`.",
        "",
    ]
    (out / "README.md").write_text("\n".join(card), encoding="utf-8")
    return out
