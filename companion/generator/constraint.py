"""Constrained decoding: a completion's time prefix can only spell a valid, in-range TIME.

After the prompt (which ends with ``[``) the model must write ``TIME "] " TEXT EOS``. The
constraint is a character-level automaton over that language, run jointly with the
tokenizer's vocabulary, so it works with any tokenizer: one that keeps digits apart (ours), a
BPE that merges ``"13"`` or ``":10]"``, a SentencePiece model whose tokens carry ``▁``, or a
byte-level one whose tokens are bytes.

Cost model (why it is cheap enough to leave on):

* Once per tokenizer (:class:`VocabularyIndex`): every token's text *in context* (decoded after
  an anchor token, so leading spaces and ``▁`` come out right), a trie of the tokens' leading
  runs of time characters (``0-9 : + d space ]``), and three text-phase masks.
* Per decoding step in the time phase: a walk of that small trie guided by the automaton,
  memoized per (prefix, time window): after the first reply almost every step is a cache hit.
* Per step in the text phase: one precomputed additive mask (no newline, no special token, EOS
  only once the text has a non-space character). Where the caller allows another bubble, a line
  break may end the text like EOS; the next companion turn's ``[<companion>] [`` is then written
  by the caller and its TIME constrained again, against the bubble before it.

The maximum delay is folded into the automaton as a :class:`TimeWindow`: every TIME maps to
``N * 1440 + k`` minutes (``k`` = minutes from the previous turn's clock to TIME's clock), which
grows with the real delay, so "at most ``max_total``" is one number found by binary search with
the exact resolver. Around DST changes that mapping can be off by the shift, so the final parse
still checks the real delay; "where feasible" means exactly this.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from transformers import LogitsProcessor

from companion.generator.time_window import (
    REJECT,
    TEXT,
    TIME,
    TIME_ALPHABET,
    TimeWindow,
    classify_prefix,
    time_window,
)

__all__ = [
    "REJECT",
    "TEXT",
    "TIME",
    "TIME_ALPHABET",
    "DecodeState",
    "TimePrefixLogitsProcessor",
    "TimeWindow",
    "VocabularyIndex",
    "classify_prefix",
    "time_window",
]

# Longest head of a token that the automaton can need before it reaches the text phase.
_MAX_HEAD = 24


@dataclass
class _TrieNode:
    children: dict[str, _TrieNode] = field(default_factory=dict)
    whole: list[int] = field(default_factory=list)  # tokens made only of this head
    tailed: list[int] = field(default_factory=list)  # tokens whose head is this, then other text
    subtree: torch.Tensor | None = None


def token_texts(tokenizer: Any, size: int) -> list[str]:
    """The text each token id adds when it follows other text (``""`` for ids the tokenizer lacks)."""
    anchor = tokenizer.encode("a", add_special_tokens=False)[-1]
    options = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}
    base = tokenizer.decode([anchor], **options)
    known = len(tokenizer)
    texts = []
    for token_id in range(size):
        if token_id >= known:
            texts.append("")
            continue
        text = tokenizer.decode([anchor, token_id], **options)
        texts.append(text[len(base) :] if text.startswith(base) else tokenizer.decode([token_id], **options))
    return texts


class VocabularyIndex:
    """Per-tokenizer tables for the constraint, built once (a few ms per thousand tokens)."""

    def __init__(
        self, tokenizer: Any, *, vocab_size: int, eos_ids: set[int], device: str | torch.device = "cpu"
    ):
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.eos_ids = frozenset(eos_ids)
        self.device = torch.device(device)
        self.texts = token_texts(tokenizer, vocab_size)
        self._anchor = tokenizer.encode("a", add_special_tokens=False)[-1]
        self._special_ids = frozenset(tokenizer.all_special_ids)
        special = set(self._special_ids) | {i for i in range(vocab_size) if i >= len(tokenizer)}
        text_ok = torch.zeros(vocab_size, dtype=torch.bool)
        non_space = torch.zeros(vocab_size, dtype=torch.bool)
        self.root = _TrieNode()
        for token_id, text in enumerate(self.texts):
            if token_id in special or not text or "\n" in text or "\r" in text:
                continue
            # A bracket in a reply's text is a transcript fragment ("1] 1시 반이야"): never text.
            if "[" not in text and "]" not in text:
                text_ok[token_id] = True
                non_space[token_id] = bool(text.strip())
            head_length = 0
            while head_length < min(len(text), _MAX_HEAD) and text[head_length] in TIME_ALPHABET:
                head_length += 1
            if head_length == 0:
                continue
            node = self.root
            for character in text[:head_length]:
                node = node.children.setdefault(character, _TrieNode())
            (node.whole if head_length == len(text) else node.tailed).append(token_id)
        self.non_space = non_space
        eos = torch.zeros(vocab_size, dtype=torch.bool)
        eos[[i for i in self.eos_ids if i < vocab_size]] = True
        self.text_mask = self._additive(text_ok)
        self.text_or_eos_mask = self._additive(text_ok | eos)
        # A token that is exactly a line break ends a bubble and opens the next companion turn;
        # a tokenizer without one cannot write bubbles (every reply is one message).
        self.newline_id: int | None = next(
            (i for i, text in enumerate(self.texts) if text == "\n" and i not in special), None
        )
        self.text_eos_or_newline_mask: torch.Tensor | None = None
        if self.newline_id is not None:
            newline = torch.zeros(vocab_size, dtype=torch.bool)
            newline[self.newline_id] = True
            self.text_eos_or_newline_mask = self._additive(text_ok | eos | newline)
        self.non_space_mask = self._additive(non_space)
        self._time_masks: OrderedDict[tuple[str, TimeWindow | None], torch.Tensor | None] = OrderedDict()

    def _additive(self, allowed: torch.Tensor) -> torch.Tensor:
        mask = torch.full((self.vocab_size,), float("-inf"))
        mask[allowed] = 0.0
        return mask.to(self.device)

    def _subtree(self, node: _TrieNode) -> torch.Tensor:
        if node.subtree is None:
            ids = list(node.whole) + list(node.tailed)
            for child in node.children.values():
                ids.extend(self._subtree(child).tolist())
            node.subtree = torch.tensor(ids, dtype=torch.long)
        return node.subtree

    @staticmethod
    def _mask_key(prefix: str, window: TimeWindow) -> tuple[str, TimeWindow | None]:
        """The cache key of a mask: windows that cannot change it share one entry.

        Once a prefix has fixed a day count below the window's last day ("12:", "+2d 0"), every
        clock of that day is allowed, so its mask is the same after any previous turn: after the
        first reply, only a reply's first step (and steps on its last allowed day) miss the cache.
        """
        if window.max_days >= 1 and prefix:
            if not prefix.startswith("+"):
                return (prefix, None)
            days, marker, _ = prefix[1:].partition("d")
            if marker and days.isdigit() and int(days) < window.max_days:
                return (prefix, None)
        return (prefix, window)

    def time_mask(self, prefix: str, window: TimeWindow) -> torch.Tensor | None:
        """Additive mask of the tokens that keep ``prefix`` a valid TIME prefix; None if there are none."""
        key = self._mask_key(prefix, window)
        if key in self._time_masks:
            self._time_masks.move_to_end(key)
            return self._time_masks[key]
        pieces: list[torch.Tensor] = []
        stack = [(self.root, prefix)]
        while stack:
            node, text = stack.pop()
            for character, child in node.children.items():
                extended = text + character
                verdict = classify_prefix(extended, window)
                if verdict == TEXT:
                    pieces.append(self._subtree(child))
                elif verdict == TIME:
                    pieces.append(torch.tensor(child.whole, dtype=torch.long))
                    stack.append((child, extended))
        ids = torch.cat(pieces) if pieces else torch.empty(0, dtype=torch.long)
        mask = None
        if ids.numel():
            allowed = torch.zeros(self.vocab_size, dtype=torch.bool)
            allowed[ids] = True
            mask = self._additive(allowed)
        self._time_masks[key] = mask
        if len(self._time_masks) > 512:
            self._time_masks.popitem(last=False)
        return mask

    def decode(self, token_ids: list[int]) -> str:
        """Decode generated ids as they read after the prompt (no stripped leading space).

        Special tokens (EOS, padding) are dropped by id rather than with ``skip_special_tokens``:
        some tokenizers register their byte-fallback tokens as special added tokens, and those
        bytes are part of the text.
        """
        options = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}
        kept = [i for i in token_ids if i not in self._special_ids]
        base: str = self.tokenizer.decode([self._anchor], **options)
        text: str = self.tokenizer.decode([self._anchor, *kept], **options)
        return (
            text[len(base) :] if text.startswith(base) else cast(str, self.tokenizer.decode(kept, **options))
        )

    def min_new_tokens(self, window: TimeWindow) -> int:
        """Tokens always enough to finish: the longest allowed ``TIME] `` char by char, plus one."""
        return len(f"+{window.max_days}d 00:00] ") + 1 if window.max_days else len("00:00] ") + 1


class DecodeState:
    """Where one sequence is in ``TIME "] " TEXT EOS``; advanced one generated token at a time."""

    def __init__(
        self, index: VocabularyIndex, window: TimeWindow, prefix: str = "", *, another_bubble: bool = False
    ) -> None:
        self.index = index
        self.window = window
        self.prefix = prefix  # the time characters so far
        self.in_text = False
        self.has_text = False
        # Whether the text may end with a line break (another bubble follows) instead of EOS.
        self.another_bubble = another_bubble and index.text_eos_or_newline_mask is not None

    def mask(self, remaining: int) -> torch.Tensor | None:
        """The additive mask for the next token; None when no token can continue (a dead end)."""
        if not self.in_text:
            return self.index.time_mask(self.prefix, self.window)
        if self.has_text:
            if self.another_bubble:
                return self.index.text_eos_or_newline_mask
            return self.index.text_or_eos_mask
        # The last token of the budget must make the text non-empty.
        return self.index.non_space_mask if remaining <= 1 else self.index.text_mask

    def advance(self, token_id: int) -> None:
        text = self.index.texts[token_id] if token_id < len(self.index.texts) else ""
        if self.in_text:
            self.has_text = self.has_text or bool(text.strip())
            return
        for position, character in enumerate(text):
            extended = self.prefix + character
            if classify_prefix(extended, self.window) == TEXT:
                self.prefix = extended
                self.in_text = True
                self.has_text = bool(text[position + 1 :].strip())
                return
            self.prefix = extended


class TimePrefixLogitsProcessor(LogitsProcessor):
    """The constraint as a transformers ``LogitsProcessor``, for ``model.generate(...)`` callers.

    ``prompt_length`` is the prompt's token count (the same for every row of the batch).
    """

    def __init__(
        self, index: VocabularyIndex, window: TimeWindow, *, prompt_length: int, max_new_tokens: int
    ) -> None:
        self.index = index
        self.window = window
        self.prompt_length = prompt_length
        self.max_new_tokens = max_new_tokens
        self._states: list[DecodeState] = []
        self._seen = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        if not self._states:
            self._states = [DecodeState(self.index, self.window) for _ in range(input_ids.shape[0])]
        for position in range(self._seen, input_ids.shape[1]):
            for row, state in enumerate(self._states):
                state.advance(int(input_ids[row, position]))
        self._seen = input_ids.shape[1]
        remaining = self.max_new_tokens - (self._seen - self.prompt_length)
        scores = scores.clone()
        for row, state in enumerate(self._states):
            mask = state.mask(remaining)
            if mask is None:
                # Nothing can continue (a tokenizer that cannot spell the next character): end the row.
                scores[row] = float("-inf")
                scores[row, min(self.index.eos_ids)] = 0.0
            else:
                scores[row] += mask.to(scores.device)
        return scores
