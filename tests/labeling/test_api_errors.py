"""Every error of every labeling JSON endpoint is ``{"code", "detail"}``, and stores nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from labeling.mining import mine_delay_candidates
from labeling.models import DelayLabel, DelayTask, LabelEvent
from labeling.services import label_save
from tests.factories import UserFactory
from tests.labeling.conftest import SEOUL_NOON, chat_log

pytestmark = pytest.mark.django_db


@pytest.fixture
def task(conversation) -> DelayTask:
    chat_log(conversation, SEOUL_NOON, [(0, "person", "stop replying"), (1, "companion", "why?")])
    mine_delay_candidates(semantic=False)
    return DelayTask.objects.get()


@pytest.fixture
def submitted(task, staff_user) -> DelayLabel:
    return label_save(
        task=task,
        annotator=staff_user,
        action="submit",
        cut_after_id=task.suspected_message_id,
        delay_minutes=30,
        reply_text="later!",
    )


def client_for(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def endpoints(task: DelayTask, label: DelayLabel) -> dict[str, str]:
    return {
        "time": "/labeling/api/time/",
        "label": f"/labeling/api/tasks/{task.pk}/label/",
        "review": f"/labeling/api/labels/{label.pk}/review/",
    }


ENDPOINTS = ["time", "label", "review"]
NOT_STAFF = {"code": "permission_denied", "detail": "You do not have permission to perform this action."}
ANONYMOUS = {"code": "not_authenticated", "detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_anonymous_and_non_staff_are_refused(task, submitted, person, endpoint) -> None:
    url = endpoints(task, submitted)[endpoint]
    anonymous = client_for().post(url, {}, content_type="application/json")
    assert (anonymous.status_code, anonymous.json()) == (401, ANONYMOUS)
    not_staff = client_for(person).post(url, {}, content_type="application/json")
    assert (not_staff.status_code, not_staff.json()) == (403, NOT_STAFF)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_malformed_json_and_a_wrong_method(task, submitted, reviewer, endpoint) -> None:
    url = endpoints(task, submitted)[endpoint]
    client = client_for(reviewer)
    broken = client.post(url, "{not json", content_type="application/json")
    assert (broken.status_code, broken.json()) == (
        400,
        {
            "code": "parse_error",
            "detail": (
                "JSON parse error - Expecting property name enclosed in double quotes: "
                "line 1 column 2 (char 1)"
            ),
        },
    )
    get = client.get(url)
    assert (get.status_code, get.json()) == (
        405,
        {"code": "method_not_allowed", "detail": 'Method "GET" not allowed.'},
    )
    assert DelayLabel.objects.exclude(pk=submitted.pk).count() == 0


def test_time_errors(task, reviewer) -> None:
    client = client_for(reviewer)
    post = lambda body: client.post("/labeling/api/time/", body, content_type="application/json")  # noqa: E731
    missing = post({"task_id": 10**9, "cut_after_id": 1, "delay_minutes": 5})
    assert (missing.status_code, missing.json()) == (
        404,
        {"code": "not_found", "detail": "No DelayTask matches the given query."},
    )
    invalid = post({"task_id": task.pk})
    assert (invalid.status_code, invalid.json()) == (
        400,
        {"code": "invalid", "detail": "cut_after_id: This field is required."},
    )
    too_late = post({"task_id": task.pk, "cut_after_id": task.suspected_message_id, "delay_minutes": 10**6})
    assert (too_late.status_code, too_late.json()) == (
        400,
        {
            "code": "reply_time_invalid",
            "detail": "A delay of 16666 h 40 min later is beyond this companion's maximum of 168 h 0 min.",
        },
    )


def test_label_errors(task, submitted, staff_user, reviewer) -> None:
    post = lambda client, url, body: client.post(url, body, content_type="application/json")  # noqa: E731
    url = f"/labeling/api/tasks/{task.pk}/label/"
    missing = post(client_for(reviewer), "/labeling/api/tasks/999999999/label/", {"action": "skip"})
    assert (missing.status_code, missing.json()) == (
        404,
        {"code": "not_found", "detail": "No DelayTask matches the given query."},
    )
    invalid = post(client_for(reviewer), url, {"action": "publish"})
    assert (invalid.status_code, invalid.json()) == (
        400,
        {"code": "invalid", "detail": 'action: "publish" is not a valid choice.'},
    )
    incomplete = post(client_for(reviewer), url, {"action": "submit"})
    assert (incomplete.status_code, incomplete.json()) == (
        400,
        {
            "code": "label_incomplete",
            "detail": "Cannot submit without the cut turn, the reply time, the reply text.",
        },
    )
    locked = post(client_for(staff_user), url, {"action": "skip"})
    assert (locked.status_code, locked.json()) == (
        400,
        {"code": "label_not_editable", "detail": "This label is submitted; it can no longer be edited."},
    )
    assert DelayLabel.objects.count() == 1
    assert LabelEvent.objects.count() == 1


def test_review_errors(task, submitted, staff_user, reviewer) -> None:
    post = lambda client, url, body: client.post(url, body, content_type="application/json")  # noqa: E731
    url = f"/labeling/api/labels/{submitted.pk}/review/"
    missing = post(client_for(reviewer), "/labeling/api/labels/999999999/review/", {"decision": "approve"})
    assert (missing.status_code, missing.json()) == (
        404,
        {"code": "not_found", "detail": "No DelayLabel matches the given query."},
    )
    invalid = post(client_for(reviewer), url, {"decision": "maybe"})
    assert (invalid.status_code, invalid.json()) == (
        400,
        {"code": "invalid", "detail": 'decision: "maybe" is not a valid choice.'},
    )
    own = post(client_for(staff_user), url, {"decision": "approve"})
    assert (own.status_code, own.json()) == (
        403,
        {"code": "own_label", "detail": "You cannot review your own label; another person has to."},
    )
    assert post(client_for(reviewer), url, {"decision": "reject"}).status_code == 200
    again = post(client_for(UserFactory(username="third", is_staff=True)), url, {"decision": "approve"})
    assert (again.status_code, again.json()) == (
        400,
        {
            "code": "label_not_submitted",
            "detail": "Only submitted labels can be reviewed; this one is Rejected.",
        },
    )
    assert DelayLabel.objects.get().state == "rejected"
