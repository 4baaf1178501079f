"""A labeled conversation as the generator sees it: the turns up to a cut, in the one grammar's types.

Export (training data) and the review page (previews) both render labels through these.
"""

from __future__ import annotations

from chat.models import Conversation, Message
from companion.generator import Dialogue, Turn
from labeling.models import DelayLabel, LabelIncomplete

DEFAULT_CONTEXT_TURNS = 12


def dialogue_until(
    *, conversation: Conversation, last_turn: Message, context_turns: int = DEFAULT_CONTEXT_TURNS
) -> Dialogue:
    """The conversation's last ``context_turns`` turns up to and including ``last_turn``."""
    kept = list(
        Message.objects.filter(
            conversation=conversation,
            role__in=[Message.Role.PERSON, Message.Role.COMPANION],
            created_at__lte=last_turn.created_at,
        )
        .exclude(created_at=last_turn.created_at, id__gt=last_turn.pk)
        .order_by("-created_at", "-id")[:context_turns]
    )
    kept.reverse()
    return Dialogue(
        turns=tuple(Turn(role=m.role, at=m.created_at, text=m.text) for m in kept),  # type: ignore[arg-type]
        time_zone=conversation.time_zone,
        companion_name=conversation.companion.name,
        persona=conversation.companion.description,
        age_group=conversation.person_age_group,
    )


def label_dialogue(label: DelayLabel, *, context_turns: int = DEFAULT_CONTEXT_TURNS) -> Dialogue:
    """The conversation as the annotator cut it: the turns up to the cut (later ones are left out)."""
    if label.cut_after is None:  # ruled out for submitted and approved labels by a database constraint
        raise LabelIncomplete(f"Label {label.pk} has no cut turn.")
    return dialogue_until(
        conversation=label.task.conversation, last_turn=label.cut_after, context_turns=context_turns
    )
