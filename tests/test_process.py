"""fetchheads as a real process with real pipes and signals: how it ends is part of the contract."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from fetchheads.errors import ErrorKind
from fetchheads.fetch.one import fetch_one
from fetchheads.run.process import FDS_RESERVED, fit_concurrency, loop_errors
from fetchheads.targets import parse_target
from tests.conftest import make_context
from tests.support import processes
from tests.support.servers import LoopbackServer, ThreadedServer, reply, silent

HEAD = b"HTTP/1.1 200 OK\r\nServer: scripted\r\nX-Padding: " + b"p" * 200 + b"\r\n\r\n"
StartServer = Callable[..., ThreadedServer]


def spawn(
    *args: str, stdin: int | None = subprocess.DEVNULL, stdout: Any = subprocess.PIPE, **popen: Any
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("FETCHHEADS_DEBUG", None)
    return processes.start(
        [sys.executable, "-m", "fetchheads", *args],
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=env,
        **popen,
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_reader_that_goes_away_ends_the_run_quietly(
    threaded_server: StartServer, workers: str
) -> None:
    """``fetchheads ... | head -1``: no traceback, no message, the exit status of a SIGPIPE;
    with workers too, whose targets in flight are not reported as lost (the run stopped)."""
    server = threaded_server(reply(HEAD, delay=0.05))
    lines = f"127.0.0.1:{server.port}\n" * 3000  # far more output than a pipe buffer holds
    process = spawn(
        "--format", "plain", "-c", "20", "--workers", workers, stdin=subprocess.PIPE
    )  # fmt: skip
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


def test_a_short_list_cut_by_head_with_workers_says_nothing_either(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    """A few fast targets from a file, | head: the workers are stopped as they finish, some
    before they have counted their targets; the run stopped them, so that is no failure."""
    server = threaded_server(reply(HEAD))
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"127.0.0.1:{server.port}/a\n127.0.0.1:{server.port}/b\n127.0.0.1:1\n")
    for _ in range(12):  # the race was lost about one time in two
        process = spawn("--format", "plain", "--workers", "2", "-i", str(hosts))
        assert process.stdout is not None
        process.stdout.readline()
        process.stdout.close()  # what head does after its first line
        assert process.stderr is not None
        process.wait(timeout=60)
        stderr = process.stderr.read()
        process.stderr.close()
        assert b"worker" not in stderr, stderr


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
    assert stderr.decode().strip() == "fetchheads: interrupted: 1 done, 1 not finished"
    assert json.loads(first)["target"] == f"127.0.0.1:{fast.port}"  # finished work was printed
    assert rest == b""


def test_ctrl_c_still_prints_the_summary_of_what_finished(threaded_server: StartServer) -> None:
    fast = threaded_server(reply(HEAD))
    stuck = threaded_server(silent())
    process = spawn(
        "--json", "--progress", "-t", "60", f"127.0.0.1:{fast.port}", f"127.0.0.1:{stuck.port}"
    )
    assert process.stdout is not None
    process.stdout.readline()
    wait_until(lambda: len(stuck.requests) == 1, "the request to the silent server")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 130
    after_the_bar = stderr.decode().rsplit("\x1b[2K", 1)[-1]
    summary, interrupted = after_the_bar.splitlines()
    assert summary.startswith("1 target, 1 ok; 200 x1; ")
    assert interrupted == "fetchheads: interrupted: 1 done, 1 not finished"


def test_ctrl_c_counts_the_target_read_while_the_feed_was_full(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    """-c 2 on a list of 7: 2 in flight, 4 waiting their turn, and the reader holds the 7th.
    The progress line counts it as read; the interrupted line must count it as not finished."""
    stuck = threaded_server(silent())
    targets = tmp_path / "targets.txt"
    targets.write_text("".join(f"127.0.0.1:{stuck.port}/{n}\n" for n in range(7)))
    process = spawn("--json", "--progress", "-c", "2", "-t", "60", "-i", str(targets))
    wait_until(lambda: len(stuck.requests) == 2, "both requests in flight")
    time.sleep(0.5)  # the reader has filled the feed (2 x -c) and holds the 7th target
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 130
    interrupted = stderr.decode().strip().splitlines()[-1]
    assert interrupted.startswith("fetchheads: interrupted: 0 done, 7 not finished"), stderr
    assert all(bar == "7" for bar in re.findall(r"0/(\d+) done", stderr.decode())), stderr


def test_sigterm_exits_143_without_a_traceback(threaded_server: StartServer) -> None:
    stuck = threaded_server(silent())
    process = spawn("--json", "-t", "60", f"127.0.0.1:{stuck.port}")
    wait_until(lambda: len(stuck.requests) == 1, "the request to the silent server")
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 143
    # The one line a cron job stopped by `timeout` mails, as after Ctrl-C.
    assert stderr == b"fetchheads: terminated: 0 done, 1 not finished\n"
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


# --- signals while a slow producer still holds stdin open --------------------------------------


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_promptly_while_stdin_is_still_open(
    threaded_server: StartServer, signum: int, status: int
) -> None:
    """``producer | fetchheads``: the input thread is blocked reading, and must not hold the
    process up; the run stops well inside a second of the signal."""
    fast = threaded_server(reply(HEAD))
    stuck = threaded_server(silent())
    process = spawn("--json", "-t", "60", stdin=subprocess.PIPE, bufsize=0)
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(f"127.0.0.1:{fast.port}\n127.0.0.1:{stuck.port}\n".encode())
    process.stdin.flush()  # ...and keep stdin open, as a producer that is still working would
    first = process.stdout.readline()
    wait_until(lambda: len(stuck.requests) == 1, "the request to the silent server")
    signalled = time.monotonic()
    process.send_signal(signum)
    try:
        rest, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    elapsed = time.monotonic() - signalled
    assert process.returncode == status
    assert elapsed < 1.0, f"took {elapsed:.2f}s to stop"
    assert json.loads(first)["ok"] is True
    assert rest == b""
    assert b"Traceback" not in stderr


def test_an_interrupt_mid_stream_leaves_only_whole_records(threaded_server: StartServer) -> None:
    server = threaded_server(reply(HEAD))
    # Unbuffered: what readline() does not take stays in the pipe for communicate().
    process = spawn("--json", "-c", "50", stdin=subprocess.PIPE, bufsize=0)
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(f"127.0.0.1:{server.port}\n".encode() * 5000)
    process.stdin.flush()
    process.stdout.readline()  # output is streaming now
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=10)
    assert process.returncode == 130
    # stdin is still open: the list has no end yet, and the message says so.
    message = re.fullmatch(
        r"fetchheads: interrupted: ([\d,]+) done, ([\d,]+) not finished, "
        r"the rest of the input not read",
        stderr.decode().strip(),
    )
    assert message is not None, stderr
    assert int(message[1].replace(",", "")) == 1 + len(rest.splitlines())  # each one printed
    assert rest == b"" or rest.endswith(b"\n")
    for line in rest.splitlines():
        assert json.loads(line)["ok"] is True, line


# --- stdout that cannot be written -------------------------------------------------------------


def test_a_closed_stdout_is_a_one_line_error(threaded_server: StartServer) -> None:
    server = threaded_server(reply(HEAD))
    process = spawn("--format", "plain", f"127.0.0.1:{server.port}", preexec_fn=lambda: os.close(1))
    _, stderr = process.communicate(timeout=30)
    assert stderr == b"fetchheads: cannot write the output: standard output is closed\n"
    assert process.returncode == 1


@pytest.mark.parametrize("closed_fd", [0, 2])
def test_a_closed_stdin_or_stderr_does_not_crash_the_run(
    threaded_server: StartServer, closed_fd: int
) -> None:
    """uvloop aborts the process (libuv asserts) when a socket lands on a closed descriptor
    0-2 and is closed later: the standard descriptors are reserved at start."""
    server = threaded_server(reply(HEAD))
    process = spawn(
        "--format",
        "plain",
        f"127.0.0.1:{server.port}",
        stdin=None,
        preexec_fn=lambda: os.close(closed_fd),
    )
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert stdout.startswith(f"127.0.0.1:{server.port} header > HTTP/1.1 200 OK\n".encode())


def test_no_targets_and_a_closed_stdin_is_a_usage_error() -> None:
    process = spawn(stdin=None, preexec_fn=lambda: os.close(0))
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert stdout == b""
    assert b"Error: no targets" in stderr


@pytest.mark.parametrize("output_format", ["plain", "jsonl", "pretty"])
def test_a_full_disk_is_a_one_line_error(threaded_server: StartServer, output_format: str) -> None:
    server = threaded_server(reply(HEAD))
    with open("/dev/full", "wb") as full:
        process = spawn("--format", output_format, f"127.0.0.1:{server.port}", stdout=full)
        _, stderr = process.communicate(timeout=30)
    assert stderr == b"fetchheads: cannot write the output: No space left on device\n"
    assert process.returncode == 1


def test_a_prometheus_file_that_could_not_be_written_whole_leaves_the_old_one(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    """The textfile collector must see the old file or a whole new one: a disk that fills up (here
    the file-size limit, as a quota does) while the new one is written must not put half of it
    in place of the old."""
    server = threaded_server(reply(HEAD))
    textfile = tmp_path / "heads.prom"
    textfile.write_text("# the last good run\n")
    targets = [f"127.0.0.1:{server.port}/{i}" for i in range(200)]  # ~100 KB of metrics
    process = spawn(
        "-o",
        str(textfile),
        *targets,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)),
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr == b"fetchheads: cannot write the output: File too large\n"
    assert textfile.read_text() == "# the last good run\n"
    assert [p.name for p in tmp_path.iterdir()] == ["heads.prom"]  # no temporary file left


# --- the open-file limit -----------------------------------------------------------------------


def _limit_open_files(soft: int, hard: int) -> Callable[[], None]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return limit


def test_concurrency_is_lowered_to_fit_a_small_hard_limit(threaded_server: StartServer) -> None:
    server = threaded_server(reply(HEAD))
    limit = FDS_RESERVED + 16
    process = spawn(
        "--json",
        "-c",
        "100",
        stdin=subprocess.PIPE,
        preexec_fn=_limit_open_files(limit, limit),
    )
    stdout, stderr = process.communicate(f"127.0.0.1:{server.port}\n".encode() * 200, timeout=60)
    assert stderr.decode().splitlines() == [
        f"fetchheads: warning: concurrency lowered from 100 to 14 to fit the open-file limit "
        f"of {limit} (raise it with 'ulimit -n')"
    ]
    records = [json.loads(line) for line in stdout.splitlines()]
    assert len(records) == 200
    assert all(r["ok"] for r in records), [r["error"] for r in records if r["error"]][:3]
    assert process.returncode == 0


def test_the_soft_limit_is_raised_to_the_hard_limit(threaded_server: StartServer) -> None:
    """With a soft limit of 100 and -c 300, every connection can still be open at once."""
    stuck = threaded_server(silent())
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 300 + FDS_RESERVED + 50:
        raise AssertionError(
            f"this machine's hard open-file limit ({hard}) is too low for the test"
        )
    process = spawn(
        "--json",
        "-c",
        "300",
        "-t",
        "1",
        stdin=subprocess.PIPE,
        preexec_fn=_limit_open_files(100, hard),
    )
    stdout, stderr = process.communicate(f"127.0.0.1:{stuck.port}\n".encode() * 300, timeout=60)
    assert stderr == b""  # no warning: the limit was raised, not the concurrency lowered
    kinds = {json.loads(line)["error"]["kind"] for line in stdout.splitlines()}
    assert kinds == {"timeout"}  # every target connected; none ran out of descriptors
    assert len(stdout.splitlines()) == 300


async def test_running_out_of_descriptors_is_a_local_error_not_the_hosts() -> None:
    """EMFILE while connecting: kind connect, a message that says it is ours, and the address
    list is not walked (every other address would fail the same way)."""
    async with LoopbackServer(reply(HEAD)) as server:
        target = parse_target(f"127.0.0.1:{server.port}")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        hog: list[int] = []
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (_open_count() + 20, hard))
            with contextlib.suppress(OSError):
                while True:
                    hog.append(os.open(os.devnull, os.O_RDONLY))
            result = await fetch_one(target, make_context())
        finally:
            for fd in hog:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert result.error is not None
    assert result.error.kind == ErrorKind.CONNECT
    assert result.error.message == (
        "local: out of file descriptors (EMFILE): lower -c or raise 'ulimit -n'"
    )
    assert "127.0.0.1" not in result.error.message


def _open_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_fit_concurrency() -> None:
    assert fit_concurrency(100, None) == (100, None)
    assert fit_concurrency(100, 1024) == (100, None)
    lowered, warning = fit_concurrency(5000, 1024)
    assert lowered == (1024 - FDS_RESERVED) * 7 // 8
    assert warning is not None
    assert "lowered from 5000 to 840" in warning
    assert fit_concurrency(10, 10)[0] == 1


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_while_stdin_is_open_and_idle(
    threaded_server: StartServer, signum: int, status: int
) -> None:
    """Targets typed at a terminal, or a producer that is alive but quiet: the input thread is
    blocked in a read that will not return, and must not keep the process from ending."""
    server = threaded_server(reply(HEAD))
    process = spawn("--json", stdin=subprocess.PIPE)
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdin.write(f"127.0.0.1:{server.port}\n".encode())
    process.stdin.flush()  # and stdin stays open: nothing more comes, no EOF either
    first = process.stdout.readline()
    process.send_signal(signum)
    try:
        process.wait(timeout=10)  # not communicate(): that would close stdin and end the read
    finally:
        process.kill()
        process.stdin.close()
    stderr = process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    assert process.returncode == status
    assert json.loads(first)["ok"] is True
    assert b"Traceback" not in stderr
    assert b"Fatal Python error" not in stderr


def test_children_take_ctrl_c_even_when_pytest_ignores_it() -> None:
    # pytest from a background job or nohup: SIGINT ignored, and children inherit that.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        child = processes.start(
            [
                sys.executable,
                "-c",
                "import signal; print(signal.getsignal(signal.SIGINT).__name__)",
            ],
            stdout=subprocess.PIPE,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    out, _ = child.communicate(timeout=30)
    assert out == b"default_int_handler\n"  # Python's KeyboardInterrupt, not SIG_IGN


def test_the_collector_tuning_is_undone_after_a_run() -> None:
    # The run collects the young generation less often (a measured ~5% of CPU at 10,000 targets);
    # a caller that goes on living after it (tests, an embedding program) gets its settings back.
    import gc

    from fetchheads.run import process

    before = gc.get_threshold()
    with process.tuned_gc():
        assert gc.get_threshold()[0] == process.GC_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_ctrl_c_in_input_order_keeps_what_finished_behind_a_slow_target(
    threaded_server: StartServer, tmp_path: Any
) -> None:
    # --order input holds a finished result until the targets before it finish. Ctrl-C while the
    # first one is stuck used to drop the finished one: not printed, not recorded in --db.
    import sqlite3

    stuck = threaded_server(silent())
    fast = threaded_server(reply(HEAD))
    db = tmp_path / "heads.db"
    process = spawn(
        "--json", "--order", "input", "--db", str(db), "-t", "60",
        f"127.0.0.1:{stuck.port}", f"127.0.0.1:{fast.port}",
    )  # fmt: skip
    wait_until(lambda: len(stuck.requests) == 1 and len(fast.requests) == 1, "both requests")
    time.sleep(0.3)  # the fast answer is read and held behind the stuck target
    process.send_signal(signal.SIGINT)
    out, stderr = process.communicate(timeout=10)
    assert process.returncode == 130, stderr
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["target"] for r in records] == [f"127.0.0.1:{fast.port}"]
    assert records[0]["status"] == 200
    with contextlib.closing(sqlite3.connect(db)) as connection:
        stored = connection.execute("SELECT target, status FROM snapshots").fetchall()
    assert stored == [(f"127.0.0.1:{fast.port}", 200)]


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_an_error_in_a_loop_callback_is_one_line_said_once(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """What no task awaits (here two callbacks that raise) reaches the loop's handler: the first
    is one line, with no traceback; the second is not said."""
    said: list[str] = []

    def fail(n: int) -> None:
        raise RuntimeError(f"boom {n}")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(loop_errors(said.append))
        loop.call_soon(fail, 1)
        loop.call_soon(fail, 2)
        await asyncio.sleep(0.01)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
    assert said == [
        "fetchheads: internal error: RuntimeError: boom 1 "
        "(the run goes on; FETCHHEADS_DEBUG=1 shows the traceback)"
    ]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_run_says_an_error_inside_its_loop_in_one_line(
    workers: str,
    monkeypatch: pytest.MonkeyPatch,
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    """A run (one process, or a supervisor and its workers) installs the one-line handler: a
    protocol callback that raises is reported once on stderr, never as a traceback."""
    from click.testing import CliRunner

    from fetchheads.cli import cli
    from fetchheads.fetch.connection import HeadReader

    def broken(self: HeadReader, transport: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(HeadReader, "connection_made", broken)
    server = threaded_server(reply(b"HTTP/1.1 200 OK\r\n\r\n"))
    listing = "".join(f"http://127.0.0.1:{server.port}/{n}\n" for n in range(60))
    outcome = CliRunner().invoke(
        cli, ["--json", "-t", "1", "--workers", workers, "-i", "-"], input=listing
    )
    assert outcome.exit_code == 1
    assert len(outcome.stdout.splitlines()) == 60
    lines = outcome.stderr.splitlines()
    assert lines, "nothing said"
    assert "Traceback" not in outcome.stderr
    assert all(
        line == "fetchheads: internal error: RuntimeError: boom "
        "(the run goes on; FETCHHEADS_DEBUG=1 shows the traceback)"
        for line in lines
    ), lines
    assert len(lines) <= int(workers)  # once per process at most
