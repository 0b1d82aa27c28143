"""One process's run of a plan: the event loop, the output sink, the snapshots, the outcome.

``execute`` runs the whole run or one worker of ``--workers`` alike: the supervisor hands each
worker a plan of its own (its stdin, its share of ``-c``, its records framed) and reads the
counts off the outcome. The one thing a worker's plan changes beyond those is how many targets
a turn of the loop may start (``starts_per_turn``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from io import TextIOWrapper
from typing import IO, Any, BinaryIO, cast

from fetchheads.config import WRITE_OUT, Config
from fetchheads.errors import StoreError
from fetchheads.fetch.one import FetchContext, fetch_one
from fetchheads.fetch.redirects import following
from fetchheads.fetch.resolve import FAMILIES, Resolver, parse_resolve
from fetchheads.models import Result, Target
from fetchheads.render.jsonl import format_jsonl
from fetchheads.render.output import (
    PrettySink,
    ProgressLine,
    Sink,
    StderrConsole,
    TextfileSink,
    TextSink,
    selected,
)
from fetchheads.render.plain import format_plain
from fetchheads.render.safe import terminal_safe
from fetchheads.render.writer import Writer
from fetchheads.run import process
from fetchheads.run.inputs import Item, read_sources, select_shard, unique_items
from fetchheads.run.outcome import Outcome
from fetchheads.run.plan import AuditPlan, RunPlan
from fetchheads.run.pool import STARTS_PER_TURN, STARTS_PER_TURN_ALONE, Intake, Pacer, run
from fetchheads.run.process import ExitStatus, StopSignals
from fetchheads.run.summary import Summary, not_recorded
from fetchheads.snapshots.recorder import SnapshotSession


def execute(plan: RunPlan) -> Outcome:
    """Run the plan in this process: every target fetched, each result shown (and recorded) as
    it comes. A signal or a failed write ends it early; the outcome says how it ended."""
    config = plan.config
    summary = Summary()
    stderr = StderrConsole(**plan.environment.console_options())
    stopped_by = _stopped_first(plan.session, config)
    if stopped_by is not None:
        return _stopped_before_fetching(plan, summary, stopped_by)
    if plan.output is not None:
        plan.output.begin()  # the run goes ahead: an existing -o file loses its old content
    sink = make_sink(plan)
    bar = ProgressLine(stderr.console, summary, writer=sink.writer) if plan.view.bar else None
    started = time.monotonic()
    stop = StopSignals()
    intake = Intake()
    session = plan.session
    output = sink.emit
    grade = auditor(plan.audit)

    annotate = session.annotate if session.annotates else None
    count = summary.add

    def emit(result: Any) -> None:
        if grade is not None:
            result = grade(result)
        if annotate is not None:
            result = annotate(result)
        count(result)
        output(result)

    async def main() -> None:
        nonlocal output
        task = asyncio.current_task()
        assert task is not None

        def cancel() -> None:
            task.cancel()

        sink.set_on_error(cancel)
        loop = sink.loop = asyncio.get_running_loop()
        loop.set_exception_handler(process.loop_errors(stderr.print))
        # A write waiting for a lock or a lost server stops waiting at once: also when the
        # signal comes while the last results are being written (drain, below).
        stop.install(loop, task, on_stop=session.stop_reconnecting)
        process.accept_stop_signals()  # held while a --workers worker started
        resolver = _resolver(config)
        ctx = FetchContext(
            config=config,
            make_ssl_context=plan.tls,
            resolver=resolver,
            pace=Pacer(config.rate, clock=loop.time) if config.rate else None,
            loop=loop,  # not asked for again at each target (a system call on 3.11)
        )
        output = session.attach(sink.emit, cancel)
        items = read_sources(plan.sources, config.default_scheme)
        if config.shard is not None:
            items = select_shard(items, *config.shard, default_scheme=config.default_scheme)
        if config.unique:
            items = unique_items(items, default_scheme=config.default_scheme)
        if bar is not None:
            if plan.output is None:  # else the bar has the terminal to itself
                sink.before_write = bar.clear
                sink.after_write = bar.restore
            items = _counted(items, bar)
            bar.start()
        try:
            await run(
                items,
                _fetcher(ctx),
                emit,
                concurrency=config.concurrency,
                ordered=config.order == "input",
                intake=intake,
                throttle=sink.throttle,
                starts_per_turn=starts_per_turn(plan),
            )
        finally:
            if bar is not None:
                bar.stop()
            try:
                await session.drain()  # every result is recorded, even after Ctrl-C
            finally:
                await resolver.aclose()

    status: ExitStatus
    try:
        with process.tuned_gc(), asyncio.Runner(loop_factory=plan.loop_factory) as runner:
            runner.run(main())
    except KeyboardInterrupt:
        status = ExitStatus.INTERRUPTED
    except asyncio.CancelledError:
        if sink.error is None and not stop.received:
            raise
        status = ExitStatus.OK if stop.status is None else stop.status
    else:
        status = ExitStatus.OK if summary.failed == 0 else ExitStatus.FAILED
    finally:
        stop.close()
    sink.close()  # waits for the reader to take the rest: Ctrl-C still gets out (StopSignals)
    process.ignore_interrupts()
    stopped = status in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED)
    # A whole file (prometheus) that could not be written to its end is not put in place: a
    # full disk must leave the old one, not half of a new one.
    unfinished = stopped or sink.error is not None
    if not finish_output(plan, stopped=unfinished, stderr=stderr) and status is ExitStatus.OK:
        status = ExitStatus.FAILED
    try:
        # A signal now, while the run's row waits for the database (a lock, a server that went
        # away just then), ends that wait and the run as stopped, saying so; it used to end the
        # process on the spot, silently, the row left running.
        session.finish(
            summary.targets, summary.ok, interrupted=stopped, guard=process.interruptible
        )
    except StoreError as exc:
        message = f"fetchheads: the run could not be closed in the database: {safe(exc)}"
        stderr.print(message, soft_wrap=True)
        status = ExitStatus.FAILED
    late = session.stopped_finishing
    if late is not None:
        terminated = isinstance(late, process.Terminated)
        status = ExitStatus.TERMINATED if terminated else ExitStatus.INTERRUPTED
    if session.unrecorded and session.error is not None:
        lost = not_recorded(
            session.unrecorded, session.error.reason, session.path or "", in_doubt=session.in_doubt
        )
        stderr.print(lost, soft_wrap=True)  # one line, however narrow the terminal
        if status is ExitStatus.OK:
            status = ExitStatus.FAILED
    if status is ExitStatus.OK and session.shown_alerts:
        status = ExitStatus.WARNING
    return Outcome(
        status,
        summary,
        started,
        note=session.describe(),
        output_error=sink.error,
        read=intake.read,
        all_read=intake.complete,
    )


def _stopped_first(session: SnapshotSession, config: Config) -> ExitStatus | None:
    """``session.start``; the status of the Ctrl-C (or SIGTERM) that came first, if one did:
    while the database was opened, or while it kept the start waiting (a server that does not
    answer, a lock held)."""
    if session.interrupted:
        return ExitStatus.TERMINATED if session.terminated else ExitStatus.INTERRUPTED
    try:
        with process.interruptible():
            session.start(config)
    except process.Terminated:
        return ExitStatus.TERMINATED
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    return None


def _stopped_before_fetching(plan: RunPlan, summary: Summary, status: ExitStatus) -> Outcome:
    """Ctrl-C or SIGTERM before the first fetch: nothing fetched, no ``runs`` row, no ``-o``
    file; the run ends saying so, as one stopped later does."""
    started = time.monotonic()
    plan.session.close()
    if plan.output is not None:
        plan.output.abandon()  # a file it created is removed; one that was there is untouched
    return Outcome(status, summary, started, began=False, all_read=False)


def auditor(options: AuditPlan | None) -> Callable[[Result], Result] | None:
    """``--audit``: a result with its ``audit`` set (when it has a head to grade), or None."""
    if options is None:
        return None
    from fetchheads.audit import audit_result  # --audit runs only

    def grade(result: Result) -> Result:
        audit = audit_result(
            result, insecure=options.insecure, request_origin=options.request_origin
        )
        if audit is not None:
            # Set on the result in place, as its own __init__ sets every field: it is new from
            # the fetch and no one else holds it yet. A copy of its twelve fields was a third of
            # what --audit cost a target.
            object.__setattr__(result, "audit", audit)
        return result

    return grade


def safe(exc: BaseException) -> str:
    """An exception's message for the terminal: database text and file names are not ours."""
    return terminal_safe(str(exc))


def make_sink(plan: RunPlan) -> Sink:
    """The output of the plan's view: stdout (or ``-o FILE``), written by a thread of its own
    (``render.writer``) where a reader may keep a write waiting."""
    view = plan.view
    stdout: BinaryIO = plan.output.stream if plan.output is not None else sys.stdout.buffer
    writer = Writer()
    if view.format == "prometheus":
        return TextfileSink(stdout, selector=view.selector)
    if view.format != "pretty":
        formatter, preamble = line_format(plan)
        formatter = selected(formatter, view.selector)
        if view.record_end:  # a worker's: every result framed, a result not shown as well
            formatter = framed(formatter, view.record_end)
        return TextSink(stdout, formatter, writer=writer, preamble=preamble, order=view.sort)
    from rich.console import Console  # the pretty view only

    console_options = plan.environment.console_options()
    if plan.output is not None:
        console_options = {"color_system": None, "width": 80}
    console = Console(
        file=cast("IO[str]", TextIOWrapper(stdout, "utf-8", "surrogateescape", write_through=True))
        if plan.output is not None
        else None,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
        **console_options,
    )
    return PrettySink(console, waterfall=view.waterfall, writer=writer, selector=view.selector)


def line_format(plan: RunPlan) -> tuple[Callable[[Result], str], str]:
    """The formatter of a line format, and its header row (``""``: none)."""
    view = plan.view
    name = view.format
    if name == "jsonl":
        return format_jsonl, ""
    if name == "plain":
        return format_plain, ""
    if name == WRITE_OUT:
        assert view.write_out is not None
        return view.write_out.render, ""
    if name == "table":
        from fetchheads.render.tabular import TableLayout

        layout = TableLayout(view.fields, view.width)
        if view.colour:
            from fetchheads.render.table_view import ansi_line

            line = ansi_line
        else:
            line = layout.line
        row = layout.row
        return (lambda result: line(row(result))), line(layout.header()) if view.header else ""
    from fetchheads.render.tabular import CsvFormat, TsvFormat

    sheet = CsvFormat(view.fields) if name == "csv" else TsvFormat(view.fields)
    return sheet.row, sheet.header() if view.header else ""


def starts_per_turn(plan: RunPlan) -> int:
    """Targets one turn of the loop may start: fewer in a run that keeps one process, where
    that costs less CPU; a worker, sharing the cores with its siblings, keeps the wider bound
    (``run.pool``)."""
    return STARTS_PER_TURN if plan.in_worker else STARTS_PER_TURN_ALONE


def finish_output(plan: RunPlan, *, stopped: bool, stderr: StderrConsole) -> bool:
    """Close ``-o FILE`` (a whole one put in place unless the run was stopped); False, said
    once on stderr, when that failed."""
    if plan.output is None:
        return True
    try:
        plan.output.finish(keep=not stopped)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        stderr.print(f"fetchheads: cannot write {plan.output.path}: {reason}")
        return False
    return True


def framed(formatter: Callable[[Result], str], end: str) -> Callable[[Result], str]:
    """``formatter``, each record followed by ``end``."""

    def frame(result: Result) -> str:
        return formatter(result) + end

    return frame


async def _counted(items: AsyncIterator[Item], bar: ProgressLine) -> AsyncIterator[Item]:
    """``items``, counting each one read for the progress line (the list's length is unknown)."""
    async for item in items:
        bar.read += 1
        yield item


def _fetcher(ctx: FetchContext) -> Callable[[Target], Awaitable[Result]]:
    """``fetch_one`` for this run; with ``-L`` wrapped so that each hop is a whole fetch."""
    if not ctx.config.location:
        return ctx.fetch  # fetch_one(target, ctx), bound

    async def fetch_with(target: Target, config: Config) -> Result:
        return await fetch_one(target, dataclasses.replace(ctx, config=config))

    return following(fetch_with, ctx.config)


def _resolver(config: Config) -> Resolver:
    """The run's resolver, from the DNS options (validated by cli)."""
    pinned = dict(parse_resolve(entry) for entry in config.resolve)
    return Resolver(
        concurrency=config.concurrency,
        family=FAMILIES[config.ip_version],
        pinned=pinned,
        servers=config.dns_servers,
        timeout=config.connect_timeout or config.timeout,
    )
