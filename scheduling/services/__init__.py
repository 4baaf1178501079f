"""Writes of the reply loop: cancel, plan, wake, deliver, dispatch (one module per concern).

PostgreSQL is the single source of truth. Every transition out of ``pending`` is a write
conditional on ``state = 'pending'`` in the same transaction as its effect, and every
Celery message is a wake-up that may be lost or arrive twice:

* :func:`replies_cancel_pending` runs inside chat's ``message_post`` transaction (which holds
  the conversation row lock), so a person's message and the cancellation commit together;
* :func:`reply_plan` generates outside any transaction (seconds of model time), then locks
  the conversation row and inserts ``pending`` only if its trigger is still the newest
  person message; otherwise the row is recorded ``superseded``;
* :func:`reply_deliver`, :func:`reply_wake` and :func:`due_replies_dispatch` claim due rows
  with ``SELECT ... FOR UPDATE OF reply, conversation SKIP LOCKED`` and, in one transaction,
  create the chat messages (one INSERT per claimed batch; ``scheduled_reply_id`` is unique)
  and mark the rows ``sent`` (one UPDATE, conditional on ``pending``);
* after a delivered batch commits, the next bubble of each message is woken and one task fans
  out the follow-up plans (:mod:`.follow_ups`): :func:`follow_up_plan` asks the model whether
  and when the companion writes again, under the follow-up guards (stored ``pending`` or
  ``declined``), and a person's message cancels it like any pending reply;
* :func:`reply_wakes_queue` queues ETA wake-ups, one per short slot: each wake-up advances
  every reply whose time has come (typing, then delivery), so their number follows the clock,
  not the number of replies.

Lock order: the conversation row, then reply rows. ``message_post`` takes the conversation
lock before it cancels; delivery locks the reply and its conversation in one statement and
skips both when either is taken, so a person writing and a delivery never wait on each other
in a cycle: whichever locks the conversation first wins, the other sees the result.

Modules: :mod:`.cancellation`, :mod:`.drafting` (generate, guard, re-time, safety),
:mod:`.planning` (plan and store), :mod:`.delivery` (claim and deliver), :mod:`.wakeups`
(slots and typing), :mod:`.dispatch` (the dispatcher and lost-plan recovery), :mod:`.hooks`
(chat's hooks). None imports ``scheduling.tasks``: tasks are queued by name
(:mod:`scheduling.enqueue`).
"""

from scheduling.services.cancellation import replies_cancel_pending
from scheduling.services.delivery import reply_deliver
from scheduling.services.dispatch import DispatchReport, due_replies_dispatch
from scheduling.services.drafting import PlanRecord, ReplyDraft
from scheduling.services.errors import DeliveryConflict, ReplyInvariantViolated, ReplyPlanInvalid
from scheduling.services.follow_ups import follow_up_plans_fan_out, lost_follow_up_plans_requeue
from scheduling.services.hooks import on_person_message_committed, on_person_message_in_transaction
from scheduling.services.planning import follow_up_plan, reply_plan
from scheduling.services.wake_slots import reply_wakes_queue
from scheduling.services.wakeups import WakeOutcome, reply_wake

__all__ = [
    "DeliveryConflict",
    "DispatchReport",
    "PlanRecord",
    "ReplyDraft",
    "ReplyInvariantViolated",
    "ReplyPlanInvalid",
    "WakeOutcome",
    "due_replies_dispatch",
    "follow_up_plan",
    "follow_up_plans_fan_out",
    "lost_follow_up_plans_requeue",
    "on_person_message_committed",
    "on_person_message_in_transaction",
    "replies_cancel_pending",
    "reply_deliver",
    "reply_plan",
    "reply_wake",
    "reply_wakes_queue",
]
