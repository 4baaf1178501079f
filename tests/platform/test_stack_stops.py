"""``make run``'s supervisor (companion/stack.py) stops on SIGTERM/SIGINT, however they arrive.

A signal handler runs in the main thread between any two bytecodes, possibly inside the very
wait it is meant to end; one that took a lock there (``threading.Event.set``) deadlocked, and
Ctrl-C left ``make run`` and all its children running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from companion.stack import REPO_ROOT

SUPERVISED_SLEEPER = textwrap.dedent(
    """
    import sys
    from companion.stack import _start, catch_stop_signals, supervise

    stop_signals = catch_stop_signals()
    # The child takes half a second to stop, so the burst below is over before the supervisor
    # exits (a signal during the interpreter's own shutdown meets the default handler).
    slow_to_stop = (
        "import signal, sys, time;"
        "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.5), sys.exit(0)));"
        "print('ready', flush=True);"
        "time.sleep(600)"
    )
    sleeper = _start("sleeper", [sys.executable, "-c", slow_to_stop])
    print(sleeper.popen.pid, flush=True)
    sys.exit(supervise([sleeper], stop_signals, poll_seconds=0.0001))
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_burst_of_stop_signals_stops_the_supervisor_and_its_children(signum: int) -> None:
    # given: the supervisor watching one child, polling as often as it can (many lock windows)
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISED_SLEEPER], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    assert supervisor.stdout is not None
    child_pid = int(supervisor.stdout.readline())
    assert supervisor.stdout.readline() == "[sleeper] ready\n"  # its own handler is in place
    # when: the operator's stop signal arrives, many times over, at whatever point it lands
    for _ in range(500):
        if supervisor.poll() is not None:
            break
        os.kill(supervisor.pid, signum)
    # then: it stops its child and exits cleanly, instead of hanging in its own handler
    try:
        returncode = supervisor.wait(timeout=60)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            os.killpg(child_pid, signal.SIGKILL)
    assert returncode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)
