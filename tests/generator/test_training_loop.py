"""The training loop's moving average of the weights: what it returns is the average, exactly."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from companion.generator.training import TrainConfig, TrainingExample, train_loop


class Quadratic(torch.nn.Module):
    """One weight pulled towards 3 with a noisy target, recording the weight each step starts from."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(0.0))
        self.seen: list[float] = []

    def forward(self, input_ids: torch.Tensor, **_: Any) -> SimpleNamespace:
        self.seen.append(float(self.weight.detach()))
        target = 3.0 + 0.1 * (float(input_ids.sum()) % 7 - 3)
        return SimpleNamespace(loss=(self.weight - target) ** 2)


EXAMPLES = [TrainingExample([i % 5 + 1, i % 3 + 1], [-100, i % 3 + 1], 0) for i in range(40)]


def _train(ema_decay: float) -> tuple[float, list[float]]:
    model = Quadratic()
    config = TrainConfig(steps=60, batch_size=4, learning_rate=0.1, warmup=5, ema_decay=ema_decay)
    train_loop(model, EXAMPLES, config, pad_id=0)
    return float(model.weight.detach()), model.seen


def test_the_loop_returns_the_moving_average_of_the_weights() -> None:
    raw_final, seen = _train(0.0)
    averaged_final, seen_again = _train(0.9)

    assert seen_again == seen  # the average never feeds back into training
    trajectory = [*seen[1:], raw_final]  # the weight after each step
    expected = seen[0]
    for step, weight in enumerate(trajectory):
        decay = min(0.9, (1 + step) / (10 + step))
        expected += (1 - decay) * (weight - expected)
    assert averaged_final == pytest.approx(expected, abs=1e-6)
    assert abs(averaged_final - raw_final) > 1e-3  # not the last step's weight


def test_without_an_average_the_loop_returns_the_last_step() -> None:
    raw_final, seen = _train(0.0)

    assert raw_final != seen[-1]  # the last step moved it
    assert raw_final == _train(0.0)[0]  # and it is deterministic
