"""The snapshot part of the command line (docs/snapshots.md): the options ``--db``, ``--changes``,
``--ignore-header``, ``--warn-days`` and ``--warn-fraction`` of the fetch command, and the commands
``history``, ``diff``, ``prune`` and ``db copy``. What they do lives in ``snapshots.lookback``,
``snapshots.store`` and ``render.history``.

``--db`` is an SQLite file path or a ``postgresql://`` URL (``store`` picks the backend); a URL's
password is never shown: messages name the database as ``store.shown`` writes it."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import click

from fetchheads.cli.common import (
    CONTEXT_SETTINGS,
    TEXT,
    Choice,
    ExitStatus,
    FloatRange,
    IntRange,
    finite_float,
    name_environment,
    option_group,
)
from fetchheads.errors import StoreError, StoreRefused
from fetchheads.render.safe import terminal_safe
from fetchheads.snapshots.changes import ignored_names
from fetchheads.snapshots.recorder import SnapshotOptions, SnapshotSession
from fetchheads.targets import SCHEMES, not_utf8, undecodable_byte, undecodable_replaced
from fetchheads.wording import counted

if TYPE_CHECKING:  # sqlite3 is loaded by runs that use a database, not by every run
    from fetchheads.snapshots.store import Store


def open_store(
    path: str, *, readonly: bool = False, param_hint: str = "--db", purpose: str | None = None
) -> Store:
    """The database of ``--db``, opened for ``purpose`` (``store.PRUNE``, ``store.COPY``) unless
    ``readonly``. A path that cannot be one, or that this user can never write, is a bad argument
    (exit 2); one that cannot be used now (locked, a full disk, unreadable, a server down) says
    so and exits 1."""
    from fetchheads.snapshots.store import RECORD, Store

    try:
        return Store.open(path, readonly=readonly, purpose=purpose or RECORD)
    except StoreRefused as exc:
        raise click.BadParameter(terminal_safe(str(exc)), param_hint=param_hint) from None
    except StoreError as exc:
        _fail(str(exc))


def snapshot_session(db: str | None, options: SnapshotOptions) -> SnapshotSession:
    """The fetch run's side of ``--db``. A database that cannot be used now does not stop the
    fetch: every result is still printed, and the run says how many were not recorded. A Ctrl-C
    while it is opened (a server that does not answer, a lock) makes an ``interrupted`` session:
    the run ends as interrupted before it fetches."""
    if db is None:
        return SnapshotSession(None, options)
    from fetchheads.run.process import Terminated, interruptible
    from fetchheads.snapshots.store import shown

    try:
        with interruptible():
            return _opened_session(db, options)
    except KeyboardInterrupt as exc:
        return SnapshotSession(
            None, options, path=shown(db), interrupted=True, terminated=isinstance(exc, Terminated)
        )


def _opened_session(db: str, options: SnapshotOptions) -> SnapshotSession:
    from fetchheads.snapshots.store import Store, shown

    try:
        return SnapshotSession(Store.open(db), options)
    except StoreRefused as exc:
        raise click.BadParameter(terminal_safe(str(exc)), param_hint="--db") from None
    except StoreError as exc:
        unavailable = exc
    try:  # --changes can still compare with what is there
        store = Store.open(db, readonly=True) if options.changes else None
    except StoreError:
        store = None
    return SnapshotSession(store, options, path=shown(db), unavailable=unavailable)


class DatabasePath(click.types.StringParamType):
    """``--db``: a ``postgresql://`` URL as given, or a path with ``~`` expanded (also from
    ``FETCHHEADS_DB`` and crontab lines, which no shell expands); with ``must_exist``, a missing
    file or directory is named as such."""

    name = "path"

    def __init__(self, must_exist: bool) -> None:
        self.must_exist = must_exist

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from fetchheads.credentials import UNENCODED_PASSWORD, has_unencoded_password
        from fetchheads.snapshots.store import (
            UNREADABLE_URL,
            has_stray_at,
            is_postgres,
            not_a_file,
            shown,
        )

        if is_postgres(str(value)):
            byte = undecodable_byte(str(value))
            if byte is not None:  # libpq takes UTF-8 only; the byte may stand in the password
                safe = undecodable_replaced(shown(str(value)))
                self.fail(terminal_safe(f"{safe}: {not_utf8(byte)}"), param, ctx)
            if has_unencoded_password(str(value)):  # libpq would take the password for a host
                self.fail(terminal_safe(f"{shown(str(value))}: {UNENCODED_PASSWORD}"), param, ctx)
            if has_stray_at(str(value)):  # libpq would take the rest of a password for a host
                self.fail(terminal_safe(f"{shown(str(value))}: {UNREADABLE_URL}"), param, ctx)
            return str(value)
        path = os.path.expanduser(str(value))
        problem = not_a_file(path)
        if problem is not None:
            self.fail(terminal_safe(problem), param, ctx)
        if self.must_exist and not os.path.lexists(path):
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                self.fail(terminal_safe(f"directory {directory} does not exist"), param, ctx)
            self.fail(terminal_safe(f"{path} does not exist"), param, ctx)
        return path


class _HelpShowsEnvvar(click.Option):
    """An option whose help names its environment variable (the commands besides fetch have no
    others) but whose error does not: click would add ``(env var: 'FETCHHEADS_DB')`` to the
    error of a value typed on the command line. One that did come from the environment is
    named by ``common.make_readable``."""

    def get_error_hint(self, ctx: click.Context | None) -> str:
        return click.Parameter.get_error_hint(self, ctx)


def _db_option(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``required``: the commands that look into a database, which must then exist already (a
    mistyped path must not leave a new empty database behind)."""
    return click.option(
        "--db",
        cls=_HelpShowsEnvvar,
        metavar="PATH|URL",
        required=required,
        type=DatabasePath(must_exist=required),
        envvar="FETCHHEADS_DB",
        show_envvar=True,
        help="The snapshot database that fetch --db wrote: an SQLite file (it must exist) or a "
        "postgresql:// URL."
        if required
        else "The snapshot database: an SQLite file (created if missing) or a postgresql:// URL "
        "(pip install 'fetchheads[postgres]'; libpq's PG* variables and ~/.pgpass apply).",
    )


def _header_names(ctx: click.Context, param: click.Parameter, names: tuple[str, ...]) -> Any:
    """--ignore-header: a name that no header can have would silently ignore nothing."""
    if not names:
        return ()
    # Imported here, as the lookback and history modules below: a fetch run without these
    # options does not build their classes.
    from fetchheads.render.fields import SpecError
    from fetchheads.render.filters import header_name

    try:
        return tuple(header_name(name, "--ignore-header") for name in names)
    except SpecError as exc:
        raise click.UsageError(name_environment(str(exc), ctx), ctx) from None


ignore_header_option = click.option(
    "--ignore-header",
    "ignored",
    type=TEXT,
    multiple=True,
    metavar="NAME",
    callback=_header_names,
    help="Also ignore this header when comparing snapshots (Date, Age, request ids and the like "
    "are ignored already); repeatable.",
)


def snapshot_options(command: Any) -> Any:
    """The fetch command's snapshot options."""
    options = (
        _db_option(required=False),
        click.option(
            "--changes",
            is_flag=True,
            help="With --db: print only targets whose status or headers changed since their "
            "last snapshot. A run into an empty database records the baseline silently, but "
            "prints the targets that already fail.",
        ),
        ignore_header_option,
        click.option(
            "--warn-days",
            type=IntRange(min=0),
            metavar="N",
            help="Warn about https certificates that expire in fewer than N days (verified "
            "or not, -k too); the exit status is then 3 (when nothing failed). Under --changes "
            "a warning is printed (and gives 3) only when new or worse: under N, 7, 3, 1 days, "
            "expired.",
        ),
        click.option(
            "--warn-fraction",
            type=TEXT,
            callback=_fraction,
            metavar="F",
            help="Warn about https certificates with less than F of their lifetime left: 1/3 "
            "(when ACME clients renew), 0.25, 25%. Either --warn-* option also warns when an "
            "intermediate the server sends expires before the certificate.  [default: off]",
        ),
    )
    return option_group(*options)(command)


def _fraction(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``1/3``, ``0.25`` or ``25%`` -> a fraction strictly between 0 and 1."""
    if value is None:
        return None
    text = value.strip()
    try:
        if text.endswith("%"):
            fraction = float(text[:-1]) / 100
        elif "/" in text:
            numerator, denominator = text.split("/", 1)
            fraction = float(numerator) / float(denominator)
        else:
            fraction = float(text)
    except (ValueError, ZeroDivisionError):
        fraction = -1.0
    if not 0 < fraction < 1:  # NaN too
        raise click.BadParameter(
            f"{value!r} is not a fraction of a lifetime: give one such as 1/3, 0.25 or 25%"
        )
    return fraction


def _lookback_options(command: Any) -> Any:
    options = (
        click.argument("target"),
        _db_option(required=True),
        click.option("--json", "as_json", is_flag=True, help="JSON Lines instead of text."),
        ignore_header_option,
        click.option(
            "--scheme",
            type=Choice(SCHEMES),
            default="http",
            show_default=True,
            help="Scheme of a TARGET given without one, as it was fetched (a host stored under "
            "one URL only is found without it).",
        ),
    )
    return option_group(*options)(command)


ALL = 2**62
"""A count of snapshots no database holds: more than that is all of them (and fits in the
databases' 64-bit integers, which 10**20 does not)."""


def _at_most_all(value: int | None) -> int | None:
    return None if value is None else min(value, ALL)


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from fetchheads.models import utc_now
    from fetchheads.snapshots.lookback import parse_when

    # One "now" for --at and --since: equal ages are one moment, not two a millisecond apart.
    now = ctx.meta.setdefault("fetchheads.now", utc_now())
    ctx.meta[f"fetchheads.typed.{param.name}"] = value.strip()  # for messages
    try:
        return parse_when(value, now, since=param.name == "since")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


HISTORY_EPILOG = """\b
Examples:
  fetchheads history --db ~/heads.db www.example.com
  fetchheads history --db ~/heads.db --limit 5 --json https://example.com/login
"""


@click.command("history", epilog=HISTORY_EPILOG, context_settings=CONTEXT_SETTINGS)
@_lookback_options
@click.option(
    "-n",
    "--limit",
    type=IntRange(min=1),
    callback=lambda _ctx, _param, value: _at_most_all(value),
    metavar="N",
    help="Only the newest N snapshots.",
)
def history_command(
    target: str, db: str, as_json: bool, ignored: tuple[str, ...], scheme: str, limit: int | None
) -> None:
    """The snapshots of TARGET, newest first, each with what changed since the one before it."""
    from fetchheads.render.history import history_jsonl, history_text
    from fetchheads.snapshots.lookback import history

    with open_store(db, readonly=True) as store:
        keys, stored = _keys(store, target, scheme)
        entries = history(store, keys, ignored_names(ignored), limit)
    if not entries:
        _no_snapshots(target, db, stored)
    click.echo((history_jsonl if as_json else history_text)(entries), nl=False)


DIFF_EPILOG = """\b
Examples:
  fetchheads diff --db ~/heads.db www.example.com              # the last two snapshots
  fetchheads diff --db ~/heads.db --since 7d www.example.com   # what changed this week
  fetchheads diff --db ~/heads.db --at 2026-11-20T08:00 www.example.com

WHEN is an age (90m, 12h, 3d, 2w) or a UTC date and time (2026-11-25, 2026-11-25T19:30).
"""


@click.command("diff", epilog=DIFF_EPILOG, context_settings=CONTEXT_SETTINGS)
@_lookback_options
@click.option(
    "--at",
    type=TEXT,
    metavar="WHEN",
    callback=_when,
    help="Compare the snapshot of TARGET at WHEN (the latest then) instead of the newest.",
)
@click.option(
    "--since",
    type=TEXT,
    metavar="WHEN",
    callback=_when,
    help="Compare with the snapshot at WHEN (or the oldest) instead of the one just before.",
)
def diff_command(
    target: str,
    db: str,
    as_json: bool,
    ignored: tuple[str, ...],
    scheme: str,
    at: str | None,
    since: str | None,
) -> None:
    """What changed in TARGET between two snapshots: by default the last two."""
    from fetchheads.render.history import diff_jsonl, diff_text
    from fetchheads.snapshots.lookback import pick

    if at is not None and since is not None:
        meta = click.get_current_context().meta
        typed_since = meta["fetchheads.typed.since"]
        # A date to --since stands for the instant before its day began: the day itself is
        # later than an --at equal to that instant (--since 2026-12-03 --at 2026-12-02).
        day = re.fullmatch(r"\d{4}-\d\d-\d\d", typed_since) is not None
        if since > at or (day and since == at):
            raise click.UsageError(
                f"--since {typed_since} is later than --at {meta['fetchheads.typed.at']}: "
                "--since names the older snapshot, --at the newer"
            )
    with open_store(db, readonly=True) as store:
        keys, stored = _keys(store, target, scheme)
        entry = pick(store, keys, ignored_names(ignored), at=at, since=since)
        newer_only = entry is None and at is not None and bool(store.history(keys, limit=1))
    if newer_only:
        _fail(f"no snapshot of {target} in {_shown(db)} as old as {at} (--at): all are newer")
    if entry is None:
        _no_snapshots(target, db, stored)
    click.echo((diff_jsonl if as_json else diff_text)(target, entry), nl=False)


PRUNE_EPILOG = """\b
Examples:
  fetchheads prune --db ~/heads.db --keep-days 90
  fetchheads prune --db ~/heads.db --keep 1000 -q     # from a daily cron job
"""


@click.command("prune", epilog=PRUNE_EPILOG, context_settings=CONTEXT_SETTINGS)
@_db_option(required=True)
@click.option(
    "--keep-days",
    type=FloatRange(min=0),
    callback=finite_float,
    metavar="N",
    help="Delete snapshots older than N days.",
)
@click.option(
    "--keep",
    type=IntRange(min=1),
    callback=lambda _ctx, _param, value: _at_most_all(value),
    metavar="N",
    help="Keep only the newest N snapshots of each target.",
)
@click.option("-q", "--quiet", is_flag=True, help="Say nothing when it worked.")
def prune_command(db: str, keep_days: float | None, keep: int | None, quiet: bool) -> None:
    """Delete old snapshots, safely beside a running fetch. The newest snapshot of every target
    always stays (--changes compares with it); runs left without snapshots go too."""
    if keep_days is None and keep is None:
        raise click.UsageError("say what to keep: --keep-days N, --keep N, or both")
    from fetchheads.snapshots.store import PRUNE

    stopped = "prune stopped; what it had deleted is gone, and running it again prunes the rest"
    with _stoppable(stopped), open_store(db, purpose=PRUNE) as store:
        try:
            snapshots, runs = store.prune(keep_days=keep_days, keep=keep)
        except StoreError as exc:
            _fail(str(exc))
    if not quiet:
        where = terminal_safe(_shown(db))
        click.echo(
            f"pruned {counted(snapshots, 'snapshot')} and {counted(runs, 'run')} from {where}"
        )


def _keys(store: Store, target: str, scheme: str) -> tuple[list[str], list[str]]:
    from fetchheads.snapshots.lookback import find_keys

    byte = undecodable_byte(target)
    if byte is not None:  # of the argument: no stored target holds one
        shown = terminal_safe(undecodable_replaced(target))  # which one, of audit's TARGETs
        raise click.BadParameter(f"{shown}: {not_utf8(byte)}", param_hint="TARGET")
    try:
        return find_keys(store, target, scheme)
    except StoreError as exc:
        _fail(str(exc))


def no_snapshots(target: str, db: str, stored: list[str]) -> str:
    message = f"no snapshots of {target} in {_shown(db)}"
    if stored:
        message += "; stored: " + ", ".join(stored)
    return message


def _no_snapshots(target: str, db: str, stored: list[str]) -> NoReturn:
    _fail(no_snapshots(target, db, stored))


def _shown(location: str) -> str:
    from fetchheads.snapshots.store import shown

    return shown(location)


@contextlib.contextmanager
def _stoppable(stopped: str) -> Iterator[None]:
    """``prune`` and ``db copy`` write in batches, one transaction each, for as long as a history
    takes: Ctrl-C or SIGTERM (cron's ``timeout``, systemd) ends them between two, or in a wait
    for a lock or a server, with one line saying so (``fetchheads: terminated: STOPPED``) and
    exit status 130 or 143, instead of a silent end a cron mail would not tell from success."""
    from fetchheads.run.process import Terminated, interruptible

    try:
        with interruptible():
            yield
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        word = "terminated" if terminated else "interrupted"
        click.echo(f"fetchheads: {word}: {stopped}", err=True)
        sys.exit(int(ExitStatus.TERMINATED if terminated else ExitStatus.INTERRUPTED))


def _fail(message: str) -> NoReturn:
    """One line on stderr, terminal-safe (file names and database text are not ours; a file
    name's byte that is not UTF-8 is shown as U+FFFD); exit 1."""
    click.echo(f"fetchheads: {terminal_safe(undecodable_replaced(message))}", err=True)
    sys.exit(int(ExitStatus.FAILED))


@click.group("db", context_settings=CONTEXT_SETTINGS)
def db_group() -> None:
    """Snapshot databases as a whole: copy one into another."""


COPY_EPILOG = """\b
Examples:
  fetchheads db copy ~/heads.db postgresql://fetchheads@db.example.net/heads
  for f in web1.db web2.db web3.db; do fetchheads db copy "$f" "$FETCHHEADS_DB"; done
  fetchheads db copy postgresql:///heads ~/heads-backup.db     # PostgreSQL into SQLite

A URL's password is better left to ~/.pgpass or PGPASSWORD than written on a command line.
"""


@db_group.command("copy", epilog=COPY_EPILOG, context_settings=CONTEXT_SETTINGS)
@click.argument("source", type=DatabasePath(must_exist=True))
@click.argument("destination", type=DatabasePath(must_exist=False))
@click.option("-q", "--quiet", is_flag=True, help="Say nothing when it worked.")
def copy_command(source: str, destination: str, quiet: bool) -> None:
    """Copy the runs and snapshots of SOURCE that DESTINATION does not hold yet (each SQLite file
    or postgresql:// URL; DESTINATION is created if missing). Run again, it adds nothing: each
    snapshot keeps its identity wherever it is copied, so several files merge into one."""
    from fetchheads.snapshots.store import COPY, copy_history

    stopped = "db copy stopped; what it had copied stays, and running it again copies the rest"
    with (
        _stoppable(stopped),
        open_store(source, readonly=True, param_hint="SOURCE") as old,
        open_store(destination, param_hint="DESTINATION", purpose=COPY) as new,
    ):
        try:
            copied = copy_history(old, new)
        except StoreError as exc:
            _fail(str(exc))
    if not quiet:
        there = f" ({copied.present} there already)" if copied.present else ""
        click.echo(
            f"copied {counted(copied.snapshots, 'snapshot')} and {counted(copied.runs, 'run')} "
            f"from {terminal_safe(_shown(source))} to {terminal_safe(_shown(destination))}{there}"
        )


SNAPSHOT_COMMANDS = (history_command, diff_command, prune_command, db_group)
