"""Real child processes for tests: an ASGI server, Celery workers and beat, and a headless Chromium.

Every child runs the production settings module (``companion.settings``) pointed at this
test run's database and Redis through :func:`tests.conftest.subprocess_environment`, so
what a test observes is what production does. Children are stopped at teardown; their
output goes to a log file whose tail is shown when a child fails to start.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from companion.stack import celery_command

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
STARTUP_TIMEOUT_SECONDS = 90.0


@dataclass
class ChildProcess:
    """A started child process and the log it writes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log_handle: object = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Ask politely (SIGTERM: Celery finishes the task at hand), then insist."""
        if self.is_running():
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(timeout=timeout)
        self._close_log()

    def kill(self) -> None:
        """SIGKILL the whole process group at once: no cleanup, no acknowledgement."""
        if self.is_running():
            self._signal_group(signal.SIGKILL)
            self.popen.wait(timeout=15)
        self._close_log()

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)

    def _close_log(self) -> None:
        handle = self._log_handle
        if handle is not None:
            handle.close()  # type: ignore[attr-defined]
            self._log_handle = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def spawn(name: str, args: list[str], *, log_dir: Path, env: dict[str, str]) -> ChildProcess:
    """Start ``args`` in its own process group so that stop/kill reach its children too."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log_handle = log_path.open("wb")
    popen = subprocess.Popen(
        args,
        cwd=REPO_ROOT,
        env=env,
        stdout=log_handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return ChildProcess(name=name, popen=popen, log_path=log_path, _log_handle=log_handle)


def wait_until_ready(child: ChildProcess, is_ready: Callable[[], bool], *, what: str) -> None:
    """Poll ``is_ready`` until it holds; fail with the child's log if it dies or never gets there."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not child.is_running():
            pytest.fail(
                f"{what} exited with {child.popen.returncode} while starting:\n{child.log_text()[-4000:]}"
            )
        if is_ready():
            return
        time.sleep(0.1)
    child.kill()
    pytest.fail(f"{what} was not ready after {STARTUP_TIMEOUT_SECONDS:.0f}s:\n{child.log_text()[-4000:]}")


def _http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except OSError:
        return False


@pytest.fixture(scope="session")
def live_asgi_server(django_db_setup, tmp_path_factory) -> Iterator[str]:
    """A real daphne serving ``companion.asgi`` (HTTP and WebSocket) against this run's database.

    Tests that use it need ``transactional_db`` so that their rows are committed and visible.
    """
    from tests.conftest import subprocess_environment

    port = free_port()
    child = spawn(
        "daphne",
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "companion.asgi:application"],
        log_dir=tmp_path_factory.mktemp("daphne"),
        env={**subprocess_environment(), "DATABASE_POOL": "1"},  # as make run / compose run web
    )
    base_url = f"http://127.0.0.1:{port}"
    wait_until_ready(child, lambda: _http_answers(f"{base_url}/admin/login/"), what="daphne")
    yield base_url
    child.stop()


_worker_numbers = itertools.count(1)


@pytest.fixture
def start_celery_worker(django_db_setup, tmp_path) -> Iterator[Callable[..., ChildProcess]]:
    """Factory: start a real ``celery worker`` process; returns once it reports ready.

    Keyword arguments: ``concurrency`` (default 1), ``pool`` (default ``prefork``),
    ``queues`` (comma-separated; default every queue in CELERY_TASK_QUEUES),
    ``extra_env`` (e.g. ``{"REPLY_TIME_SCALE": "0.01"}``).
    """
    from tests.conftest import subprocess_environment

    started: list[ChildProcess] = []

    def start(
        *,
        concurrency: int = 1,
        pool: str = "prefork",
        queues: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> ChildProcess:
        number = next(_worker_numbers)
        env = subprocess_environment()
        env.update(extra_env or {})
        args = celery_command(
            "worker",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--hostname=test-worker-{number}@%h",
            "--without-gossip",
            "--without-mingle",
        )
        if queues:
            args.append(f"--queues={queues}")
        child = spawn(f"celery-worker-{number}", args, log_dir=tmp_path, env=env)
        started.append(child)
        wait_until_ready(child, lambda: " ready." in child.log_text(), what=f"celery worker {number}")
        return child

    yield start
    for child in started:
        child.stop()


@pytest.fixture
def start_celery_beat(django_db_setup, tmp_path) -> Iterator[Callable[..., ChildProcess]]:
    """Factory: start a real ``celery beat`` (django-celery-beat's DatabaseScheduler)."""
    from tests.conftest import subprocess_environment

    started: list[ChildProcess] = []

    def start(*, extra_env: dict[str, str] | None = None) -> ChildProcess:
        env = subprocess_environment()
        env.update(extra_env or {})
        args = celery_command("beat", f"--pidfile={tmp_path / 'beat.pid'}")
        child = spawn("celery-beat", args, log_dir=tmp_path, env=env)
        started.append(child)
        wait_until_ready(child, lambda: "beat: Starting" in child.log_text(), what="celery beat")
        return child

    yield start
    for child in started:
        child.stop()


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[object]:
    """Debian's headless Chromium, driven by Playwright (which never downloads a browser here)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)"
        )
    # Playwright's sync API runs an event loop in this thread; Django would then refuse the
    # ORM calls that the test itself makes between page actions.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium_browser) -> Iterator[object]:
    """A fresh page (its own cookies) in the shared headless Chromium."""
    context = chromium_browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()
