"""The reply loop's settings, each read with a default so that the project settings stay optional.

``companion/settings.py`` reads each from the environment (unset: ``None``, and then the default
below applies, as in any settings module that omits one). Read them through these functions,
never at import time, so ``override_settings`` in tests and environment changes in workers take
effect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

_DEFAULTS: dict[str, Any] = {
    # Compresses every reply delay and typing lead (0.01: 30 minutes pass in 18 seconds).
    "REPLY_TIME_SCALE": 1.0,
    # Dotted path of a zero-argument callable returning the ReplySource used by the planner.
    "SCHEDULING_REPLY_SOURCE": "scheduling.generation.default_reply_source",
    # A burst of person messages within this many seconds gets one answer (real seconds, unscaled).
    "SCHEDULING_PLAN_DEBOUNCE_SECONDS": 2.0,
    # Seconds after a companion message is delivered before its follow-up is planned (times
    # REPLY_TIME_SCALE): a person who writes back within them costs no model time.
    "SCHEDULING_FOLLOW_UP_PLAN_DELAY_SECONDS": 30.0,
    # How many recent messages the generator sees.
    "SCHEDULING_DIALOGUE_MESSAGES": 20,
    # Every this many seconds beat runs the dispatcher, the recovery path for lost wake-ups.
    "SCHEDULING_DISPATCH_INTERVAL_SECONDS": 5,
    # Replies whose typing starts within this many seconds get an ETA wake-up task.
    "SCHEDULING_ETA_HORIZON_SECONDS": 60,
    # ETA wake-ups are coalesced into slots this long (times REPLY_TIME_SCALE, like the typing lead
    # it must stay well under): one task per slot advances every reply whose time came in it, so a
    # reply waits at most this much longer and 10k replies in a minute need about 20 tasks/s.
    "SCHEDULING_WAKE_RESOLUTION_SECONDS": 0.1,
    # Rows claimed per delivery transaction (dispatcher and wake-ups).
    "SCHEDULING_DISPATCH_BATCH_SIZE": 200,
    # A dispatcher run stops claiming after this many seconds, leaving the rest to the next run.
    "SCHEDULING_DISPATCH_TIME_BUDGET_SECONDS": 30.0,
    # Typing indicator lead before a message (before REPLY_TIME_SCALE): min + per char, capped.
    "SCHEDULING_TYPING_MIN_SECONDS": 1.0,
    "SCHEDULING_TYPING_SECONDS_PER_CHAR": 0.08,
    "SCHEDULING_TYPING_MAX_SECONDS": 8.0,
    # Safety filter: regenerations after a hit before the fallback text is used.
    "SCHEDULING_SAFETY_MAX_REGENERATIONS": 2,
    # Dotted path of ``callable(text: str) -> str | None`` (a reason when the text is unsafe), or "".
    "SCHEDULING_SAFETY_CLASSIFIER": "",
    # The civil reply used when every regeneration was unsafe, per detected script.
    "SCHEDULING_SAFETY_FALLBACK_TEXT": {
        "en": "Hmm, let's talk about something else. How is your day going?",
        "ko": "음, 우리 다른 얘기 하자. 오늘 하루는 어땠어?",
    },
    # The remote reply source (scheduling.remote_generation): the serving engine's base URL, which
    # engine it is (llamacpp, vllm, vllm-guided, tgi), the model name it serves, its API key, the
    # per-request timeout, retries with exponential backoff on timeouts / connection errors / 5xx,
    # the tokenizer directory (default GENERATOR_MODEL_DIR; "-" sends text) and the context size
    # (default: the tokenizer directory's config.json).
    "GENERATOR_SERVER_URL": "",
    "GENERATOR_SERVER_ENGINE": "llamacpp",
    "GENERATOR_SERVER_MODEL": "companion",
    "GENERATOR_SERVER_API_KEY": "",
    "GENERATOR_SERVER_TIMEOUT_SECONDS": 30.0,
    "GENERATOR_SERVER_RETRIES": 2,
    "GENERATOR_SERVER_BACKOFF_SECONDS": 0.25,
    "GENERATOR_SERVER_TOKENIZER_DIR": "",
    "GENERATOR_SERVER_CONTEXT_TOKENS": None,
    # Sampling temperature for regenerations (greedy decoding would repeat the rejected text).
    "SCHEDULING_REGENERATION_TEMPERATURE": 0.9,
}


def setting(name: str) -> Any:
    """The project's value of ``name`` or this app's default (also when the project's is None)."""
    value = getattr(settings, name, None)
    return _DEFAULTS[name] if value is None else value


def time_scale() -> float:
    scale = float(setting("REPLY_TIME_SCALE"))
    if scale <= 0:
        raise ValueError(f"REPLY_TIME_SCALE must be > 0, not {scale}")
    return scale


def wake_resolution() -> float:
    """Seconds of real time per wake-up slot: the setting scaled like every delay and typing lead."""
    resolution = float(setting("SCHEDULING_WAKE_RESOLUTION_SECONDS"))
    if resolution <= 0:
        raise ValueError(f"SCHEDULING_WAKE_RESOLUTION_SECONDS must be > 0, not {resolution}")
    return resolution * time_scale()


def generator_model_dir() -> Path:
    return Path(getattr(settings, "GENERATOR_MODEL_DIR", Path(settings.BASE_DIR) / "var/models/default"))
