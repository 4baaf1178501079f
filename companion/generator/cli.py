"""Command line: ``python -m companion.generator {corpus,build,train,reply,eval}``.

Bad input (missing files, invalid JSON, a conversation that breaks the grammar) ends with a
one-line ``error:`` message on stderr and exit status 2; a model that cannot produce a valid
reply exits with 1. Heavy imports (torch) happen inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

from companion.generator.dialogue_json import dialogue_from_json
from companion.generator.transcript import (
    GenerationFailed,
    TranscriptError,
    render_time,
)
from companion.generator.types import SamplingConfig

PROG = "python -m companion.generator"
DEFAULT_MODEL = Path("var/models/default")


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _set_threads(threads: int | None) -> None:
    """Set torch's CPU threads; also silences transformers' progress bars (noise for a 4 MB model)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    if threads:
        import torch

        torch.set_num_threads(threads)


def _sampling(args: argparse.Namespace) -> SamplingConfig:
    return SamplingConfig(
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=args.seed
    )


def _load(args: argparse.Namespace) -> Any:
    from companion.generator.model import ReplyGenerator

    return ReplyGenerator.load(
        args.model,
        adapter_dir=args.adapter,
        device=args.device,
        merge=args.merge,
        time_decoding=args.time_decoding,
    )


def cmd_corpus(args: argparse.Namespace) -> int:
    from companion.generator.corpus import CorpusConfig, write_corpus

    paths = write_corpus(args.out, CorpusConfig(n_train=args.n_train, n_val=args.n_val, seed=args.seed))
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from companion.generator.build import build_default_model

    _set_threads(args.threads)
    out = build_default_model(
        args.out, preset=args.preset, seed=args.seed, progress=_say, evaluate_held_out=not args.no_eval
    )
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    if metrics:
        print(json.dumps({"model": str(out), "held_out": metrics}, indent=2))
    else:
        print(out)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from companion.generator.lora import train_lora

    _set_threads(args.threads)
    if not Path(args.data).is_file():
        raise CommandError(f"no data file at {args.data}")
    out = train_lora(
        args.data,
        base_dir=args.base,
        out_dir=args.out,
        steps=args.steps,
        learning_rate=args.lr,
        seed=args.seed,
        rank=args.rank,
        batch_size=args.batch_size,
        progress=_say,
    )
    print(out)
    return 0


def _read_conversation(text: str) -> Any:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as error:
        raise CommandError(f"stdin is not valid JSON: {error.msg} (line {error.lineno})") from error
    return dialogue_from_json(obj)[0]


def cmd_reply(args: argparse.Namespace) -> int:
    dialogue = _read_conversation(sys.stdin.read())
    _set_threads(args.threads)
    generator = _load(args)
    reply = generator.generate(
        dialogue,
        sampling=_sampling(args),
        max_delay=timedelta(minutes=args.max_delay_minutes),
        constrained=not args.unconstrained,
    )
    time = render_time(reply.at, previous=dialogue.last_at, time_zone=dialogue.time_zone)
    if args.json:
        delay = (reply.at.astimezone(UTC) - dialogue.last_at.astimezone(UTC)) / timedelta(minutes=1)
        record = {"at": reply.at.isoformat(), "time": time, "delay_minutes": delay, "text": reply.text}
        print(json.dumps(record | {"completion": reply.completion}, ensure_ascii=False))
    else:
        print(f"[{time}] {reply.text}")
    return 0


def _format_metrics(metrics: dict[str, Any]) -> str:
    lines = [
        f"examples {metrics['examples']}  valid-format rate {metrics['valid_format_rate']:.3f}"
        f"  parse failures {metrics['parse_failures']}"
    ]
    for name in ("raw", "clamped"):
        m = metrics[name]
        lines.append(
            f"{name:8s} F1 {m['f1']:.3f}  precision {m['precision']:.3f}  recall {m['recall']:.3f}"
            f"  FPR {m['fpr']:.3f}  RMSLE {m['rmsle']:.3f}  bucket accuracy {m['bucket_accuracy']:.3f}"
        )
    for scenario, s in metrics["scenarios"].items():
        lines.append(
            f"  {scenario:14s} n={s['examples']:4d}  bucket accuracy {s['bucket_accuracy']:.3f}"
            f"  delayed {s['delayed_rate']:.3f}"
        )
    text = metrics["text"]
    for name, t in [("text", text), *((f"  {lang}", t) for lang, t in text["by_language"].items())]:
        reasons = " ".join(f"{reason} {count}" for reason, count in t["garbled_reasons"].items() if count)
        lines.append(
            f"{name:8s} n={t['replies']:4d}  language match {_rate(t['language_match_rate'])}"
            f"  distinct {_rate(t['distinct_rate'])}  garbled {_rate(t['garbled_rate'])}"
            f"{f' ({reasons})' if reasons else ''}"
            f"  register {_rate(t['register_rate'])} of {t['register_examples']}"
        )
    return "\n".join(lines)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def cmd_eval(args: argparse.Namespace) -> int:
    from companion.generator.build import read_jsonl
    from companion.generator.evaluate import evaluate, evaluate_follow_ups

    if not Path(args.data).is_file():
        raise CommandError(f"no data file at {args.data}")
    rows = read_jsonl(args.data)
    if not rows:
        raise CommandError(f"{args.data} has no rows")
    if args.limit is not None and args.limit < 1:
        raise CommandError("--limit must be at least 1")
    _set_threads(args.threads)
    generator = _load(args)
    predictions: list[dict[str, Any]] | None = [] if args.predictions else None
    if args.follow_ups:
        try:
            metrics = evaluate_follow_ups(
                generator,
                rows,
                sampling=_sampling(args),
                max_delay=timedelta(minutes=args.max_delay_minutes),
                limit=args.limit,
                predictions=predictions,
            )
        except (TranscriptError, ValueError) as error:
            raise CommandError(f"{args.data}: {error}") from error
    else:
        metrics = evaluate(
            generator,
            rows,
            sampling=_sampling(args),
            constrained=not args.unconstrained,
            max_delay=timedelta(minutes=args.max_delay_minutes),
            limit=args.limit,
            predictions=predictions,
        )
    if predictions is not None:
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in predictions)
        args.predictions.write_text(lines, encoding="utf-8")
    if args.follow_ups or args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(_format_metrics(metrics))
    return 0


def cmd_export_gguf(args: argparse.Namespace) -> int:
    from companion.generator.gguf_export import export_gguf

    if not (Path(args.model) / "config.json").is_file():
        raise CommandError(f"no model at {args.model} (expected a directory with config.json)")
    print(export_gguf(args.model, args.out))
    return 0


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="local model directory")
    parser.add_argument("--adapter", type=Path, default=None, help="LoRA adapter directory")
    parser.add_argument("--merge", action="store_true", help="merge the adapter into the base weights")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-delay-minutes", type=int, default=7 * 24 * 60)
    parser.add_argument("--unconstrained", action="store_true", help="decode without the time constraint")
    parser.add_argument(
        "--time-decoding",
        choices=("distribution", "greedy"),
        default="distribution",
        help="choose the time from the model's scores of whole times (default) or digit by digit",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="The companion's reply-time generator.")
    commands = parser.add_subparsers(dest="command", required=True)

    corpus = commands.add_parser("corpus", help="write the synthetic train/val JSONL corpus")
    corpus.add_argument("--out", type=Path, required=True)
    corpus.add_argument("--n-train", type=int, default=6000)
    corpus.add_argument("--n-val", type=int, default=400)
    corpus.add_argument("--seed", type=int, default=0)
    corpus.set_defaults(run=cmd_corpus)

    build = commands.add_parser("build", help="build and train our own model end to end")
    build.add_argument("--out", type=Path, required=True)
    build.add_argument("--preset", choices=["default", "tiny"], default="default")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--threads", type=int, default=None)
    build.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    build.set_defaults(run=cmd_build)

    train = commands.add_parser("train", help="LoRA fine-tune on prompt/completion (or dialogue) JSONL")
    train.add_argument("--data", type=Path, required=True)
    train.add_argument("--base", type=Path, default=DEFAULT_MODEL)
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--steps", type=int, default=200)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--rank", type=int, default=8)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=None)
    train.set_defaults(run=cmd_train)

    reply = commands.add_parser("reply", help="read a conversation (JSON) on stdin, print [TIME] text")
    _model_options(reply)
    reply.set_defaults(run=cmd_reply)

    evaluation = commands.add_parser("eval", help="TimelyChat metrics on evaluation JSONL")
    _model_options(evaluation)
    evaluation.add_argument("--data", type=Path, required=True)
    evaluation.add_argument("--limit", type=int, default=None, help="evaluate only the first N rows")
    evaluation.add_argument(
        "--predictions",
        type=Path,
        default=None,
        metavar="FILE",
        help='write one JSON line per row: {"at": local time, "text": ...} or {"error": reason}',
    )
    evaluation.add_argument(
        "--follow-ups",
        action="store_true",
        help="rows end with the companion's turn; score the follow-up decision (printed as JSON)",
    )
    evaluation.set_defaults(run=cmd_eval)

    export = commands.add_parser("export-gguf", help="write the model as GGUF for llama.cpp's server")
    export.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(run=cmd_export_gguf)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 generation failed, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except GenerationFailed as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 1
    except (CommandError, TranscriptError, FileNotFoundError, ValueError, OSError) as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 2
