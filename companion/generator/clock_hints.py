"""Clock hints: the last turn's clock digits, offered beside the reply's own time tokens.

An instant reply writes the last turn's clock again (``07:25`` after ``[07:25]``); a delayed one
writes that clock plus the delay. Learning to find the right digits of the previous line through
attention is the part of the task a small model learns least reliably: one build copies exactly,
the next one, identical but for float rounding, writes ``07:52`` after ``07:25`` (a 27-minute
"delay") for a third of the instant messages. A clock hint takes the search away: at the input
position whose next character is clock character ``k`` of the reply (``H``, ``H``, ``M``, ``M``;
the colon needs none), a learned embedding of the last turn's character ``k`` is added. Copying
becomes a mapping at one position, and a delay becomes arithmetic on digits the model already has.

The transcript is unchanged: hints are an input feature of our conditioned model (next to the
sentence vectors, saved in the same file, see ``conditioning.py``), never text. Pure Python.
"""

from __future__ import annotations

import re

__all__ = ["HINT_ROWS", "NO_HINT", "hint_row", "last_clock"]

# The clock characters that get a hint (index into "HH:MM") and their block of ten rows.
_SLOTS = {0: 0, 1: 1, 3: 2, 4: 3}
HINT_ROWS = 10 * len(_SLOTS)
NO_HINT = -1
_TURN_CLOCK = re.compile(r"^\[[^\]\n]*\] \[(?:\+[0-9]+d )?([0-9]{2}):([0-9]{2})\] ", re.MULTILINE)


def hint_row(written: str, prev_clock: int) -> int:
    """The hint for the position that follows ``written``, the reply's TIME so far after its ``[``.

    ``prev_clock`` is the last turn's local clock in minutes of the day. A ``+Nd `` day count gets
    no hint; its clock does, counted from the space. Past the time, no hint (``NO_HINT``).
    """
    if written.startswith("+"):
        space = written.find(" ")
        if space < 0:
            return NO_HINT
        written = written[space + 1 :]
    slot = _SLOTS.get(len(written))
    if slot is None or not all(character.isdigit() or character == ":" for character in written):
        return NO_HINT
    digits = f"{prev_clock // 60:02d}:{prev_clock % 60:02d}"
    return slot * 10 + int(digits[len(written)])


def last_clock(prompt: str) -> int | None:
    """The clock (minutes of the day) of the last turn line of a rendered prompt; None if none."""
    matches = list(_TURN_CLOCK.finditer(prompt))
    if not matches:
        return None
    return int(matches[-1].group(1)) * 60 + int(matches[-1].group(2))
