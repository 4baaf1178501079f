"""A real llama.cpp server for the tests: our models converted to GGUF, served by ``xllamacpp``.

``python -m tests.llama_server MODEL.gguf PORT [--threads N] [--parallel N] [--context N]`` runs
llama.cpp's HTTP server (the ``xllamacpp`` wheel: llama.cpp built for CPU, its server inside) in
this process until SIGTERM. The fixtures below convert the models, cache the converted tiny model
the way ``default_model_dir`` caches the default one, and start servers as child processes on
free ports, ready once ``/health`` answers ``ok`` (polled against a deadline, never slept for).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live import ChildProcess, free_port, spawn, wait_until_ready

REPO_ROOT = Path(__file__).resolve().parent.parent
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "config.json")


def serve(model: str, port: int, *, threads: int, parallel: int, context: int) -> None:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = model
    params.port = port
    params.n_parallel = parallel
    params.n_ctx = context * parallel  # llama.cpp splits the context over the slots
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.warmup = False
    server = xllamacpp.Server(params)
    print(f"serving {model} on {server.listening_address}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()


def health_ok(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/health", timeout=2) as response:
            return bool(json.loads(response.read()).get("status") == "ok")
    except (OSError, ValueError):
        return False


@dataclass
class LlamaServer:
    """One served model on a fixed port; ``kill()`` and ``start()`` again to restart it there."""

    model: Path
    port: int
    log_dir: Path
    threads: int = 1
    parallel: int = 1
    context: int = 256
    child: ChildProcess | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LlamaServer:
        self.starts += 1
        args = [
            sys.executable,
            "-m",
            "tests.llama_server",
            str(self.model),
            str(self.port),
            f"--threads={self.threads}",
            f"--parallel={self.parallel}",
            f"--context={self.context}",
        ]
        self.child = spawn(
            f"llama-server-{self.port}-{self.starts}", args, log_dir=self.log_dir, env=dict(os.environ)
        )
        wait_until_ready(self.child, lambda: health_ok(self.url), what=f"llama.cpp server on {self.port}")
        return self

    def kill(self) -> None:
        if self.child is not None:
            self.child.kill()

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


def _digest(paths: list[Path]) -> str:
    return hashlib.sha256(b"".join(path.read_bytes() for path in paths)).hexdigest()[:16]


def cached_gguf(name: str, defining: list[Path], build: Callable[[Path], None]) -> Path:
    """``var/test-models/<name>-<digest>/`` holding ``model.gguf`` and the tokenizer, built once.

    Built into a staging directory and renamed into place, so an interrupted or racing run never
    leaves half a model behind (as ``default_model_dir`` does).
    """
    target = REPO_ROOT / "var" / "test-models" / f"{name}-{_digest(defining)}"
    if (target / "model.gguf").is_file():
        return target
    staging = target.with_name(f"{target.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        build(staging)
        staging.rename(target)
    except OSError:
        if not (target / "model.gguf").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _export(model_dir: Path, out: Path) -> None:
    from companion.generator.gguf_export import export_gguf

    export_gguf(model_dir, out / "model.gguf")
    if model_dir.resolve() != out.resolve():
        for name in TOKENIZER_FILES:
            shutil.copy(model_dir / name, out / name)


@pytest.fixture(scope="session")
def tiny_gguf_dir(request: pytest.FixtureRequest) -> Path:
    """The tiny preset (trained by our build) as GGUF, keyed by what decides its weights and the export.

    The tiny model is built (seconds) only when the cache misses.
    """
    from companion.generator.corpus import corpus_sources
    from tests.conftest import MODEL_DEFINING_SOURCES

    generator = REPO_ROOT / "companion" / "generator"
    defining = [generator / n for n in (*MODEL_DEFINING_SOURCES, "gguf_export.py")] + corpus_sources()
    return cached_gguf(
        "tiny-gguf", defining, lambda out: _export(request.getfixturevalue("tiny_model_dir"), out)
    )


@pytest.fixture(scope="session")
def untrained_gguf_dir(tiny_gguf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init Llama of the tiny shape with the tiny tokenizer: it has learned nothing."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = json.loads((tiny_gguf_dir / "config.json").read_text(encoding="utf-8"))
    out = tmp_path_factory.mktemp("untrained")
    torch.manual_seed(11)
    model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in config.items() if k != "architectures"}))
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_gguf_dir / name, out / name)
    _export(out, out)
    return out


@pytest.fixture
def llama_server(tmp_path: Path) -> Iterator[Callable[..., LlamaServer]]:
    """Factory: ``llama_server(model_dir, **options)`` starts a server on a free port, stopped after."""
    servers: list[LlamaServer] = []

    def start(model_dir: Path, *, threads: int = 1, parallel: int = 1) -> LlamaServer:
        server = LlamaServer(
            model=model_dir / "model.gguf",
            port=free_port(),
            log_dir=tmp_path,
            threads=threads,
            parallel=parallel,
        )
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("port", type=int)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--context", type=int, default=256)
    args = parser.parse_args()
    serve(args.model, args.port, threads=args.threads, parallel=args.parallel, context=args.context)


if __name__ == "__main__":
    main()
