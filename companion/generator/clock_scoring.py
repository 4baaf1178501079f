"""Scoring whole reply times on the prompt's KV cache: the "distribution" time decoding of ``ReplyGenerator``.

Split out of ``model.py`` (which keeps loading, prompting and the decoding loop): the digit tree
that gives every clock of the next 23 hours its probability from one prompt pass, the batched
scoring of whole ``TIME]`` candidates, and the choice among them (``time_choice.py``). A mixin:
it uses the generator's tokenizer, device, conditioning and forward pass.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import torch

from companion.generator.clock_hints import NO_HINT, hint_row
from companion.generator.conditioning import SentenceConditioning
from companion.generator.time_choice import (
    TimeCandidate,
    choose,
    day_candidates,
    grid_candidates,
    neighbours,
)
from companion.generator.time_window import TimeWindow
from companion.generator.transcript import GenerationFailed
from companion.generator.types import SamplingConfig

__all__ = ["TREE_EXPANDED_PREFIXES", "ClockScoring"]

# Ten-minute prefixes ("13:1") whose last digit is computed exactly (see _clock_log_probs).
TREE_EXPANDED_PREFIXES = 16


class ClockScoring:
    """The whole-time scoring half of :class:`~companion.generator.model.ReplyGenerator`."""

    tokenizer: Any
    device: torch.device
    conditioning: SentenceConditioning | None
    instant_threshold: float
    later_threshold: float
    _time_ids: dict[str, list[int]]
    _digits: dict[str, int] | None
    _written: dict[str, list[str]]

    def _forward(self, input_ids: torch.Tensor, past: Any, added: torch.Tensor | None = None) -> Any:
        raise NotImplementedError

    def _hint_clock(self, window: TimeWindow) -> int | None:
        """The clock the hints offer (the last turn's), or None when this model reads no hints.

        Hints are defined per character of the time, so they need our one-character-per-token
        tokenizer; a conditioned model always has it (``build.py``)."""
        if self.conditioning is None or self.conditioning.clock_hints is None:
            return None
        return window.prev_clock if self._digit_token_ids() is not None else None

    def _hints(self, rows: list[int]) -> torch.Tensor | None:
        """Clock-hint embeddings ``(1, len(rows), hidden)`` for positions in a row; None for none."""
        if self.conditioning is None or all(row == NO_HINT for row in rows):
            return None
        return self.conditioning.hints(torch.tensor([rows], device=self.device))

    def _written_prefixes(self, ids: list[int]) -> list[str]:
        """The reply's TIME text written after each of ``ids`` (the tokens after the open ``[``)."""
        key = ",".join(map(str, ids))
        prefixes = self._written.get(key)
        if prefixes is None:
            prefixes = [self.tokenizer.decode(ids[: i + 1]) for i in range(len(ids))]
            self._written[key] = prefixes
        return prefixes

    def _time_hint_rows(self, ids: list[int], clock: int) -> list[int]:
        """The clock-hint row of each of ``ids``, the reply's TIME tokens after its open ``[``."""
        return [hint_row(written, clock) for written in self._written_prefixes(ids)]

    def _time_token_ids(self, time: str) -> list[int]:
        ids = self._time_ids.get(time)
        if ids is None:
            ids = list(self.tokenizer(time + "]", add_special_tokens=False)["input_ids"])
            self._time_ids[time] = ids
        return ids

    def _score_times(
        self,
        past: Any,
        last_logits: torch.Tensor,
        candidates: list[TimeCandidate],
        clock: int | None = None,
    ) -> list[float]:
        """Log-probability of each candidate's ``TIME]`` after the prompt, all in one batched pass
        (with the clock hints of ``clock`` on the time's positions)."""
        sequences = [self._time_token_ids(c.time) for c in candidates]
        width = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        for row, sequence in enumerate(sequences):
            ids[row, : len(sequence)] = torch.tensor(sequence)
        ids = ids.to(self.device)
        first = torch.log_softmax(last_logits, dim=-1)[ids[:, 0]]
        if width == 1:
            return first.tolist()
        added = None
        if clock is not None and self.conditioning is not None:
            rows = torch.full((len(sequences), width - 1), NO_HINT, dtype=torch.long)
            for row, sequence in enumerate(sequences):
                hinted = self._time_hint_rows(sequence[: width - 1], clock)
                rows[row, : len(hinted)] = torch.tensor(hinted)
            added = self.conditioning.hints(rows.to(self.device))
        expanded = copy.deepcopy(past)
        expanded.batch_repeat_interleave(len(sequences))
        logits = self._forward(ids[:, :-1], expanded, added).logits
        steps = torch.log_softmax(logits.float(), dim=-1).gather(2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        lengths = torch.tensor([len(s) for s in sequences], device=self.device)
        valid = torch.arange(1, width, device=self.device).unsqueeze(0) < lengths.unsqueeze(1)
        return (first + (steps * valid).sum(dim=1)).tolist()

    def _digit_token_ids(self) -> dict[str, int] | None:
        """Token ids of "0".."9", ":" and "+" when each is one token and a TIME tokenizes character by
        character (our tokenizer); None otherwise (then whole candidates are scored instead)."""
        if self._digits is None:
            ids: dict[str, int] = {}
            for character in "0123456789:+":
                encoded = self.tokenizer(character, add_special_tokens=False)["input_ids"]
                if len(encoded) != 1:
                    self._digits = {}
                    return None
                ids[character] = encoded[0]
            samples = ("00:00", "12:34", "23:59", "07:05")
            ok = all(self._time_token_ids(t)[:5] == [ids[c] for c in t] for t in samples)
            self._digits = ids if ok else {}
        return self._digits or None

    def _clock_log_probs(
        self,
        past: Any,
        last_logits: torch.Tensor,
        digits: dict[str, int],
        prev_clock: int,
        hinted: bool = False,
    ) -> torch.Tensor:
        """Log-probability of every clock ``HH:MM`` (index = minute of the day, shape ``(1440,)``).

        Walks the digit tree in two batched forwards on copies of the prompt's KV cache: the 24
        hours each as the three tokens ``H``, ``H``, ``:`` (whose three positions give the hour's
        second digit, the colon and the minute's tens digit), then the minute's last digit for
        about 17 ten-minute prefixes. Exact for the hours and ten-minute prefixes, and for the last
        digit of the likeliest prefixes and the instant minute's. ``hinted``: each position carries
        the clock hint of ``prev_clock`` for the characters written before it (the prompt's ``[``
        already does); a position's hint depends only on how many characters are written.
        """

        def hint(*written: int) -> torch.Tensor | None:
            return self._hints([hint_row("00:00"[:w], prev_clock) for w in written]) if hinted else None

        d = torch.tensor([digits[str(i)] for i in range(10)], device=self.device)
        colon = digits[":"]
        first = torch.log_softmax(last_logits, dim=-1)
        tens = torch.tensor([h // 10 for h in range(24)], device=self.device)
        units = torch.tensor([h % 10 for h in range(24)], device=self.device)
        hours = torch.stack([d[tens], d[units], torch.full_like(tens, colon)], dim=1)  # (24, 3)
        cache = copy.deepcopy(past)
        cache.batch_repeat_interleave(24)
        steps = torch.log_softmax(self._forward(hours, cache, hint(1, 2, 3)).logits.float(), dim=-1)
        rows = torch.arange(24, device=self.device)
        hour = first[d[tens]] + steps[rows, 0, d[units]] + steps[:, 1, colon]  # (24,)
        minute_tens = steps[:, 2][:, d[:6]]  # (24, 6)
        prefix = (hour.view(24, 1) + minute_tens).reshape(144)  # "HH:M", index 6 * hour + tens
        # The last digit only where it can matter: the likeliest ten-minute prefixes and the
        # instant minute's; elsewhere the prefix's mass is spread evenly over its ten minutes.
        # (Expanding all 144 would copy the KV cache 144 times, most of a reply's time.)
        chosen = torch.topk(prefix, TREE_EXPANDED_PREFIXES).indices
        instant = torch.tensor([prev_clock // 10], device=self.device)
        chosen = torch.unique(torch.cat([chosen, instant]))
        total = (prefix - math.log(10)).view(144, 1).repeat(1, 10)
        cache.batch_select_indices(chosen // 6)
        step = self._forward(d[chosen % 6].unsqueeze(1), cache, hint(4)).logits[:, -1].float()
        total[chosen] = prefix[chosen].view(-1, 1) + torch.log_softmax(step, dim=-1)[:, d]
        return total.reshape(1440)

    def _tree_candidates(
        self, output: Any, window: TimeWindow, digits: dict[str, int], later_floor: float
    ) -> tuple[list[TimeCandidate], list[float], float]:
        """Every allowed clock of the next 23 hours with its exact log-probability, plus ``+1d`` grid
        candidates when the model's probability of a day count (a delay of a day or more) reaches
        ``later_floor``, and that probability.

        Greedy decoding passes the later rule's threshold: below it no later candidate can be
        chosen, so the 48 of them are not scored (a fifth of a follow-up's time) and ``choose``
        counts the day counts' exact mass instead. Sampling passes 1%, to sample from them too."""
        past, last_logits = output.past_key_values, output.logits[0, -1].float()
        clock = self._hint_clock(window)
        clocks = self._clock_log_probs(
            past, last_logits, digits, window.prev_clock, hinted=clock is not None
        ).tolist()
        candidates: list[TimeCandidate] = []
        log_probs: list[float] = []
        for candidate in day_candidates(window):
            candidates.append(candidate)
            log_probs.append(clocks[(window.prev_clock + candidate.minutes) % 1440])
        plus = float(torch.log_softmax(last_logits, dim=-1)[digits["+"]])
        later = [c for c in grid_candidates(window) if c.minutes >= 1440]
        if later and plus >= math.log(max(later_floor, 1e-12)):
            candidates += later
            log_probs += self._score_times(past, last_logits, later, clock)
        return candidates, log_probs, math.exp(plus)

    def _choose_time(self, output: Any, window: TimeWindow, sampling: SamplingConfig) -> str:
        """The reply's TIME, decided from the model's probabilities of whole times (``time_choice``).

        ``output`` is the prompt's forward pass; its KV cache is copied, never extended, so the
        text can be decoded on from it afterwards.
        """
        past, last_logits = output.past_key_values, output.logits[0, -1].float()
        rng = random.Random(sampling.seed) if sampling.temperature > 0 else None
        digits = self._digit_token_ids()
        if digits is None:  # generate() takes this path only for a digit-per-token tokenizer
            raise GenerationFailed("distribution time decoding needs a digit-per-token tokenizer")
        later_floor = 0.01 if sampling.temperature > 0 else self.later_threshold
        candidates, log_probs, later_mass = self._tree_candidates(output, window, digits, later_floor)
        chosen = choose(
            candidates,
            log_probs,
            instant_threshold=self.instant_threshold,
            later_mass=later_mass,
            later_threshold=self.later_threshold,
            temperature=sampling.temperature,
            rng=rng,
        )
        if chosen.weight == 1:
            return chosen.time
        # A "+1d" grid candidate (30 minutes apart): the exact minute around it.
        around = neighbours(chosen, window, radius=15)
        scores = self._score_times(past, last_logits, around, self._hint_clock(window))
        return around[max(range(len(around)), key=scores.__getitem__)].time
