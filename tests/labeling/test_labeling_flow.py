"""The labeling tool through its HTTP surface: staff-only pages, label, review, agreement, precision."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from chat.models import Message
from labeling.mining import mine_delay_candidates
from labeling.models import DelayLabel, DelayTask, LabelEvent
from tests.factories import CompanionFactory, ConversationFactory, UserFactory
from tests.labeling.conftest import SEOUL_NOON, chat_log

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def planted(conversation) -> dict[str, Message]:
    """A person who must go at 12:32 Seoul time, and a companion who keeps chatting."""
    messages = chat_log(
        conversation,
        SEOUL_NOON,
        [
            (0, "person", "점심 뭐 먹었어?"),
            (1, "companion", "김밥! 너는?"),
            (2, "person", "나 진짜 가야해, 회의 있어"),
            (2, "companion", "회의 뭐에 대한 거야?"),
            (3, "person", "..."),
        ],
    )
    mine_delay_candidates()
    return {"going": messages[2], "instant": messages[3], "other": messages[0]}


@pytest.fixture
def task(planted) -> DelayTask:
    return DelayTask.objects.get()


def label_api(client: Client, task: DelayTask, **body):
    return client.post(f"/labeling/api/tasks/{task.pk}/label/", body, content_type="application/json")


def review_api(client: Client, label: DelayLabel, **body):
    return client.post(f"/labeling/api/labels/{label.pk}/review/", body, content_type="application/json")


def test_pages_need_staff(task, person) -> None:
    for url in ["/labeling/", f"/labeling/tasks/{task.pk}/", "/labeling/review/", "/labeling/agreement/"]:
        anonymous = Client().get(url)
        assert (anonymous.status_code, anonymous["Location"]) == (302, f"/accounts/login/?next={url}")
        not_staff = logged_in(person).get(url)
        assert (not_staff.status_code, not_staff["Location"]) == (302, f"/accounts/login/?next={url}")


def test_json_endpoints_refuse_non_staff_and_store_nothing(task, person) -> None:
    response = label_api(logged_in(person), task, action="skip")
    assert (response.status_code, response.json()) == (
        403,
        {"code": "permission_denied", "detail": "You do not have permission to perform this action."},
    )
    anonymous = Client().post("/labeling/api/time/", {}, content_type="application/json")
    assert (anonymous.status_code, anonymous.json()) == (
        401,
        {"code": "not_authenticated", "detail": "Authentication credentials were not provided."},
    )
    assert DelayLabel.objects.count() == 0


def test_task_page_shows_every_turn_in_local_time_with_the_suggested_cut(task, staff_user, planted) -> None:
    page = logged_in(staff_user).get(f"/labeling/tasks/{task.pk}/").content.decode()
    assert page.count('class="turn ') == 5
    assert "2026-03-02 12:32 (UTC+0900)" in page
    assert f'value="{planted["going"].pk}" class="cut-choice" checked' in page
    # Turns after the suggested cut are struck through (class "cut"), never removed
    assert page.count('class="turn person cut"') == 1
    assert page.count('class="turn companion cut"') == 1


def test_annotate_submit_and_approve_by_a_second_person(task, staff_user, reviewer, planted) -> None:
    annotator = logged_in(staff_user)
    # When the annotator saves a draft with only a cut, then submits "1 h 30 min later"
    draft = label_api(annotator, task, action="draft", cut_after_id=planted["going"].pk)
    assert draft.status_code == 200
    assert draft.json()["state"] == "draft"
    submitted = label_api(
        annotator,
        task,
        action="submit",
        cut_after_id=planted["going"].pk,
        delay_minutes=90,
        reply_text="회의 잘 끝났어? 고생했어!",
    )
    assert submitted.status_code == 200
    assert submitted.json()["reply_at"] == "2026-03-02T05:02:00Z"  # 12:32 + 1:30 = 14:02 in Seoul
    assert submitted.json()["task_state"] == "submitted"

    # The annotator cannot approve their own label
    own = review_api(annotator, DelayLabel.objects.get(), decision="approve")
    assert (own.status_code, own.json()) == (
        403,
        {"code": "own_label", "detail": "You cannot review your own label; another person has to."},
    )
    assert DelayLabel.objects.get().state == "submitted"

    # A second person sees it in the review list with its transcript, and approves it
    review_page = logged_in(reviewer).get("/labeling/review/").content.decode()
    assert "[user] [12:32] 나 진짜 가야해, 회의 있어\n[luda] [14:02] 회의 잘 끝났어? 고생했어!" in review_page
    approved = review_api(logged_in(reviewer), DelayLabel.objects.get(), decision="approve", note="good")
    assert approved.status_code == 200
    assert approved.json()["state"] == "approved"
    assert approved.json()["reviewer"] == "reviewer"

    label = DelayLabel.objects.get()
    assert (label.annotator, label.reviewer, label.task.state) == (staff_user, reviewer, "approved")
    assert list(LabelEvent.objects.values_list("actor__username", "action")) == [
        ("staff", "saved"),
        ("staff", "submitted"),
        ("reviewer", "approved"),
    ]
    # An approved label is final
    again = label_api(annotator, task, action="draft", cut_after_id=planted["going"].pk)
    assert (again.status_code, again.json()) == (
        400,
        {"code": "label_not_editable", "detail": "This label is approved; it can no longer be edited."},
    )


def test_labels_never_change_the_chat_logs(task, staff_user, reviewer, planted) -> None:
    before = list(Message.objects.order_by("id").values_list("id", "role", "text", "created_at"))
    label_api(
        logged_in(staff_user),
        task,
        action="submit",
        cut_after_id=planted["going"].pk,
        delay_minutes=5,
        reply_text="hi",
    )
    review_api(logged_in(reviewer), DelayLabel.objects.get(), decision="approve")
    assert list(Message.objects.order_by("id").values_list("id", "role", "text", "created_at")) == before


CUT = "the suggested cut"  # replaced by the planted turn's id inside the test


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"action": "submit"}, "Cannot submit without the cut turn, the reply time, the reply text."),
        (
            {"action": "submit", "delay_minutes": 30},
            "Pick the turn after which the companion waits before setting the delay.",
        ),
        (
            {"action": "draft", "cut_after_id": 10**9},
            "Message 1000000000 is not a turn of this task's conversation.",
        ),
        (
            {"action": "submit", "delay_minutes": 0, "reply_text": "x", "cut_after_id": CUT},
            "The delayed reply must come at least 1 minute after the cut turn.",
        ),
        (
            {"action": "submit", "delay_minutes": 7 * 24 * 60 + 1, "reply_text": "x", "cut_after_id": CUT},
            "A delay of 168 h 1 min later is beyond this companion's maximum of 168 h 0 min.",
        ),
        (
            {"action": "submit", "delay_minutes": 30, "reply_text": "   ", "cut_after_id": CUT},
            "Cannot submit without the reply text.",
        ),
        ({"action": "publish"}, 'action: "publish" is not a valid choice.'),
        ({"action": "draft", "delay_minutes": "soon"}, "delay_minutes: A valid integer is required."),
    ],
)
def test_bad_labels_are_refused_with_a_reason_and_nothing_is_stored(
    task, staff_user, planted, body, error
) -> None:
    if body.get("cut_after_id") == CUT:
        body = {**body, "cut_after_id": planted["going"].pk}
    response = label_api(logged_in(staff_user), task, **body)
    assert (response.status_code, response.json()["detail"]) == (400, error)
    assert DelayLabel.objects.count() == 0
    assert LabelEvent.objects.count() == 0
    assert DelayTask.objects.get().state == "open"


def test_a_turn_of_another_conversation_cannot_be_the_cut(task, staff_user, person) -> None:
    elsewhere = ConversationFactory.create(
        person=person, companion=CompanionFactory(slug="haru", name="Haru")
    )
    (foreign,) = chat_log(elsewhere, SEOUL_NOON, [(0, "person", "hello")])
    response = label_api(logged_in(staff_user), task, action="draft", cut_after_id=foreign.pk)
    assert response.json() == {
        "code": "cut_not_a_turn",
        "detail": f"Message {foreign.pk} is not a turn of this task's conversation.",
    }


def test_send_back_lets_the_annotator_fix_and_resubmit(task, staff_user, reviewer, planted) -> None:
    annotator = logged_in(staff_user)
    label_api(
        annotator, task, action="submit", cut_after_id=planted["going"].pk, delay_minutes=2, reply_text="hi"
    )
    sent_back = review_api(
        logged_in(reviewer), DelayLabel.objects.get(), decision="send_back", note="too short"
    )
    assert sent_back.json()["state"] == "sent_back"
    assert DelayTask.objects.get().state == "in_progress"
    page = annotator.get(f"/labeling/tasks/{task.pk}/").content.decode()
    assert "reviewer's note: <q>too short</q>" in page
    # The sent-back label comes back filled in, in both notations
    assert 'id="delay-hours" min="0" value="0"' in page
    assert 'id="delay-minutes" min="0" max="59" value="2"' in page
    assert 'id="reply-date" value="2026-03-02"' in page
    assert 'id="reply-clock" value="12:34"' in page
    again = label_api(
        annotator, task, action="submit", cut_after_id=planted["going"].pk, delay_minutes=95, reply_text="hi"
    )
    assert again.json()["state"] == "submitted"
    assert again.json()["reply_at"] == "2026-03-02T05:07:00Z"
    # Reviewing something that is not submitted any more is refused
    review_api(logged_in(reviewer), DelayLabel.objects.get(), decision="reject")
    late = review_api(logged_in(reviewer), DelayLabel.objects.get(), decision="approve")
    assert (late.status_code, late.json()) == (
        400,
        {
            "code": "label_not_submitted",
            "detail": "Only submitted labels can be reviewed; this one is Rejected.",
        },
    )
    assert DelayLabel.objects.get().state == "rejected"


def test_time_endpoint_converts_both_ways_in_the_conversations_zone(task, staff_user, planted) -> None:
    client = logged_in(staff_user)
    cut = planted["going"].pk  # 12:32 in Seoul
    forward = client.post(
        "/labeling/api/time/",
        {"task_id": task.pk, "cut_after_id": cut, "delay_minutes": 660},
        content_type="application/json",
    )
    assert forward.json()["local_date"] == "2026-03-02"
    assert forward.json()["local_time"] == "23:32"
    back = client.post(
        "/labeling/api/time/",
        {"task_id": task.pk, "cut_after_id": cut, "local_date": "2026-03-03", "local_time": "01:02"},
        content_type="application/json",
    )
    assert (back.json()["hours"], back.json()["minutes"], back.json()["relative"]) == (
        12,
        30,
        "12 h 30 min later",
    )
    both = client.post(
        "/labeling/api/time/",
        {
            "task_id": task.pk,
            "cut_after_id": cut,
            "delay_minutes": 5,
            "local_date": "2026-03-03",
            "local_time": "01:02",
        },
        content_type="application/json",
    )
    assert (both.status_code, both.json()) == (
        400,
        {"code": "invalid", "detail": "Send either delay_minutes or local_date with local_time."},
    )
    before = client.post(
        "/labeling/api/time/",
        {"task_id": task.pk, "cut_after_id": cut, "local_date": "2026-03-02", "local_time": "12:00"},
        content_type="application/json",
    )
    assert before.json() == {
        "code": "reply_time_invalid",
        "detail": "The delayed reply must come at least 1 minute after the cut turn.",
    }


def test_queue_filters_by_rule_companion_and_state(staff_user, person, other_person) -> None:
    luda = CompanionFactory.create(slug="luda", name="Luda")
    haru = CompanionFactory.create(slug="haru", name="Haru")
    chat_log(
        ConversationFactory.create(person=person, companion=luda),
        SEOUL_NOON,
        [(0, "person", "stop replying")],
    )
    chat_log(
        ConversationFactory.create(person=other_person, companion=haru),
        SEOUL_NOON,
        [(0, "companion", "brb"), (1, "companion", "what?"), (2, "person", "I have to go")],
    )
    mine_delay_candidates()
    client = logged_in(staff_user)

    def rows(query: str) -> int:
        return client.get(f"/labeling/{query}").content.decode().count('class="task-row"')

    assert rows("") == 3
    assert rows("?rule=person_pushes_away") == 2
    assert rows(f"?companion={haru.pk}") == 2
    assert rows(f"?companion={haru.pk}&rule=companion_unkept_plan") == 1
    first = DelayTask.objects.order_by("id").first()
    assert first is not None, "mining made no tasks"
    label_api(client, first, action="skip")
    assert rows("?state=no_delay") == 1
    assert rows("?state=open") == 2


def test_two_annotators_buckets_side_by_side_and_agreement_rate(task, staff_user, reviewer, planted) -> None:
    third = UserFactory(username="third", is_staff=True)
    cut = planted["going"].pk
    label_api(
        logged_in(staff_user), task, action="submit", cut_after_id=cut, delay_minutes=90, reply_text="a"
    )
    label_api(logged_in(reviewer), task, action="submit", cut_after_id=cut, delay_minutes=100, reply_text="b")
    page = logged_in(third).get("/labeling/agreement/").content.decode()
    side_by_side = (
        '<span class="answer"><b>reviewer</b>: 30 min-2 h</span> '
        '<span class="answer"><b>staff</b>: 30 min-2 h</span>'
    )
    assert side_by_side in page
    assert "100% (1 of 1 pairs)" in page
    label_api(logged_in(third), task, action="skip")
    page = logged_in(third).get("/labeling/agreement/").content.decode()
    assert '<span class="answer"><b>third</b>: no delay</span>' in page
    assert "33% (1 of 3 pairs)" in page


def test_precision_report_counts_accepted_and_rejected_per_rule(conversation, staff_user, reviewer) -> None:
    chat_log(
        conversation,
        SEOUL_NOON,
        [
            (0, "person", "stop replying"),
            (1, "person", "I have to go"),
            (2, "person", "leave me alone"),
            (3, "companion", "I'm not answering you anymore"),
            (4, "person", "ok"),
        ],
    )
    mine_delay_candidates()
    push_1, push_2, push_3, threat = DelayTask.objects.order_by("id")
    client = logged_in(staff_user)
    label_api(
        client,
        push_1,
        action="submit",
        cut_after_id=push_1.suspected_message_id,
        delay_minutes=60,
        reply_text="hi",
    )
    label_api(
        client,
        push_2,
        action="submit",
        cut_after_id=push_2.suspected_message_id,
        delay_minutes=60,
        reply_text="hi",
    )
    label_api(client, push_3, action="skip")
    review_api(logged_in(reviewer), push_2.labels.get(), decision="reject")
    review_api(logged_in(reviewer), push_1.labels.get(), decision="approve")

    out = StringIO()
    call_command("delay_mining_report", stdout=out)
    assert out.getvalue().splitlines() == [
        "rule                              tasks  accepted  rejected  pending  precision",
        "companion_threatens_silence           1         0         0        1          -",
        "person_pushes_away                    3         1         2        0      33.3%",
        "all rules                             4         1         2        1      33.3%",
    ]
    # and each task's queue state agrees with the row the report printed for its labels
    assert list(DelayTask.objects.order_by("id").values_list("id", "state")) == [
        (push_1.pk, "approved"),
        (push_2.pk, "no_delay"),
        (push_3.pk, "no_delay"),
        (threat.pk, "open"),
    ]
