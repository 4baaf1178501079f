"""Generation on a real llama.cpp server: our tiny model as GGUF, planned through Celery.

The server is llama.cpp's own (the ``xllamacpp`` wheel), started as a child process on a free
port; the planner is a real Celery worker on the test database and Redis, with
``SCHEDULING_REPLY_SOURCE`` pointing at the remote source. Nothing is mocked.
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from companion.generator import Dialogue, GenerationFailed, SamplingConfig, Turn, parse_completion
from companion.generator.served import ServedPrompts
from scheduling.generation import GeneratorUnavailable
from scheduling.models import ScheduledReply
from scheduling.remote_generation import RemoteReplySource, ServerConfig
from scheduling.services import reply_plan
from tests.factories import ConversationFactory, UserFactory
from tests.llama_server import llama_server, tiny_gguf_dir, untrained_gguf_dir  # noqa: F401 (fixtures)
from tests.scheduling.conftest import post, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.slow]
State = ScheduledReply.State
SEOUL = "Asia/Seoul"


def dialogue(text: str, minute: int = 0) -> Dialogue:
    at = datetime(2026, 3, 2, 14, minute, tzinfo=UTC)
    return Dialogue(
        turns=(
            Turn(role="person", at=at - timedelta(minutes=3), text="hey luda"),
            Turn(role="companion", at=at - timedelta(minutes=2), text="hi! what's up?"),
            Turn(role="person", at=at, text=text),
        ),
        time_zone=SEOUL,
    )


def source_for(url: str, model_dir: Path, **options: object) -> RemoteReplySource:
    return RemoteReplySource(ServerConfig(url=url, tokenizer_dir=model_dir, **options))  # type: ignore[arg-type]


def test_the_served_model_is_our_model_token_for_token(llama_server, untrained_gguf_dir):  # noqa: F811
    # given: the untrained model served from its GGUF file, and the same weights in transformers
    server = llama_server(untrained_gguf_dir)
    source = source_for(server.url, untrained_gguf_dir)
    request = source.prompts.request(dialogue("I'm going to eat now"), max_new_tokens=12)
    local = AutoModelForCausalLM.from_pretrained(untrained_gguf_dir, dtype=torch.float32)
    # when: both decode greedily without any constraint
    with torch.no_grad():
        ids = local.generate(
            torch.tensor([request.prompt_ids]),
            max_new_tokens=12,
            do_sample=False,
            eos_token_id=2,
            pad_token_id=0,
        )[0, len(request.prompt_ids or ()) :].tolist()
    answer = source._post(
        "/v1/completions",
        {"prompt": list(request.prompt_ids or ()), "max_tokens": 12, "temperature": 0},
    )
    # then: the same tokens (the conversion keeps the weights, the rotary order and the vocabulary)
    served = answer["choices"][0]
    assert served["text"] == source.prompts._tokenizer.decode(ids, skip_special_tokens=True)


def test_the_grammar_makes_an_untrained_model_write_only_valid_times(
    llama_server,  # noqa: F811
    untrained_gguf_dir,  # noqa: F811
):
    # given: a model that has learned nothing, served by llama.cpp, asked 40 times with sampling
    server = llama_server(untrained_gguf_dir)
    source = source_for(server.url, untrained_gguf_dir)
    dialogues = [
        dialogue(text, minute) for minute in range(0, 40, 4) for text in ("good night", "ok", "eat", "bye")
    ]
    # when: the planner's source asks, the engine constraining with our grammar
    replies = [
        source.generate(d, sampling=SamplingConfig(temperature=1.0, seed=n), max_delay=timedelta(hours=2))
        for n, d in enumerate(dialogues)
    ]
    # then: every completion parses, within the two hours asked
    for d, reply in zip(dialogues, replies, strict=True):
        at, text = parse_completion(
            reply.completion, previous=d.last_at, time_zone=SEOUL, max_delay=timedelta(hours=2)
        )
        assert (reply.at, reply.text) == (at, text)
        assert timedelta(0) <= at - d.last_at <= timedelta(hours=2)
    # and without the grammar the same model and prompts write things that do not parse
    prompts = ServedPrompts(untrained_gguf_dir)
    unconstrained = []
    for n, d in enumerate(dialogues):
        request = prompts.request(d, max_delay=timedelta(hours=2))
        body = {"prompt": list(request.prompt_ids or ()), "max_tokens": 64, "temperature": 1.0, "seed": n}
        text = source._post("/v1/completions", body)["choices"][0]["text"]
        try:
            prompts.reply(request, text)
        except GenerationFailed as error:
            unconstrained.append(error.reason)
    assert unconstrained != []


def test_a_forced_time_is_kept_and_only_the_text_is_generated(llama_server, tiny_gguf_dir):  # noqa: F811
    # given: the trained tiny model on a server
    server = llama_server(tiny_gguf_dir)
    source = source_for(server.url, tiny_gguf_dir)
    asked = dialogue("good night luda")
    forced_at = datetime(2026, 3, 2, 23, 15, tzinfo=UTC)  # 08:15 the next morning in Seoul
    # when: a guard re-times the reply, and a safety regeneration samples again for that time
    retimed = source.generate(asked, forced_at=forced_at)
    regenerated = source.generate(
        asked, forced_at=forced_at, sampling=SamplingConfig(temperature=0.9, seed=1)
    )
    # then: both are for 08:15 with text of their own
    for reply in (retimed, regenerated):
        assert reply.at == forced_at.astimezone(reply.at.tzinfo)
        assert reply.completion.startswith("08:15] ")
        assert reply.text == reply.completion.removeprefix("08:15] ").strip()
        assert reply.text != ""


def test_a_server_that_never_answers_is_retried_with_backoff_then_unavailable(tiny_gguf_dir):  # noqa: F811
    # given: a socket that accepts connections and never answers (the kernel's backlog accepts them)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        slept: list[float] = []
        config = ServerConfig(
            url=url, tokenizer_dir=tiny_gguf_dir, timeout_seconds=0.2, retries=2, backoff_seconds=0.5
        )
        source = RemoteReplySource(config, sleep=slept.append)
        # when
        with pytest.raises(GeneratorUnavailable) as raised:
            source.generate(dialogue("hello?"))
    # then: three attempts, two backoffs doubling, one clear reason
    assert slept == [0.5, 1.0]
    assert (
        str(raised.value)
        == f"the generator server {url}/v1/completions failed 3 attempts; last: TimeoutError: timed out"
    )
    assert raised.value.reason == "generator_unavailable"


@pytest.fixture
def remote_planner(start_celery_worker, llama_server, tiny_gguf_dir, purged_broker) -> Iterator[object]:  # noqa: F811
    server = llama_server(tiny_gguf_dir)
    start_celery_worker(
        concurrency=2,
        extra_env={
            "SCHEDULING_REPLY_SOURCE": "scheduling.remote_generation.remote_reply_source",
            "GENERATOR_SERVER_URL": server.url,
            "GENERATOR_SERVER_TOKENIZER_DIR": str(tiny_gguf_dir),
            "GENERATOR_SERVER_RETRIES": "1",
            "GENERATOR_SERVER_BACKOFF_SECONDS": "0.1",
            "GENERATOR_MODEL_DIR": "/nonexistent",  # the local model is never loaded
        },
    )
    yield server


def planned(trigger_ids: list[int], count: int) -> list[ScheduledReply]:
    rows = list(
        ScheduledReply.objects.filter(trigger_message_id__in=trigger_ids).order_by("trigger_message_id")
    )
    return rows if len(rows) == count else []


def assert_parses(reply: ScheduledReply) -> None:
    propose = reply.generation_attempts[0]
    assert (propose["purpose"], propose["ok"], propose["constrained"]) == ("propose", True, True)
    trigger = reply.trigger_message
    assert trigger is not None
    at, text = parse_completion(
        propose["completion"],
        previous=trigger.created_at,
        time_zone=trigger.conversation.time_zone,
        max_delay=timedelta(days=7),
    )
    assert (at, text) == (reply.proposed_at, propose["text"])


@pytest.mark.django_db(transaction=True)
def test_plans_go_through_a_llama_cpp_server_and_a_killed_server_fails_them_with_the_reason(remote_planner):
    server = remote_planner
    person = UserFactory(username="mina")
    conversations = [ConversationFactory(person=person, time_zone=SEOUL) for _ in range(4)]
    # when: four people's messages are planned by the worker through the server
    triggers = [
        post(c, text)
        for c, text in zip(conversations, ("hi luda", "good night", "ok bye", "eat?"), strict=True)
    ]
    replies = wait_for(lambda: planned([t.pk for t in triggers], 4), timeout=120, what="four remote plans")
    # then: every reply is pending, its time the parse of what the server wrote
    assert [r.state for r in replies] == [State.PENDING] * 4
    for reply in replies:
        assert_parses(reply)
    # when: the server is killed and a person writes
    server.kill()
    lost = post(conversations[0], "are you there?")
    failed = wait_for(lambda: planned([lost.pk], 1), timeout=60, what="the plan with the server down")[0]
    # then: failed, with the reason, after the retries of the proposal only
    assert failed.state == State.FAILED
    assert failed.outcome_reason == (
        "the reply generator is unavailable: "
        f"the generator server {server.url}/v1/completions failed 2 attempts; "
        "last: URLError: [Errno 111] Connection refused"
    )
    assert [(a["purpose"], a["ok"]) for a in failed.generation_attempts] == [("propose", False)]
    # when: the server comes back on the same port and the person writes again
    server.start()
    back = post(conversations[0], "hello again")
    again = wait_for(lambda: planned([back.pk], 1), timeout=60, what="the plan after the restart")[0]
    # then: planned as before
    assert again.state == State.PENDING
    assert_parses(again)
    assert re.fullmatch(r"(\+\d+d )?\d\d:\d\d\] .+", again.generation_attempts[0]["completion"])


class FlakyProxy:
    """A real HTTP proxy in front of the server that answers 503 to its first ``failures`` requests.

    What a load balancer does while its backend restarts; the requests after are forwarded as is.
    """

    def __init__(self, upstream: str, failures: int) -> None:
        self.upstream = upstream
        self.failures = failures
        self.seen = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.seen += 1
                if proxy.seen <= proxy.failures:
                    self.send_response(503)
                    self.end_headers()
                    self.wfile.write(b"backend restarting")
                    return
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    answer = response.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(("failures", "outcome"), [(2, "reply"), (3, "unavailable")])
def test_5xx_answers_are_retried_with_backoff_up_to_the_limit(
    llama_server,  # noqa: F811
    tiny_gguf_dir,  # noqa: F811
    failures: int,
    outcome: str,
):
    # given: the real server behind a proxy that fails the first requests with 503
    server = llama_server(tiny_gguf_dir)
    proxy = FlakyProxy(server.url, failures)
    slept: list[float] = []
    config = ServerConfig(url=proxy.url, tokenizer_dir=tiny_gguf_dir, retries=2, backoff_seconds=0.25)
    source = RemoteReplySource(config, sleep=slept.append)
    asked = dialogue("good night luda")
    try:
        # when
        if outcome == "reply":
            reply = source.generate(asked)
            # then: the third attempt went through and its answer parses
            assert parse_completion(reply.completion, previous=asked.last_at, time_zone=SEOUL) == (
                reply.at,
                reply.text,
            )
        else:
            with pytest.raises(GeneratorUnavailable) as raised:
                source.generate(asked)
            # then: three attempts and the last answer in the reason
            assert str(raised.value) == (
                f"the generator server {proxy.url}/v1/completions failed 3 attempts; "
                "last: HTTP 503: backend restarting"
            )
    finally:
        proxy.close()
    assert (slept, proxy.seen) == ([0.25, 0.5], 3)


@pytest.mark.django_db
def test_the_remote_source_without_a_server_url_fails_the_plan_with_the_reason(conversation, settings):
    # given: the planner pointed at the remote source, with no server configured
    settings.SCHEDULING_REPLY_SOURCE = "scheduling.remote_generation.remote_reply_source"
    settings.GENERATOR_SERVER_URL = ""
    trigger = post(conversation, "hi luda")
    # when
    reply = reply_plan(conversation_id=conversation.pk, trigger_message_id=trigger.pk)
    # then
    assert (reply.state, reply.outcome_reason) == (
        State.FAILED,
        "the reply generator is unavailable: ValueError: GENERATOR_SERVER_URL is not set; "
        "the remote reply source needs a server",
    )
