"""Schemathesis against the app's own OpenAPI schema: every operation, generated input, real PostgreSQL.

The schema is the one the project serves (``/api/v1/schema/``, read with a staff token), and the
requests go to Django's WSGI handler in this process: the same middleware, views, throttles and
database as production, without a socket. Three callers send them: a person with a conversation
of their own (messages, planned replies), a staff member, and nobody; each from an address of its
own, so one caller's throttle and login lockouts never decide another's answers. The staff
member's requests carry a browser's ``Accept`` header and nobody's an XML client's: the answers
must be JSON all the same.

Each operation gets schemathesis' coverage cases (boundary values, wrong types, missing fields,
methods the schema does not list, malformed and unsupported content types), the request examples
of the schema, and Hypothesis-generated requests, valid and invalid, derandomized (the same
requests every run). An operation on a conversation id gets generated ids, the person's own
conversation and another person's. Every answer must be no 5xx, a status the operation
documents, in a documented content type, with a body its schema allows; an invalid request must
be refused, an unlisted method answered 405 with ``Allow``, and every error must be the one
shape ``{code, detail}`` (plus ``fields`` for ``invalid``).

Not checked: that every valid request is accepted (``positive_data_acceptance``). A schema can
say that a slug is a slug, not that a companion with it exists, nor that a password is not a
common one; those refusals are 400s with their own codes, tested in test_api.py.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
import schemathesis
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.strategies import SearchStrategy
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from chat.models import Message
from scheduling.models import ScheduledReply
from tests.chat.conftest import token_key
from tests.factories import CompanionFactory, ConversationFactory, MessageFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    unsupported_method,
    negative_data_rejection,
]
# Hypothesis examples per operation, caller, mode and conversation id (fewer for nobody: every
# signed-in operation answers it 401 before looking at the input).
EXAMPLES = 40
ANONYMOUS_EXAMPLES = 10
MINIMUM_REQUESTS = 3000
JSON = "application/json"
# What a browser and an XML client send: the API answers JSON to both (chat.content_negotiation).
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@dataclass(frozen=True)
class Caller:
    """Who sends: their headers (token, Accept) and client address, and what they may see."""

    name: str
    headers: dict[str, str]
    remote_addr: str
    # Fixed conversation ids besides generated ones: real hits for the id operations, and for
    # each the newest message id, so that a read mark is one the conversation has.
    conversations: dict[int, int] = field(default_factory=dict)
    examples: int = EXAMPLES


class CountingApp:
    """Django's WSGI handler, counting what reaches it: the figure the test asserts."""

    def __init__(self) -> None:
        self.handler = WSGIHandler()
        self.requests = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.requests += 1
        return self.handler(environ, start_response)


def error_shape_problem(response: Response) -> str | None:
    """What is wrong with an error body, if anything: the one shape of chat.api_errors."""
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return f"an error body that is no JSON: {response.content[:200]!r}"
    keys = set(body) if isinstance(body, dict) else set()
    if keys == {"code", "detail"} or (keys == {"code", "detail", "fields"} and body["code"] == "invalid"):
        return None
    return f"an error body not in the one shape: {body!r}"


@dataclass
class Report:
    """Every answer by caller, operation and status, and the distinct problems found (two of each)."""

    statuses: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def send(self, case: Case, caller: Caller, phase: str) -> None:
        response = case.call(headers=caller.headers, environ_base={"REMOTE_ADDR": caller.remote_addr})
        self.statuses[(caller.name, case.operation.label, response.status_code)] += 1
        found: list[str] = []
        try:
            case.validate_response(response, checks=CHECKS, headers=caller.headers)
        except FailureGroup as group:
            found += [f"{failure.title}: {failure.message}" for failure in group.exceptions]
        shape = error_shape_problem(response)
        if shape is not None:
            found.append(shape)
        for problem in found:
            key = f"{caller.name}, {phase}, {case.operation.label}: {problem.splitlines()[0]}"
            if len(self.problems[key]) < 2:
                curl = case.as_curl_command(headers=caller.headers)
                answer = f"-> {response.status_code} {response.content[:300]!r}"
                self.problems[key].append(f"{problem}\n{curl}\n{answer}")

    def describe(self) -> str:
        return "\n\n".join(f"== {key}\n" + "\n".join(examples) for key, examples in self.problems.items())

    def successes(self, caller: str, label: str) -> int:
        return sum(
            n for (who, op, code), n in self.statuses.items() if (who, op) == (caller, label) and code < 300
        )


def run_examples(strategy: SearchStrategy[Case], examples: int, send: Callable[[Case], None]) -> None:
    # Requests are slow to generate by Hypothesis' measure and the strategies filter a lot: the
    # health checks would stop the run, and the example budget bounds it anyway. No shrinking:
    # problems are collected, never raised, so there is nothing to shrink.
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Case) -> None:
        send(case)

    run()


def has_input_to_negate(operation: APIOperation, path_fixed: bool) -> bool:
    """Whether a negative case exists: a body, a query parameter, or a path id left to generate."""
    raw = operation.definition.raw
    parameters = [p for p in raw.get("parameters", []) if not (path_fixed and p["in"] == "path")]
    return "requestBody" in raw or bool(parameters)


def coverage_cases(schema: BaseSchema, operation: APIOperation) -> list[Case]:
    """Schemathesis' deterministic cases: boundaries, wrong types, missing parts, other methods."""
    return list(
        schema.iter_coverage_cases(
            operation,
            generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
            generation_config=schema.config.generation_for(operation=operation),
        )
    )


def send_everything(operation: APIOperation, caller: Caller, coverage: list[Case], report: Report) -> None:
    """One caller's share: the coverage cases, then per conversation id examples and generated cases."""
    for case in coverage:
        report.send(case.derive(), caller, "coverage")
    ids: list[int | None] = [None]
    if "{conversation_id}" in operation.path:
        ids += list(caller.conversations)
    for conversation_id in ids:
        fixed = {"conversation_id": conversation_id} if conversation_id is not None else None
        examples = operation.get_strategies_from_examples(path_parameters=fixed)
        if conversation_id is not None and operation.path.endswith("/read/"):
            newest = {"up_to": caller.conversations[conversation_id]}
            examples.append(operation.as_strategy(path_parameters=fixed, body=newest, media_type=JSON))
        for strategy in examples:
            run_examples(strategy, 1, partial(report.send, caller=caller, phase="example"))
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and not has_input_to_negate(operation, fixed is not None):
                continue
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)
            run_examples(strategy, caller.examples, partial(report.send, caller=caller, phase=mode.value))


@pytest.fixture(autouse=True)
def hypothesis_as_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo, after this test, what schemathesis patches in Hypothesis for the whole process.

    The first strategy it builds (``schemathesis.generation.hypothesis.setup``) swaps Hypothesis'
    example printer for one that prints nothing and quadruples its buffer: every Hypothesis test
    run later in the session would report failures without their falsifying example.
    """
    from hypothesis import core
    from hypothesis.internal import entropy
    from hypothesis.internal.conjecture import engine
    from hypothesis.strategies._internal import collections as strategies_collections
    from hypothesis.strategies._internal import core as strategies_core
    from schemathesis.generation.hypothesis import setup

    patched = [
        (core, "RepresentationPrinter"),
        (core, "BUFFER_SIZE"),
        (engine, "BUFFER_SIZE"),
        (strategies_collections, "BUFFER_SIZE"),
        (strategies_core, "is_first_param_referenced_in_function"),
        (entropy, "register_random"),
    ]
    for module, name in patched:
        if hasattr(module, name):  # monkeypatch puts back at teardown what is there now
            monkeypatch.setattr(module, name, getattr(module, name))
    monkeypatch.setattr(setup, "_is_patched", False, raising=False)


@pytest.fixture
def callers(person, other_person, staff_user, companion) -> list[Caller]:
    """The person (own conversation with messages and planned replies), staff, and nobody."""
    cache.clear()  # throttle histories of earlier tests live in this Redis
    # With Sora, not Luda: the schema's "open" example (Luda) then creates a conversation (201).
    sora = CompanionFactory.create(slug="sora", name="Sora")
    own = ConversationFactory.create(person=person, companion=sora)
    theirs = ConversationFactory.create(person=other_person, companion=companion)
    for number in range(3):
        MessageFactory.create(conversation=own, text=f"message {number}", client_id=f"c-{number}")
    companion_message = MessageFactory.create(conversation=own, role=Message.Role.COMPANION, text="back~")
    their_message = MessageFactory.create(conversation=theirs, text="hi")
    now = timezone.now()
    for state, trigger in [(ScheduledReply.State.PENDING, 2), (ScheduledReply.State.CANCELLED, 1)]:
        ScheduledReply.objects.create(
            conversation=own,
            trigger_message=Message.objects.get(conversation=own, client_id=f"c-{trigger}"),
            state=state,
            text="back~",
            final_at=now + timedelta(minutes=40),
            due_at=now + timedelta(minutes=40),
            typing_at=now + timedelta(minutes=39),
            is_delayed=True,
            guard_decisions=[{"rule": "instant_threshold", "before_minutes": 40, "after_minutes": 40}],
        )
    ScheduledReply.objects.create(
        conversation=own,
        trigger_message=Message.objects.get(conversation=own, client_id="c-0"),
        state=ScheduledReply.State.SENT,
        text="back~",
        message_id=companion_message.pk,
        sent_at=now,
    )
    return [
        Caller(
            "person",
            {"Authorization": f"Token {token_key(person)}"},
            "192.0.2.1",
            {own.pk: companion_message.pk, theirs.pk: their_message.pk},
        ),
        Caller(
            "staff",
            {"Authorization": f"Token {token_key(staff_user)}", "Accept": BROWSER_ACCEPT},
            "192.0.2.2",
            {own.pk: companion_message.pk},
        ),
        Caller("nobody", {"Accept": "application/xml"}, "192.0.2.3", examples=ANONYMOUS_EXAMPLES),
    ]


def test_every_operation_answers_generated_requests_as_its_schema_says(callers, staff_user):
    # given: the schema the project serves, loaded from the app itself
    app = CountingApp()
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/schema/?format=json", app, headers={"Authorization": f"Token {token_key(staff_user)}"}
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    report = Report()
    started = time.monotonic()

    # when: every caller sends every operation's coverage cases, examples and generated requests
    for operation in operations:
        # Generated once: schemathesis lists a path's unlisted methods in the first call only.
        coverage = coverage_cases(schema, operation)
        for caller in callers:
            send_everything(operation, caller, coverage, report)
    elapsed = time.monotonic() - started

    # then: no problem at all, and enough requests that this says something
    sent = sum(report.statuses.values())
    summary = f"{sent} requests to {len(operations)} operations in {elapsed:.0f} s"
    print(summary, *sorted(report.statuses.items()), sep="\n")
    assert dict(report.problems) == {}, f"{summary}\n{report.describe()}"
    assert app.requests == sent + 1  # and the schema itself: nothing was sent past the report
    assert sent >= MINIMUM_REQUESTS, summary
    assert len(operations) == 10
    # Every operation answered every caller, and the id operations also with real conversations.
    assert {(who, op) for who, op, _ in report.statuses} == {
        (caller.name, operation.label) for caller in callers for operation in operations
    }
    for operation in operations:
        if "{conversation_id}" in operation.path and operation.method == "get":
            assert report.successes("staff", operation.label) > 0, operation.label
        if "{conversation_id}" in operation.path and "replies" not in operation.path:
            assert report.successes("person", operation.label) > 0, operation.label
