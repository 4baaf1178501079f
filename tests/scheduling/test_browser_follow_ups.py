"""In the browser chat page, with a real worker and time scaled: two bubbles, then a follow-up.

The worker's generator is the scripted source of ``scripted_worker_source`` (an exact proposal:
see its docstring); everything else is the production stack: the live ASGI server, Celery,
PostgreSQL, Redis, the after-delivery fan-out and the follow-up guards.
"""

from __future__ import annotations

import pytest

from chat.models import Conversation, Message
from scheduling.models import ScheduledReply
from tests.factories import CompanionFactory, UserFactory
from tests.scheduling import scripted_worker_source as script
from tests.scheduling.conftest import wait_for
from tests.scheduling.test_browser import RECORD_EVENTS, companion_messages, send

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow]
State = ScheduledReply.State
Kind = ScheduledReply.Kind


@pytest.mark.django_db(transaction=True)
def test_two_bubbles_arrive_in_order_then_a_follow_up_after_silence_and_no_second_one(
    live_asgi_server, browser_page, start_celery_worker, purged_broker
):
    # given: a worker whose generator answers in two bubbles and follows up 15 minutes later;
    # every delay scaled by 0.01 (15 minutes pass in 9 s), typing a flat 150 s (1.5 s scaled, so
    # the indicator is there to see before each bubble)
    person = UserFactory.create(username="mina")
    companion = CompanionFactory.create(slug="luda", name="Luda", max_bubbles=2)
    conversation = Conversation.objects.create(person=person, companion=companion, time_zone="Asia/Seoul")
    start_celery_worker(
        extra_env={
            "SCHEDULING_REPLY_SOURCE": "tests.scheduling.scripted_worker_source.bubbles_and_follow_ups",
            "REPLY_TIME_SCALE": "0.01",
            "SCHEDULING_TYPING_MIN_SECONDS": "150",
            "SCHEDULING_TYPING_SECONDS_PER_CHAR": "0",
            "SCHEDULING_TYPING_MAX_SECONDS": "150",
        }
    )
    page = browser_page
    page.goto(f"{live_asgi_server}/accounts/login/")
    page.fill("#id_username", "mina")
    page.fill("#id_password", "correct horse battery")
    page.click("#login-submit")
    page.wait_for_selector('#connection[data-state="online"]')
    page.evaluate(RECORD_EVENTS)
    # when: the person shares news, then stays silent
    send(page, "I have my interview at 3!!")
    # then: two bubbles arrive, in order, each announced by typing
    companion_messages(page).nth(1).wait_for(timeout=60_000)
    texts = companion_messages(page).all_inner_texts()
    assert [text.splitlines()[0] for text in texts] == list(script.ANSWER)
    kinds = [kind for kind, _ in page.evaluate("window.__seen")]
    assert kinds[:4] == ["typing", "message", "typing", "message"]
    # and after the silence, the follow-up arrives on its own
    companion_messages(page).nth(2).wait_for(timeout=60_000)
    assert companion_messages(page).nth(2).inner_text().splitlines()[0] == script.FOLLOW_UP
    rows = list(ScheduledReply.objects.filter(conversation=conversation).order_by("id"))
    assert [(row.kind, row.state) for row in rows[:3]] == [
        (Kind.ANSWER, State.SENT),
        (Kind.BUBBLE, State.SENT),
        (Kind.FOLLOW_UP, State.SENT),
    ]
    follow_up = rows[2]
    assert follow_up.trigger_message_id == rows[1].message_id  # it follows the last bubble
    assert Message.objects.get(pk=follow_up.message_id).created_at >= follow_up.due_at
    # and the follow-up's own delivery plans no second one: the unanswered cap (1) declines it
    declined = wait_for(
        lambda: ScheduledReply.objects.filter(trigger_message_id=follow_up.message_id).first(),
        timeout=30,
        what="the plan after the follow-up",
    )
    assert (declined.kind, declined.state) == (Kind.FOLLOW_UP, State.DECLINED)
    assert [d["rule"] for d in declined.guard_decisions] == ["unanswered_cap"]
    assert companion_messages(page).count() == 3
