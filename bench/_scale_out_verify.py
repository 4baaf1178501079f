"""What ``bench/scale_out.py``'s clients saw against what the database holds, per conversation.

``lost``: a message stored in the conversation that its client never saw (ids, each once).
``duplicated``: a person message answered by more than one companion message, a
``scheduled_reply_id`` on two messages, a ``client_id`` stored twice in one conversation (a resend
after a reconnect that was stored again), or a client that saw two different companion ids for
one person message. ``unanswered``: a person message with no companion message in the database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from _scale_out_clients import Person


@dataclass(frozen=True)
class PhaseCheck:
    stored_person: int
    stored_companion: int
    lost: int
    duplicated_db: int
    duplicated_client: int
    unanswered: int
    companion_without_reply_row: int

    def plus(self, other: PhaseCheck) -> PhaseCheck:
        """Both checks' counts summed (the rounds of one load)."""
        return PhaseCheck(
            **{field.name: getattr(self, field.name) + getattr(other, field.name) for field in fields(self)}
        )

    def figures(self) -> dict[str, Any]:
        return {
            "stored_person": self.stored_person,
            "stored_companion": self.stored_companion,
            "lost": self.lost,
            "duplicated": self.duplicated_db + self.duplicated_client,
            "duplicated_db": self.duplicated_db,
            "duplicated_client": self.duplicated_client,
            "unanswered": self.unanswered,
            "companion_without_reply_row": self.companion_without_reply_row,
        }


def _repeats(counts: Counter[Any]) -> int:
    return sum(count - 1 for count in counts.values() if count > 1)


def check_phase(people: Sequence[Person]) -> PhaseCheck:
    """Compare every person's seen ids with its conversation's rows."""
    from chat.models import Message
    from scheduling.models import ScheduledReply

    conversation_ids = [person.conversation_id for person in people]
    seen_by_conversation = {person.conversation_id: person.seen for person in people}
    rows = list(
        Message.objects.filter(conversation_id__in=conversation_ids).values_list(
            "id", "conversation_id", "role", "client_id", "scheduled_reply_id"
        )
    )
    trigger_of_reply: dict[int, int | None] = dict(
        ScheduledReply.objects.filter(conversation_id__in=conversation_ids).values_list(
            "id", "trigger_message_id"
        )
    )
    person_rows = [row for row in rows if row[2] == Message.Role.PERSON]
    companion_rows = [row for row in rows if row[2] == Message.Role.COMPANION]
    # The person message each companion message answers, through its scheduled reply.
    trigger_of_message = {
        row[0]: trigger_of_reply.get(row[4]) for row in companion_rows if row[4] is not None
    }
    answers_per_trigger = Counter(trigger for trigger in trigger_of_message.values() if trigger is not None)
    duplicated_db = (
        _repeats(answers_per_trigger)
        + _repeats(Counter(row[4] for row in companion_rows if row[4] is not None))
        + _repeats(Counter((row[1], row[3]) for row in person_rows if row[3]))
    )
    duplicated_client = 0
    for person in people:
        seen_answers = Counter(
            trigger_of_message.get(message_id)
            for message_id in person.companion_ids
            if message_id in trigger_of_message
        )
        duplicated_client += _repeats(seen_answers)
    return PhaseCheck(
        stored_person=len(person_rows),
        stored_companion=len(companion_rows),
        lost=sum(1 for row in rows if row[0] not in seen_by_conversation[row[1]]),
        duplicated_db=duplicated_db,
        duplicated_client=duplicated_client,
        unanswered=sum(1 for row in person_rows if row[0] not in answers_per_trigger),
        companion_without_reply_row=sum(1 for row in companion_rows if row[0] not in trigger_of_message),
    )
