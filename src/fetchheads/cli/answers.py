"""The options that turn a run into an answer: the columns (``--fields``), curl's ``-w``, the
filters that choose what is printed, ``-o FILE`` and ``--unique``; compiled here, once, into the
typed values the view holds (``render.fields``, ``render.writeout``, ``render.filters``). A bad
field, template, status list or regular expression is a usage error (exit 2) before anything is
fetched.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from fetchheads.cli.common import TEXT, environment_source, name_environment, option_group
from fetchheads.config import WRITE_OUT
from fetchheads.render.output import OutputFile
from fetchheads.render.safe import terminal_safe
from fetchheads.run.inputs import STDIN
from fetchheads.run.plan import LINE_FORMATS, PLAIN_SUFFIXES, SUFFIX_FORMATS, suffix_format
from fetchheads.targets import undecodable_replaced

if TYPE_CHECKING:
    from fetchheads.render.fields import Field
    from fetchheads.render.filters import Selector
    from fetchheads.render.sort import SortOrder
    from fetchheads.render.writeout import WriteOut


def _dash_is_stdout(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``-o -`` is standard output, as curl and click read it (a file named ``-`` is ``./-``)."""
    return None if value == "-" else value


def _suffixes() -> str:
    """The -o suffixes and their formats, from the table the run reads them from."""
    named: dict[str, list[str]] = {}
    for suffix, name in SUFFIX_FORMATS.items():
        named.setdefault(name, []).append(suffix)
    plain = " ".join(suffix for suffix in PLAIN_SUFFIXES if suffix)
    listed = "; ".join(f"{' '.join(suffixes)}: {name}" for name, suffixes in named.items())
    return f"{listed}; {plain}, none or one without a letter (heads.1): plain"


answer_options = option_group(
    click.option(
        "--fields",
        type=TEXT,
        metavar="LIST",
        default=None,
        help="Columns of --format table, csv and tsv, comma-separated, e.g. "
        "'target,status,header:server,time.total' (docs/fields.md lists them all). Without "
        "--format: the table on a terminal, TSV otherwise.",
    ),
    click.option(
        "--sort",
        "sort",
        type=TEXT,
        multiple=True,
        metavar="[-]FIELD",
        help="Print the results sorted by FIELD at the end of the run, smallest first; -FIELD "
        "largest first. A comma list or --sort again breaks ties; unknown values last. "
        "--sort audit.score: worst grade first. Holds each printed line until the end.",
    ),
    click.option(
        "-w",
        "--write-out",
        "write_out",
        metavar="TEMPLATE",
        default=None,
        help="Print TEMPLATE for each target instead of a format, as curl's -w: "
        "'%{http_code} %{url}\\n', %header{server}, any field as %{field}; @FILE reads it "
        "from FILE.",
    ),
    click.option(
        "-o",
        "--output",
        "output",
        metavar="FILE",
        type=click.Path(dir_okay=False, writable=True, allow_dash=True),
        default=None,
        callback=_dash_is_stdout,
        help="Write the results to FILE instead of stdout (- is stdout; the progress line "
        f"stays on the terminal). Without --format, its suffix names the format: {_suffixes()}; "
        "any other is refused. prometheus is written to a temporary file and renamed at the end.",
    ),
    click.option(
        "--match-status",
        type=TEXT,
        multiple=True,
        metavar="LIST",
        help="Print only results with these statuses: codes, classes, ranges "
        "(200,3xx,400-403); repeatable.",
    ),
    click.option(
        "--filter-status",
        type=TEXT,
        multiple=True,
        metavar="LIST",
        help="Do not print results with these statuses (failures are still printed); repeatable.",
    ),
    click.option("--failed", is_flag=True, help="Print only the targets that failed."),
    click.option(
        "--warned",
        is_flag=True,
        help="Print only results with a certificate warning (with --warn-days or --warn-fraction).",
    ),
    click.option(
        "--has-header",
        type=TEXT,
        multiple=True,
        metavar="NAME[=REGEX]",
        help="Print only heads with header NAME (whose value matches REGEX); repeatable, "
        "all must hold.",
    ),
    click.option(
        "--missing-header",
        type=TEXT,
        multiple=True,
        metavar="NAME",
        help="Print only whole heads without header NAME; repeatable.",
    ),
    click.option(
        "--unique",
        is_flag=True,
        help="Fetch a target given more than once (the same URL) only the first time.",
    ),
)
"""Fields, -w, -o and the filters, in the order of --help (``--unique`` goes to ``Config``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """The compiled options: what ``choose_view`` takes."""

    fields: tuple[Field, ...] = ()
    write_out: WriteOut | None = None
    selector: Selector | None = None
    sort: SortOrder | None = None

    @property
    def shows_audit(self) -> bool:
        """Whether a column, a -w variable or a sort key is ``audit.grade`` or ``audit.score``:
        the grade asked for, which ``--audit`` is then implied to give (not left blank)."""
        names = [field.name for field in self.fields]
        names += [sort.field.name for sort in self.sort.fields] if self.sort is not None else []
        names += self.write_out.names if self.write_out is not None else []
        return any(name.startswith(AUDIT_FIELDS) for name in names)


AUDIT_FIELDS = "audit."


def compile_answer(
    *,
    output_format: str | None,
    fields: str | None,
    write_out: str | None,
    match_status: tuple[str, ...],
    filter_status: tuple[str, ...],
    failed: bool,
    warned: bool,
    has_header: tuple[str, ...],
    missing_header: tuple[str, ...],
    warns: bool,
    sort: tuple[str, ...] = (),
) -> Answer:
    """The options, checked and compiled; ``warns``: --warn-days or --warn-fraction given."""
    if write_out is not None and output_format is not None:
        # One of them from the environment (FETCHHEADS_FORMAT, FETCHHEADS_JSON,
        # FETCHHEADS_WRITE_OUT), the other on the command line: the command line wins.
        format_typed = _typed("output_format", "json_flag")
        write_out_typed = _typed("write_out")
        if format_typed and not write_out_typed:
            write_out = None
        elif write_out_typed and not format_typed:
            output_format = None
        else:
            where = "" if format_typed else (
                " (both set in the environment: FETCHHEADS_WRITE_OUT, and FETCHHEADS_FORMAT or "
                "FETCHHEADS_JSON; unset one)"
            )  # fmt: skip
            raise click.UsageError(
                f"-w prints its template for each target; it cannot be combined with --format "
                f"{output_format}{where}"
            )
    if warned and not warns:
        raise click.UsageError(
            "--warned shows the certificates that need attention: give --warn-days N or "
            "--warn-fraction F (e.g. --warn-days 30 --warned)"
        )
    filters = match_status or filter_status or failed or warned or has_header or missing_header
    if fields is None and not sort and write_out is None and not filters:
        # A plain run: the modules of the fields, -w, the filters and --sort (a dozen frozen
        # classes to build, and difflib) are not even imported.
        return Answer()
    from fetchheads.render.fields import BUILTIN, SpecError, compile_fields
    from fetchheads.render.filters import compile_selector
    from fetchheads.render.sort import compile_sort
    from fetchheads.render.writeout import compile_write_out

    try:
        columns = compile_fields(fields, BUILTIN) if fields is not None else ()
    except SpecError as exc:
        raise click.BadParameter(str(exc), param_hint="--fields") from None
    try:
        order = compile_sort(sort, BUILTIN)
    except SpecError as exc:
        raise click.BadParameter(str(exc), param_hint="--sort") from None
    try:
        template = None if write_out is None else compile_write_out(_template(write_out))
    except SpecError as exc:
        raise click.BadParameter(str(exc), param_hint="-w/--write-out") from None
    try:
        selector = compile_selector(
            match_status=match_status,
            filter_status=filter_status,
            failed=failed,
            warned=warned,
            has_headers=has_header,
            missing_headers=missing_header,
        )
    except SpecError as exc:
        raise click.UsageError(name_environment(str(exc))) from None
    return Answer(columns, template, None if selector.selects_everything else selector, order)


def check_columns(fields: str | None, chosen: str, output: str | None = None) -> None:
    """--fields with a format that has no columns is a usage error."""
    if fields is not None and chosen not in ("table", "csv", "tsv"):
        what = "-w" if chosen == WRITE_OUT else _format_named(chosen, output)
        raise click.UsageError(
            f"--fields chooses the columns of --format table, csv or tsv, not of {what} "
            "(-w takes any field as %{field})"
        )


def check_sort(sort: SortOrder | None, chosen: str, output: str | None = None) -> None:
    """--sort with a format that is not one line a target is a usage error."""
    if sort is not None and chosen not in LINE_FORMATS:
        raise click.UsageError(
            f"--sort orders the line formats (table, csv, tsv, plain, jsonl, -w), not "
            f"{_format_named(chosen, output)}"
        )


def _format_named(chosen: str, output: str | None) -> str:
    """How the user chose the format: ``--format jsonl``, or without it ``-o heads.jsonl``,
    whose suffix named it, or ``FETCHHEADS_FORMAT`` (the command line then holds no ``--format``
    to change)."""
    if _typed("output_format", "json_flag"):
        return f"--format {chosen}"
    if output not in (None, "-") and suffix_format(output) == chosen:
        assert output is not None
        shown = terminal_safe(undecodable_replaced(output))
        return f"-o {shown}, whose suffix names --format {chosen}"
    variable = _from_environment("output_format", "json_flag")
    return f"--format {chosen}" if variable is None else f"--format {chosen} (from {variable})"


def _from_environment(*names: str) -> str | None:
    """The environment variable that gave the first of the parameters ``names`` it gave."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return None
    for param in ctx.command.params:
        if param.name in names and (
            ctx.get_parameter_source(param.name) is click.core.ParameterSource.ENVIRONMENT
        ):
            return environment_source(param)
    return None


def _template(text: str) -> str:
    """``-w @FILE``: the template in FILE (one trailing newline kept, as written)."""
    if not text.startswith("@"):
        return text
    path = text[1:]
    if not path or path == "-":
        what = "no file is named" if not path else "a template from stdin is not supported"
        raise click.BadParameter(
            f"-w {text}: {what}; put the template in a file and give -w @FILE",
            param_hint="-w/--write-out",
        )
    try:  # newline="": a CR in the file is printed as written, not turned into a newline
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as file:
            return file.read()
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {path}: {exc.strerror or exc}", param_hint="-w/--write-out"
        ) from None


def check_output_name(
    path: str | None, output_format: str | None, write_out: str | None, fields: str | None
) -> None:
    """``-o heads.xml`` without --format: refused, not filled with plain lines under that name."""
    if path is None or output_format is not None or write_out is not None:
        return
    if suffix_format(path) is None:
        suffix = undecodable_replaced(os.path.splitext(path)[1])
        names = [*SUFFIX_FORMATS, *(suffix for suffix in PLAIN_SUFFIXES if suffix)]
        example = "tsv" if fields else "plain"  # --fields chooses columns: plain has none
        raise click.BadParameter(
            terminal_safe(
                f"{path}: fetchheads writes no {suffix!r} format; end the name in "
                f"{', '.join(names[:-1])} or {names[-1]}, or give --format (e.g. --format "
                f"{example})"
            ),
            param_hint="-o/--output",
        )


def open_output(
    path: str | None, output_format: str, inputs: Sequence[str] = (), db: str | None = None
) -> OutputFile | None:
    """``-o FILE`` opened for the run, or a usage error naming why it cannot be. ``inputs``:
    the paths targets are read from (``-`` for stdin), ``db`` the snapshot database's: FILE
    may be none of them."""
    if path is None:
        return None
    if os.path.isdir(path):
        raise click.BadParameter(f"{path} is a directory", param_hint="-o/--output")
    read = _read_as_input(path, inputs)
    if read is not None:
        raise click.BadParameter(
            terminal_safe(
                f"{path} is also where the targets are read from ({read}): writing it would "
                "empty it first; choose another file"
            ),
            param_hint="-o/--output",
        )
    same_name = db is not None and os.path.realpath(path) == os.path.realpath(db)
    if db is not None and (same_name or _read_as_input(path, [db]) is not None):
        raise click.BadParameter(
            terminal_safe(
                f"{path} is also the snapshot database (--db): writing it would destroy the "
                "database; choose another file"
            ),
            param_hint="-o/--output",
        )
    try:
        return OutputFile(path, whole=output_format == "prometheus")
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write {path}: {exc.strerror or exc}", param_hint="-o/--output"
        ) from None


def _read_as_input(path: str, inputs: Sequence[str]) -> str | None:
    """How ``path`` is also read as input (``-i FILE``, or stdin redirected from it), or None.
    Compared as files, not names: ``./hosts.txt``, a link to it and ``< hosts.txt`` all count."""
    try:
        output = os.stat(path)
    except OSError:
        return None  # not there yet: nothing to lose
    if not stat.S_ISREG(output.st_mode):
        return None  # a device or a pipe: writing it empties nothing
    for source in inputs:
        try:
            read = os.fstat(sys.stdin.fileno()) if source == STDIN else os.stat(source)
        except (OSError, ValueError, AttributeError):
            continue  # an input that cannot be looked at is reported when it is read
        if os.path.samestat(read, output):
            return "stdin" if source == STDIN else f"-i {source}"
    return None


def _typed(*names: str) -> bool:
    """Whether any of the parameters ``names`` was given on the command line (not by its
    environment variable nor by default)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True
    given = click.core.ParameterSource.COMMANDLINE
    return any(ctx.get_parameter_source(name) is given for name in names)
