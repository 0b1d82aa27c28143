"""The worker side of ``--workers`` (``multiprocess`` is the supervisor's): the plan a worker
executes, forking it, and what the supervisor keeps of it.

A worker is an ordinary single-process run (``run.single.execute``) of a plan of its own on new
descriptors: stdin is a pipe from the supervisor (one target per line), stdout a pipe back to it
(each record followed by ``RECORD_END``, which also tells the supervisor how many targets it has
finished), and a third pipe carries, at the end, its counts (a JSON object). It is its own process
group, and it ends with the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import traceback
from typing import Any

from fetchheads.render.output import StderrConsole
from fetchheads.run.inputs import STDIN, Source
from fetchheads.run.outcome import output_failed
from fetchheads.run.plan import RunPlan
from fetchheads.run.process import ExitStatus, exit_now
from fetchheads.run.single import execute
from fetchheads.snapshots.recorder import SnapshotSession

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

RECORD_END = "\x1e"
"""Written by a worker after each record: ASCII RS, which no line format ever writes raw (plain,
table, csv, tsv and -w show every control character from a server escaped, JSON escapes all below
0x20; only a -w template's own text could hold one). A result the filters do not show is a record
of its own: RS alone. The supervisor
passes on whole records only: a plain record is several lines, and a pipe read that ends between
two of them must not let another worker's record in between. It counts them, too: one record is
one target finished, and another target the worker can be given."""


def read_ahead(concurrency: int) -> int:
    """Targets a worker is given beyond its connections: enough that a connection that frees up
    finds the next target already there while the supervisor hears of it, few enough that what
    waits behind a worker whose connections are all held by slow targets is a handful."""
    return max(2, concurrency // 4)


def worker_plan(plan: RunPlan, concurrency: int) -> RunPlan:
    """The plan one worker executes: ``concurrency`` connections, the targets it is given on
    stdin (already sharded), its records framed for the supervisor, nothing on stderr but
    errors."""
    return dataclasses.replace(
        plan,
        config=dataclasses.replace(plan.config, concurrency=concurrency, shard=None, unique=False),
        sources=(Source(path=STDIN),),
        # The same records, framed; the header row and -o FILE are the supervisor's.
        view=dataclasses.replace(
            plan.view,
            waterfall=False,
            summary=False,
            bar=False,
            record_end=RECORD_END,
            header=False,
            output=None,
        ),
        session=SnapshotSession(),
        workers=1,
        in_worker=True,
        output=None,
    )


@dataclasses.dataclass
class Worker:
    pid: int
    feed: int  # write end of its stdin
    output: int  # read end of its stdout
    counts: int  # read end of the pipe its final counts arrive on
    limit: int  # targets it may hold at once: its connections and a read-ahead
    transport: asyncio.WriteTransport | None = None
    stage: list[bytes] = dataclasses.field(default_factory=list)
    staged: int = 0
    sent: int = 0  # targets handed to it
    finished: int = 0  # records it has sent back
    final: dict[str, Any] | None = None  # its counts at the end
    done: asyncio.Future[None] | None = None  # its stdout is closed
    counted: asyncio.Future[None] | None = None  # its counts pipe is closed


def fork_worker(plan: RunPlan, siblings: list[Worker]) -> Worker:
    """Start a worker executing ``plan`` (a ``worker_plan``)."""
    feed_r, feed_w = os.pipe()
    out_r, out_w = os.pipe()
    counts_r, counts_w = os.pipe()
    for stream in (sys.stdout, sys.stderr):  # None when closed (``2>&-``)
        if stream is not None:
            stream.flush()
    supervisor = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker
        status = ExitStatus.FAILED
        try:
            os.setpgid(0, 0)  # Ctrl-C goes to the supervisor, which passes it on once
            _end_with(supervisor)
            for sibling in siblings:  # their pipes must see EOF when the supervisor closes them
                for fd in (sibling.feed, sibling.output, sibling.counts):
                    os.close(fd)
            os.dup2(feed_r, 0)
            os.dup2(out_w, 1)
            for fd in (feed_r, feed_w, out_r, out_w, counts_r):
                os.close(fd)
            # New objects on the new descriptors (the old ones may be None, or buffer for a tty).
            sys.stdin = open(0, closefd=False)  # noqa: SIM115
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            outcome = execute(plan)
            status = outcome.status
            if outcome.output_error is not None:
                stderr = StderrConsole(**plan.environment.console_options())
                status = output_failed(outcome.output_error, stderr)
            sys.stdout.flush()
            os.write(counts_w, json.dumps(outcome.summary.to_counts()).encode())
        except BrokenPipeError:
            pass  # the supervisor is gone (killed): there is no one left to tell
        except BaseException:  # a bug in a worker: say so once, as main() would
            with contextlib.suppress(Exception):
                if os.environ.get("FETCHHEADS_DEBUG"):
                    traceback.print_exc()
                exc = sys.exc_info()[1]
                if sys.stderr is not None:  # else print() would write it among the records
                    print(f"fetchheads: internal error in a worker: {exc!r}", file=sys.stderr)
        finally:
            exit_now(status)
    for fd in (feed_r, out_w, counts_w):
        os.close(fd)
    concurrency = plan.config.concurrency
    limit = concurrency + read_ahead(concurrency)
    return Worker(pid=pid, feed=feed_w, output=out_r, counts=counts_r, limit=limit)


def _end_with(supervisor: int) -> None:
    """SIGTERM this worker when the supervisor dies, however it dies (even SIGKILL), so that no
    worker outlives the run (Linux's PR_SET_PDEATHSIG; elsewhere a worker still ends once its
    input is closed and its in-flight targets are done)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor:  # it died before the line above
        exit_now(ExitStatus.TERMINATED)
