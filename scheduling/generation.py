"""The planner's view of the generator: a small ``ReplySource`` protocol and the production source.

Production uses :class:`companion.generator.ReplyGenerator` loaded from
``settings.GENERATOR_MODEL_DIR`` once per process (a Celery worker pays for loading the model
once, not per message). ``SCHEDULING_REPLY_SOURCE`` names the factory, so another source (a
remote model server, say) can be plugged in without touching the planner. Tests of the guard
rules and of the safety filter inject a scripted source; everything else uses a real model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol, cast

from django.utils.module_loading import import_string

from chat.models import Conversation, Message
from companion.generator import GenerationFailed
from scheduling import conf

if TYPE_CHECKING:
    from companion.generator import Dialogue, GeneratedReply, SamplingConfig

logger = logging.getLogger(__name__)


class ReplySource(Protocol):
    """What the planner needs from a generator (``ReplyGenerator`` satisfies it).

    ``max_bubbles``: how many consecutive messages the reply may hold (``GeneratedReply.more``);
    a source that writes one message only may ignore it.
    """

    def generate(
        self,
        dialogue: Dialogue,
        *,
        sampling: SamplingConfig | None = None,
        forced_at: datetime | None = None,
        max_delay: timedelta = ...,
        max_bubbles: int = ...,
    ) -> GeneratedReply: ...


class GeneratorUnavailable(GenerationFailed):
    """The generator could not be reached (a model server down or timing out after its retries).

    Unlike a completion that does not parse, asking again for an instant fallback would only wait
    on the same server: the plan ends ``failed`` at once, with this message as its reason.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="generator_unavailable")


_lock = threading.Lock()
_loaded: dict[str, ReplySource] = {}


def load_generator(model_dir: str) -> ReplySource:
    """``ReplyGenerator.load(model_dir)``, cached per process and directory."""
    with _lock:
        source = _loaded.get(model_dir)
        if source is None:
            from companion.generator import ReplyGenerator

            logger.info("loading the reply generator from %s", model_dir)
            source = ReplyGenerator.load(model_dir)
            _loaded[model_dir] = source
        return source


def default_reply_source() -> ReplySource:
    """The production source: the model under ``settings.GENERATOR_MODEL_DIR``."""
    return load_generator(str(conf.generator_model_dir()))


def reply_source() -> ReplySource:
    """The source named by ``SCHEDULING_REPLY_SOURCE``."""
    factory: Callable[[], ReplySource] = import_string(conf.setting("SCHEDULING_REPLY_SOURCE"))
    return factory()


def dialogue_for(*, conversation: Conversation, up_to_message_id: int) -> Dialogue:
    """The conversation as the generator sees it: persona, the person's attributes, recent turns.

    System messages are not part of the transcript grammar and are left out.
    """
    from companion.generator import Dialogue, Turn

    companion = conversation.companion
    limit = int(conf.setting("SCHEDULING_DIALOGUE_MESSAGES"))
    recent = list(
        Message.objects.filter(
            conversation=conversation,
            id__lte=up_to_message_id,
            role__in=[Message.Role.PERSON, Message.Role.COMPANION],
        )
        .order_by("-id")
        .values_list("role", "created_at", "text")[:limit]
    )
    recent.reverse()
    persona = " ".join(part for part in (companion.description, companion.speaking_style) if part)
    return Dialogue(
        # role__in above: only person and companion turns reach the transcript
        turns=tuple(
            Turn(role=cast(Literal["person", "companion"], role), at=created_at, text=text)
            for role, created_at, text in recent
        ),
        time_zone=conversation.time_zone,
        companion_name=companion.name,
        persona=persona,
        age_group=conversation.person_age_group or None,
    )
