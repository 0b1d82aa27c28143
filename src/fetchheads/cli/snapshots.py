"""The snapshot part of the command line (README "Snapshots"): the options ``--db``, ``--changes``,
``--ignore-header``, ``--warn-days`` and ``--warn-fraction`` of the fetch command, and the commands
``history``, ``diff`` and ``prune``. What they do lives in ``lookback`` and ``render.history``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from fetchheads.changes import ignored_names
from fetchheads.cli.common import CONTEXT_SETTINGS, ExitStatus, finite_float, option_group
from fetchheads.errors import StoreError
from fetchheads.lookback import history, parse_when, pick, target_keys
from fetchheads.render.history import diff_jsonl, diff_text, history_jsonl, history_text
from fetchheads.render.summary import counted
from fetchheads.targets import SCHEMES

if TYPE_CHECKING:  # sqlite3 is loaded by runs that use a database, not by every run
    from fetchheads.store import Store


def open_store(path: str) -> Store:
    """The database of ``--db``; a file that cannot be one is a bad argument (exit 2)."""
    from fetchheads.store import Store

    try:
        return Store.open(path)
    except StoreError as exc:
        raise click.BadParameter(str(exc), param_hint="--db") from None


def _db_option(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``required``: the commands that look into a database, which must then exist already (a
    mistyped path must not leave a new empty database behind)."""
    return click.option(
        "--db",
        metavar="PATH",
        required=required,
        type=click.Path(dir_okay=False, exists=required),
        envvar="FETCHHEADS_DB",
        show_envvar=True,
        help="The snapshot database that fetch --db wrote (SQLite; it must exist)."
        if required
        else "The snapshot database (SQLite; created if missing).",
    )


ignore_header_option = click.option(
    "--ignore-header",
    "ignored",
    multiple=True,
    metavar="NAME",
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
            "last snapshot. A run into an empty database records the baseline silently.",
        ),
        ignore_header_option,
        click.option(
            "--warn-days",
            type=click.IntRange(min=0),
            metavar="N",
            help="Warn about https certificates that expire in fewer than N days (verified "
            "or not, -k too); the exit status is then 3 (when nothing failed).",
        ),
        click.option(
            "--warn-fraction",
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
            type=click.Choice(SCHEMES),
            default="http",
            show_default=True,
            help="Scheme of a TARGET given without one, as it was fetched.",
        ),
    )
    return option_group(*options)(command)


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_when(value)
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
    "-n", "--limit", type=click.IntRange(min=1), metavar="N", help="Only the newest N snapshots."
)
def history_command(
    target: str, db: str, as_json: bool, ignored: tuple[str, ...], scheme: str, limit: int | None
) -> None:
    """The snapshots of TARGET, newest first, each with what changed since the one before it."""
    with open_store(db) as store:
        entries = history(store, target_keys(target, scheme), ignored_names(ignored), limit)
    if not entries:
        _no_snapshots(target, db)
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
    metavar="WHEN",
    callback=_when,
    help="Compare the snapshot of TARGET at WHEN (the latest then) instead of the newest.",
)
@click.option(
    "--since",
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
    with open_store(db) as store:
        entry = pick(store, target_keys(target, scheme), ignored_names(ignored), at=at, since=since)
    if entry is None:
        _no_snapshots(target, db)
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
    type=click.FloatRange(min=0),
    callback=finite_float,
    metavar="N",
    help="Delete snapshots older than N days.",
)
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    metavar="N",
    help="Keep only the newest N snapshots of each target.",
)
@click.option("-q", "--quiet", is_flag=True, help="Say nothing when it worked.")
def prune_command(db: str, keep_days: float | None, keep: int | None, quiet: bool) -> None:
    """Delete old snapshots, safely beside a running fetch. The newest snapshot of every target
    always stays (--changes compares with it); runs left without snapshots go too."""
    if keep_days is None and keep is None:
        raise click.UsageError("say what to keep: --keep-days N, --keep N, or both")
    with open_store(db) as store:
        try:
            snapshots, runs = store.prune(keep_days=keep_days, keep=keep)
        except StoreError as exc:
            click.echo(f"fetchheads: {exc}", err=True)
            sys.exit(int(ExitStatus.FAILED))
    if not quiet:
        click.echo(f"pruned {counted(snapshots, 'snapshot')} and {counted(runs, 'run')} from {db}")


def _no_snapshots(target: str, db: str) -> NoReturn:
    click.echo(f"fetchheads: no snapshots of {target} in {db}", err=True)
    sys.exit(int(ExitStatus.FAILED))


SNAPSHOT_COMMANDS = (history_command, diff_command, prune_command)
