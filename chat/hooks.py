"""How chat announces a person's new message to the rest of the system without importing it.

Other apps (scheduling) register callables in their ``AppConfig.ready()``:

* ``in_transaction`` hooks run inside the transaction that stores the message, so their
  writes (cancelling pending replies) commit or roll back together with it;
* ``after_commit`` hooks run once that transaction has committed (queue work there).

Both receive the stored :class:`chat.models.Message`. Chat calls :func:`announce_person_message`
from its ``message_post`` service; it never knows who listens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from django.db import transaction

if TYPE_CHECKING:
    from chat.models import Message

PersonMessageHook = Callable[["Message"], None]


@dataclass
class _PersonMessageHooks:
    in_transaction: list[PersonMessageHook] = field(default_factory=list)
    after_commit: list[PersonMessageHook] = field(default_factory=list)


_hooks = _PersonMessageHooks()


def register_person_message_hook(
    *, in_transaction: PersonMessageHook | None = None, after_commit: PersonMessageHook | None = None
) -> None:
    """Register callables for every new person message; registering the same one twice is a no-op."""
    if in_transaction is not None and in_transaction not in _hooks.in_transaction:
        _hooks.in_transaction.append(in_transaction)
    if after_commit is not None and after_commit not in _hooks.after_commit:
        _hooks.after_commit.append(after_commit)


def announce_person_message(message: Message) -> None:
    """Run the in-transaction hooks now and schedule the after-commit hooks.

    Must be called inside the ``transaction.atomic`` block that stored ``message``.
    """
    for hook in _hooks.in_transaction:
        hook(message)
    for hook in _hooks.after_commit:
        transaction.on_commit(partial(hook, message), robust=True)


def unregister_person_message_hook(
    *, in_transaction: PersonMessageHook | None = None, after_commit: PersonMessageHook | None = None
) -> None:
    """Remove callables registered earlier (tests use it to leave the registry as they found it)."""
    if in_transaction in _hooks.in_transaction:
        _hooks.in_transaction.remove(in_transaction)
    if after_commit in _hooks.after_commit:
        _hooks.after_commit.remove(after_commit)
