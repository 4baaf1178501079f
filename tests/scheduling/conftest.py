"""Fixtures of the reply-loop tests: a real tiny generator model, a scripted source, helpers.

The scripted source is a stand-in for the model boundary ONLY where a test needs an exact
proposal (the guard rules, the safety filter, the generation-failure fallbacks): a real model's
sampled time and words cannot be dictated. Everything else, and every end-to-end test, uses a
real model built once per run with ``build_default_model(tmp, preset="tiny")``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from chat.models import Conversation, Message
from chat.services import message_post
from companion.generator import Dialogue, GeneratedReply
from scheduling.models import ScheduledReply
from tests.factories import MessageFactory


def pending_reply(
    conversation: Conversation,
    *,
    due_at: datetime,
    typing_at: datetime | None = None,
    text: str = "back~",
    trigger_text: str = "I'm going to eat now",
) -> ScheduledReply:
    """A planned reply row as the planner stores it (typing 2 s before ``due_at`` unless given)."""
    trigger = MessageFactory.create(conversation=conversation, text=trigger_text)
    return ScheduledReply.objects.create(
        conversation=conversation,
        trigger_message=trigger,
        state=ScheduledReply.State.PENDING,
        text=text,
        final_at=due_at,
        due_at=due_at,
        typing_at=typing_at or due_at - timedelta(seconds=2),
        is_delayed=True,
    )


@pytest.fixture
def real_generator(settings, tiny_model_dir):
    """Point the planner's default source at the tiny model (loaded once per process)."""
    settings.GENERATOR_MODEL_DIR = tiny_model_dir
    return tiny_model_dir


@dataclass(frozen=True)
class Step:
    """One scripted answer: a delay after the last turn (ignored when the time is forced), or an error."""

    text: str = ""
    delay: timedelta = timedelta(0)
    error: Exception | None = None
    # Further bubbles: (delay after the bubble before, text); only as many as max_bubbles allows.
    more: tuple[tuple[timedelta, str], ...] = ()


@dataclass(frozen=True)
class Call:
    forced_at: datetime | None
    sampling: Any
    last_at: datetime
    max_bubbles: int = 1


@dataclass
class ScriptedSource:
    """A ReplySource that answers from a script, in order, and records how it was called."""

    steps: list[Step]
    calls: list[Call] = field(default_factory=list)

    def generate(
        self,
        dialogue: Dialogue,
        *,
        sampling: Any = None,
        forced_at: datetime | None = None,
        max_delay: timedelta = timedelta(days=7),
        max_bubbles: int = 1,
    ) -> GeneratedReply:
        self.calls.append(
            Call(forced_at=forced_at, sampling=sampling, last_at=dialogue.last_at, max_bubbles=max_bubbles)
        )
        if not self.steps:
            raise AssertionError("the scripted source ran out of steps")
        step = self.steps.pop(0)
        if step.error is not None:
            raise step.error
        at = forced_at if forced_at is not None else dialogue.last_at + step.delay
        local = at.astimezone(ZoneInfo(dialogue.time_zone))
        more = []
        previous = local
        for gap, text in step.more[: max_bubbles - 1]:
            previous = previous + gap
            more.append((previous, text))
        return GeneratedReply(
            at=local,
            text=step.text,
            completion=f"{local:%H:%M}] {step.text}",
            constrained=True,
            more=tuple(more),
        )


def post(conversation: Conversation, text: str, *, client_id: str | None = None) -> Message:
    """The person's message through chat's public service (which runs scheduling's hooks)."""
    message, created = message_post(
        conversation=conversation,
        author=conversation.person,
        text=text,
        client_id=client_id or f"c-{time.monotonic_ns()}",
    )
    assert created is True
    return message


def delivered_messages(reply: ScheduledReply) -> list[Message]:
    return list(Message.objects.filter(scheduled_reply_id=reply.pk))


def sent_once_or_cancelled(reply: ScheduledReply) -> str:
    """Assert how a race round ended: sent with exactly its one message, or cancelled with none.

    Returns the reply's state (re-read from the database) for the caller's tally.
    """
    reply.refresh_from_db()
    messages = delivered_messages(reply)
    if reply.state == ScheduledReply.State.SENT:
        assert [m.pk for m in messages] == [reply.message_id]
    else:
        assert (reply.state, messages) == (ScheduledReply.State.CANCELLED, [])
    return reply.state


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll a real worker's asynchronous effect with a bounded deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def run_in_threads(*targets: Callable[[], Any]) -> list[BaseException]:
    """Run callables in threads released together; return the exceptions they raised."""
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def runner(target: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            target()
        except BaseException as exc:  # collected and asserted on by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.fixture
def purged_broker() -> Iterator[None]:
    """An empty Celery queue before and after: other tests' plan wake-ups must not leak into ours.

    The cache goes too: it marks the wake-up slots already queued (``wake_slots``), and a mark
    left by an earlier run on a long-lived Redis would stop a wake-up this test expects."""
    from django.core.cache import cache

    from companion.celery import app

    app.control.purge()
    cache.clear()
    yield
    app.control.purge()
    cache.clear()


def queued_wakeups() -> list[tuple[str, list[Any], datetime]]:
    """Take every message waiting in the broker's ``delivery`` queue: (task, args, eta), by eta."""
    return queued_tasks("delivery")


def queued_tasks(queue_name: str) -> list[tuple[str, list[Any], datetime]]:
    """Take every message waiting in the broker's ``queue_name`` queue: (task, args, eta), by eta."""
    from companion.celery import app

    taken = []
    with app.connection_for_read() as broker, broker.SimpleQueue(queue_name) as queue:
        while True:
            try:
                message = queue.get(block=False)
            except queue.Empty:
                break
            args, _, _ = message.decode()
            taken.append((message.headers["task"], args, datetime.fromisoformat(message.headers["eta"])))
            message.ack()
    return sorted(taken, key=lambda wakeup: wakeup[2])
