"""``--workers``: one fetch spread over several processes, one event loop per CPU core.

A Python event loop runs on one core; at thousands of targets a second, parsing heads and writing
records keeps that core busy while the others idle. With ``--workers N`` (``auto``: one per usable
core) the command forks N workers after start-up, each an ordinary fetchheads run on its share of
the list, and the first process becomes their supervisor:

* it reads the sources (files, stdin, arguments), checks and shards every line, and writes each
  target, as given (the worker parses it), to the stdin pipe of the worker with the fewest
  targets in hand. Each record a worker sends back is a target it has finished, and it is never
  given more than its connections plus a small read-ahead (``read_ahead``): a worker whose every
  connection waits on a slow target is given a handful more, not hundreds, and the others take
  the rest. A line that is not a target is reported by the supervisor;
* each worker fetches with ``-c``/N connections, and writes its records to a pipe
  that the supervisor copies to stdout record by record (never a record cut by another's:
  a plain record is several lines), in completion order, as they finish. The supervisor
  always reads those pipes, so a worker's deadlines never wait for the supervisor's reader;
  when its own stdout is behind, it hands out no more targets until the reader catches up;
* at the end each worker sends its counts (on a pipe of their own); the summary and the exit
  status are the whole run's.

Workers are their own process group: Ctrl-C reaches the supervisor, which passes one SIGINT on
(SIGTERM likewise) so that each worker prints what it finished, as a single process does. Only the
line formats (plain, jsonl, table, csv, tsv, -w: one record a target, a header row written here
once) in completion order, without --db, --warn-days, --rate or the
progress bar, use workers (``plan.choose_workers``); everything else runs in one process, as does
``--workers 1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable

from fetchheads.models import Result
from fetchheads.render.output import StderrConsole, TextSink
from fetchheads.run import process
from fetchheads.run.inputs import read_lines, select_shard, unique_items
from fetchheads.run.outcome import Outcome
from fetchheads.run.plan import RunPlan
from fetchheads.run.pool import Throttle
from fetchheads.run.process import ExitStatus, StopSignals
from fetchheads.run.single import finish_output, make_sink
from fetchheads.run.summary import Summary
from fetchheads.run.supervisor.worker import RECORD_END, Worker, fork_worker, worker_plan
from fetchheads.wording import counted

_RECORD_END = RECORD_END.encode()
STAGE_BYTES = 1024
"""Targets for one worker gathered before one write to its pipe."""


class _WorkerStdin(asyncio.Protocol):
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
    """Supervisor side of a worker's counts pipe: one JSON object, the worker's last write."""

    def __init__(self, worker: Worker, credit: asyncio.Event) -> None:
        self._worker = worker
        self._credit = credit
        self._data = b""

    def data_received(self, data: bytes) -> None:
        self._data += data

    def eof_received(self) -> None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._data.startswith(b"{"):
            with contextlib.suppress(ValueError):
                self._worker.final = json.loads(self._data)
        counted = self._worker.counted
        if counted is not None and not counted.done():
            counted.set_result(None)
        self._credit.set()  # a worker that died frees nothing, but stop waiting on it


class _Merge(asyncio.Protocol):
    """A worker's stdout: complete records (each ends with ``RECORD_END``) go to the
    supervisor's output as they arrive, without their ``RECORD_END``; each is a target the
    worker has finished, and wakes the distributor."""

    def __init__(
        self, worker: Worker, write: Callable[[bytes], None], credit: asyncio.Event
    ) -> None:
        self._worker = worker
        self._write = write
        self._credit = credit
        self._rest = b""

    def data_received(self, data: bytes) -> None:
        data = self._rest + data
        cut = data.rfind(_RECORD_END) + 1
        self._rest = data[cut:]
        if cut:
            records = data[:cut]
            self._write(records.replace(_RECORD_END, b""))
            self._worker.finished += records.count(_RECORD_END)
            self._credit.set()

    def eof_received(self) -> None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        # A record cut short (a worker killed mid-write) is dropped, not passed on broken; the
        # worker's death is reported when its counts are found missing.
        self._rest = b""
        done = self._worker.done
        if done is not None and not done.done():
            done.set_result(None)


def supervise(plan: RunPlan) -> Outcome:
    """The run over ``plan.workers`` forked processes, each executing its share of the plan
    (``worker_plan``) on its stdin and stdout."""
    started = time.monotonic()
    stderr = StderrConsole(**plan.environment.console_options())
    sink = make_sink(plan)
    assert isinstance(sink, TextSink)  # the line formats only (choose_workers)
    children: list[Worker] = []
    process.hold_stop_signals()  # until main() handles them; each worker likewise
    try:
        for share in _split(plan.config.concurrency, plan.workers):
            children.append(fork_worker(worker_plan(plan, share), children))
    except OSError as exc:  # fork() or pipe() refused: the process or descriptor limit, memory
        _abandon(children)
        process.accept_stop_signals()
        stderr.print(
            f"fetchheads: cannot start worker {len(children) + 1} of {plan.workers}: "
            f"{exc.strerror or exc}; --workers 1 runs in one process",
            soft_wrap=True,
        )
        # -o FILE closed, not left open. Not sink.close(): nothing was written, and a flush would
        # write a csv, tsv or table header row for a run that never began.
        finish_output(plan, stopped=True, stderr=stderr)
        return Outcome(ExitStatus.FAILED, Summary(), started, began=False)
    summary = Summary()
    own = Summary()  # the records of lines that were no target, made here
    # A second SIGTERM or Ctrl-C: end the workers and go, even from a write that is stuck.
    stop = StopSignals(before_exit=lambda: _kill(children, signal.SIGKILL))
    killed = all_read = False

    def emit(result: Result) -> None:
        own.add(result)
        summary.add(result)
        sink.emit(result)

    async def main() -> None:
        nonlocal all_read
        loop = sink.loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        loop.set_exception_handler(process.loop_errors(stderr.print))
        stop.install(loop, task)

        def cancel() -> None:
            task.cancel()

        sink.set_on_error(cancel)
        credit = asyncio.Event()
        for child in children:
            child.done = loop.create_future()
            child.counted = loop.create_future()
            child.transport, _ = await loop.connect_write_pipe(
                lambda child=child: _WorkerStdin(child, credit),  # type: ignore[misc]
                os.fdopen(child.feed, "wb", buffering=0),
            )
            await loop.connect_read_pipe(
                lambda child=child: _Merge(child, sink.emit_bytes, credit),  # type: ignore[misc]
                os.fdopen(child.output, "rb", buffering=0),
            )
            await loop.connect_read_pipe(
                lambda child=child: _Counts(child, credit),  # type: ignore[misc]
                os.fdopen(child.counts, "rb", buffering=0),
            )
        process.accept_stop_signals()  # a Ctrl-C held since the forks cancels this task now
        try:
            await _distribute(plan, children, emit, credit, sink.throttle)
            all_read = True
            for child in children:
                _flush(child)
                if child.transport is not None:
                    child.transport.close()  # EOF: the worker finishes what it has, then exits
            await _ended(children)
        except asyncio.CancelledError:
            if not stop.terminated and sink.error is None:
                stop.interrupted = True
            _kill(children, signal.SIGINT if stop.interrupted else signal.SIGTERM)
            for child in children:
                if child.transport is not None:
                    child.transport.abort()
            # Each worker now prints what it finished and exits: copy that out before ending.
            task.uncancel()
            await _ended(children)
        finally:
            sink.flush()

    try:
        with process.tuned_gc(), asyncio.Runner(loop_factory=plan.loop_factory) as runner:
            runner.run(main())
    except KeyboardInterrupt:  # a second Ctrl-C where the loop cannot handle signals
        stop.interrupted = killed = True
        _kill(children, signal.SIGKILL)
    finally:
        stop.close()
        process.accept_stop_signals()
    sink.close()  # a last write, which may block: Ctrl-C still gets out (StopSignals)
    process.ignore_interrupts()
    stopped = stop.status is not None or killed
    # A reader gone (| head) or a full disk stops the run too: its workers are told to stop.
    failures = _collect(children, summary, stopped=stopped or sink.error is not None)
    if not finish_output(plan, stopped=stopped, stderr=stderr):
        failures.append("the output file could not be put in place")
    if not killed:  # not those Ctrl-C twice ended
        for failure in failures:
            stderr.print(
                f"fetchheads: {failure}; its unfinished targets have no record", soft_wrap=True
            )
    status = stop.status
    if status is None:
        status = ExitStatus.FAILED if failures or summary.failed else ExitStatus.OK
    read = own.targets + sum(child.sent for child in children)
    return Outcome(
        status,
        summary,
        started,
        note=f"; {plan.workers} workers",
        output_error=sink.error,
        read=read,
        all_read=all_read,
    )


def _abandon(children: list[Worker]) -> None:
    """End the workers already started, before they were given anything."""
    _kill(children, signal.SIGKILL)
    for child in children:
        for fd in (child.feed, child.output, child.counts):
            os.close(fd)
        os.waitpid(child.pid, 0)


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


def _split(concurrency: int, workers: int) -> list[int]:
    """Each worker's share of ``-c``."""
    base, extra = divmod(concurrency, workers)
    return [base + (1 if n < extra else 0) for n in range(workers)]


async def _distribute(
    plan: RunPlan,
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
    config = plan.config
    # Each line checked, not parsed: its worker parses it, from the text as given.
    items = read_lines(plan.sources, config.default_scheme)
    if config.shard is not None:  # here, not in the workers: a worker's plan has no shard
        items = select_shard(items, *config.shard, default_scheme=config.default_scheme)
    if config.unique:  # here too: a repeat may be read after its first went to another worker
        items = unique_items(items, default_scheme=config.default_scheme)
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
        line = item.encode("utf-8", "surrogateescape") + b"\n"
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


def _collect(children: list[Worker], summary: Summary, *, stopped: bool) -> list[str]:
    """Wait for every worker; add its counts to ``summary``; what went wrong, worded.
    ``stopped``: the run itself was (its workers then stop with it, as they should)."""
    failures = []
    for n, child in enumerate(children, 1):
        _, wait_status = os.waitpid(child.pid, 0)
        code = os.waitstatus_to_exitcode(wait_status)
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        counts = child.final
        if counts is None and stopped:
            continue  # told to stop by the run (| head, Ctrl-C): it may end before it counts
        if counts is None:
            printed = (
                f" (not counted: {counted(child.finished, 'target')} it finished)"
                if child.finished
                else ""
            )
            # What it held when it died is known here: said, the records and this number make
            # the whole list, as after a SIGTERM to it alone.
            held = child.sent - child.finished
            lost = f" with {counted(held, 'target')} unfinished," if held else ""
            failures.append(
                f"worker {n} ended ({how}){lost} before it counted its targets{printed}"
            )
            continue
        summary.add_counts(counts)
        if not stopped and child.finished < child.sent:
            # Stopped alone (kill, systemd, a container runtime): it counted what it finished,
            # and the targets it held are lost; the run must not say it got every one.
            unfinished = counted(child.sent - child.finished, "target")
            failures.append(
                f"worker {n} was stopped on its own ({how}) with {unfinished} unfinished"
            )
    return failures
