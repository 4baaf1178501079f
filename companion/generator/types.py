"""Plain value types shared by the generator's modules (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class GeneratedReply:
    """A generated reply: when (aware, in the dialogue's zone) and what, plus the raw completion.

    ``more`` holds the further bubbles of the same reply, ``(at, text)`` in order, each at or
    after the one before it (empty for a reply in one message).
    """

    at: datetime
    text: str
    completion: str
    constrained: bool
    more: tuple[tuple[datetime, str], ...] = ()


@dataclass(frozen=True)
class SamplingConfig:
    """Explicit decoding settings; ``temperature == 0`` is greedy decoding."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
