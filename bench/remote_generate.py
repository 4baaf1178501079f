"""Local generation vs a llama.cpp server: latency p50/p99 and replies/s at 1 and 4 concurrent plans.

    python bench/remote_generate.py --model DIR [--n 48] [--concurrency 1 4] [--server-threads 2]

``DIR`` is one of our model directories (``python -m companion.generator build --preset tiny``
makes one in seconds; ``var/models/default`` is the default). The same dialogues (the model's
val split, cycled to ``--n``) are answered, greedy, in two ways at each concurrency ``c``:

* ``local``: what a planner does today: ``c`` processes (one planner process per core), each
  loading ``ReplyGenerator`` once and running torch on one thread, each answering its share;
* ``local_text``: the same processes doing what the server does: the text-only path, the time
  decoded token by token under the local automaton (no sentence encoder, no whole-distribution
  choice), so ``local_text`` vs ``llamacpp`` compares the engines on the same work;
* ``llamacpp``: ``c`` threads calling the remote source (``scheduling.remote_generation``)
  against one llama.cpp server (``xllamacpp``) with ``c`` slots and ``--server-threads`` threads,
  serving the same LM converted to GGUF (``companion.generator.gguf_export``).

The served model reads the text only (GGUF carries no sentence projection or clock hints), and
its time is sampled under the grammar rather than chosen from the whole distribution, so this
compares the engines' cost, not their answers. Latency is one reply's wall time, replies/s the
answers over the wall time of the whole batch (loading excluded). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from companion.generator import Dialogue, SamplingConfig, dialogue_from_json  # noqa: E402
from companion.generator.build import read_jsonl  # noqa: E402

_generator: Any = None


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _load_local(model: str, text_only: bool) -> None:
    global _generator
    import torch

    from companion.generator import ReplyGenerator

    torch.set_num_threads(1)
    _generator = ReplyGenerator.load(
        model, device="cpu", time_decoding="greedy" if text_only else "distribution"
    )
    if text_only:  # what the served model does: text only, the time decoded under the constraint
        _generator.conditioning = None
        _generator.vectors = None


def _local_reply(dialogue: Dialogue) -> float:
    started = time.perf_counter()
    _generator.generate(dialogue, sampling=SamplingConfig(max_new_tokens=48))
    return time.perf_counter() - started


def run_local(
    model: Path, dialogues: list[Dialogue], concurrency: int, *, text_only: bool
) -> tuple[list[float], float]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(concurrency, initializer=_load_local, initargs=(str(model), text_only)) as pool:
        pool.map(_local_reply, dialogues[: 2 * concurrency])  # warm-up, every process
        started = time.perf_counter()
        latencies = pool.map(_local_reply, dialogues, chunksize=1)
        wall = time.perf_counter() - started
    return latencies, wall


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            return bool(json.loads(response.read()).get("status") == "ok")
    except (OSError, ValueError):
        return False


def run_remote(
    model: Path, gguf: Path, dialogues: list[Dialogue], concurrency: int, threads: int, port: int
) -> tuple[list[float], float]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "companion.settings")
    for name, value in (
        ("DATABASE_URL", "postgres://bench@127.0.0.1:9/bench"),
        ("REDIS_URL", "redis://127.0.0.1:9/0"),
        ("DJANGO_SECRET_KEY", "bench"),
    ):
        os.environ.setdefault(name, value)
    import django

    django.setup()
    from scheduling.remote_generation import RemoteReplySource, ServerConfig

    context = json.loads((model / "config.json").read_text(encoding="utf-8"))["max_position_embeddings"]
    args = [sys.executable, "-m", "tests.llama_server", str(gguf), str(port)]
    args += [f"--threads={threads}", f"--parallel={concurrency}", f"--context={context}"]
    server = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not _healthy(url):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the llama.cpp server did not come up")
            threading.Event().wait(0.1)
        source = RemoteReplySource(ServerConfig(url=url, tokenizer_dir=model))
        sampling = SamplingConfig(max_new_tokens=48)

        def reply(dialogue: Dialogue) -> float:
            started = time.perf_counter()
            source.generate(dialogue, sampling=sampling)
            return time.perf_counter() - started

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(reply, dialogues[: 2 * concurrency]))
            started = time.perf_counter()
            latencies = list(pool.map(reply, dialogues))
            wall = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    return latencies, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--server-threads", type=int, default=2)
    parser.add_argument("--port", type=int, default=18765)
    args = parser.parse_args()

    from companion.generator.gguf_export import export_gguf

    rows = read_jsonl(args.model / "data" / "val.jsonl")
    dialogues = [dialogue_from_json(rows[i % len(rows)])[0] for i in range(args.n)]
    results: dict[str, Any] = {"model": str(args.model), "n": args.n, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as scratch:
        gguf = export_gguf(args.model, Path(scratch) / "model.gguf")
        for concurrency in args.concurrency:
            for mode in ("local", "local_text", "llamacpp"):
                if mode.startswith("local"):
                    latencies, wall = run_local(
                        args.model, dialogues, concurrency, text_only=mode == "local_text"
                    )
                else:
                    latencies, wall = run_remote(
                        args.model, gguf, dialogues, concurrency, args.server_threads, args.port
                    )
                figures = {
                    "p50_ms": round(1000 * statistics.median(latencies), 1),
                    "p99_ms": round(1000 * percentile(latencies, 0.99), 1),
                    "replies_per_s": round(len(latencies) / wall, 2),
                }
                results[f"{mode}_c{concurrency}"] = figures
                print(f"{mode:10s} concurrency {concurrency}: {figures}", flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
