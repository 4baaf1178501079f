"""Benchmark reply generation on CPU: three decoding modes of the same model in the same run.

    python bench/generate.py --model var/models/default [--n 100] [--threads 2] [--json]

Each dialogue of the held-out split is answered three times, greedy text, rotating which mode
goes first so that drift in machine load hits every mode alike:

* ``distribution``: the default; the time is chosen from the model's scores of whole candidate
  times, then the text is decoded under the constraint (what a plan runs);
* ``constrained``: the time decoded digit by digit under the grammar automaton;
* ``unconstrained``: free decoding, the bare baseline.

Before each reply the last turn's sentence vector is dropped from the cache, so every reply pays
for one fresh encoding, as a plan for a new message does. Prints replies/s, p50/p99 latency, the
valid-format rate, and paired ratios (the median, over dialogues, of one mode's latency over
another's, answered back to back): constrained/unconstrained is the automaton's cost,
distribution/constrained the cost of deciding from the whole distribution. The last line is one
JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from companion.generator import GenerationFailed, ReplyGenerator, SamplingConfig, dialogue_from_json
from companion.generator.build import read_jsonl


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("var/models/default"))
    parser.add_argument("--data", type=Path, default=None, help="default: MODEL/data/val.jsonl")
    parser.add_argument("--n", type=int, default=100, help="dialogues to answer (each in both modes)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    generator = ReplyGenerator.load(args.model, device="cpu")
    rows = read_jsonl(args.data or args.model / "data" / "val.jsonl")[: args.n]
    dialogues = [dialogue_from_json(row)[0] for row in rows]
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens)
    for dialogue in dialogues[:5]:  # warm-up: allocator, kernels, the constraint's caches
        generator.generate(dialogue, sampling=sampling)

    order = ("distribution", "constrained", "unconstrained")
    results: dict[str, dict[str, Any]] = {mode: {"latencies": [], "valid": 0, "tokens": 0} for mode in order}
    for number, dialogue in enumerate(dialogues):
        modes = order[number % 3 :] + order[: number % 3]
        for mode in modes:
            generator.time_decoding = "distribution" if mode == "distribution" else "greedy"
            if generator.vectors is not None:
                generator.vectors.forget([dialogue.turns[-1].text])
            started = time.perf_counter()
            try:
                reply = generator.generate(dialogue, sampling=sampling, constrained=mode != "unconstrained")
            except GenerationFailed as error:
                completion = error.completion or ""
            else:
                completion = reply.completion
                results[mode]["valid"] += 1
            results[mode]["latencies"].append(time.perf_counter() - started)
            results[mode]["tokens"] += len(
                generator.tokenizer(completion, add_special_tokens=False)["input_ids"]
            )

    report: dict[str, Any] = {"model": str(args.model), "dialogues": len(dialogues), "threads": args.threads}
    for mode, result in results.items():
        latencies = result["latencies"]
        report[mode] = {
            "replies_per_s": len(latencies) / sum(latencies),
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * percentile(latencies, 0.99),
            "valid_format_rate": result["valid"] / len(latencies),
            "tokens_per_reply": result["tokens"] / len(latencies),
        }

    def paired(over: str, under: str) -> float:
        latencies = zip(results[over]["latencies"], results[under]["latencies"], strict=True)
        return statistics.median(a / b for a, b in latencies)

    constrained, unconstrained = report["constrained"], report["unconstrained"]
    report["ratios"] = {
        "throughput": constrained["replies_per_s"] / unconstrained["replies_per_s"],
        "p50": constrained["p50_ms"] / unconstrained["p50_ms"],
        "p99": constrained["p99_ms"] / unconstrained["p99_ms"],
        "paired_median": paired("constrained", "unconstrained"),
        "distribution_over_constrained_paired_median": paired("distribution", "constrained"),
        "distribution_over_unconstrained_paired_median": paired("distribution", "unconstrained"),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"model {report['model']}  dialogues {report['dialogues']}  threads {report['threads']}")
    print(f"{'mode':14s} {'replies/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s} {'valid':>7s} {'tokens':>7s}")
    for mode in order:
        r = report[mode]
        print(
            f"{mode:14s} {r['replies_per_s']:10.2f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f}"
            f" {r['valid_format_rate']:7.3f} {r['tokens_per_reply']:7.1f}"
        )
    ratios = report["ratios"]
    print(
        f"constrained/unconstrained: throughput {ratios['throughput']:.3f}, p50 {ratios['p50']:.3f},"
        f" p99 {ratios['p99']:.3f}, paired median {ratios['paired_median']:.3f}"
    )
    print(
        f"distribution/constrained paired median {ratios['distribution_over_constrained_paired_median']:.3f}"
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
