"""The completion's language for a serving engine: a GBNF grammar and a regex from one TimeWindow.

A served model is constrained by its engine, not by our decoder: llama.cpp's server takes a GBNF
``grammar``, vLLM a ``guided_regex`` (or ``structured_outputs.regex``), TGI a ``grammar`` of type
``regex``. Both forms are rendered here from the same :class:`TimeWindow` the local decoder walks
(``time_window.classify_prefix``), maximum delay included, so a served model can write exactly the
TIMEs the local one can, then ``"] "`` and one line of text:

    completion := TIME "] " [ \\t]* FIRST REST*     FIRST: not a space, tab, newline or bracket
                                                    REST: not a newline or bracket

The text excludes brackets as the local decoder does (no "1] 1시 반이야" fragments). With a forced
time the prompt already ends with ``TIME]`` and only ``" " TEXT`` is left to generate.

The TIMEs are a finite set: day counts ``0..max_days`` (0 written without ``+Nd ``), every clock on
the days before the last, and on the last day (or on day 0 when the window is under a day) the
cyclic run of clocks ``prev_clock .. prev_clock + budget``. Each run of numbers becomes a union of
digit sequences (the usual decimal range decomposition), so the regex and the grammar need no
arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

from companion.generator.time_window import TimeWindow

__all__ = ["CompletionLanguage", "completion_language"]

_TEXT_FIRST_EXCLUDED = " \t\n\r[]"
_TEXT_REST_EXCLUDED = "\n\r[]"


@dataclass(frozen=True)
class _Digits:
    """One character out of a contiguous run of digits, ``low..high``."""

    low: int
    high: int


_Piece = str | _Digits  # a literal, or one digit of a range
_Sequence = tuple[_Piece, ...]


def _fixed_width(low: int, high: int, width: int) -> list[_Sequence]:
    """Digit sequences spelling exactly the numbers ``low..high``, zero-padded to ``width``."""
    if low > high:
        return []
    low_text, high_text = f"{low:0{width}d}", f"{high:0{width}d}"
    if width == 1:
        return [(_Digits(low, high),)]
    rest = width - 1
    top = 10**rest - 1
    low_head, low_tail = int(low_text[0]), int(low_text[1:])
    high_head, high_tail = int(high_text[0]), int(high_text[1:])
    if low_head == high_head:
        return [(str(low_head), *tail) for tail in _fixed_width(low_tail, high_tail, rest)]
    any_tail: _Sequence = tuple(_Digits(0, 9) for _ in range(rest))
    sequences: list[_Sequence] = []
    first_full = low_head if low_tail == 0 else low_head + 1
    last_full = high_head if high_tail == top else high_head - 1
    if low_tail != 0:
        sequences += [(str(low_head), *tail) for tail in _fixed_width(low_tail, top, rest)]
    if first_full <= last_full:
        sequences.append((_Digits(first_full, last_full), *any_tail))
    if high_tail != top:
        sequences += [(str(high_head), *tail) for tail in _fixed_width(0, high_tail, rest)]
    return sequences


def _positive(low: int, high: int) -> list[_Sequence]:
    """Decimal sequences (no leading zero) of the integers ``low..high``, ``1 <= low``."""
    sequences: list[_Sequence] = []
    for width in range(len(str(low)), len(str(high)) + 1):
        sequences += _fixed_width(max(low, 10 ** (width - 1)), min(high, 10**width - 1), width)
    return sequences


def _clock_run(first: int, last: int) -> list[_Sequence]:
    """``HH:MM`` for the minutes of the day ``first..last`` (no wrap)."""
    first_hour, first_minute = divmod(first, 60)
    last_hour, last_minute = divmod(last, 60)

    def at(hour: int, low: int, high: int) -> list[_Sequence]:
        return [(f"{hour:02d}:", *minutes) for minutes in _fixed_width(low, high, 2)]

    if first_hour == last_hour:
        return at(first_hour, first_minute, last_minute)
    sequences: list[_Sequence] = []
    full_from = first_hour if first_minute == 0 else first_hour + 1
    full_to = last_hour if last_minute == 59 else last_hour - 1
    if first_minute != 0:
        sequences += at(first_hour, first_minute, 59)
    any_minute: _Sequence = (":", _Digits(0, 5), _Digits(0, 9))
    sequences += [(*hours, *any_minute) for hours in _fixed_width(full_from, full_to, 2)]
    if last_minute != 59:
        sequences += at(last_hour, 0, last_minute)
    return sequences


def _clocks(prev_clock: int, budget: int) -> list[_Sequence]:
    """The clocks at most ``budget`` minutes after ``prev_clock`` (cyclically; 1439: all)."""
    if budget >= 1439:
        return _clock_run(0, 1439)
    end = prev_clock + budget
    if end < 1440:
        return _clock_run(prev_clock, end)
    return _clock_run(prev_clock, 1439) + _clock_run(0, end - 1440)


def _time_sequences(window: TimeWindow) -> list[_Sequence]:
    """Every TIME the window allows, as digit sequences (the language of ``classify_prefix``)."""
    days = window.max_days
    sequences = _clocks(window.prev_clock, min(window.max_total, 1439))
    if days >= 2:
        any_clock = _clocks(0, 1439)
        sequences += [("+", *count, "d ", *clock) for count in _positive(1, days - 1) for clock in any_clock]
    if days >= 1:
        last_budget = min(window.max_total - days * 1440, 1439)
        sequences += [(f"+{days}d ", *clock) for clock in _clocks(window.prev_clock, last_budget)]
    return sequences


def _merged(sequence: _Sequence) -> _Sequence:
    """Adjacent literals joined (shorter grammars, same language)."""
    merged: list[_Piece] = []
    for piece in sequence:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return tuple(merged)


def _gbnf_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _gbnf_digits(piece: _Digits) -> str:
    return f"[{piece.low}]" if piece.low == piece.high else f"[{piece.low}-{piece.high}]"


def _gbnf_sequence(sequence: _Sequence) -> str:
    return " ".join(
        _gbnf_literal(piece) if isinstance(piece, str) else _gbnf_digits(piece) for piece in sequence
    )


_REGEX_SPECIAL = set(r".^$*+?{}[]\|()")


def _regex_literal(text: str) -> str:
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in text)


def _regex_sequence(sequence: _Sequence) -> str:
    return "".join(
        _regex_literal(piece)
        if isinstance(piece, str)
        else (str(piece.low) if piece.low == piece.high else f"[{piece.low}-{piece.high}]")
        for piece in sequence
    )


def _class(excluded: str) -> str:
    """A negated character class (the same spelling is valid GBNF and regex)."""
    escapes = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "[": "\\[", "]": "\\]"}
    return "[^" + "".join(escapes.get(c, c) for c in excluded) + "]"


@dataclass(frozen=True)
class CompletionLanguage:
    """What a served model may write after the prompt, in the forms engines take.

    ``gbnf``: llama.cpp's ``grammar`` field. ``regex``: vLLM's ``guided_regex`` /
    ``structured_outputs.regex``, TGI's ``{"type": "regex", "value": ...}``; it is anchored by the
    engines (a full match), and ``re.fullmatch`` reads it the same way.
    """

    gbnf: str
    regex: str


_TEXT_GBNF = f"text ::= [ \\t]* {_class(_TEXT_FIRST_EXCLUDED)} {_class(_TEXT_REST_EXCLUDED)}*"
_TEXT_REGEX = f"[ \\t]*{_class(_TEXT_FIRST_EXCLUDED)}{_class(_TEXT_REST_EXCLUDED)}*"


def completion_language(window: TimeWindow | None) -> CompletionLanguage:
    """The language of ``TIME "] " TEXT`` for ``window``; ``None``: the time is forced, ``" " TEXT``."""
    if window is None:
        return CompletionLanguage(gbnf=f'root ::= " " text\n{_TEXT_GBNF}\n', regex=" " + _TEXT_REGEX)
    sequences = [_merged(sequence) for sequence in _time_sequences(window)]
    alternatives = " |\n    ".join(_gbnf_sequence(sequence) for sequence in sequences)
    gbnf = f'root ::= time "] " text\ntime ::= {alternatives}\n{_TEXT_GBNF}\n'
    regex = "(?:" + "|".join(_regex_sequence(s) for s in sequences) + ")\\] " + _TEXT_REGEX
    return CompletionLanguage(gbnf=gbnf, regex=regex)
