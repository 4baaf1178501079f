"""Drafting one reply or follow-up: generate, apply the guard rules, re-time the words, filter unsafe text.

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
from companion.generator.transcript import zone
from scheduling import conf, safety
from scheduling.generation import GeneratorUnavailable, ReplySource, dialogue_for
from scheduling.guard_rules import (
    FollowUpSettings,
    GuardSettings,
    QuietHours,
    apply_follow_up_rules,
    apply_guard_rules,
    follow_up_precheck,
    quiet_hours_rule,
)
from scheduling.lexicon import complaint_phrases, leave_alone_phrases, time_request_phrases
from scheduling.selectors import follow_up_history, guard_history

logger = logging.getLogger(__name__)


@dataclass
class PlanRecord:
    """What the plan did, stored on the row whatever the outcome."""

    attempts: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    safety_hits: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ReplyDraft:
    """A reply ready to store: its words, the model's proposed time and the final one after the guards.

    ``more`` are the further bubbles of the reply, ``(final_at, text)`` in order (UTC), each at or
    after the one before it.
    """

    text: str
    proposed_at: datetime | None
    final_at: datetime
    is_delayed: bool
    base_at: datetime
    more: tuple[tuple[datetime, str], ...] = ()


@dataclass(frozen=True)
class FollowUpDeclined:
    """The follow-up guards decided against writing first (the decisions are in the record)."""

    reason: str


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
    max_bubbles: int = 1,
) -> GeneratedReply | None:
    """One generation attempt, recorded; ``None`` when it failed (the reason is in the record)."""
    started = time.monotonic()
    entry: dict[str, Any] = {"purpose": purpose, "forced_at": _iso(forced_at)}
    reply: GeneratedReply | None = None
    unavailable: GeneratorUnavailable | None = None
    try:
        generated = source.generate(
            dialogue, sampling=sampling, forced_at=forced_at, max_delay=max_delay, max_bubbles=max_bubbles
        )
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
        if generated.more:
            entry["more"] = [{"at": _iso(at), "text": text} for at, text in generated.more]
    entry["seconds"] = round(time.monotonic() - started, 3)
    record.attempts.append(entry)
    if reply is None and unavailable is not None and purpose in ("propose", "follow_up"):
        # The same unreachable server would fail the instant fallback too: stop, recorded.
        raise unavailable
    return reply


def _regeneration_sampling(attempt: int) -> SamplingConfig:
    # Greedy decoding would write the rejected text again; a seeded sample keeps it reproducible.
    return SamplingConfig(
        temperature=float(conf.setting("SCHEDULING_REGENERATION_TEMPERATURE")), seed=attempt
    )


def _asked_for_time(dialogue: Dialogue) -> bool:
    """Whether the person's last message asks to be written to at a time ("wake me at 7")."""
    person = [turn for turn in dialogue.turns if turn.role == "person"]
    return bool(person) and bool(time_request_phrases().matches(person[-1].text))


def _bubbles_at(chosen: GeneratedReply, final_at: datetime) -> tuple[tuple[datetime, str], ...]:
    """The chosen generation's further bubbles, moved with the first one to ``final_at`` (UTC)."""
    shift = final_at - chosen.at.astimezone(UTC)
    return tuple((at.astimezone(UTC) + shift, text) for at, text in chosen.more)


def _retimed(
    *,
    source: ReplySource,
    dialogue: Dialogue,
    record: PlanRecord,
    chosen: GeneratedReply,
    final_at: datetime,
    model_max: timedelta,
    max_bubbles: int,
) -> GeneratedReply:
    """The words for a time the guards moved; the proposal's when regeneration fails (recorded)."""
    # Within the same minute the proposal's words still fit (the transcript has minute resolution).
    if abs(final_at - chosen.at) < timedelta(minutes=1):
        return chosen
    # The words must fit the moment they are sent ("good morning" must not go out at 23:10).
    retimed = _generate(
        source,
        dialogue,
        record,
        purpose="guard_retime",
        max_delay=model_max,
        forced_at=final_at,
        max_bubbles=max_bubbles,
    )
    if retimed is not None:
        return retimed
    record.decisions.append(
        {
            "rule": "guard_retime",
            "changed": False,
            "before_seconds": None,
            "after_seconds": None,
            "reason": "regeneration for the new time failed; the proposal's text is kept",
        }
    )
    return chosen


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
    max_bubbles = int(companion.max_bubbles)
    dialogue = dialogue_for(conversation=conversation, up_to_message_id=trigger.pk)
    base_at = dialogue.last_at
    # The model may propose beyond the companion's maximum (the max_delay rule clamps it); the
    # generator's own limit is the transcript grammar's, never below the companion's.
    model_max = max(guard_settings.max_delay, timedelta(days=7))
    proposal = _generate(
        source, dialogue, record, purpose="propose", max_delay=model_max, max_bubbles=max_bubbles
    )

    if proposal is None:
        # Fall back to an instant reply written for "now" rather than leaving the person unanswered.
        forced = _generate(
            source,
            dialogue,
            record,
            purpose="fallback_instant",
            max_delay=model_max,
            forced_at=now,
            max_bubbles=max_bubbles,
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
        chosen, proposed_at, outcome = forced, None, None
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
        if not outcome.is_instant:
            # A delayed answer is the companion writing first, as far as the person can tell.
            local = final_at.astimezone(zone(dialogue.time_zone))
            moved, decision = quiet_hours_rule(
                local,
                QuietHours.from_companion(companion),
                asked_for_time=_asked_for_time(dialogue),
            )
            record.decisions.append(decision.as_record())
            final_at = moved.astimezone(UTC)
        chosen = proposal

    return _finished(
        source=source,
        dialogue=dialogue,
        record=record,
        chosen=chosen,
        final_at=final_at,
        model_max=model_max,
        max_bubbles=max_bubbles,
        context_text=trigger.text,
        proposed_at=proposed_at,
        is_delayed=outcome is not None and not outcome.is_instant,
        retime=proposal is not None,
    )


def _finished(
    *,
    source: ReplySource,
    dialogue: Dialogue,
    record: PlanRecord,
    chosen: GeneratedReply,
    final_at: datetime,
    model_max: timedelta,
    max_bubbles: int,
    context_text: str,
    proposed_at: datetime | None,
    is_delayed: bool,
    retime: bool,
) -> ReplyDraft:
    """The draft of a decided time: the words re-timed when the guards moved it, then filtered."""
    if retime:
        chosen = _retimed(
            source=source,
            dialogue=dialogue,
            record=record,
            chosen=chosen,
            final_at=final_at,
            model_max=model_max,
            max_bubbles=max_bubbles,
        )
    text, more = _filter_unsafe(
        source=source,
        dialogue=dialogue,
        record=record,
        chosen=chosen,
        final_at=final_at,
        model_max=model_max,
        context_text=context_text,
        max_bubbles=max_bubbles,
    )
    return ReplyDraft(
        text=text,
        proposed_at=proposed_at,
        final_at=final_at,
        is_delayed=is_delayed,
        base_at=dialogue.last_at,
        more=more,
    )


def follow_up_draft(
    *,
    source: ReplySource,
    conversation: Conversation,
    trigger: Message,
    now: datetime,
    record: PlanRecord,
) -> ReplyDraft | FollowUpDeclined | None:
    """Decide whether and when the companion writes again after its message ``trigger``.

    The guards that need no model run first (a declined follow-up costs no model time); then the
    model proposes the next companion turn of the transcript that ends with ``trigger``, and the
    follow-up guards judge its time. ``None`` when generation failed; raises
    :class:`GeneratorUnavailable` like :func:`reply_draft`.
    """
    companion = conversation.companion
    settings = FollowUpSettings.from_companion(companion)
    history = follow_up_history(conversation=conversation, now=now)
    declined = follow_up_precheck(settings, history, leave_alone_phrases())
    if declined is not None:
        record.decisions.extend(decision.as_record() for decision in declined.decisions)
        return FollowUpDeclined(declined.decisions[-1].reason)
    max_bubbles = int(companion.max_bubbles)
    dialogue = dialogue_for(conversation=conversation, up_to_message_id=trigger.pk)
    base_at = dialogue.last_at
    model_max = max(timedelta(minutes=companion.max_delay_minutes), timedelta(days=7))
    proposal = _generate(
        source, dialogue, record, purpose="follow_up", max_delay=model_max, max_bubbles=max_bubbles
    )
    if proposal is None:
        return None  # no fallback: a follow-up nobody asked for is better missed than forced
    tz = zone(dialogue.time_zone)
    outcome = apply_follow_up_rules(
        base_local=base_at.astimezone(tz),
        proposed_local=proposal.at.astimezone(tz),
        settings=settings,
        history=history,
        asked_for_time=_asked_for_time(dialogue),
    )
    record.decisions.extend(decision.as_record() for decision in outcome.decisions)
    if outcome.at is None:
        return FollowUpDeclined(outcome.decisions[-1].reason)
    return _finished(
        source=source,
        dialogue=dialogue,
        record=record,
        chosen=proposal,
        final_at=max(outcome.at.astimezone(UTC), now),
        model_max=model_max,
        max_bubbles=max_bubbles,
        context_text=trigger.text,
        proposed_at=proposal.at.astimezone(UTC),
        is_delayed=True,
        retime=True,
    )


def _filter_unsafe(
    *,
    source: ReplySource,
    dialogue: Dialogue,
    record: PlanRecord,
    chosen: GeneratedReply,
    final_at: datetime,
    model_max: timedelta,
    context_text: str,
    max_bubbles: int,
) -> tuple[str, tuple[tuple[datetime, str], ...]]:
    """Regenerate on a safety hit in any bubble; after the allowed regenerations, the civil fallback.

    Returns the first bubble's text and the further bubbles (``final_at``-relative, UTC).
    """
    allowed = int(conf.setting("SCHEDULING_SAFETY_MAX_REGENERATIONS"))
    for attempt in range(allowed + 1):
        verdicts = [(text, safety.check_text(text)) for text in (chosen.text, *(t for _, t in chosen.more))]
        unsafe = [text for text, verdict in verdicts if not verdict.is_safe]
        reasons = [reason for _, verdict in verdicts for reason in verdict.reasons]
        if not unsafe:
            return chosen.text, _bubbles_at(chosen, final_at)
        record.safety_hits.append({"attempt": attempt, "text": " / ".join(unsafe), "reasons": reasons})
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
            max_bubbles=max_bubbles,
        )
        if regenerated is not None:
            chosen = regenerated
    fallback = safety.fallback_text(context_text=context_text)
    record.safety_hits.append({"attempt": allowed + 1, "text": fallback, "reasons": [], "fallback": True})
    return fallback, ()
