"""The safety filter every reply passes before it is stored.

Two layers: the bilingual lexicon of slurs and hate expressions (``data/safety_lexicon.txt``)
and an optional classifier hook (``SCHEDULING_SAFETY_CLASSIFIER``: the dotted path of
``callable(text) -> str | None`` returning a reason when the text is unsafe). A text companion,
unlike a voice one, can take back what it was about to say: the planner regenerates on a hit,
and after ``SCHEDULING_SAFETY_MAX_REGENERATIONS`` hits sends a civil fallback instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils.module_loading import import_string

from scheduling import conf
from scheduling.lexicon import contains_hangul, unsafe_phrases

SafetyClassifier = Callable[[str], "str | None"]


@dataclass(frozen=True)
class SafetyVerdict:
    reasons: tuple[str, ...]

    @property
    def is_safe(self) -> bool:
        return not self.reasons


def configured_classifier() -> SafetyClassifier | None:
    path = conf.setting("SCHEDULING_SAFETY_CLASSIFIER")
    return import_string(path) if path else None


def check_text(text: str) -> SafetyVerdict:
    """Lexicon hits as ``lexicon:<phrase>``, then the classifier's reason as ``classifier:<reason>``."""
    reasons = [f"lexicon:{phrase}" for phrase in unsafe_phrases().matches(text)]
    classifier = configured_classifier()
    if classifier is not None:
        verdict = classifier(text)
        if verdict:
            reasons.append(f"classifier:{verdict}")
    return SafetyVerdict(reasons=tuple(reasons))


def fallback_text(*, context_text: str) -> str:
    """The civil reply, in Korean when the person writes Korean, else in English."""
    texts: dict[str, str] = conf.setting("SCHEDULING_SAFETY_FALLBACK_TEXT")
    return texts["ko"] if contains_hangul(context_text) else texts["en"]
