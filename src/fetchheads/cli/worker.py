"""The worker side of ``--workers`` (``cli.parallel`` is the coordinator's): forking a worker, what
the coordinator keeps of it, and the credits a worker sends back as it finishes targets.

A worker is an ordinary single-process run (``cli.run.execute``) on new descriptors: stdin is a
pipe from the coordinator (one target per line), stdout a pipe back to it (each record followed
by ``RECORD_END``), and a third pipe
carries, as it goes, how many targets it has finished (a line of digits) and, last, its counts
(a JSON object). It is its own process group, and it ends with the coordinator.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import ssl
import sys
import traceback
from collections.abc import Callable
from typing import Any

from fetchheads.cli.common import ExitStatus
from fetchheads.config import Config
from fetchheads.models import Result
from fetchheads.render.summary import Summary
from fetchheads.runner import STDIN, Source

Execute = Callable[..., ExitStatus]

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

RECORD_END = "\x1e"
"""Written by a worker after each record: ASCII RS, which neither plain nor jsonl ever writes raw
(plain shows every control character escaped, JSON escapes all below 0x20). The coordinator
passes on whole records only: a plain record is several lines, and a pipe read that ends between
two of them must not let another worker's record in between."""


def framed(formatter: Callable[[Result], str]) -> Callable[[Result], str]:
    """A worker's ``formatter``: each record followed by ``RECORD_END``."""

    def frame(result: Result) -> str:
        return formatter(result) + RECORD_END

    return frame


def read_ahead(concurrency: int) -> int:
    """Targets a worker is given beyond its connections: enough that a connection that frees up
    finds the next target already there while the coordinator hears of it, few enough that what
    waits behind a worker whose connections are all held by slow targets is a handful."""
    return max(2, concurrency // 4)


@dataclasses.dataclass
class Worker:
    pid: int
    feed: int  # write end of its stdin
    output: int  # read end of its stdout
    counts: int  # read end of the pipe its progress and final counts arrive on
    limit: int  # targets it may hold at once: its connections and a read-ahead
    transport: asyncio.WriteTransport | None = None
    stage: list[bytes] = dataclasses.field(default_factory=list)
    staged: int = 0
    sent: int = 0  # targets handed to it
    finished: int = 0  # targets it has reported done
    final: dict[str, Any] | None = None  # its counts at the end
    done: asyncio.Future[None] | None = None  # its stdout is closed
    counted: asyncio.Future[None] | None = None  # its counts pipe is closed


class Credits:
    """Worker side: tells the coordinator how many targets are done, once per pass of the event
    loop (a short line of digits on the counts pipe), so that it hands out more."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._count = 0
        self._scheduled = False

    def add(self) -> None:
        self._count += 1
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.send)

    def send(self) -> None:
        self._scheduled = False
        if self._count:
            with contextlib.suppress(OSError):  # the coordinator is gone: nobody to tell
                os.write(self._fd, b"%d\n" % self._count)
            self._count = 0


def fork_worker(
    config: Config,
    output_format: str,
    make_tls: Callable[[], ssl.SSLContext],
    execute: Execute,
    siblings: list[Worker],
) -> Worker:
    feed_r, feed_w = os.pipe()
    out_r, out_w = os.pipe()
    counts_r, counts_w = os.pipe()
    for stream in (sys.stdout, sys.stderr):  # None when closed (``2>&-``)
        if stream is not None:
            stream.flush()
    coordinator = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker
        status = ExitStatus.FAILED
        try:
            os.setpgid(0, 0)  # Ctrl-C goes to the coordinator, which passes it on once
            _end_with(coordinator)
            for sibling in siblings:  # their pipes must see EOF when the coordinator closes them
                for fd in (sibling.feed, sibling.output, sibling.counts):
                    os.close(fd)
            os.dup2(feed_r, 0)
            os.dup2(out_w, 1)
            for fd in (feed_r, feed_w, out_r, out_w, counts_r):
                os.close(fd)
            # New objects on the new descriptors (the old ones may be None, or buffer for a tty).
            sys.stdin = open(0, closefd=False)  # noqa: SIM115
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            summary = Summary()
            status = execute(
                config,
                [Source(path=STDIN)],
                output_format,
                make_tls,
                show_summary=False,
                summary=summary,
                worker=True,
                on_result=Credits(counts_w).add,
            )
            sys.stdout.flush()
            os.write(counts_w, json.dumps(summary.to_counts()).encode())
        except BrokenPipeError:
            pass  # the coordinator is gone (killed): there is no one left to tell
        except BaseException:  # a bug in a worker: say so once, as main() would
            with contextlib.suppress(Exception):
                if os.environ.get("FETCHHEADS_DEBUG"):
                    traceback.print_exc()
                exc = sys.exc_info()[1]
                if sys.stderr is not None:  # else print() would write it among the records
                    print(f"fetchheads: internal error in a worker: {exc!r}", file=sys.stderr)
        finally:
            os._exit(int(status))
    for fd in (feed_r, out_w, counts_w):
        os.close(fd)
    limit = config.concurrency + read_ahead(config.concurrency)
    return Worker(pid=pid, feed=feed_w, output=out_r, counts=counts_r, limit=limit)


def _end_with(coordinator: int) -> None:
    """SIGTERM this worker when the coordinator dies, however it dies (even SIGKILL), so that no
    worker outlives the run (Linux's PR_SET_PDEATHSIG; elsewhere a worker still ends once its
    input is closed and its in-flight targets are done)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != coordinator:  # it died before the line above
        os._exit(int(ExitStatus.TERMINATED))
