"""Writing results, as a user sees it: a reader that falls behind (a paused ``less``, a slow log
shipper, a terminal held with Ctrl-S) slows the run down and never fails a target that answered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fetchheads.render.writer import HIGH_WATER, LOW_WATER, Writer
from tests.support.servers import ThreadedServer, reply
from tests.test_process import spawn

StartServer = Callable[..., ThreadedServer]

PADDED_HEAD = b"HTTP/1.1 200 OK\r\nServer: scripted\r\nX-Padding: " + b"p" * 2500 + b"\r\n\r\n"
"""About 2.7 KB of JSON per target: 250 targets are two pauses of the reader below, and what a
worker of two finishes with ``-c 50`` overfills its 64 KiB pipe to the coordinator."""
TARGETS = 250
READ_BEFORE_PAUSE = 300_000
PAUSE = 1.5
"""Longer than ``-t 1``: before output stopped blocking the event loop, every pause timed out
the targets in flight, though their answers had arrived."""


def read_with_pauses(fd: int) -> bytes:
    """All that comes out of ``fd``, read as a slow reader does: 300 KB, a pause, and again."""
    out = bytearray()
    since_pause = 0
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: a terminal whose other side is closed
            break
        if not chunk:
            break
        out += chunk
        since_pause += len(chunk)
        if since_pause >= READ_BEFORE_PAUSE:
            since_pause = 0
            time.sleep(PAUSE)
    return bytes(out)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(["--workers", "1"], id="one-process"),
        pytest.param(["--workers", "2"], id="two-workers"),
        pytest.param(["--workers", "1", "--order", "input"], id="input-order"),
        pytest.param(["--workers", "2", "--db"], id="db"),
    ],
)
def test_a_reader_that_pauses_never_turns_an_answer_into_a_timeout(
    threaded_server: StartServer, tmp_path: Path, options: list[str]
) -> None:
    server = threaded_server(reply(PADDED_HEAD))
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"127.0.0.1:{server.port}/{n}\n" for n in range(TARGETS)))
    db = tmp_path / "heads.db"
    if options[-1] == "--db":
        options = [*options, str(db)]
    process = spawn("--json", "-t", "1", "-c", "50", *options, "-i", str(hosts))
    assert process.stdout is not None
    stdout = read_with_pauses(process.stdout.fileno())
    _, stderr = process.communicate(timeout=60)
    records = [json.loads(line) for line in stdout.splitlines()]
    failed = [r["error"] for r in records if not r["ok"]]
    assert failed == [], f"{len(failed)} of {len(records)} failed, e.g. {failed[:2]}"
    assert sorted(r["url"] for r in records) == sorted(
        f"http://127.0.0.1:{server.port}/{n}" for n in range(TARGETS)
    )
    if "--order" in options:
        assert [r["url"] for r in records] == [
            f"http://127.0.0.1:{server.port}/{n}" for n in range(TARGETS)
        ]
    if db.exists():
        with contextlib.closing(sqlite3.connect(db)) as connection:
            stored = connection.execute("SELECT count(*), sum(ok) FROM snapshots").fetchone()
        assert stored == (TARGETS, TARGETS)
    assert stderr == b""
    assert process.returncode == 0


def test_a_terminal_that_is_not_read_holds_up_neither_results_nor_the_progress_line(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    """The pretty view on a terminal held with Ctrl-S (or in tmux's copy mode), which stops
    taking output as a paused pipe does; the progress line and the summary on stderr."""
    server = threaded_server(reply(PADDED_HEAD))
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"127.0.0.1:{server.port}/{n}\n" for n in range(TARGETS)))
    master, terminal = os.openpty()
    try:
        process = spawn(
            "--format", "pretty", "--progress", "-t", "1", "-c", "50", "-i", str(hosts),
            stdout=terminal,
        )  # fmt: skip
        os.close(terminal)
        shown = read_with_pauses(master).decode()
    finally:
        os.close(master)
    _, stderr = process.communicate(timeout=60)
    assert shown.count("200 OK") == TARGETS
    assert "timeout" not in shown
    summary = stderr.decode().rsplit("\x1b[2K", 1)[-1]
    assert summary.startswith(f"{TARGETS} targets, {TARGETS} ok; 200 x{TARGETS}; ")
    assert process.returncode == 0


def paused(writer: Writer) -> bool:
    """``writer.paused`` read afresh (mypy would take it as fixed between two writes)."""
    return writer.paused


async def test_the_writer_pauses_above_the_high_water_mark_and_resumes_below_the_low() -> None:
    """On a real pipe nobody reads: handing over never blocks the loop, ``paused`` turns on at
    ``HIGH_WATER`` and off once the reader has brought the backlog down to ``LOW_WATER``."""
    read_end, write_end = os.pipe()
    writer = Writer()
    try:
        writer.write(write_end, b"x" * (HIGH_WATER - 1))
        assert not paused(writer)
        writer.write(write_end, b"x")  # returns at once, though the pipe is full
        assert paused(writer)
        resumed = asyncio.ensure_future(writer.resumed())
        await asyncio.sleep(0.05)
        assert not resumed.done()
        taken = 0
        # Not past the last byte: the wake-up reaches the loop a moment after the writer thread
        # has written on, and one more read of an empty pipe would wait for ever.
        while not resumed.done() and taken < HIGH_WATER:
            taken += len(await asyncio.to_thread(os.read, read_end, 65536))
        await asyncio.wait_for(resumed, 10)
        assert not paused(writer)
        pipe = 64 * 1024  # what the writer may have put in the pipe beyond what was read
        assert taken >= HIGH_WATER - LOW_WATER - pipe
        while taken < HIGH_WATER:  # and every byte arrives
            taken += len(await asyncio.to_thread(os.read, read_end, 65536))
        writer.close()
        assert taken == HIGH_WATER
        assert writer.errors == {}
    finally:
        os.close(read_end)
        writer.close()
        os.close(write_end)


def _blocked_signals(thread: threading.Thread) -> int:
    """The signal mask of ``thread``, as the kernel has it."""
    with open(f"/proc/self/task/{thread.native_id}/status") as status:
        for line in status:
            if line.startswith("SigBlk:"):
                return int(line.split()[1], 16)
    raise AssertionError("no SigBlk line")


async def test_the_output_thread_never_takes_ctrl_c_or_sigterm_from_the_main_thread() -> None:
    """A Ctrl-C delivered to the output thread only set a flag: the main thread, asleep in the
    asyncio loop with every target silent, did not act on it (a run that ignored Ctrl-C)."""
    read_end, write_end = os.pipe()
    writer = Writer()
    try:
        writer.write(write_end, b"x")
        thread = next(t for t in threading.enumerate() if t.name == "fetchheads-output")
        mask = _blocked_signals(thread)
        for signum in (signal.SIGINT, signal.SIGTERM):
            assert mask & (1 << (signum - 1)), f"{signum!r} may land in the output thread"
        assert not _blocked_signals(threading.main_thread()) & (1 << (signal.SIGINT - 1))
    finally:
        writer.close()
        os.close(read_end)
        os.close(write_end)
