"""The command line: click options -> one frozen ``RunPlan``, handed to ``run.run_plan``.

The ``cli`` package is the only one that imports click, and the only one that decides how the
process ends. Here: the command group, the fetch command (which builds the plan) and ``main``;
the fetch options and ``make_config`` in ``options`` and ``scale``, the snapshot commands in
``snapshots``. The run itself is ``fetchheads.run``'s. Exit statuses:

    0    every target gave a response head
    1    one or more targets failed (input errors included), or results were not recorded in
         the --db database (locked past the busy timeout, a full disk, not writable)
    2    usage error (also: a --db that is not a fetchheads database, is from a newer one, is a
         FIFO or device, lies in a directory that does not exist, or cannot be created or written)
    3    every target answered, but a certificate needs attention (--warn-days, --warn-fraction;
         under --changes: only when that warning is printed, i.e. new or worse since the last run),
         or a target graded under --fail-under
    130  interrupted (SIGINT); 143 terminated (SIGTERM)
    141  stdout closed by its reader (``| head``): stop quietly, as a SIGPIPE'd tool would
"""

from __future__ import annotations

import functools
import os
import ssl
import sys
from collections.abc import Callable
from typing import Any

import click

from fetchheads.cli.answers import (
    check_columns,
    check_output_name,
    check_sort,
    compile_answer,
    open_output,
)
from fetchheads.cli.audit import AUDIT_COMMANDS, audit_plan
from fetchheads.cli.common import BOOL, CONTEXT_SETTINGS, ExitStatus, make_readable
from fetchheads.cli.options import fetch_options, make_config
from fetchheads.cli.snapshots import SNAPSHOT_COMMANDS, snapshot_session
from fetchheads.config import Config
from fetchheads.fetch.one import make_ssl_context
from fetchheads.render.safe import terminal_safe
from fetchheads.run import process, run_plan
from fetchheads.run.inputs import STDIN, Source
from fetchheads.run.plan import Environment, RunPlan, View, choose_view, choose_workers
from fetchheads.snapshots.changes import ignored_names
from fetchheads.snapshots.recorder import SnapshotOptions

__all__ = ["ExitStatus", "cli", "main"]

FETCH_EPILOG = """\b
Examples:
  fetchheads www.sina.com.cn www.sohu.com
  fetchheads https://example.com:8443/health
  fetchheads < hosts.txt | grep -i '^[^ ]* header > server:'
  fetchheads --json -c 200 -t 5 -i hosts.txt > heads.jsonl
  fetchheads -X HEAD -H 'Accept-Language: zh' -k https://127.0.0.1:8443
  fetchheads -L http://example.com           # follow redirects, show each hop
  fetchheads --db ~/heads.db --changes --warn-days 14 -i hosts.txt   # from cron
  fetchheads --audit --fail-under B -i hosts.txt     # security headers graded; 3 under B
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

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as error:  # every command's, parsing and running
            make_readable(error)
            raise


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
    option (``--timeout`` -> ``FETCHHEADS_TIMEOUT``; a flag's text there is read as ``BOOL``
    reads it), and the help names the other commands."""

    context_class = _ImpliedContext

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if not isinstance(param, click.Option):
                continue
            if param.expose_value and param.envvar is None:
                longest = max(param.opts, key=len)
                param.envvar = f"{ENV_PREFIX}_{longest.lstrip('-').upper().replace('-', '_')}"
                param.show_envvar = False
            if type(param.type) is click.types.BoolParamType:  # a flag: its variable's text
                param.type = BOOL

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


@click.group(cls=DefaultGroup, context_settings=CONTEXT_SETTINGS)
def cli() -> None:
    """Fetch the HTTP response headers of many hosts at once."""


for _command in (*SNAPSHOT_COMMANDS, *AUDIT_COMMANDS):
    cli.add_command(_command)


@cli.command("fetch", cls=FetchCommand, epilog=FETCH_EPILOG, context_settings=CONTEXT_SETTINGS)
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@fetch_options
@click.pass_context
def fetch_command(
    ctx: click.Context,
    /,
    targets: tuple[str, ...],
    inputs: tuple[str, ...],
    concurrency: int,
    output_format: str | None,
    json_flag: bool,
    proxy: str | None,
    noproxy: str | None,
    waterfall: bool | None,
    progress: bool | None,
    quiet: bool,
    db: str | None,
    changes: bool,
    ignored: tuple[str, ...],
    warn_days: int | None,
    warn_fraction: float | None,
    workers: int | None,
    audit: bool,
    fail_under: str | None,
    fields: str | None,
    write_out: str | None,
    output: str | None,
    match_status: tuple[str, ...],
    filter_status: tuple[str, ...],
    failed: bool,
    warned: bool,
    has_header: tuple[str, ...],
    missing_header: tuple[str, ...],
    sort: tuple[str, ...],
    **config_fields: Any,
) -> None:
    """Fetch the response headers of every TARGET at once.

    A TARGET is host, host:port, [v6addr]:port, or an http:// or https:// URL with a path. Each one
    gets one connection and an HTTP/1.0 request; the head is read up to the blank line, never the
    body, and each target is printed the moment it finishes.
    """
    _check_misplaced_command(ctx, targets)
    # An Environment passed in (CliRunner().invoke(cli, args, obj=...)) stands for the real one.
    environment = ctx.obj if isinstance(ctx.obj, Environment) else Environment.detect()
    if environment.stdout_closed:
        click.echo("fetchheads: cannot write the output: standard output is closed", err=True)
        sys.exit(int(ExitStatus.FAILED))
    concurrency, warning = process.fit_concurrency(concurrency, process.raise_open_file_limit())
    if warning is not None:
        click.echo(warning, err=True)
    config = make_config(config_fields, concurrency=concurrency, proxy=proxy, noproxy=noproxy)
    sources = _sources(targets, inputs, environment)
    output_format = _output_format(output_format, json_flag)
    check_output_name(output, output_format, write_out, fields)
    sort = _sort_or_input_order(ctx, sort, config.order)
    answer = compile_answer(
        output_format=output_format,
        fields=fields,
        write_out=write_out,
        match_status=match_status,
        filter_status=filter_status,
        failed=failed,
        warned=warned,
        has_header=has_header,
        missing_header=missing_header,
        warns=warn_days is not None or warn_fraction is not None,
        sort=sort,
    )
    view = choose_view(
        output_format,
        waterfall=waterfall,
        progress=progress,
        quiet=_quiet(quiet, progress),
        sources=sources,
        environment=environment,
        fields=answer.fields,
        write_out=answer.write_out,
        selector=answer.selector,
        output=output,
        changes=changes,
        sort=answer.sort,
    )
    check_columns(fields, view.format, output)
    check_sort(answer.sort, view.format, output)
    if view.format == "table":
        _say_left_out(view)
    tls = _tls(config)
    if changes and db is None:
        raise click.UsageError("--changes compares with earlier snapshots: give --db PATH")
    if changes and view.format == "prometheus":
        raise click.UsageError(
            "--changes prints only what changed, but a Prometheus textfile must hold every "
            "target: drop --changes (--db still records) or choose another --format"
        )
    snapshots = SnapshotOptions(
        changes=changes,
        ignored=ignored_names(ignored),
        warn_days=warn_days,
        warn_fraction=warn_fraction,
    )
    loop_factory = process.loop_factory(config.loop)
    if loop_factory is None:
        raise click.BadParameter("uvloop is not installed", param_hint="--loop")
    processes = choose_workers(
        workers,
        config=config,
        view=view,
        sources=sources,
        snapshots=db is not None or snapshots.warns,
        environment=environment,
    )
    if processes > 1 and not environment.can_fork:  # auto never asks for more than one here
        raise click.BadParameter(
            f"{processes} processes need os.fork(), which this system does not have; "
            "--workers 1 runs in one process",
            param_hint="--workers",
        )
    # The two usage errors that create something: -o first, as it can be taken back entirely
    # (a refused --db leaves no new or emptied output file); then the database, created if
    # missing, which is then the last thing that can refuse the run.
    read_from = [source.path for source in sources if source.path is not None]
    output_file = open_output(output, view.format, read_from, db)
    try:
        session = snapshot_session(db, snapshots)
    except BaseException:
        if output_file is not None:
            output_file.abandon()
        raise
    if output_file is not None and processes > 1:
        # One process empties it once the snapshot session has started (``single.execute``):
        # a Ctrl-C while the database keeps the start waiting leaves an existing file as it was.
        output_file.begin()
    plan = RunPlan(
        output=output_file,
        config=config,
        sources=tuple(sources),
        view=view,
        tls=tls,
        loop_factory=loop_factory,
        environment=environment,
        session=session,
        workers=processes,
        audit=audit_plan(
            audit or answer.shows_audit,
            fail_under,
            insecure=config.insecure,
            headers=config.headers,
        ),
    )
    sys.exit(int(run_plan(plan)))


def _check_misplaced_command(ctx: click.Context, targets: tuple[str, ...]) -> None:
    """``fetchheads --db heads.db history www.example.com``: a command after options is read as a
    target (and ``history`` would be looked up as a host name). Said as a usage error unless
    ``fetch`` was written out, which is how a host named like a command is fetched."""
    if not ctx.meta.get(_IMPLIED) or ctx.parent is None:
        return
    group = ctx.parent.command
    commands = group.commands if isinstance(group, click.Group) else {}
    misplaced = next((target for target in targets if target in commands), None)
    if misplaced is not None:
        raise click.UsageError(
            f"{misplaced!r} is a command, and a command comes first: 'fetchheads {misplaced} "
            f"[OPTIONS] ...' (to fetch a host named {misplaced}: 'fetchheads fetch {misplaced}')"
        )


def _say_left_out(view: View) -> None:
    """One line on stderr when the table's columns do not all fit in its width: rows are cut
    there, and a column that is never seen should not go unsaid."""
    from fetchheads.render.tabular import TableLayout

    left_out = TableLayout(view.fields, view.width).left_out()
    if left_out:
        names = ", ".join(left_out)
        click.echo(
            f"fetchheads: the table is {view.width} columns wide; cut short or left out: {names} "
            "(choose fewer --fields, widen the terminal, or use --format tsv)",
            err=True,
        )


def _quiet(quiet: bool, progress: bool | None) -> bool:
    """-q, unless it comes from the environment (FETCHHEADS_QUIET) and --progress from the
    command line: the command line wins."""
    if not quiet or not progress:
        return quiet
    ctx = click.get_current_context()
    given = click.core.ParameterSource.COMMANDLINE
    return not (
        ctx.get_parameter_source("progress") is given
        and ctx.get_parameter_source("quiet") is not given
    )


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


def _tls(config: Config) -> Callable[[], ssl.SSLContext]:
    """The run's TLS context, made on the first https target (loading the CA store is slow); but
    a bad --cacert is a usage error before anything is fetched."""
    tls = functools.cache(functools.partial(make_ssl_context, config))
    if config.cacert is not None:
        try:
            tls()
        except OSError as exc:  # ssl.SSLError included
            raise click.BadParameter(
                terminal_safe(_cacert_problem(config.cacert, exc)), param_hint="--cacert"
            ) from None
    return tls


def _cacert_problem(path: str, exc: OSError) -> str:
    """What is wrong with the --cacert file, in words, not OpenSSL's ``[X509: ...] (_ssl.c:N)``."""
    if not isinstance(exc, ssl.SSLError):
        return f"cannot read {path}: {exc.strerror or exc}"
    if exc.reason != "NO_CERTIFICATE_OR_CRL_FOUND":
        # OpenSSL says only "PEM lib": bad base64, a cut-off block, a damaged certificate.
        return f"{path} holds a PEM certificate that cannot be read (damaged or cut off)"
    try:
        with open(path, "rb") as stream:
            start = stream.read(16)
    except OSError:
        start = b""
    binary = _binary_kind(start)
    if binary == "pkcs12":
        return (
            f"{path} holds no PEM certificate: it is a PKCS#12 bundle; take its certificates "
            f"out with 'openssl pkcs12 -in {path} -nokeys -out ca.pem'"
        )
    if binary == "der":
        return (
            f"{path} holds no PEM certificate: it looks like DER; convert it with "
            f"'openssl x509 -inform der -in {path} -out ca.pem'"
        )
    return f"{path} holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)"


def _binary_kind(start: bytes) -> str | None:
    """``der``, ``pkcs12`` or None, from a file's first bytes. Both are an ASN.1 SEQUENCE; in a
    PKCS#12 bundle (.p12, .pfx) its first element is the INTEGER version 3 (RFC 7292), in a DER
    certificate another SEQUENCE (the signed part)."""
    if start[:1] != b"\x30" or len(start) < 2:
        return None
    length = start[1]
    header = 2 + (length & 0x7F if length & 0x80 else 0)  # the long form: that many bytes more
    return "pkcs12" if start[header : header + 3] == b"\x02\x01\x03" else "der"


def _sort_or_input_order(ctx: click.Context, sort: tuple[str, ...], order: str) -> tuple[str, ...]:
    """--sort and --order input both say how the output is ordered: both typed (or both from
    the environment) is a usage error; otherwise the one typed wins, as over any variable."""
    if not sort or order != "input":
        return sort
    given = click.core.ParameterSource.COMMANDLINE
    sort_typed = ctx.get_parameter_source("sort") is given
    if sort_typed == (ctx.get_parameter_source("order") is given):
        raise click.UsageError(
            "--sort prints the results at the end in its own order, so --order input would be "
            "ignored: drop one of them"
        )
    return sort if sort_typed else ()  # a typed --order input over FETCHHEADS_SORT


def _sources(
    targets: tuple[str, ...], inputs: tuple[str, ...], environment: Environment
) -> list[Source]:
    sources = [Source(args=targets)] if targets else []
    sources.extend(Source(path=path) for path in inputs)
    if not sources:
        if environment.stdin_closed or environment.stdin_isatty:  # closed: ``<&-``
            raise click.UsageError(
                "no targets: give hosts as arguments, with -i FILE, or on stdin "
                "(e.g. 'fetchheads www.example.com')"
            )
        sources.append(Source(path=STDIN))
    for path in inputs:
        problem = _unreadable(path, environment)
        if problem is not None:
            # Worded as the record of a file that fails later, mid-way: "cannot read NAME: why".
            raise click.BadParameter(f"cannot read {problem}", param_hint="-i/--input")
    return sources


def _unreadable(path: str, environment: Environment) -> str | None:
    """Why ``path`` (``-`` for stdin) cannot be read, or None. Non-blocking: a FIFO with no
    writer yet is not waited for here."""
    if path == STDIN:
        return "stdin: standard input is closed" if environment.stdin_closed else None
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if os.path.isdir(path):  # opens, but its first read would fail
        return f"{path}: Is a directory"
    return None


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
