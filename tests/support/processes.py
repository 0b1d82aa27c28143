"""Child processes the tests start: able to take Ctrl-C, and never outliving their test."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Sequence
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
