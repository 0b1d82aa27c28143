"""--workers: one run over several processes, as a user sees it — every target once, the whole
run's summary and exit status, signals passed on, and no worker left behind."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fetchheads.models import ResponseHead, Result
from fetchheads.render.plain import format_plain
from tests.support import processes
from tests.support.servers import ThreadedServer, reply, silent
from tests.test_process import spawn, wait_until

HEAD = b"HTTP/1.1 200 OK\r\nServer: scripted\r\n\r\n"
StartServer = Callable[..., ThreadedServer]


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(child) for child in f.read().split()]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_fetch_every_target_once_and_count_the_whole_run(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    server = threaded_server(reply(HEAD))
    lines = []
    for n in range(600):
        if n % 100 == 7:
            lines.append(f"bad host {n}")  # reported by the coordinator, with FILE:LINE
        elif n % 100 == 9:
            lines.append("127.0.0.1:1")  # refused
        else:
            lines.append(f"127.0.0.1:{server.port}/{n}")
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("\n".join(lines) + "\n")
    master, terminal = os.openpty()  # a terminal on stderr: the summary is shown
    process = processes.start(
        [
            sys.executable,
            "-m",
            "fetchheads",
            "--json",
            "-c",
            "8",
            "--workers",
            "2",
            "-i",
            str(hosts),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    os.close(terminal)
    stdout, _ = process.communicate(timeout=60)
    summary = _read_all(master)
    records = [json.loads(line) for line in stdout.splitlines()]
    assert len(records) == 600
    fetched = sorted(int(r["url"].rsplit("/", 1)[1]) for r in records if r["status"] == 200)
    assert fetched == [n for n in range(600) if n % 100 not in (7, 9)]
    inputs = sorted(
        r["error"]["message"] for r in records if r["error"] and r["error"]["kind"] == "input"
    )
    assert len(inputs) == 6
    assert inputs[0].startswith(f"{hosts}:108: ")
    assert sum(1 for r in records if r["error"] and r["error"]["kind"] == "connect") == 6
    assert process.returncode == 1
    # One summary for the whole run, not one per worker.
    assert summary.count("600 targets, 588 ok, 12 failed (connect 6, input 6); 200 x588") == 1
    assert "2 workers" in summary


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode()


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_ctrl_c_reaches_every_worker_and_what_finished_is_printed(
    threaded_server: StartServer, tmp_path: Path, loop: str
) -> None:
    fast = threaded_server(reply(HEAD))
    stuck = threaded_server(silent())
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(
        "".join(f"127.0.0.1:{stuck.port}/{n}\n" for n in range(4))
        + "".join(f"127.0.0.1:{fast.port}/{n}\n" for n in range(20))
    )
    process = spawn(
        "--json", "-t", "60", "-c", "8", "--workers", "2", "--loop", loop, "-i", str(hosts)
    )
    assert process.stdout is not None
    finished = [process.stdout.readline() for _ in range(20)]
    wait_until(lambda: len(stuck.requests) == 4, "the four requests to the silent server")
    workers = children_of(process.pid)
    assert len(workers) == 2  # two processes, each with its share of the list
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=30)  # well under -t 60: a lost Ctrl-C fails
    assert process.returncode == 130
    assert rest == b""
    records = [json.loads(line) for line in finished]
    # The twenty fast ones finished and are printed; the silent ones were still waiting: no
    # record, as in a single process.
    assert sorted(r["url"] for r in records) == sorted(
        f"http://127.0.0.1:{fast.port}/{n}" for n in range(20)
    )
    assert stderr.decode().count("fetchheads: interrupted: 20 done, 4 not finished\n") == 1
    assert b"Traceback" not in stderr
    assert not any(alive(pid) for pid in workers)


def test_no_worker_outlives_a_killed_coordinator(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    stuck = threaded_server(silent())
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"127.0.0.1:{stuck.port}/{n}\n" for n in range(4)))
    process = spawn("--json", "-t", "60", "--workers", "2", "-i", str(hosts))
    wait_until(lambda: len(stuck.requests) == 4, "the four requests to the silent server")
    workers = children_of(process.pid)
    assert len(workers) == 2
    process.kill()
    process.wait()
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(alive(pid) for pid in workers)
    assert process.stderr is not None
    # Nobody is left to count for: a worker ends quietly, not with an "internal error".
    assert process.stderr.read() == b""


@pytest.mark.parametrize(
    "args",
    [
        ["--workers", "1"],  # asked for
        ["--workers", "2", "--order", "input"],  # one process keeps the input order
        ["--workers", "2", "--rate", "1000"],  # one clock spaces the connections evenly
        ["--workers", "2", "--format", "pretty"],
        ["--json", "-c", "20"],  # auto: fewer than 25 connections a worker is not worth one
    ],
)
def test_runs_that_need_one_process_get_one(
    threaded_server: StartServer, tmp_path: Path, args: list[str]
) -> None:
    stuck = threaded_server(silent())
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"127.0.0.1:{stuck.port}/\n")
    process = spawn("-t", "60", "-i", str(hosts), *args)
    wait_until(lambda: len(stuck.requests) == 1, "the request to the silent server")
    assert children_of(process.pid) == []
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=10)
    assert process.returncode == 130


@pytest.mark.parametrize(("concurrency", "most"), [("100", 4), ("50", 2)])
def test_auto_forks_one_worker_per_core_and_per_25_connections(
    threaded_server: StartServer, tmp_path: Path, concurrency: str, most: int
) -> None:
    stuck = threaded_server(silent())
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"127.0.0.1:{stuck.port}/{n}\n" for n in range(8)))
    process = spawn("--json", "-t", "60", "-c", concurrency, "-i", str(hosts))
    wait_until(lambda: len(stuck.requests) == 8, "the requests to the silent server")
    expected = min(len(os.sched_getaffinity(0)), most)
    assert len(children_of(process.pid)) == (expected if expected > 1 else 0)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=10)
    assert process.returncode == 130


@pytest.mark.parametrize("value", ["0", "65", "two", "-1", "\u00b2"])  # a digit to isdigit()
def test_a_bad_worker_count_is_a_usage_error(value: str) -> None:
    process = spawn("--workers", value, "127.0.0.1:1", stdin=subprocess.DEVNULL)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert b"--workers" in stderr


WITHOUT_FORK = "import os; del os.fork; from fetchheads.__main__ import run; run()"
"""fetchheads on a system with no os.fork (Windows)."""


def test_without_fork_auto_runs_one_process_and_a_count_says_why_it_cannot(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    server = threaded_server(reply(HEAD))
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"127.0.0.1:{server.port}/{n}\n" for n in range(20)))
    argv = [sys.executable, "-c", WITHOUT_FORK, "--json", "-c", "100", "-i", str(hosts)]
    auto = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert auto.returncode == 0, auto.stderr
    assert len([json.loads(line) for line in auto.stdout.splitlines()]) == 20
    refused = subprocess.run(
        [*argv, "--workers", "2"], capture_output=True, timeout=60, check=False
    )
    assert refused.returncode == 2
    assert refused.stdout == b""
    assert refused.stderr.decode().splitlines()[-1] == (
        "Error: Invalid value for --workers: 2 processes need os.fork(), which this system "
        "does not have; --workers 1 runs in one process"
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_workers_start_stops_the_run_cleanly(
    threaded_server: StartServer, tmp_path: Path, signum: signal.Signals
) -> None:
    """Ctrl-C pressed just as the workers are forked: neither lost (the run would go on to the
    end of -t) nor a traceback, nor a worker's "internal error"."""
    stuck = threaded_server(silent())
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"127.0.0.1:{stuck.port}/{n}\n" for n in range(4)))
    # Nothing finished; how much of the list was handed out by then is up to the scheduler.
    said = r"fetchheads: {}: 0 done, [0-4] not finished(, the rest of the input not read)?\n"
    expected = {
        signal.SIGINT: (130, said.format("interrupted")),
        signal.SIGTERM: (143, said.format("terminated")),
    }
    for _ in range(3):  # the window is a few milliseconds: aim at it more than once
        process = spawn("--json", "-t", "60", "--workers", "2", "-i", str(hosts))
        wait_until(functools.partial(_has_children, process.pid), "the first worker")
        workers = _children_or_none(process.pid)
        process.send_signal(signum)
        try:
            _, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{signum.name} as the workers started was lost: the run went on")
        status, message = expected[signum]
        assert process.returncode == status
        assert re.fullmatch(message, stderr.decode()), stderr
        assert not any(alive(pid) for pid in workers)


def _has_children(pid: int) -> bool:
    return bool(_children_or_none(pid))


def _requests_reach(server: ThreadedServer, count: int) -> bool:
    return len(server.requests) == count


def _children_or_none(pid: int) -> list[int]:
    try:
        return children_of(pid)
    except FileNotFoundError:  # it has ended
        return []


def test_when_every_worker_is_killed_the_run_says_so_and_fails(
    threaded_server: StartServer,
) -> None:
    """Both workers SIGKILLed while the input still flows: each one's end is reported, exit 1,
    not an internal error."""
    server = threaded_server(reply(HEAD))
    process = spawn("--json", "--workers", "2", stdin=subprocess.PIPE)
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(f"127.0.0.1:{server.port}/first\n".encode())
    process.stdin.flush()
    assert json.loads(process.stdout.readline())["status"] == 200
    workers = children_of(process.pid)
    assert len(workers) == 2
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not any(alive(pid) for pid in workers), "the workers' end")
    with contextlib.suppress(BrokenPipeError):  # the coordinator may have stopped reading
        for n in range(400):  # more than the pipes to the workers hold
            process.stdin.write(f"127.0.0.1:{server.port}/{n}\n".encode())
    with contextlib.suppress(BrokenPipeError):
        process.stdin.close()
    assert process.stderr is not None
    stderr = process.stderr.read()
    assert process.wait(timeout=20) == 1
    lines = stderr.decode().splitlines()
    assert not [line for line in lines if "internal error" in line]
    # "with N targets unfinished" when the coordinator handed it lines before it saw the death.
    counted = re.compile(r" ended \(signal 9\)( with \d+ targets? unfinished,)? before it counted")
    ended = [line for line in lines if counted.search(line)]
    assert len(ended) == 2  # each on one line, whole, for a log to be grepped
    for n in (1, 2):
        assert any(line.startswith(f"fetchheads: worker {n} ended (signal 9)") for line in ended)
    assert all(line.endswith("; its unfinished targets have no record") for line in ended)
    # The record one of them printed before it died is said, as it is not in the counts.
    assert sum("(not counted: 1 target it finished)" in line for line in ended) == 1


def test_a_worker_stopped_alone_is_named_and_the_run_fails(
    threaded_server: StartServer,
) -> None:
    """SIGTERM to one worker (kill, systemd, a container runtime): it prints what it finished
    and counts it, but the target it held has no record, so the run says so and exits 1."""
    silent_server = threaded_server(silent())
    process = spawn("--json", "--workers", "2", "-t", "3", stdin=subprocess.PIPE)
    assert process.stdin is not None
    for n in range(2):  # one each: the worker with fewer targets in hand gets the next
        process.stdin.write(f"127.0.0.1:{silent_server.port}/{n}\n".encode())
    process.stdin.flush()
    wait_until(lambda: len(silent_server.requests) >= 2, "both targets in flight")
    workers = children_of(process.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGTERM)
    process.stdin.close()
    assert process.stderr is not None
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=20) == 1
    assert (
        "was stopped on its own (exit status 143) with 1 target unfinished; "
        "its unfinished targets have no record"
    ) in stderr
    assert "internal error" not in stderr


def test_a_worker_killed_outright_says_how_many_targets_have_no_record(
    threaded_server: StartServer,
) -> None:
    """kill -9 to one worker: its counts are lost, but the supervisor knows how many targets it
    held, and says so, so that the records plus that number make the whole list."""
    silent_server = threaded_server(silent())
    process = spawn("--json", "--workers", "2", "-t", "3", stdin=subprocess.PIPE)
    assert process.stdin is not None
    for n in range(2):  # one each: the worker with fewer targets in hand gets the next
        process.stdin.write(f"127.0.0.1:{silent_server.port}/{n}\n".encode())
    process.stdin.flush()
    wait_until(lambda: len(silent_server.requests) >= 2, "both targets in flight")
    workers = children_of(process.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=20)  # and the end of the input
    assert process.returncode == 1
    assert len(stdout.decode().splitlines()) == 1  # the other worker's target, timed out
    assert (
        "fetchheads: worker 1 ended (signal 9) with 1 target unfinished, before it counted its "
        "targets; its unfinished targets have no record\n"
    ) in stderr.decode()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_twice_is_still_an_interrupt(
    threaded_server: StartServer, tmp_path: Path, workers: str
) -> None:
    """A user presses Ctrl-C twice in quick succession: exit 130, not click's "Aborted!" and 1."""
    stuck = threaded_server(silent())
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"127.0.0.1:{stuck.port}/{n}\n" for n in range(4)))
    for gap in (0.0, 0.001, 0.005, 0.01, 0.02):  # the second lands while the run is ending
        requests = len(stuck.requests)
        process = spawn("--json", "-t", "60", "--workers", workers, "-i", str(hosts))
        wait_until(functools.partial(_requests_reach, stuck, requests + 4), "the four requests")
        process.send_signal(signal.SIGINT)
        time.sleep(gap)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode in (130, -signal.SIGINT), stderr  # the shell shows 130
        assert b"Aborted" not in stderr
        assert b"Traceback" not in stderr


SECOND_CTRL_C = {
    # The run has ended and handed SIGINT back: the command is returning its exit status.
    "as the command returns": (
        "import os, signal, sys\n"
        "def at_return(frame, event, arg):\n"
        "    if event == 'return' and frame.f_code.co_name == 'run_plan':\n"
        "        sys.setprofile(None)\n"
        "        second_ctrl_c()\n"
        "sys.setprofile(at_return)\n"
    ),
    # The last thing the interpreter runs as the process exits.
    "as the process exits": "import atexit\natexit.register(second_ctrl_c)\n",
}
SENT = b"the second Ctrl-C\n"
"""What the process writes to stdout as it sends it: the test sees that it was sent."""


@pytest.mark.parametrize("when", SECOND_CTRL_C)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_ctrl_c_as_the_interrupted_run_ends_is_still_an_interrupt(
    threaded_server: StartServer, tmp_path: Path, workers: str, when: str
) -> None:
    """The second Ctrl-C of a user who pressed it twice lands after the run has stopped, while
    the process is on its way out (the process sends it itself, at that moment, every time):
    exit 130 and the run's one line, not click's "Aborted!" and 1 or a traceback."""
    stuck = threaded_server(silent())
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"127.0.0.1:{stuck.port}/{n}\n" for n in range(4)))
    script = (
        "import os, signal\n"
        "def second_ctrl_c():\n"
        f"    os.write(1, {SENT!r})\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        + SECOND_CTRL_C[when]
        + "from fetchheads.__main__ import run\nrun()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("FETCHHEADS_DEBUG", None)
    argv = ["--json", "-t", "60", "--workers", workers, "-i", str(hosts)]
    process = processes.start(
        [sys.executable, "-c", script, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    wait_until(functools.partial(_requests_reach, stuck, 4), "the four requests")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=20)
    assert (process.returncode, stdout) == (130, SENT), stderr
    # Whether the end of the list had been read by then is up to the scheduler.
    interrupted = (
        r"fetchheads: interrupted: 0 done, 4 not finished(, the rest of the input not read)?\n"
    )
    assert re.fullmatch(interrupted, stderr.decode()), stderr


def test_a_worker_that_dies_mid_record_leaves_no_broken_line() -> None:
    """Whatever a killed worker wrote of its last record is not a record: stdout keeps only
    whole records (one bad JSON line would stop ``jq`` reading the rest)."""
    from fetchheads.run.single import framed
    from fetchheads.run.supervisor.multiprocess import _Merge
    from fetchheads.run.supervisor.worker import RECORD_END, Worker

    def record(url: str) -> str:
        return framed(lambda _: f'{{"url": "{url}"}}\n', RECORD_END)(_result(url))

    written: list[bytes] = []
    worker = Worker(pid=0, feed=-1, output=-1, counts=-1, limit=1)
    merge = _Merge(worker, written.append, asyncio.Event())
    merge.data_received((record("http://a/") + record("http://b/")[:15]).encode())
    merge.connection_lost(None)
    assert b"".join(written) == b'{"url": "http://a/"}\n'
    assert worker.finished == 1  # the record that came whole: one more target it can be given


def test_each_targets_plain_lines_stay_together_when_the_output_backs_up(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    """Big heads (22 KB each) and a reader that pauses: the workers' pipes are read in pieces
    that cut records. As with one process, each target's plain lines come out together."""
    headers = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 100) for n in range(200))
    server = threaded_server(reply(b"HTTP/1.1 200 OK\r\n" + headers + b"\r\n"))
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"127.0.0.1:{server.port}/{n}\n" for n in range(300)))
    process = spawn("--format", "plain", "-c", "8", "--workers", "2", "-i", str(hosts))
    assert process.stdout is not None
    wait_until(lambda: "pipe_write" in _waits_in(process.pid), "the coordinator's full stdout")
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    runs: list[bytes] = []
    for line in stdout.splitlines():
        target = line.split(b" ", 1)[0]
        if not runs or runs[-1] != target:
            runs.append(target)
    assert len(runs) == len(set(runs)) == 300


def _result(url: str) -> Result:
    head = ResponseHead(
        status=200,
        reason="OK",
        http_version="HTTP/1.1",
        headers=tuple((f"X-{n}", "v") for n in range(3)),
    )
    return Result(target=url, url=url, head=head)


def test_a_plain_record_is_never_split_by_another_workers_lines() -> None:
    """A worker's pipe read can end between two lines of one target's plain record (a big head,
    a busy coordinator). The other worker's record must not land in between: one process never
    splits a target's lines, and two responses of one target could not be told apart."""
    from fetchheads.run.single import framed
    from fetchheads.run.supervisor.multiprocess import _Merge
    from fetchheads.run.supervisor.worker import RECORD_END, Worker

    worker_output = framed(format_plain, RECORD_END)
    first = worker_output(_result("http://a/")).encode()
    second = worker_output(_result("http://b/")).encode()
    cut = first.index(b"\n") + 1  # after the status line, before the headers
    written: list[bytes] = []
    merges = [
        _Merge(
            Worker(pid=0, feed=-1, output=-1, counts=-1, limit=1), written.append, asyncio.Event()
        )
        for _ in range(2)
    ]
    merges[0].data_received(first[:cut])
    merges[1].data_received(second)
    merges[0].data_received(first[cut:])
    targets = [line.split(b" ", 1)[0] for line in b"".join(written).splitlines()]
    assert targets == [b"http://b/"] * 4 + [b"http://a/"] * 4


def test_workers_with_stderr_closed_still_print_every_record(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    """``fetchheads -i hosts.txt 2>&-``: as with one process, every record and exit 0 (the
    coordinator has no sys.stderr to flush before forking)."""
    server = threaded_server(reply(HEAD))
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"127.0.0.1:{server.port}/{n}\n" for n in range(50)))
    process = spawn("--json", "--workers", "2", "-i", str(hosts), preexec_fn=lambda: os.close(2))
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    records = [json.loads(line) for line in stdout.splitlines()]
    assert sorted(r["url"] for r in records) == sorted(
        f"http://127.0.0.1:{server.port}/{n}" for n in range(50)
    )


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_ctrl_c_or_kill_gets_out_of_a_stdout_nobody_reads(
    threaded_server: StartServer, tmp_path: Path, workers: str, signum: int, status: int
) -> None:
    """Output into a pipe that is not being read: the process sits in write(), where the event
    loop cannot see a signal. The first Ctrl-C (or ``kill``) waits for it; a second one must
    still end the run, with 130 (143)."""
    server = threaded_server(reply(HEAD))
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"127.0.0.1:{server.port}/{n}\n" for n in range(3000)))
    unread, stdout = os.pipe()
    try:
        process = spawn("--json", "--workers", workers, "-i", str(hosts), stdout=stdout)
        os.close(stdout)
        wait_until(lambda: "pipe_write" in _waits_in(process.pid), "a write to the full pipe")
        process.send_signal(signum)
        time.sleep(0.2)  # not a timing assertion: the first one is still waiting, as a user's
        process.send_signal(signum)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("two signals did not end a run whose output was not being read")
        assert process.returncode == status
    finally:
        os.close(unread)


def _waits_in(pid: int) -> str:
    """Where each of the process's threads sleeps in the kernel (output has a thread of its own)."""
    waits = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/task/{task}/wchan") as f:
            waits.append(f.read())
    return " ".join(waits)


def test_a_worker_held_up_by_slow_targets_is_given_only_a_few_more(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    """Two silent targets take both connections of one worker (-c 4, 2 workers): the fast ones
    go to the other worker, not into a backlog that waits out -t behind the silent ones. Only
    the worker's read-ahead (2 here) waits, where one process would have made none wait."""
    fast = threaded_server(reply(HEAD))
    stuck = threaded_server(silent())
    lines = [f"127.0.0.1:{fast.port}/{n}" for n in range(200)]
    lines[0] = f"127.0.0.1:{stuck.port}/a"
    lines[2] = f"127.0.0.1:{stuck.port}/b"  # the first and the third go to the same worker
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("\n".join(lines) + "\n")
    process = spawn("--json", "-t", "2", "-c", "4", "--workers", "2", "-i", str(hosts))
    stdout, _ = process.communicate(timeout=30)
    records = [json.loads(line) for line in stdout.splitlines()]
    assert len(records) == 200
    first_timeout = next(n for n, r in enumerate(records) if r["error"])
    late = [r for r in records[first_timeout:] if r["ok"]]
    assert len(late) <= 2, f"{len(late)} fast targets waited for the silent ones"


FORK_FAILS_SECOND_TIME = """
import errno, os

_fork = os.fork
_calls = []


def fork():
    _calls.append(1)
    if len(_calls) == 2:
        raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
    return _fork()


os.fork = fork
"""


def test_a_worker_that_cannot_be_started_is_a_clear_error_not_an_internal_one(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    """fork() refused (the process limit, memory): say so and suggest one process; no
    "internal error", and the worker already started does not linger."""
    server = threaded_server(reply(HEAD))
    (tmp_path / "sitecustomize.py").write_text(FORK_FAILS_SECOND_TIME)
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"127.0.0.1:{server.port}/\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    process = processes.start(
        [sys.executable, "-m", "fetchheads", "--json", "--workers", "2", "-i", str(hosts)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert stdout == b""
    message = stderr.decode()
    assert "internal error" not in message
    assert "cannot start worker 2 of 2" in message
    assert "--workers 1" in message
