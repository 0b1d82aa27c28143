"""``--workers``: one fetch spread over several processes, one event loop per CPU core.

A Python event loop runs on one core; at thousands of targets a second, parsing heads and writing
records keeps that core busy while the others idle. With ``--workers N`` (``auto``: one per usable
core) the command forks N workers after start-up, each an ordinary fetchheads run on its share of
the list, and the first process becomes the coordinator:

* it reads the sources (files, stdin, arguments), validates and shards every line, and writes each
  valid target to the stdin pipe of the worker with the fewest targets in hand. Each worker tells
  it, once per pass of its event loop, how many it has finished, and is never given more than
  its connections plus a small read-ahead (``read_ahead``): a worker whose every connection waits
  on a slow target is given a handful more, not hundreds, and the others take the rest. A line
  that is not a target is reported by the coordinator;
* each worker fetches with ``-c``/N connections, and writes its records to a pipe
  that the coordinator copies to stdout record by record (never a record cut by another's:
  a plain record is several lines), in completion order, as they finish. The coordinator
  always reads those pipes, so a worker's deadlines never wait for the coordinator's reader;
  when its own stdout is behind, it hands out no more targets until the reader catches up;
* at the end each worker sends its counts (on the pipe that carried its progress); the summary and
  the exit status are the whole run's.

Workers are their own process group: Ctrl-C reaches the coordinator, which passes one SIGINT on
(SIGTERM likewise) so that each worker prints what it finished, as a single process does. Only the
machine formats (plain, jsonl) in completion order, without --db, --warn-days, --rate (one clock
keeps connections evenly spaced) or the progress bar, use workers; everything else runs in one
process, as does ``--workers 1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import ssl
import time
from collections.abc import Callable, Sequence
from typing import NoReturn

from fetchheads import process
from fetchheads.cli.common import ExitStatus
from fetchheads.cli.worker import RECORD_END, Execute, Worker, fork_worker
from fetchheads.config import Config
from fetchheads.models import Result
from fetchheads.render.output import StderrConsole, TextSink
from fetchheads.render.summary import Summary
from fetchheads.runner import Source, Throttle, read_sources, select_shard

_RECORD_END = RECORD_END.encode()
STAGE_BYTES = 1024
"""Targets for one worker gathered before one write to its pipe."""


class _Feed(asyncio.Protocol):
    """A worker's stdin pipe. Closed (at the end of the input) or broken (the worker died), it
    takes nothing more (``_gone``), and its transport is forgotten rather than closed again: the
    asyncio loop's abort() of a pipe transport already closed raises AttributeError."""

    def __init__(self, worker: Worker, credit: asyncio.Event) -> None:
        self._worker = worker
        self._credit = credit

    def connection_lost(self, exc: Exception | None) -> None:
        self._worker.transport = None
        self._credit.set()  # the distributor stops waiting on this one


class _Counts(asyncio.Protocol):
    """Coordinator side of a worker's counts pipe: lines of digits (targets done) wake the
    distributor; the last line, a JSON object, is the worker's counts."""

    def __init__(self, worker: Worker, credit: asyncio.Event) -> None:
        self._worker = worker
        self._credit = credit
        self._rest = b""

    def data_received(self, data: bytes) -> None:
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            if line.isdigit():
                self._worker.finished += int(line)
                self._credit.set()

    def eof_received(self) -> None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._rest.startswith(b"{"):  # the counts: the worker's last write
            with contextlib.suppress(ValueError):
                self._worker.final = json.loads(self._rest)
        counted = self._worker.counted
        if counted is not None and not counted.done():
            counted.set_result(None)
        self._credit.set()  # a worker that died frees nothing, but stop waiting on it


class _Merge(asyncio.Protocol):
    """A worker's stdout: complete records (each ends with ``RECORD_END``) go to the
    coordinator's output as they arrive, without their ``RECORD_END``."""

    def __init__(self, worker: Worker, write: Callable[[bytes], None]) -> None:
        self._worker = worker
        self._write = write
        self._rest = b""

    def data_received(self, data: bytes) -> None:
        data = self._rest + data
        cut = data.rfind(_RECORD_END) + 1
        self._rest = data[cut:]
        if cut:
            self._write(data[:cut].replace(_RECORD_END, b""))

    def eof_received(self) -> None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        # A record cut short (a worker killed mid-write) is dropped, not passed on broken; the
        # worker's death is reported when its counts are found missing.
        self._rest = b""
        done = self._worker.done
        if done is not None and not done.done():
            done.set_result(None)


def execute_parallel(
    config: Config,
    sources: Sequence[Source],
    output_format: str,
    make_tls: Callable[[], ssl.SSLContext],
    *,
    workers: int,
    show_summary: bool,
    execute: Execute,
    sink: TextSink,
    output_failed: Callable[[OSError, StderrConsole], ExitStatus],
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> ExitStatus:
    """The run over ``workers`` forked processes; ``execute`` is the single-process run each
    worker performs on its stdin and stdout."""
    started = time.monotonic()
    stderr = StderrConsole()
    shares = _split(config, workers)
    children: list[Worker] = []
    process.hold_stop_signals()  # until main() handles them; each worker likewise
    try:
        for share in shares:
            children.append(fork_worker(share, output_format, make_tls, execute, children))
    except OSError as exc:  # fork() or pipe() refused: the process or descriptor limit, memory
        _abandon(children)
        process.accept_stop_signals()
        stderr.print(
            f"fetchheads: cannot start worker {len(children) + 1} of {workers}: "
            f"{exc.strerror or exc}; --workers 1 runs in one process",
            soft_wrap=True,
        )
        return ExitStatus.FAILED
    summary = Summary()
    state = {"terminated": False, "interrupted": False, "killed": False, "all_read": False}
    own = Summary()  # the records of lines that were no target, made here

    def emit(result: Result) -> None:
        own.add(result)
        summary.add(result)
        sink.emit(result)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_sigterm() -> None:
            state["terminated"] = True
            task.cancel()

        def on_sigint() -> None:
            state["interrupted"] = True
            task.cancel()

        # A second SIGTERM or Ctrl-C: end the workers and go, even from a write that is stuck.
        process.on_sigterm(loop, on_sigterm, lambda: _go_now(children, ExitStatus.TERMINATED))
        process.on_sigint(loop, on_sigint, lambda: _go_now(children, ExitStatus.INTERRUPTED))

        def stop() -> None:
            task.cancel()

        sink.set_on_error(stop)
        credit = asyncio.Event()
        for child in children:
            child.done = loop.create_future()
            child.counted = loop.create_future()
            child.transport, _ = await loop.connect_write_pipe(
                lambda child=child: _Feed(child, credit),  # type: ignore[misc]
                os.fdopen(child.feed, "wb", buffering=0),
            )
            await loop.connect_read_pipe(
                lambda child=child: _Merge(child, sink.emit_bytes),  # type: ignore[misc]
                os.fdopen(child.output, "rb", buffering=0),
            )
            await loop.connect_read_pipe(
                lambda child=child: _Counts(child, credit),  # type: ignore[misc]
                os.fdopen(child.counts, "rb", buffering=0),
            )
        process.accept_stop_signals()  # a Ctrl-C held since the forks cancels this task now
        try:
            await _distribute(config, sources, children, emit, credit, sink.throttle)
            state["all_read"] = True
            for child in children:
                _flush(child)
                if child.transport is not None:
                    child.transport.close()  # EOF: the worker finishes what it has, then exits
            await _ended(children)
        except asyncio.CancelledError:
            if not state["terminated"] and sink.error is None:
                state["interrupted"] = True
            _kill(children, signal.SIGINT if state["interrupted"] else signal.SIGTERM)
            for child in children:
                if child.transport is not None:
                    child.transport.abort()
            # Each worker now prints what it finished and exits: copy that out before ending.
            task.uncancel()
            await _ended(children)
        finally:
            sink.flush()

    try:
        with process.tuned_gc(), asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main())
    except KeyboardInterrupt:  # a second Ctrl-C where the loop cannot handle signals
        state["interrupted"] = state["killed"] = True
        _kill(children, signal.SIGKILL)
    finally:
        process.accept_stop_signals()
    sink.close()  # a last write, which may block: Ctrl-C still gets out (_go_now)
    process.ignore_interrupts()
    failures = _collect(children, summary)
    status = _status(summary, state, failures, stderr)
    if sink.error is not None:
        return output_failed(sink.error, stderr)
    if show_summary and status in (ExitStatus.OK, ExitStatus.FAILED, ExitStatus.INTERRUPTED):
        workers_note = f"; {workers} workers"
        stderr.print(summary.describe(time.monotonic() - started) + workers_note, style="dim")
    if status is ExitStatus.INTERRUPTED:
        read = own.targets + sum(child.sent for child in children)
        stderr.print("fetchheads: " + summary.interrupted(read, all_read=state["all_read"]))
    return status


def _abandon(children: list[Worker]) -> None:
    """End the workers already started, before they were given anything."""
    _kill(children, signal.SIGKILL)
    for child in children:
        for fd in (child.feed, child.output, child.counts):
            os.close(fd)
        os.waitpid(child.pid, 0)


def _go_now(children: list[Worker], status: ExitStatus) -> NoReturn:
    _kill(children, signal.SIGKILL)
    os._exit(int(status))


def _kill(children: list[Worker], signum: int) -> None:
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)


async def _ended(children: list[Worker]) -> None:
    """Until every worker has closed its stdout and its counts pipe. ``asyncio.wait``, not
    ``gather``: cancelling this wait (a signal) must leave the futures pending, to be waited for
    again."""
    ends = [end for c in children for end in (c.done, c.counted) if end is not None]
    await asyncio.wait(ends)


def _split(config: Config, workers: int) -> list[Config]:
    """Each worker's share of ``-c``; the coordinator has already sharded."""
    base, extra = divmod(config.concurrency, workers)
    return [
        dataclasses.replace(config, concurrency=base + (1 if n < extra else 0), shard=None)
        for n in range(workers)
    ]


async def _distribute(
    config: Config,
    sources: Sequence[Source],
    children: list[Worker],
    emit: Callable[[Result], None],
    credit: asyncio.Event,
    throttle: Throttle | None,
) -> None:
    """Every line of every source, validated here: a target goes to the worker with the fewest
    in hand (below its connections plus a small read-ahead), a line that is not one is reported
    at once. While our own stdout is behind its reader (``throttle``) no worker is given more:
    what they have in hand they finish, and their records are still read and kept."""
    loop = asyncio.get_running_loop()
    items = read_sources(sources, config.default_scheme)
    if config.shard is not None:
        items = select_shard(items, *config.shard)
    scheduled = False

    def flush_all() -> None:
        nonlocal scheduled
        scheduled = False
        for child in children:
            _flush(child)

    async for item in items:
        if isinstance(item, Result):
            emit(item)
            continue
        if throttle is not None and throttle.paused:
            flush_all()
            await throttle.resumed()
        picked = _pick(children)
        while picked is None:
            if all(_gone(c) for c in children):
                return  # every worker has died: _collect says so; stop reading
            flush_all()  # what is staged may be what a worker waits for
            credit.clear()
            await credit.wait()
            picked = _pick(children)
        line = item.text.encode("utf-8", "surrogateescape") + b"\n"
        picked.stage.append(line)
        picked.staged += len(line)
        picked.sent += 1
        if picked.staged >= STAGE_BYTES:
            _flush(picked)
        elif not scheduled:
            scheduled = True  # whatever this burst of input leaves staged goes out with it
            loop.call_soon(flush_all)
    flush_all()


def _pick(children: list[Worker]) -> Worker | None:
    """The live worker with the fewest targets in hand, if it has room for one more."""
    best: Worker | None = None
    for child in children:
        held = child.sent - child.finished
        if (
            held < child.limit
            and not _gone(child)
            and (best is None or held < best.sent - best.finished)
        ):
            best = child
    return best


def _gone(child: Worker) -> bool:
    """Whether the worker's stdin is closed (it died): it is given nothing more."""
    return child.transport is None or child.transport.is_closing()


def _flush(child: Worker) -> None:
    if child.stage and not _gone(child):
        assert child.transport is not None
        child.transport.write(b"".join(child.stage))
    child.stage.clear()
    child.staged = 0


def _collect(children: list[Worker], summary: Summary) -> list[str]:
    """Wait for every worker; add its counts to ``summary``; what went wrong, worded."""
    failures = []
    for n, child in enumerate(children, 1):
        _, wait_status = os.waitpid(child.pid, 0)
        code = os.waitstatus_to_exitcode(wait_status)
        counts = child.final
        if counts is None:
            how = f"signal {-code}" if code < 0 else f"exit status {code}"
            failures.append(f"worker {n} ended ({how}) before it counted its targets")
            continue
        summary.add_counts(counts)
    return failures


def _status(
    summary: Summary, state: dict[str, bool], failures: list[str], stderr: StderrConsole
) -> ExitStatus:
    for failure in failures if not state["killed"] else []:  # not those Ctrl-C twice ended
        stderr.print(
            f"fetchheads: {failure}; its unfinished targets have no record", soft_wrap=True
        )
    if state["terminated"]:
        return ExitStatus.TERMINATED
    if state["interrupted"]:
        return ExitStatus.INTERRUPTED
    if failures or summary.failed:
        return ExitStatus.FAILED
    return ExitStatus.OK
