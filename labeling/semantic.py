"""Sentence similarity for the mining rules: message vectors kept in PostgreSQL, example phrases.

The encoder is the project's one multilingual sentence encoder
(:func:`companion.generator.sentence_vectors.shared_encoder`, USE multilingual v3, 512-d,
L2-normalized), so a dot product is the cosine similarity. A message is encoded whole and clause
by clause (split at sentence punctuation and commas), and its similarity to an example is the best
of those rows: chat messages pack several things into one bubble ("ㅋㅋ 명작이지. 아 나 친구 만나러
나가야 돼 이따 톡할게!") and the whole-message vector dilutes the one clause that matters.
A message's vectors are computed once and stored in :class:`~labeling.models.MessageVector`
(rows of float32 bytes); later runs read them back, and only the misses are encoded, in batches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from chat.models import Message
from companion.generator.sentence_vectors import DIMENSION, ENCODER_NAME, SentenceVectors, shared_encoder
from labeling.mining_rules import MiningRule
from labeling.models import MessageVector

BATCH_SIZE = 128
_CLAUSE_END = re.compile(r"[.!?。…~]+\s*|\n+|,\s+")


def clauses(text: str) -> list[str]:
    """The whole text, then its clauses when it has more than one (each at least 2 characters)."""
    parts = [part.strip() for part in _CLAUSE_END.split(text)]
    parts = [part for part in parts if len(part) >= 2]
    return [text, *parts] if len(parts) > 1 else [text]


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> Any: ...


@dataclass
class VectorStats:
    """How many message vectors a run read back from the table and how many it had to encode."""

    reused: int = 0
    encoded: int = 0


def _encode(encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
    rows = [
        np.asarray(encoder.encode(list(texts[start : start + BATCH_SIZE])), dtype=np.float32).reshape(
            -1, DIMENSION
        )
        for start in range(0, len(texts), BATCH_SIZE)
    ]
    return np.concatenate(rows) if rows else np.zeros((0, DIMENSION), dtype=np.float32)


def message_vectors(
    messages: Iterable[Message], *, encoder: Encoder | None = None, stats: VectorStats | None = None
) -> dict[int, np.ndarray]:
    """Vectors of ``messages`` by id, (rows, 512) each: stored ones read back, misses encoded and stored."""
    wanted = {message.pk: message.text for message in messages}
    found: dict[int, np.ndarray] = {}
    for message_id, blob in MessageVector.objects.filter(
        message_id__in=list(wanted), encoder=ENCODER_NAME
    ).values_list("message_id", "vector"):
        found[message_id] = np.frombuffer(bytes(blob), dtype=np.float32).reshape(-1, DIMENSION)
    missing = [message_id for message_id in wanted if message_id not in found]
    if missing:
        pieces = [clauses(wanted[message_id]) for message_id in missing]
        vectors = _encode(encoder or shared_encoder(), [piece for texts in pieces for piece in texts])
        rows = []
        start = 0
        for message_id, texts in zip(missing, pieces, strict=True):
            matrix = vectors[start : start + len(texts)]
            start += len(texts)
            found[message_id] = matrix
            rows.append(MessageVector(message_id=message_id, encoder=ENCODER_NAME, vector=matrix.tobytes()))
        # Two miners racing on one message store the same vector; the second insert is a no-op.
        MessageVector.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
    if stats is not None:
        stats.reused += len(wanted) - len(missing)
        stats.encoded += len(missing)
    return found


@dataclass
class ExampleIndex:
    """Each semantic rule's example phrases and their vectors (rows in the order of the phrases)."""

    phrases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)

    def best(self, rule: MiningRule, rows: np.ndarray) -> tuple[str, float]:
        """The rule's example closest to any of a message's ``rows`` (k, 512) and that similarity."""
        scores = (self.vectors[rule.name] @ np.atleast_2d(rows).T).max(axis=1)
        best = int(np.argmax(scores))
        return self.phrases[rule.name][best], float(scores[best])


_example_cache = SentenceVectors(capacity=10_000)


def example_index(rules: Iterable[MiningRule], *, encoder: Encoder | None = None) -> ExampleIndex:
    """Encode the example phrases of the semantic rules (cached per process: they rarely change)."""
    index = ExampleIndex()
    cache = _example_cache if encoder is None else SentenceVectors(encoder)
    for rule in rules:
        if rule.examples:
            index.phrases[rule.name] = rule.examples
            index.vectors[rule.name] = cache.encode(list(rule.examples))
    return index
