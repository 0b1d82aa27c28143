"""Child processes the tests start: able to take Ctrl-C, and never outliving their test."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_started: list[subprocess.Popen[Any]] = []


def start(
    argv: Sequence[str], *, preexec_fn: Callable[[], object] | None = None, **popen: Any
) -> subprocess.Popen[Any]:
    """``subprocess.Popen(argv, **popen)`` with SIGINT back at its default in the child.

    pytest run from a background job or under nohup ignores SIGINT, and an ignored signal stays
    ignored across exec: the child would never see the Ctrl-C a test sends it. ``reap`` (run after
    every test by conftest) kills the child if the test did not see it end."""

    def child_setup() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if preexec_fn is not None:
            preexec_fn()

    process: subprocess.Popen[Any] = subprocess.Popen(argv, preexec_fn=child_setup, **popen)
    _started.append(process)
    return process


def reap() -> None:
    """Kill what the last test left running (a failed assertion skips its own cleanup) and close
    its pipes, so one failure cannot leave a child behind to disturb the tests after it."""
    while _started:
        process = _started.pop()
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def wait_for_file(path: Path, timeout: float = 30.0) -> None:
    """Until ``path`` exists (a mark the child makes at a point of its run), ``timeout`` at most:
    the test's own assertions then say what did not happen."""
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def signal_and_wait(
    process: subprocess.Popen[Any], signum: int = signal.SIGTERM
) -> tuple[Any, Any, float]:
    """Send ``signum`` to ``process``: the rest of its stdout and stderr, and the seconds it took
    to end after the signal."""
    signalled = time.monotonic()
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    return out, err, time.monotonic() - signalled
