"""Fixtures shared by the whole suite: people, companions, API clients, worker environments."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import CompanionFactory, ConversationFactory, UserFactory
from tests.live import (  # noqa: F401  (fixtures shared by the whole suite)
    browser_page,
    chromium_browser,
    live_asgi_server,
    start_celery_beat,
    start_celery_worker,
)

BROWSER_FIXTURES = frozenset({"browser_page", "chromium_browser"})
# The time limit of a test that asks for ``default_model_dir``, in seconds: the first such test of
# a fresh clone builds the default model inside its own limit (pytest-timeout counts fixtures).
# That build is 3000 training steps: about 10 minutes on a fast 2-core machine, more than 30 on a
# slow one (CI once ran out of a 1800 s limit), so the limit is an hour.
DEFAULT_MODEL_BUILD_TIMEOUT = 3600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run every test that drives Chromium after all the others; let a model build finish.

    Playwright's sync API keeps an event loop running in the main thread once the session's
    browser has started, and pytest-asyncio cannot run an async test after that. A test that may
    build the default model gets ``DEFAULT_MODEL_BUILD_TIMEOUT`` instead of the suite's 300 s.
    """
    for item in items:
        if "default_model_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(DEFAULT_MODEL_BUILD_TIMEOUT), append=False)
    uses_browser = [item for item in items if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ()))]
    items[:] = [item for item in items if item not in uses_browser] + uses_browser


@dataclass(frozen=True)
class ModelBuild:
    path: Path
    output: str


@pytest.fixture(scope="session")
def tiny_model_build(tmp_path_factory: pytest.TempPathFactory) -> ModelBuild:
    """Our own generator, the "tiny" preset, built once per run the way `make run` builds one.

    Built by ``manage.py ensure_generator_model --preset tiny`` (seeded: the same weights every
    run); the generator, scheduling and labeling tests all load this one directory.
    """
    import torch

    target = tmp_path_factory.mktemp("generator") / "tiny"
    out = StringIO()
    # One thread, whichever test asks first: float sums in another order give other weights, and
    # the generator tests (one thread) rebuild this preset and compare it byte for byte.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with override_settings(GENERATOR_MODEL_DIR=target):
            call_command("ensure_generator_model", "--preset", "tiny", stdout=out)
    finally:
        torch.set_num_threads(threads)
    return ModelBuild(path=target, output=out.getvalue())


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model_build: ModelBuild) -> Path:
    return tiny_model_build.path


REPO_ROOT = Path(__file__).resolve().parent.parent
# The generator's files that decide the weights of a build (data, tokenizer, model, training);
# the corpus data files under companion/generator/data/corpus/ are added to them.
MODEL_DEFINING_SOURCES = (
    "build.py",
    "clock_hints.py",
    "conditioning.py",
    "corpus.py",
    "corpus_data.py",
    "corpus_follow_ups.py",
    "dialogue_json.py",
    "sentence_vectors.py",
    "training.py",
    "transcript.py",
)


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The default generator, the one `make run` builds, for the end-to-end test.

    Building it takes minutes on 2 cores, so it is kept under ``var/test-models/``, keyed by a
    digest of the sources that decide its weights: a fresh clone (CI) builds it once, later runs
    reuse it until those change. The build goes to a staging directory renamed into place, so a
    run that is interrupted, or one racing another, never leaves half a model behind.
    """
    import torch

    from companion.generator import build_default_model
    from companion.generator.corpus import corpus_sources

    generator = REPO_ROOT / "companion" / "generator"
    sources = [generator / name for name in MODEL_DEFINING_SOURCES] + corpus_sources()
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()[:16]
    target = REPO_ROOT / "var" / "test-models" / f"default-{digest}"
    if (target / "config.json").is_file():
        return target
    staging = target.with_name(f"{target.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # the suite runs torch on one thread; a build wants all
    try:
        # The weights `make run` builds (preset and seed as ensure_generator_model passes them),
        # without its evaluation on val and dev: that only reads the model, and costs minutes.
        build_default_model(staging, preset="default", evaluate_held_out=False)
    except BaseException:  # a failure or a timeout: leave no half-built model behind
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        torch.set_num_threads(threads)
    try:
        staging.rename(target)
    except OSError:  # another run finished the same build first
        shutil.rmtree(staging, ignore_errors=True)
    return target


@pytest.fixture
def person(db):
    return UserFactory(username="mina")


@pytest.fixture
def other_person(db):
    return UserFactory(username="jun")


@pytest.fixture
def staff_user(db):
    return UserFactory(username="staff", is_staff=True)


@pytest.fixture
def companion(db):
    return CompanionFactory(slug="luda", name="Luda")


@pytest.fixture
def conversation(person, companion):
    return ConversationFactory(person=person, companion=companion, time_zone="Asia/Seoul")


def token_client(user) -> APIClient:
    """An API client authenticated the way a mobile app is: with a token header."""
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api_client(person) -> APIClient:
    return token_client(person)


@pytest.fixture
def anonymous_client() -> APIClient:
    return APIClient()


def subprocess_environment() -> dict[str, str]:
    """Environment for a child process (Celery worker, beat, ASGI server) of this test run.

    It points at the same Redis and at the *test* database this run created, with the
    production settings module, so the child behaves exactly as in production.
    """
    settings_dict = connection.settings_dict
    host = settings_dict["HOST"] or ""
    from urllib.parse import quote

    host_part = quote(host, safe="") if host.startswith("/") else host
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    password = f":{quote(settings_dict['PASSWORD'], safe='')}" if settings_dict.get("PASSWORD") else ""
    database_url = f"postgres://{settings_dict['USER']}{password}@{host_part}{port}/{settings_dict['NAME']}"
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "companion.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": os.environ["REDIS_URL"],
            "COMPANION_DEV_SECRET": "1",
        }
    )
    return env
