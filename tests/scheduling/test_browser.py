"""End to end in the browser chat page: a real tiny model in a real worker, REPLY_TIME_SCALE=0.01.

"I'm going to eat now" gets a read receipt and no instant answer; writing again before the
planned reply arrives cancels it; the answer to both then comes later, announced by typing.

About the model: the tiny preset (what tests can build in about a minute) does delay this
message, by most of a day (21 h 36 min, "I'm back! tired…", when last checked), and delays most
other messages too (36 min to a day): it delays, but without really understanding why. The
companion here has ``max_delay_minutes = 60`` so the max-delay guard clamps that proposal to an
hour: 36 s at scale 0.01, counted from the person's message, which leaves room for the plan
itself (debounce, model load, two generations: 5 to 15 s on 2 busy cores).
"""

from __future__ import annotations

import pytest

from chat.models import Conversation
from scheduling.models import ScheduledReply
from tests.factories import CompanionFactory, UserFactory
from tests.scheduling.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow]
State = ScheduledReply.State

# Records, in page time, when the typing indicator is shown and when companion messages appear.
RECORD_EVENTS = """
() => {
  window.__seen = [];
  const typing = document.getElementById("typing-indicator");
  new MutationObserver(() => {
    if (!typing.hidden) window.__seen.push(["typing", performance.now()]);
  }).observe(typing, { attributes: true, attributeFilter: ["hidden"] });
  new MutationObserver((changes) => {
    for (const change of changes) for (const node of change.addedNodes) {
      if (node.dataset && node.dataset.role === "companion") {
        window.__seen.push(["message", performance.now()]);
      }
    }
  }).observe(document.getElementById("messages"), { childList: true });
}
"""


def send(page, text: str) -> None:
    page.fill("#message-input", text)
    page.click("#send")


def reply_for(conversation: Conversation, text: str) -> ScheduledReply | None:
    """The planned (not superseded) reply to the person's message ``text``, once there is one."""
    return (
        ScheduledReply.objects.filter(conversation=conversation, trigger_message__text=text)
        .exclude(state=State.SUPERSEDED)
        .first()
    )


@pytest.mark.django_db(transaction=True)
def test_eat_now_is_read_not_answered_at_once_and_writing_again_cancels_the_planned_reply(
    live_asgi_server, browser_page, start_celery_worker, tiny_model_dir, purged_broker
):
    # given: a person, the one companion, a worker with the real tiny model and compressed time
    person = UserFactory(username="mina")
    companion = CompanionFactory(slug="luda", name="Luda", max_delay_minutes=60)
    conversation = Conversation.objects.create(person=person, companion=companion, time_zone="Asia/Seoul")
    start_celery_worker(extra_env={"GENERATOR_MODEL_DIR": str(tiny_model_dir), "REPLY_TIME_SCALE": "0.01"})
    page = browser_page
    page.goto(f"{live_asgi_server}/accounts/login/")
    page.fill("#id_username", "mina")
    page.fill("#id_password", "correct horse battery")
    page.click("#login-submit")
    page.wait_for_selector('#connection[data-state="online"]')
    page.evaluate(RECORD_EVENTS)

    # when: the person says they are going to eat
    send(page, "I'm going to eat now")
    # then: the companion reads it (the read receipt) and plans a delayed reply, not an instant one
    page.wait_for_selector('#messages .message[data-role="person"] .read-receipt', timeout=60_000)
    first = wait_for(
        lambda: reply_for(conversation, "I'm going to eat now"),
        timeout=60,
        what="the first plan",
    )
    assert (first.state, first.is_delayed) == (State.PENDING, True)
    assert page.locator('#messages .message[data-role="companion"]').count() == 0

    # when: the person writes again before that reply is due
    send(page, "wait, what are you going to eat?")
    # then: the first reply is cancelled and never shown; the second message gets its own plan
    wait_for(
        lambda: ScheduledReply.objects.get(pk=first.pk).state == State.CANCELLED,
        timeout=10,
        what="cancellation",
    )
    second = wait_for(
        lambda: reply_for(conversation, "wait, what are you going to eat?"),
        timeout=60,
        what="the second plan",
    )
    assert (second.state, second.is_delayed) == (State.PENDING, True)
    # and later: typing, then the one reply
    page.wait_for_selector('#messages .message[data-role="companion"]', timeout=90_000)
    second.refresh_from_db()
    assert second.state == State.SENT
    assert page.locator('#messages .message[data-role="companion"]').count() == 1
    shown = page.locator('#messages .message[data-role="companion"]').first
    assert shown.get_attribute("data-id") == str(second.message_id)
    seen = page.evaluate("window.__seen")
    kinds = [kind for kind, _ in seen]
    assert kinds.index("typing") < kinds.index("message")
    assert ScheduledReply.objects.get(pk=first.pk).message_id is None
    assert page.locator("#typing-indicator").is_hidden()
