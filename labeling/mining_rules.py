"""The mining rules: what a rule is and how the rules file (``labeling/data/delay_triggers.json``) reads.

A rule reads the messages of one speaker and matches them by regular expressions (``patterns``),
by sentence similarity to example phrases (``examples`` with a per-rule ``threshold``), or both.
Its ``kind`` says what else must hold for a match to be a hit (see :mod:`labeling.mining`):

* ``phrase``: nothing else; the matched turn is the suspected turn.
* ``kept_talking``: the companion's next turn came within its instant threshold (and, for a
  person's rule, at least ``companion_turns`` companion turns followed before the person spoke).
* ``unkept_plan``: the companion announced leaving and its next turn came within the threshold.
* ``loop``: at least ``min_matches`` instant turns of the speaker match (good-night loops).

``miss`` names the kind of missed delay the rule looks for (the labels' ``kind``), so the
mining report can group rules; it is documentation and grouping, never a condition.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "data" / "delay_triggers.json"

RuleKind = Literal["phrase", "kept_talking", "unkept_plan", "loop"]
Speaker = Literal["person", "companion"]
MISS_KINDS = ("person_left", "companion_left", "begged_stop", "companion_hurt", "goodnight_loop")
_KINDS = ("phrase", "kept_talking", "unkept_plan", "loop")


class MiningRulesError(ValueError):
    """The rules file is missing, malformed, or holds an invalid rule or pattern."""


@dataclass(frozen=True)
class MiningRule:
    name: str
    speaker: Speaker
    kind: RuleKind
    patterns: tuple[re.Pattern[str], ...]
    examples: tuple[str, ...] = ()
    threshold: float | None = None  # cosine similarity an example must reach
    miss: str | None = None
    min_matches: int = 2  # loop rules only
    companion_turns: int = 1  # kept_talking rules: companion turns in a row right after the match
    description: str = ""

    @property
    def is_semantic(self) -> bool:
        return bool(self.examples)

    def first_match(self, text: str) -> str | None:
        for pattern in self.patterns:
            match = pattern.search(text)
            if match:
                return match.group(0)
        return None


def _strings(raw: Any) -> bool:
    return isinstance(raw, list) and all(isinstance(item, str) and item.strip() for item in raw)


def _rule(raw: Any, index: int, path: Path, names: set[str]) -> MiningRule:
    name = raw.get("name") if isinstance(raw, dict) else None
    where = f"{path}, rule {name or index!r}"
    if not isinstance(raw, dict) or not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,64}", name):
        raise MiningRulesError(f"{where}: 'name' must be 1-64 characters of a-z, 0-9 and _.")
    if name in names:
        raise MiningRulesError(f"{where}: the name is used twice.")
    speaker = raw.get("speaker")
    if speaker not in ("person", "companion"):
        raise MiningRulesError(f"{where}: 'speaker' must be 'person' or 'companion'.")
    kind = raw.get("kind", "phrase")
    if kind not in _KINDS:
        raise MiningRulesError(f"{where}: 'kind' must be one of {', '.join(_KINDS)}.")
    if kind == "unkept_plan" and speaker != "companion":
        raise MiningRulesError(f"{where}: an 'unkept_plan' rule reads the companion's messages.")
    miss = raw.get("miss")
    if miss is not None and miss not in MISS_KINDS:
        raise MiningRulesError(f"{where}: 'miss' must be one of {', '.join(MISS_KINDS)}.")
    patterns = raw.get("patterns", [])
    examples = raw.get("examples", [])
    if not _strings(patterns) or not _strings(examples) or not (patterns or examples):
        raise MiningRulesError(
            f"{where}: give 'patterns' (regular expressions) and/or 'examples' (phrases), "
            "each a list of non-empty strings."
        )
    threshold = raw.get("threshold")
    if examples and (
        not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0 < threshold <= 1
    ):
        raise MiningRulesError(f"{where}: 'examples' need a 'threshold' between 0 and 1 (cosine similarity).")
    min_matches = raw.get("min_matches", 2)
    if not isinstance(min_matches, int) or isinstance(min_matches, bool) or min_matches < 1:
        raise MiningRulesError(f"{where}: 'min_matches' must be a whole number >= 1.")
    companion_turns = raw.get("companion_turns", 1)
    if not isinstance(companion_turns, int) or isinstance(companion_turns, bool) or companion_turns < 1:
        raise MiningRulesError(f"{where}: 'companion_turns' must be a whole number >= 1.")
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise MiningRulesError(f"{where}: bad pattern {pattern!r}: {exc}") from exc
    return MiningRule(
        name=name,
        speaker=speaker,
        kind=kind,
        patterns=tuple(compiled),
        examples=tuple(examples),
        threshold=float(threshold) if examples and threshold is not None else None,
        miss=miss,
        min_matches=min_matches,
        companion_turns=companion_turns,
        description=str(raw.get("description", "")),
    )


def load_rules(path: Path | str = DEFAULT_RULES_FILE) -> list[MiningRule]:
    """Read and validate the rules file; every problem names the file and the rule."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MiningRulesError(f"Rules file {path} does not exist.") from exc
    except json.JSONDecodeError as exc:
        raise MiningRulesError(f"Rules file {path} is not valid JSON: {exc}") from exc
    raw_rules = document.get("rules") if isinstance(document, dict) else None
    if not isinstance(raw_rules, list) or not raw_rules:
        raise MiningRulesError(f"Rules file {path} needs a non-empty 'rules' list.")
    rules: list[MiningRule] = []
    for index, raw in enumerate(raw_rules):
        rules.append(_rule(raw, index, path, {rule.name for rule in rules}))
    return rules


def regex_only(rules: list[MiningRule]) -> list[MiningRule]:
    """The same rules without their example phrases (rules that had only examples drop out)."""
    return [replace(rule, examples=(), threshold=None) for rule in rules if rule.patterns]
