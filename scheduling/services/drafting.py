"""Drafting one reply: generate, apply the guard rules, re-time the words, filter unsafe text.

Everything here runs outside any transaction (seconds of model time) and only produces a
:class:`ReplyDraft` and the :class:`PlanRecord` of what happened; storing it is planning's job.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chat.models import Conversation, Message
from companion.generator import Dialogue, GeneratedReply, SamplingConfig
from scheduling import conf, safety
from scheduling.generation import GeneratorUnavailable, ReplySource, dialogue_for
from scheduling.guard_rules import GuardSettings, apply_guard_rules
from scheduling.lexicon import complaint_phrases
from scheduling.selectors import guard_history

logger = logging.getLogger(__name__)


@dataclass
class PlanRecord:
    """What the plan did, stored on the row whatever the outcome."""

    attempts: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    safety_hits: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ReplyDraft:
    """A reply ready to store: its words, the model's proposed time and the final one after the guards."""

    text: str
    proposed_at: datetime | None
    final_at: datetime
    is_delayed: bool
    base_at: datetime


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _generate(
    source: ReplySource,
    dialogue: Dialogue,
    record: PlanRecord,
    *,
    purpose: str,
    max_delay: timedelta,
    forced_at: datetime | None = None,
    sampling: SamplingConfig | None = None,
) -> GeneratedReply | None:
    """One generation attempt, recorded; ``None`` when it failed (the reason is in the record)."""
    started = time.monotonic()
    entry: dict[str, Any] = {"purpose": purpose, "forced_at": _iso(forced_at)}
    reply: GeneratedReply | None = None
    unavailable: GeneratorUnavailable | None = None
    try:
        generated = source.generate(dialogue, sampling=sampling, forced_at=forced_at, max_delay=max_delay)
    except Exception as exc:  # a model bug must still leave a recorded outcome, never a stuck plan
        unavailable = exc if isinstance(exc, GeneratorUnavailable) else None
        logger.warning("reply generation (%s) failed: %s", purpose, exc, exc_info=True)
        entry.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        completion = getattr(exc, "completion", None)
        if completion:
            entry["completion"] = completion
    else:
        reply = generated
        entry.update(
            ok=True,
            at=_iso(generated.at),
            text=generated.text,
            completion=generated.completion,
            constrained=generated.constrained,
        )
    entry["seconds"] = round(time.monotonic() - started, 3)
    record.attempts.append(entry)
    if reply is None and unavailable is not None and purpose == "propose":
        # The same unreachable server would fail the instant fallback too: stop, recorded.
        raise unavailable
    return reply


def _regeneration_sampling(attempt: int) -> SamplingConfig:
    # Greedy decoding would write the rejected text again; a seeded sample keeps it reproducible.
    return SamplingConfig(
        temperature=float(conf.setting("SCHEDULING_REGENERATION_TEMPERATURE")), seed=attempt
    )


def reply_draft(
    *,
    source: ReplySource,
    conversation: Conversation,
    trigger: Message,
    now: datetime,
    record: PlanRecord,
) -> ReplyDraft | None:
    """Generate, guard, re-time and filter one reply; ``None`` when no reply could be produced.

    Raises :class:`GeneratorUnavailable` when the proposal could not reach the generator (its
    attempt is in ``record``).
    """
    companion = conversation.companion
    guard_settings = GuardSettings.from_companion(companion)
    dialogue = dialogue_for(conversation=conversation, up_to_message_id=trigger.pk)
    base_at = dialogue.last_at
    # The model may propose beyond the companion's maximum (the max_delay rule clamps it); the
    # generator's own limit is the transcript grammar's, never below the companion's.
    model_max = max(guard_settings.max_delay, timedelta(days=7))
    proposal = _generate(source, dialogue, record, purpose="propose", max_delay=model_max)

    if proposal is None:
        # Fall back to an instant reply written for "now" rather than leaving the person unanswered.
        forced = _generate(
            source, dialogue, record, purpose="fallback_instant", max_delay=model_max, forced_at=now
        )
        if forced is None:
            return None
        record.decisions.append(
            {
                "rule": "generation_fallback",
                "changed": True,
                "before_seconds": None,
                "after_seconds": 0.0,
                "reason": "the proposal failed; an instant reply was generated instead",
            }
        )
        text, proposed_at, outcome = forced.text, None, None
        final_at = now
    else:
        proposed_at = proposal.at.astimezone(UTC)  # the model answers in the conversation's zone
        outcome = apply_guard_rules(
            proposed_delay=proposal.at - base_at,
            settings=guard_settings,
            history=guard_history(
                conversation=conversation,
                up_to_message_id=trigger.pk,
                now=now,
                companion_turns=guard_settings.delay_ration_turns,
                since=guard_settings.complaint_cooldown,
            ),
            complaints=complaint_phrases(),
        )
        record.decisions.extend(decision.as_record() for decision in outcome.decisions)
        final_at = max(now, base_at) if outcome.is_instant else base_at + outcome.final_delay
        text = proposal.text
        # Within the same minute the proposal's words still fit (the transcript has minute resolution).
        if outcome.changed and abs(final_at - proposal.at) >= timedelta(minutes=1):
            # The words must fit the moment they are sent ("good morning" must not go out at 23:10).
            retimed = _generate(
                source, dialogue, record, purpose="guard_retime", max_delay=model_max, forced_at=final_at
            )
            if retimed is not None:
                text = retimed.text
            else:
                record.decisions.append(
                    {
                        "rule": "guard_retime",
                        "changed": False,
                        "before_seconds": None,
                        "after_seconds": None,
                        "reason": "regeneration for the new time failed; the proposal's text is kept",
                    }
                )

    text = _filter_unsafe(
        source=source,
        dialogue=dialogue,
        record=record,
        text=text,
        final_at=final_at,
        model_max=model_max,
        context_text=trigger.text,
    )
    return ReplyDraft(
        text=text,
        proposed_at=proposed_at,
        final_at=final_at,
        is_delayed=outcome is not None and not outcome.is_instant,
        base_at=base_at,
    )


def _filter_unsafe(
    *,
    source: ReplySource,
    dialogue: Dialogue,
    record: PlanRecord,
    text: str,
    final_at: datetime,
    model_max: timedelta,
    context_text: str,
) -> str:
    """Regenerate on a safety hit; after the allowed regenerations, the civil fallback."""
    allowed = int(conf.setting("SCHEDULING_SAFETY_MAX_REGENERATIONS"))
    for attempt in range(allowed + 1):
        verdict = safety.check_text(text)
        if verdict.is_safe:
            return text
        record.safety_hits.append({"attempt": attempt, "text": text, "reasons": list(verdict.reasons)})
        if attempt == allowed:
            break
        regenerated = _generate(
            source,
            dialogue,
            record,
            purpose="safety_regenerate",
            max_delay=model_max,
            forced_at=final_at,
            sampling=_regeneration_sampling(attempt + 1),
        )
        if regenerated is not None:
            text = regenerated.text
    fallback = safety.fallback_text(context_text=context_text)
    record.safety_hits.append({"attempt": allowed + 1, "text": fallback, "reasons": [], "fallback": True})
    return fallback
