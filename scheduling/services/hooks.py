"""Chat's hooks into the reply loop, registered in ``SchedulingConfig.ready`` (chat never imports us)."""

from __future__ import annotations

from chat.models import Message
from scheduling import conf
from scheduling.enqueue import plan_reply_enqueue
from scheduling.services.cancellation import replies_cancel_pending


def on_person_message_in_transaction(message: Message) -> None:
    """Chat's in-transaction hook: the new message cancels every pending reply with it."""
    replies_cancel_pending(conversation_id=message.conversation_id, cause_message_id=message.pk)


def on_person_message_committed(message: Message) -> None:
    """Chat's after-commit hook: plan after the debounce, so a burst is answered once, from all of it."""
    plan_reply_enqueue(
        conversation_id=message.conversation_id,
        trigger_message_id=message.pk,
        countdown=float(conf.setting("SCHEDULING_PLAN_DEBOUNCE_SECONDS")),
    )
