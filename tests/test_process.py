"""fetchheads as a real process with real pipes and signals: how it ends is part of the contract."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from tests.support.servers import ThreadedServer, reply, silent

HEAD = b"HTTP/1.1 200 OK\r\nServer: scripted\r\nX-Padding: " + b"p" * 200 + b"\r\n\r\n"
StartServer = Callable[..., ThreadedServer]


def spawn(*args: str, stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("FETCHHEADS_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "fetchheads", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def test_a_reader_that_goes_away_ends_the_run_quietly(threaded_server: StartServer) -> None:
    """``fetchheads ... | head -1``: no traceback, no message, the exit status of a SIGPIPE."""
    server = threaded_server(reply(HEAD))
    lines = f"127.0.0.1:{server.port}\n" * 3000  # far more output than a pipe buffer holds
    process = spawn("--format", "plain", "-c", "20", stdin=subprocess.PIPE)
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(lines.encode())
    process.stdin.close()
    first = process.stdout.readline()
    process.stdout.close()  # what head does after its first line
    assert process.stderr is not None
    process.wait(timeout=60)
    stderr = process.stderr.read()
    process.stderr.close()
    assert first == f"127.0.0.1:{server.port} header > HTTP/1.1 200 OK\n".encode()
    assert stderr == b""
    assert process.returncode == 141


def test_ctrl_c_exits_130_promptly_without_a_traceback(threaded_server: StartServer) -> None:
    fast = threaded_server(reply(HEAD))
    stuck = threaded_server(silent())
    process = spawn("--json", "-t", "60", f"127.0.0.1:{fast.port}", f"127.0.0.1:{stuck.port}")
    assert process.stdout is not None
    first = process.stdout.readline()  # the fast target is done...
    wait_until(lambda: len(stuck.requests) == 1, "the request to the silent server")
    process.send_signal(signal.SIGINT)  # ...while the silent one is still in flight
    rest, stderr = process.communicate(timeout=10)  # promptly: far inside the 60 s deadline
    assert process.returncode == 130
    assert b"Traceback" not in stderr
    assert stderr.decode().strip() == "fetchheads: interrupted"
    assert json.loads(first)["target"] == f"127.0.0.1:{fast.port}"  # finished work was printed
    assert rest == b""


def test_sigterm_exits_143_without_a_traceback(threaded_server: StartServer) -> None:
    stuck = threaded_server(silent())
    process = spawn("--json", "-t", "60", f"127.0.0.1:{stuck.port}")
    wait_until(lambda: len(stuck.requests) == 1, "the request to the silent server")
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 143
    assert b"Traceback" not in stderr
    assert stdout == b""


def test_ten_thousand_targets_on_stdin_give_ten_thousand_records(
    threaded_server: StartServer,
) -> None:
    server = threaded_server(reply(b"HTTP/1.1 204 No Content\r\nServer: scripted\r\n\r\n"))
    count = 10_000
    process = spawn("--json", "-c", "100", stdin=subprocess.PIPE)
    lines = "".join(f"127.0.0.1:{server.port}/{n}\n" for n in range(count))
    stdout, stderr = process.communicate(lines.encode(), timeout=300)
    assert stderr == b""
    records = [json.loads(line) for line in stdout.splitlines()]
    assert len(records) == count
    assert sorted(int(r["url"].rsplit("/", 1)[1]) for r in records) == list(range(count))
    assert all(r["status"] == 204 for r in records), [r["error"] for r in records if r["error"]][:3]
    assert process.returncode == 0
