"""Running a fetch: the event loop, the output sink, the summary, and the run's exit status."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, BinaryIO, NoReturn

import click

from fetchheads import process
from fetchheads.cli.common import ExitStatus
from fetchheads.cli.scale import make_resolver
from fetchheads.cli.worker import framed
from fetchheads.config import Config
from fetchheads.errors import StoreError
from fetchheads.fetch import FetchContext, fetch_one
from fetchheads.models import Result, Target
from fetchheads.recorder import SnapshotSession
from fetchheads.redirects import following
from fetchheads.render.jsonl import format_jsonl
from fetchheads.render.output import PrettySink, ProgressLine, Sink, StderrConsole, TextSink
from fetchheads.render.plain import format_plain
from fetchheads.render.safe import terminal_safe
from fetchheads.render.summary import Summary, not_recorded
from fetchheads.render.writer import Writer
from fetchheads.runner import Intake, Item, Pacer, Source, read_sources, run, select_shard


def _make_sink(output_format: str, *, waterfall: bool = False, worker: bool = False) -> Sink:
    """The output of the run: stdout, written by a thread of its own (``render.writer``)."""
    stdout: BinaryIO = sys.stdout.buffer
    writer = Writer()
    if output_format in ("jsonl", "plain"):
        formatter = format_jsonl if output_format == "jsonl" else format_plain
        return TextSink(stdout, framed(formatter) if worker else formatter, writer=writer)
    from rich.console import Console  # the pretty view only

    console = Console(highlight=False, markup=False, emoji=False, soft_wrap=False)
    return PrettySink(console, waterfall=waterfall, writer=writer)


def _new_loop_factory(name: str) -> Any:
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise click.BadParameter("uvloop is not installed", param_hint="--loop") from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def execute(
    config: Config,
    sources: Sequence[Source],
    output_format: str,
    make_tls: Callable[[], ssl.SSLContext],
    *,
    show_summary: bool,
    show_bar: bool = False,
    waterfall: bool = False,
    session: SnapshotSession | None = None,
    workers: int = 1,
    summary: Summary | None = None,
    worker: bool = False,
    on_result: Callable[[], None] | None = None,
) -> ExitStatus:
    """Run the fetch and turn its outcome into an exit status. Prints the summary on stderr.

    ``workers`` > 1 spreads the run over that many processes (``cli.parallel``), each of which
    calls this with ``worker`` set: no summary and no "interrupted" of its own, its counts added
    to ``summary``, and ``on_result`` called for each target done."""
    sink = _make_sink(output_format, waterfall=waterfall, worker=worker)
    if workers > 1:
        from fetchheads.cli.parallel import execute_parallel

        assert isinstance(sink, TextSink)
        return execute_parallel(
            config,
            sources,
            output_format,
            make_tls,
            workers=workers,
            show_summary=show_summary,
            execute=execute,
            sink=sink,
            output_failed=output_failed,
            loop_factory=_new_loop_factory(config.loop),
        )
    summary = summary if summary is not None else Summary()
    stderr = StderrConsole()
    bar = ProgressLine(stderr.console, summary, writer=sink.writer) if show_bar else None
    started = time.monotonic()
    terminated = interrupted = False
    intake = Intake()
    session = session or SnapshotSession()
    output = sink.emit

    def emit(result: Any) -> None:
        result = session.annotate(result)
        summary.add(result)
        output(result)
        if on_result is not None:
            on_result()

    async def main() -> None:
        nonlocal terminated, interrupted, output
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_sigterm() -> None:
            nonlocal terminated
            terminated = True
            task.cancel()

        def on_sigint() -> None:
            nonlocal interrupted
            interrupted = True
            task.cancel()

        def stop() -> None:
            task.cancel()

        sink.set_on_error(stop)
        process.on_sigterm(loop, on_sigterm, _terminate)
        process.on_sigint(loop, on_sigint, _quit)
        process.accept_stop_signals()  # held while a --workers worker started
        resolver = make_resolver(config)
        ctx = FetchContext(
            config=config,
            make_ssl_context=make_tls,
            resolver=resolver,
            pace=Pacer(config.rate) if config.rate else None,
        )
        output = session.attach(sink.emit, stop)
        items = read_sources(sources, config.default_scheme)
        if config.shard is not None:
            items = select_shard(items, *config.shard)
        if bar is not None:
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
            )
        finally:
            if bar is not None:
                bar.stop()
            await session.drain()  # every result is recorded, even after Ctrl-C
            await resolver.aclose()

    session.start(config)
    status: ExitStatus
    try:
        with (
            process.tuned_gc(),
            asyncio.Runner(loop_factory=_new_loop_factory(config.loop)) as runner,
        ):
            runner.run(main())
    except KeyboardInterrupt:
        status = ExitStatus.INTERRUPTED
    except asyncio.CancelledError:
        if sink.error is None and not (terminated or interrupted):
            raise
        if terminated:
            status = ExitStatus.TERMINATED
        else:
            status = ExitStatus.INTERRUPTED if interrupted else ExitStatus.OK
    else:
        status = ExitStatus.OK if summary.failed == 0 else ExitStatus.FAILED
    sink.close()  # waits for the reader to take the rest: Ctrl-C still gets out (_quit)
    process.ignore_interrupts()
    stopped = status in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED)
    try:
        session.finish(summary.targets, summary.ok, interrupted=stopped)
    except StoreError as exc:
        message = f"fetchheads: the run could not be closed in the database: {safe(exc)}"
        stderr.print(message, soft_wrap=True)
        status = ExitStatus.FAILED
    if session.unrecorded and session.error is not None:
        lost = not_recorded(session.unrecorded, session.error.reason, session.path or "")
        stderr.print(lost, soft_wrap=True)  # one line, however narrow the terminal
        if status is ExitStatus.OK:
            status = ExitStatus.FAILED
    if status is ExitStatus.OK and session.shown_alerts:
        status = ExitStatus.WARNING
    if sink.error is not None:
        return output_failed(sink.error, stderr)
    if show_summary and status in (
        ExitStatus.OK,
        ExitStatus.FAILED,
        ExitStatus.WARNING,
        ExitStatus.INTERRUPTED,  # what finished before Ctrl-C, as counted
    ):
        stderr.print(summary.describe(time.monotonic() - started) + session.describe(), style="dim")
    if status is ExitStatus.INTERRUPTED and not worker:
        stderr.print("fetchheads: " + summary.interrupted(intake.read, all_read=intake.complete))
    return status


def safe(exc: BaseException) -> str:
    """An exception's message for the terminal: database text and file names are not ours."""
    return terminal_safe(str(exc))


def _quit() -> NoReturn:
    """Ctrl-C twice: go now, even from a write to a stdout nobody reads."""
    os._exit(int(ExitStatus.INTERRUPTED))


def _terminate() -> NoReturn:
    """SIGTERM twice: likewise."""
    os._exit(int(ExitStatus.TERMINATED))


async def _counted(items: AsyncIterator[Item], bar: ProgressLine) -> AsyncIterator[Item]:
    """``items``, counting each one read for the progress line (the list's length is unknown)."""
    async for item in items:
        bar.read += 1
        yield item


def _fetcher(ctx: FetchContext) -> Callable[[Target], Awaitable[Result]]:
    """``fetch_one`` for this run; with ``-L`` wrapped so that each hop is a whole fetch."""
    if not ctx.config.location:
        return functools.partial(fetch_one, ctx=ctx)

    async def fetch_with(target: Target, config: Config) -> Result:
        return await fetch_one(target, dataclasses.replace(ctx, config=config))

    return following(fetch_with, ctx.config)


def output_failed(error: OSError, stderr: StderrConsole) -> ExitStatus:
    if isinstance(error, BrokenPipeError):
        # The reader went away (``| head``). Point stdout at /dev/null so the interpreter's
        # final flush cannot fail again, and leave without a word, as a SIGPIPE'd tool does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        finally:
            os.close(devnull)
        return ExitStatus.BROKEN_PIPE
    stderr.print(f"fetchheads: cannot write the output: {error.strerror or error}")
    return ExitStatus.FAILED
