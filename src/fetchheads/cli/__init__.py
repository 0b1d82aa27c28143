"""The command line: click options -> one frozen ``Config``; output chosen once; exit codes.

The only module that imports click, and the only one that decides how the process ends:

    0    every target gave a response head
    1    one or more targets failed (input errors included)
    2    usage error (also: a --db file that is not a fetchheads database, or is from a newer one)
    3    every target answered, but a certificate expires within --warn-days
    130  interrupted (SIGINT); 143 terminated (SIGTERM)
    141  stdout closed by its reader (``| head``): stop quietly, as a SIGPIPE'd tool would
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, BinaryIO

import click
from rich.console import Console

from fetchheads import __version__, process
from fetchheads.changes import ignored_names
from fetchheads.cli.common import CONTEXT_SETTINGS, ExitStatus, positive_float
from fetchheads.cli.scale import make_resolver, scale_options
from fetchheads.cli.snapshots import SNAPSHOT_COMMANDS, open_store, snapshot_options
from fetchheads.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_REDIRS,
    DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT,
    FORMATS,
    LOOPS,
    METHODS,
    ORDERS,
    Config,
)
from fetchheads.connect_to import ConnectTo, parse_connect_to
from fetchheads.errors import InputError, StoreError
from fetchheads.fetch import FetchContext, fetch_one, make_ssl_context
from fetchheads.models import Result, Target
from fetchheads.proxy import ProxyRules, proxy_rules
from fetchheads.recorder import SnapshotOptions, SnapshotSession
from fetchheads.redirects import following
from fetchheads.render.jsonl import format_jsonl
from fetchheads.render.output import PrettySink, ProgressLine, Sink, TextSink
from fetchheads.render.plain import format_plain
from fetchheads.render.summary import Summary
from fetchheads.request import check_header_value, parse_header_option
from fetchheads.runner import STDIN, Item, Pacer, Source, read_sources, run, select_shard
from fetchheads.targets import SCHEMES

FETCH_EPILOG = """\b
Examples:
  fetchheads www.sina.com.cn www.sohu.com
  fetchheads https://example.com:8443/health
  fetchheads < hosts.txt | grep -i '^[^ ]* header > server:'
  fetchheads --json -c 200 -t 5 -i hosts.txt > heads.jsonl
  fetchheads -X HEAD -H 'Accept-Language: zh' -k https://127.0.0.1:8443
  fetchheads -L http://example.com           # follow redirects, show each hop
  fetchheads --db ~/heads.db --changes --warn-days 14 -i hosts.txt   # from cron
  fetchheads --resolve example.com:443:127.0.0.1 https://example.com/
  fetchheads --dns-servers 9.9.9.9,1.1.1.1 -c 500 --rate 200 --retries 2 -i hosts.txt
  fetchheads --shard 2/4 --json -i hosts.txt > heads-2.jsonl   # one machine of four
  fetchheads --proxy http://127.0.0.1:3128 https://example.com
  fetchheads --connect-to example.com:443:203.0.113.7:443 https://example.com
"""
ENV_PREFIX = "FETCHHEADS"
_IMPLIED = "fetchheads.implied_command"


class DefaultGroup(click.Group):
    """A group whose default command is ``fetch``: ``fetchheads HOST`` means ``fetchheads fetch
    HOST``. A target that is spelled like a command can be given as ``fetchheads fetch NAME``."""

    default_command = "fetch"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = [self.default_command, *args]
            ctx.meta[_IMPLIED] = True
        return super().parse_args(ctx, args)


class _ImpliedContext(click.Context):
    """Usage lines and ``Try '... --help'`` hints name the command the way the user typed it:
    ``fetchheads [OPTIONS]``, not ``fetchheads fetch [OPTIONS]``, when ``fetch`` was implied."""

    @property
    def command_path(self) -> str:
        if self.parent is not None and self.meta.get(_IMPLIED):
            return self.parent.command_path
        return super().command_path


class FetchCommand(click.Command):
    """The default command. Every option gets an environment variable named after its long
    option (``--timeout`` -> ``FETCHHEADS_TIMEOUT``), and the help names the other commands."""

    context_class = _ImpliedContext

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, click.Option) and param.expose_value and param.envvar is None:
                longest = max(param.opts, key=len)
                param.envvar = f"{ENV_PREFIX}_{longest.lstrip('-').upper().replace('-', '_')}"
                param.show_envvar = False

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        group = ctx.parent.command if ctx.parent is not None else None
        if isinstance(group, click.Group):
            others = [name for name in group.list_commands(ctx) if name != self.name]
            if others:
                formatter.write_paragraph()
                with formatter.indentation():  # in line with the examples below
                    formatter.write_text(
                        f"Other commands: {', '.join(others)} (see 'fetchheads COMMAND --help')."
                    )
        super().format_epilog(ctx, formatter)


class HeaderType(click.types.StringParamType):
    """``'Name: value'`` text; from the environment, one header per line (values hold spaces)."""

    name = "header"

    def split_envvar_value(self, rv: str) -> list[str]:
        return [line for line in rv.splitlines() if line.strip()]


@click.group(cls=DefaultGroup, context_settings=CONTEXT_SETTINGS)
def cli() -> None:
    """Fetch the HTTP response headers of many hosts at once."""


for _command in SNAPSHOT_COMMANDS:
    cli.add_command(_command)


def _headers(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    try:
        return tuple(parse_header_option(value) for value in values)
    except InputError as exc:
        raise click.BadParameter(str(exc)) from None


def _user_agent(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        check_header_value("User-Agent", value)
    except InputError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _connect_to(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[ConnectTo, ...]:
    try:
        return tuple(parse_connect_to(value) for value in values)
    except InputError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command("fetch", cls=FetchCommand, epilog=FETCH_EPILOG, context_settings=CONTEXT_SETTINGS)
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@click.option(
    "-i",
    "--input",
    "inputs",
    multiple=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Read targets from FILE, one per line ('-' for stdin); repeatable. "
    "With no TARGET and no --input, stdin is read when it is not a terminal.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1, max=100_000),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    metavar="N",
    help="Targets in flight at once.",
)
@click.option(
    "-t",
    "--timeout",
    type=float,
    default=DEFAULT_TIMEOUT,
    show_default=True,
    callback=positive_float,
    help="Seconds for each target: DNS, connect, TLS and the whole head.",
)
@click.option(
    "--connect-timeout",
    type=float,
    default=None,
    callback=positive_float,
    help="Tighter bound in seconds on DNS+connect+TLS alone.  [default: the timeout]",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default=None,
    help="Output format.  [default: pretty on a terminal, plain otherwise]",
)
@click.option("--json", "json_flag", is_flag=True, help="Same as --format jsonl.")
@click.option(
    "--order",
    type=click.Choice(ORDERS),
    default="completion",
    show_default=True,
    help="Print each target as it finishes, or in input order.",
)
@click.option(
    "-X",
    "--method",
    type=click.Choice(METHODS, case_sensitive=False),
    metavar=f"[{'|'.join(METHODS)}]",  # click would show the choices in lower case
    default="GET",
    show_default=True,
    help="Request method.",
)
@click.option(
    "-H",
    "--header",
    "headers",
    multiple=True,
    type=HeaderType(),
    metavar="'NAME: VALUE'",
    callback=_headers,
    help="Extra request header, repeatable. Replaces a default header of the same name; "
    "'Name:' with no value removes it.",
)
@click.option(
    "-A",
    "--user-agent",
    default=DEFAULT_USER_AGENT,
    show_default=True,
    callback=_user_agent,
    help="User-Agent header.",
)
@click.option(
    "--scheme",
    type=click.Choice(SCHEMES),
    default="http",
    show_default=True,
    help="Scheme for targets given without one (a bare host:443 is always https).",
)
@click.option("-k", "--insecure", is_flag=True, help="Do not verify TLS certificates.")
@click.option(
    "--cacert",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Trust the CA certificates in this PEM file instead of the system store.",
)
@click.option(
    "-L",
    "--location",
    is_flag=True,
    help="Follow redirects (301, 302, 303, 307, 308) and show every hop. "
    "-t covers the whole chain.",
)
@click.option(
    "--max-redirs",
    type=click.IntRange(min=0, max=1000),
    default=DEFAULT_MAX_REDIRS,
    show_default=True,
    metavar="N",
    help="With -L: fail with kind 'redirect' after N hops.",
)
@click.option(
    "--proxy",
    metavar="URL",
    default=None,
    help="Use this HTTP proxy, e.g. http://user:pass@127.0.0.1:3128 (port 1080 if none); "
    "https goes through a CONNECT tunnel. '' disables the proxy environment variables.  "
    "[default: https_proxy, http_proxy, all_proxy as curl reads them]",
)
@click.option(
    "--noproxy",
    metavar="LIST",
    default=None,
    help="Hosts that go direct, e.g. 'localhost,.internal,10.0.0.0/8' ('*' for all); "
    "replaces no_proxy/NO_PROXY.",
)
@click.option(
    "--connect-to",
    "connect_to",
    multiple=True,
    metavar="HOST:PORT:CHOST:CPORT",
    callback=_connect_to,
    help="Connect to CHOST:CPORT for requests to HOST:PORT, still sending HOST as Host and SNI "
    "(curl's meaning; empty fields match any / keep the same). Repeatable. "
    "Example: --connect-to example.com:443:127.0.0.1:8443",
)
@click.option(
    "--waterfall/--no-waterfall",
    default=None,
    help="Timing bars (dns, connect, tls, first byte) in the pretty output.  "
    "[default: on for up to 3 targets given as arguments]",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar and summary on stderr.  [default: on when stderr is a terminal]",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@click.option(
    "--loop",
    "loop_name",
    type=click.Choice(LOOPS),
    default="auto",
    show_default=True,
    help="Event loop: uvloop where installed (auto), or the standard asyncio loop.",
)
@snapshot_options
@scale_options
@click.version_option(__version__, "--version", prog_name="fetchheads")
def fetch_command(
    targets: tuple[str, ...],
    inputs: tuple[str, ...],
    concurrency: int,
    timeout: float,
    connect_timeout: float | None,
    output_format: str | None,
    json_flag: bool,
    order: str,
    method: str,
    headers: tuple[tuple[str, str], ...],
    user_agent: str,
    scheme: str,
    insecure: bool,
    cacert: str | None,
    location: bool,
    max_redirs: int,
    proxy: str | None,
    noproxy: str | None,
    connect_to: tuple[ConnectTo, ...],
    waterfall: bool | None,
    progress: bool | None,
    quiet: bool,
    loop_name: str,
    db: str | None,
    changes: bool,
    ignored: tuple[str, ...],
    warn_days: int | None,
    resolve: tuple[str, ...],
    dns_servers: tuple[str, ...],
    ip_version: str | None,
    rate: float | None,
    retries: int,
    shard: tuple[int, int] | None,
) -> None:
    """Fetch the response headers of every TARGET at once.

    A TARGET is host, host:port, [v6addr]:port, or an http:// or https:// URL with a path. Each one
    gets one connection and an HTTP/1.0 request; the head is read up to the blank line, never the
    body, and each target is printed the moment it finishes.
    """
    problem = process.stdout_problem()
    if problem is not None:
        click.echo(f"fetchheads: cannot write the output: {problem}", err=True)
        sys.exit(int(ExitStatus.FAILED))
    concurrency, warning = process.fit_concurrency(concurrency, process.raise_open_file_limit())
    if warning is not None:
        click.echo(warning, err=True)
    config = Config(
        concurrency=concurrency,
        timeout=timeout,
        connect_timeout=connect_timeout,
        method=method.upper(),
        headers=headers,
        user_agent=user_agent,
        default_scheme=scheme,
        insecure=insecure,
        cacert=cacert,
        order=order,
        loop=loop_name,
        location=location,
        max_redirs=max_redirs,
        retries=retries,
        rate=rate,
        shard=shard,
        ip_version=ip_version or "any",
        dns_servers=dns_servers,
        resolve=resolve,
        proxies=_proxy_rules(proxy, noproxy),
        connect_to=connect_to,
    )
    if waterfall is None:
        waterfall = 0 < len(targets) <= WATERFALL_AUTO_TARGETS and not inputs
    sources = _sources(targets, inputs)
    chosen = _output_format(output_format, json_flag)
    if chosen is None:
        chosen = "pretty" if _isatty(sys.stdout) else "plain"
    show_progress = (not quiet) and (_isatty(sys.stderr) if progress is None else progress)
    # The bar belongs to the terminal view; under plain or jsonl only --progress asks for it.
    # Not while someone types targets at the terminal: it would be drawn over their typing.
    typing = _isatty(sys.stdin) and any(source.path == STDIN for source in sources)
    show_bar = show_progress and (progress is True or (chosen == "pretty" and not typing))
    # Built on the first https target (loading the CA store is slow), but a bad --cacert is a
    # usage error before anything is fetched.
    tls = functools.cache(functools.partial(make_ssl_context, config))
    if cacert is not None:
        try:
            tls()
        except (ssl.SSLError, OSError) as exc:
            raise click.BadParameter(
                f"cannot load {cacert}: {exc}", param_hint="--cacert"
            ) from None
    if changes and db is None:
        raise click.UsageError("--changes compares with earlier snapshots: give --db PATH")
    watch = SnapshotOptions(changes=changes, ignored=ignored_names(ignored), warn_days=warn_days)
    session = SnapshotSession(open_store(db) if db else None, watch)
    status = execute(
        config,
        sources,
        chosen,
        tls,
        show_summary=show_progress,
        show_bar=show_bar,
        waterfall=waterfall,
        session=session,
    )
    sys.exit(int(status))


WATERFALL_AUTO_TARGETS = 3


def _output_format(output_format: str | None, json_flag: bool) -> str | None:
    """--json is --format jsonl. Both on the command line and disagreeing is a usage error; when
    one of them comes from the environment (FETCHHEADS_JSON, FETCHHEADS_FORMAT) the command line
    wins."""
    if not json_flag or output_format in (None, "jsonl"):
        return "jsonl" if json_flag else output_format
    ctx = click.get_current_context()
    given = click.core.ParameterSource.COMMANDLINE
    json_given = ctx.get_parameter_source("json_flag") is given
    if ctx.get_parameter_source("output_format") is not given:
        return "jsonl"
    if not json_given:
        return output_format
    raise click.UsageError(f"--json means --format jsonl; it contradicts --format {output_format}")


def _proxy_rules(proxy: str | None, noproxy: str | None) -> ProxyRules:
    try:
        return proxy_rules(os.environ, proxy=proxy, noproxy=noproxy)
    except InputError as exc:
        raise click.UsageError(f"{exc} (--proxy '' ignores the proxy environment)") from None


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _sources(targets: tuple[str, ...], inputs: tuple[str, ...]) -> list[Source]:
    sources = [Source(args=targets)] if targets else []
    sources.extend(Source(path=path) for path in inputs)
    if not sources:
        if sys.stdin is None or _isatty(sys.stdin):  # None: stdin was closed (``<&-``)
            raise click.UsageError(
                "no targets: give hosts as arguments, with -i FILE, or on stdin "
                "(e.g. 'fetchheads www.example.com')"
            )
        sources.append(Source(path=STDIN))
    for path in inputs:
        problem = _unreadable(path)
        if problem is not None:
            # Worded as the record of a file that fails later, mid-way: "cannot read NAME: why".
            raise click.BadParameter(f"cannot read {problem}", param_hint="-i/--input")
    return sources


def _unreadable(path: str) -> str | None:
    """Why ``path`` (``-`` for stdin) cannot be read, or None. Non-blocking: a FIFO with no
    writer yet is not waited for here."""
    if path == STDIN:
        return "stdin: standard input is closed" if sys.stdin is None else None
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    return None


def _make_sink(output_format: str, *, waterfall: bool = False) -> Sink:
    stdout: BinaryIO = sys.stdout.buffer
    if output_format == "jsonl":
        return TextSink(stdout, format_jsonl)
    if output_format == "plain":
        return TextSink(stdout, format_plain)
    console = Console(highlight=False, markup=False, emoji=False, soft_wrap=False)
    return PrettySink(console, waterfall=waterfall)


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
) -> ExitStatus:
    """Run the fetch and turn its outcome into an exit status. Prints the summary on stderr."""
    sink = _make_sink(output_format, waterfall=waterfall)
    summary = Summary()
    stderr = Console(stderr=True, highlight=False, markup=False, emoji=False)
    bar = ProgressLine(stderr, summary) if show_bar else None
    started = time.monotonic()
    terminated = False
    session = session or SnapshotSession()
    output = sink.emit

    def emit(result: Any) -> None:
        result = session.annotate(result)
        summary.add(result)
        output(result)

    async def main() -> None:
        nonlocal terminated, output
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_sigterm() -> None:
            nonlocal terminated
            terminated = True
            task.cancel()

        def stop() -> None:
            task.cancel()

        sink.set_on_error(stop)
        process.on_sigterm(loop, on_sigterm)
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
            )
        finally:
            if bar is not None:
                bar.stop()
            await session.drain()  # every result is recorded, even after Ctrl-C
            await resolver.aclose()

    try:
        session.start(config)
    except StoreError as exc:
        session.close()
        stderr.print(f"fetchheads: {exc}")
        return ExitStatus.FAILED
    status: ExitStatus
    try:
        with asyncio.Runner(loop_factory=_new_loop_factory(config.loop)) as runner:
            runner.run(main())
    except KeyboardInterrupt:
        status = ExitStatus.INTERRUPTED
    except asyncio.CancelledError:
        if sink.error is None and session.error is None and not terminated:
            raise
        status = ExitStatus.TERMINATED if terminated else ExitStatus.OK
    else:
        status = ExitStatus.OK if summary.failed == 0 else ExitStatus.FAILED
    sink.close()
    try:
        session.finish(summary.targets, summary.ok)
    except StoreError as exc:
        stderr.print(f"fetchheads: {exc}")
        status = ExitStatus.FAILED
    if session.error is not None:
        stderr.print(f"fetchheads: snapshots not recorded: {session.error}")
        status = ExitStatus.FAILED
    if status is ExitStatus.OK and session.alerts:
        status = ExitStatus.WARNING
    if sink.error is not None:
        return _output_failed(sink.error, stderr)
    if show_summary and status in (
        ExitStatus.OK,
        ExitStatus.FAILED,
        ExitStatus.WARNING,
        ExitStatus.INTERRUPTED,  # what finished before Ctrl-C, as counted
    ):
        stderr.print(summary.describe(time.monotonic() - started) + session.describe(), style="dim")
    if status is ExitStatus.INTERRUPTED:
        stderr.print("fetchheads: interrupted")
    return status


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


def _output_failed(error: OSError, stderr: Console) -> ExitStatus:
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


def main() -> None:
    """The console-script entry point. A bug must not show a user a traceback: it says so in one
    line (set ``FETCHHEADS_DEBUG=1`` for the traceback) and exits 1."""
    process.reserve_standard_fds()
    try:
        cli(prog_name="fetchheads")
    except Exception as exc:  # the one blanket catch, at the very top
        if os.environ.get("FETCHHEADS_DEBUG"):
            raise
        leaves = "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in _leaves(exc))
        message = f"fetchheads: internal error: {leaves}"
        print(message + " (FETCHHEADS_DEBUG=1 shows the traceback)", file=sys.stderr)
        sys.exit(int(ExitStatus.FAILED))


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions a TaskGroup's ``ExceptionGroup`` wraps (nested ones flattened): they, not
    'unhandled errors in a TaskGroup', say what went wrong."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]
