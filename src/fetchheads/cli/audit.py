"""The audit part of the command line (docs/audit.md): ``--audit`` and ``--fail-under`` of the
fetch command, and ``fetchheads audit --db PATH [TARGET...]``, which grades stored snapshots
offline. The grading is ``fetchheads.audit``'s; the report ``render.audit_report``'s."""

from __future__ import annotations

import sys
from typing import Any

import click

from fetchheads.cli.common import CONTEXT_SETTINGS, Choice, Decorator, ExitStatus, option_group
from fetchheads.cli.snapshots import _db_option, _fail, _keys, no_snapshots, open_store
from fetchheads.errors import StoreError
from fetchheads.grades import LETTERS
from fetchheads.render.safe import terminal_safe
from fetchheads.run.plan import AuditPlan
from fetchheads.run.summary import below
from fetchheads.targets import SCHEMES
from fetchheads.wording import counted

AUDIT_FORMATS = ("table", "plain", "jsonl")


class GradeChoice(Choice):
    """A grade, in any case; refused with the grades as they are written (click's own message
    lists the choices of a case-insensitive Choice in lower case: 'a+', 'b-')."""

    def __init__(self) -> None:
        super().__init__(LETTERS, case_sensitive=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        self.refuse_undecodable(value, param, ctx)
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"{value!r} is not a grade: one of {' '.join(LETTERS)}", param, ctx)


GRADE_CHOICE = GradeChoice()


def _grade(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else value.upper()


def _fail_under_option(help: str) -> Decorator:
    return click.option(
        "--fail-under", type=GRADE_CHOICE, callback=_grade, metavar="GRADE", help=help
    )


fail_under_option = _fail_under_option(
    "Exit with status 3 when a target grades under GRADE (A+ A A- B+ ... F) and nothing "
    "failed (failures keep status 1); implies --audit."
)

audit_options = option_group(
    click.option(
        "--audit",
        is_flag=True,
        help="Grade every head as the MDN HTTP Observatory does (score, grade, each test and "
        "why), with findings beyond the grade (disclosure, deprecated, duplicate headers).",
    ),
    fail_under_option,
)


def audit_plan(
    audit: bool, fail_under: str | None, *, insecure: bool, headers: tuple[tuple[str, str], ...]
) -> AuditPlan | None:
    """The run's ``AuditPlan`` from the options (None without --audit or --fail-under)."""
    if not audit and fail_under is None:
        return None
    origin = next((value for name, value in headers if name.lower() == "origin"), None)
    return AuditPlan(insecure=insecure, request_origin=origin or None, fail_under=fail_under)


AUDIT_EPILOG = """\b
Examples:
  fetchheads audit --db ~/heads.db                       # every target, worst first
  fetchheads audit --db ~/heads.db --fail-under B -q     # from CI: status 3 under B
  fetchheads audit --db ~/heads.db --format jsonl https://example.com/
"""


@click.command("audit", epilog=AUDIT_EPILOG, context_settings=CONTEXT_SETTINGS)
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@_db_option(required=True)
@click.option(
    "--format",
    "output_format",
    type=Choice(AUDIT_FORMATS),
    default="table",
    show_default=True,
    help="table: worst first; plain: TARGET audit > lines; jsonl: one record per target.",
)
@_fail_under_option(
    "Exit with status 3 when a stored target grades under GRADE (A+ A A- B+ ... F); a stored "
    "failure has no grade and does not count."
)
@click.option(
    "--scheme",
    type=Choice(SCHEMES),
    default="http",
    show_default=True,
    help="Scheme of a TARGET given without one, as it was fetched.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the --fail-under line, if any.")
def audit_command(
    targets: tuple[str, ...],
    db: str,
    output_format: str,
    fail_under: str | None,
    scheme: str,
    quiet: bool,
) -> None:
    """Grade the newest stored snapshot of every target (or of each TARGET) offline, with the
    rules of this fetchheads: no request is sent. Worst first in the table."""
    import collections

    from fetchheads.render.audit_report import AuditRow, format_rows
    from fetchheads.snapshots.graded import audit_snapshot

    rows: list[AuditRow] = []
    with open_store(db, readonly=True) as store:
        named = [(target, *_keys(store, target, scheme)) for target in targets]
        keys = [key for _, found, _ in named for key in found] if targets else None
        try:
            for batch in store.newest(keys):
                rows.extend(AuditRow(s, audit_snapshot(s)) for s in batch)
        except StoreError as exc:
            _fail(str(exc))
    graded_keys = {row.snapshot.key for row in rows}
    missing = [
        (target, stored) for target, found, stored in named if not graded_keys.intersection(found)
    ]
    if rows and not quiet:  # the targets that are stored are graded, whatever else was asked
        click.echo(format_rows(rows, output_format), nl=False)
    for target, stored in missing:  # one line each, then status 1
        click.echo(f"fetchheads: {terminal_safe(no_snapshots(target, db, stored))}", err=True)
    if missing:
        sys.exit(int(ExitStatus.FAILED))
    grades = collections.Counter(
        row.audit.grade for row in rows if row.audit is not None and row.audit.grade
    )
    under = below(grades, fail_under) if fail_under else 0
    if under:
        click.echo(
            f"fetchheads: {counted(under, 'target')} graded under {fail_under} (--fail-under)",
            err=True,
        )
        sys.exit(int(ExitStatus.WARNING))


AUDIT_COMMANDS: tuple[Any, ...] = (audit_command,)
