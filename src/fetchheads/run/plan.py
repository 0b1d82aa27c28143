"""What a run is to do, decided once: the ``RunPlan``, and the ``Environment`` it is decided in.

``Environment`` holds the facts fetchheads finds around it (which standard streams are terminals,
closed, or real descriptors a forked worker can inherit; whether the system can fork; how many
cores; the terminal's width and colour) so that a test passes one in (``CliRunner().invoke(cli,
args, obj=Environment(...))``) rather than patching the process; httpie's ``Environment`` is the
model. ``cli`` builds the ``RunPlan`` from the options and the environment; ``run_plan`` and
``execute`` read nothing else. The choices made from both, the view and the number of workers,
are here as functions of typed values.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from fetchheads.config import WRITE_OUT, Config
from fetchheads.run.inputs import STDIN, Source
from fetchheads.run.process import usable_cores
from fetchheads.snapshots.recorder import SnapshotSession

if TYPE_CHECKING:
    import asyncio
    import ssl

    from fetchheads.render.fields import Field
    from fetchheads.render.filters import Selector
    from fetchheads.render.output import OutputFile
    from fetchheads.render.sort import SortOrder
    from fetchheads.render.writeout import WriteOut

TABLE_FIELDS = "target,status,time.total,header:server,error.message"
"""The table's columns without ``--fields``: who answered, how, how fast, and why not."""
SHEET_FIELDS = (
    "target,url,status,reason,http_version,address,time.total,tls.version,cert.days_left,"
    "header:server,header:content-type,error.kind,error.message"
)
"""CSV's and TSV's columns without ``--fields``: one row a spreadsheet can sort and filter."""
SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".prom": "prometheus",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
}
"""``-o FILE`` without ``--format``: the format its name asks for."""
PLAIN_SUFFIXES = ("", ".txt", ".log", ".out", ".text")
"""``-o FILE`` names that ask for plain lines; so does a suffix without a letter (``heads.1``,
``heads.2026-01-04``: a rotated or dated log). Any other suffix (``.xml``, ``.html``) names a
format fetchheads does not write: the CLI refuses it rather than write plain lines under it."""
LINE_FORMATS = ("plain", "jsonl", "table", "csv", "tsv", WRITE_OUT)
"""The formats that are one record per target, written as it finishes: those ``--workers``
can split (each worker formats its own records; the supervisor merges them whole)."""
COLUMN_FORMATS = ("table", "csv", "tsv")
"""The formats whose columns ``--fields`` chooses."""
WATERFALL_AUTO_TARGETS = 3
"""``--waterfall`` is on by default for up to this many targets given as arguments."""
AUTO_CONNECTIONS_PER_WORKER = 25
"""``--workers auto`` forks no more workers than ``-c`` has 25s (``-c 100``: up to 4): a low
``-c`` waits on the network, not on a core, and a worker with a handful of connections only adds
a process."""


@dataclasses.dataclass(frozen=True, slots=True)
class Environment:
    """The process's surroundings. The defaults describe a test harness (in-memory streams that
    are no terminals and have no descriptors, one core); ``detect()`` reads the real ones."""

    stdin_isatty: bool = False
    stdout_isatty: bool = False
    stderr_isatty: bool = False
    stdin_closed: bool = False  # ``<&-``: Python has set sys.stdin to None
    stdout_closed: bool = False  # ``>&-``
    stdin_fd: bool = False  # stdin is a real descriptor, which a forked worker can inherit
    stdout_fd: bool = False
    can_fork: bool = True
    cores: int = 1  # usable by this process (its CPU affinity)
    width: int | None = None  # terminal columns; None: rich measures them (COLUMNS, the tty)
    colour: bool | None = None  # None: rich decides (a terminal, TERM, NO_COLOR, FORCE_COLOR)

    @classmethod
    def detect(cls) -> Environment:
        stdout = sys.stdout
        return cls(
            stdin_isatty=_isatty(sys.stdin),
            stdout_isatty=_isatty(stdout),
            stderr_isatty=_isatty(sys.stderr),
            stdin_closed=sys.stdin is None,
            stdout_closed=stdout is None or getattr(stdout, "buffer", None) is None,
            stdin_fd=_has_fd(sys.stdin),
            stdout_fd=_has_fd(stdout),
            can_fork=hasattr(os, "fork"),
            cores=usable_cores(),
        )

    def console_options(self) -> dict[str, Any]:
        """Keyword arguments for each rich ``Console``: none unless a width or colour is set."""
        options: dict[str, Any] = {}
        if self.width is not None:
            options["width"] = self.width
        if self.colour is True:
            options["force_terminal"] = True
        elif self.colour is False:
            options["color_system"] = None
        return options

    def columns(self) -> int:
        """The width of the terminal (``COLUMNS``, else stdout's terminal), else 80."""
        if self.width is not None:
            return self.width
        import shutil

        return shutil.get_terminal_size((80, 24)).columns

    def colours_stdout(self) -> bool:
        """Whether stdout gets colours: a terminal (not ``TERM=dumb``), unless ``NO_COLOR``."""
        if self.colour is not None:
            return self.colour
        # In the order rich decides it for the pretty view: NO_COLOR, a dumb terminal, then
        # FORCE_COLOR.
        if os.environ.get("NO_COLOR") or os.environ.get("TERM", "") == "dumb":
            return False
        return bool(os.environ.get("FORCE_COLOR")) or self.stdout_isatty

    def redraws_stderr(self) -> bool:
        """Whether stderr can take a transient line: a terminal that is not ``TERM=dumb``. In a
        file, a pipe or a dumb terminal its redraws would be junk (a cron log would grow by
        megabytes an hour), so there only the summary is written."""
        return self.stderr_isatty and os.environ.get("TERM", "") != "dumb"

    def typing_targets(self, sources: Sequence[Source]) -> bool:
        """Whether someone may be typing targets at a terminal (stdin is read and is one)."""
        return self.stdin_isatty and reads_stdin(sources)


@dataclasses.dataclass(frozen=True, slots=True)
class View:
    """How results are shown: the format on stdout, and what goes to stderr."""

    format: str  # one of config.FORMATS
    waterfall: bool = False  # timing bars in the pretty view
    summary: bool = False  # the summary line at the end
    bar: bool = False  # the progress line while the run goes
    record_end: str = ""  # written after each record (a worker's, for its supervisor)
    fields: tuple[Field, ...] = ()  # the columns of table, csv and tsv
    write_out: WriteOut | None = None  # -w: the template (format WRITE_OUT)
    selector: Selector | None = None  # the filters; None: every result is shown
    width: int = 80  # the table's width in cells
    colour: bool = False  # the table's status colours
    header: bool = True  # the header row of table, csv, tsv (a worker's records have none)
    output: str | None = None  # -o FILE; None: stdout
    sort: SortOrder | None = None  # --sort: the line formats' records held and printed sorted


@dataclasses.dataclass(frozen=True, slots=True)
class AuditPlan:
    """``--audit``: grade every head. ``insecure``: the run uses ``-k`` (a certificate was not
    verified); ``request_origin``: the ``Origin`` the requests carry (``-H``), which the CORS
    test reads; ``fail_under``: the grade under which the run ends with status 3."""

    insecure: bool = False
    request_origin: str | None = None
    fail_under: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RunPlan:
    """Everything a run needs, decided before it starts. ``workers`` > 1: that many processes
    (``run.supervisor``), each executing this plan with its share of ``-c`` on its share of the
    targets."""

    config: Config
    sources: tuple[Source, ...]
    view: View
    tls: Callable[[], ssl.SSLContext]  # made on first use (loading CAs is slow), then cached
    loop_factory: Callable[[], asyncio.AbstractEventLoop]
    environment: Environment = dataclasses.field(default_factory=Environment)
    # --db, --changes, --warn-days; its database opened by cli, so that a bad --db is a usage
    # error. Not itself frozen: it is the run's recording of snapshots.
    session: SnapshotSession = dataclasses.field(default_factory=SnapshotSession)
    workers: int = 1
    in_worker: bool = False  # executed by a worker of --workers (run.supervisor.worker_plan)
    audit: AuditPlan | None = None  # --audit, --fail-under
    output: OutputFile | None = None  # -o FILE, opened by cli; None: stdout


def suffix_format(path: str) -> str | None:
    """The format the suffix of ``-o PATH`` names, or None for one that names no format fetchheads
    writes (``SUFFIX_FORMATS``, ``PLAIN_SUFFIXES``)."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in SUFFIX_FORMATS:
        return SUFFIX_FORMATS[suffix]
    if suffix in PLAIN_SUFFIXES or not any(char.isalpha() for char in suffix):
        return "plain"
    return None


def choose_view(
    output_format: str | None,
    *,
    waterfall: bool | None,
    progress: bool | None,
    quiet: bool,
    sources: Sequence[Source],
    environment: Environment,
    fields: tuple[Field, ...] = (),
    write_out: WriteOut | None = None,
    selector: Selector | None = None,
    output: str | None = None,
    changes: bool = False,
    sort: SortOrder | None = None,
) -> View:
    """The view the options ask for, their ``None`` ("auto") decided from the environment.

    The format: ``-w`` is its own; else ``--format``; else, with ``-o FILE``, the one its suffix
    names (``suffix_format``; TSV with ``--fields`` where that is plain); else with ``--fields``
    the table on a terminal and TSV elsewhere; else with ``--sort`` the table on a terminal
    (a sorted run is a line format); else on a terminal the table for a list read from
    a file or stdin (blocks of 300 heads are not readable at a glance) and the pretty blocks for
    targets given as arguments, under ``--changes`` or with ``--waterfall``; plain in a pipe or
    file."""
    to_terminal = environment.stdout_isatty and output is None
    if write_out is not None:
        chosen = WRITE_OUT
    elif output_format is not None:
        chosen = output_format
    elif output is not None:
        chosen = suffix_format(output) or "plain"
        if fields and chosen == "plain":  # plain has no columns: TSV, as in a pipe
            chosen = "tsv"
    elif fields:
        chosen = "table" if to_terminal else "tsv"
    elif sort is not None and to_terminal:
        chosen = "table"
    elif to_terminal:
        a_list = any(source.path is not None for source in sources)
        # --waterfall asks for the pretty blocks, where the bars are drawn
        chosen = "table" if a_list and not changes and waterfall is not True else "pretty"
    else:
        chosen = "plain"
    if chosen in COLUMN_FORMATS and not fields:
        from fetchheads.render.fields import BUILTIN, compile_fields  # the column formats only

        default = TABLE_FIELDS if chosen == "table" else SHEET_FIELDS
        fields = compile_fields(default, BUILTIN)
    if waterfall is None:  # auto: a few targets given as arguments, nothing read
        args = sources[0].args if len(sources) == 1 else ()
        waterfall = 0 < len(args) <= WATERFALL_AUTO_TARGETS
    show_progress = not quiet and (environment.stderr_isatty if progress is None else progress)
    # The bar belongs to the terminal views, and to a run whose results go to a file (-o); under
    # the other formats only --progress asks for it. Not while someone types targets at the
    # terminal: it would be drawn over their typing.
    terminal_view = chosen in ("pretty", "table") or output is not None
    bar = (
        show_progress
        and environment.redraws_stderr()
        and (progress is True or (terminal_view and not environment.typing_targets(sources)))
    )
    table = chosen == "table"
    return View(
        format=chosen,
        waterfall=waterfall,
        summary=show_progress,
        bar=bar,
        fields=fields,
        write_out=write_out,
        selector=None if selector is None or selector.selects_everything else selector,
        width=environment.columns() if table and output is None else 80,
        colour=table and output is None and environment.colours_stdout(),
        output=output,
        sort=sort,
    )


def choose_workers(
    requested: int | None,
    *,
    config: Config,
    view: View,
    sources: Sequence[Source],
    snapshots: bool,
    environment: Environment,
) -> int:
    """How many processes run the plan: ``requested`` (None: auto) where the run can be split,
    else 1. Only the line formats (``LINE_FORMATS``: not pretty, not prometheus, which is one whole
    file made in the process that writes it) in completion order, without snapshots (``snapshots``:
    --db or --warn-days), --rate (one clock keeps connections evenly spaced), --sort (the one
    process holds and sorts what it prints) or the progress bar, are split; and only with real
    descriptors for the workers to inherit."""
    splittable = (
        view.format in LINE_FORMATS
        and not snapshots
        and config.order == "completion"
        and view.sort is None
        and config.rate is None
        and not view.bar
        and (environment.stdout_fd or view.output is not None)
        and not _writes_record_end(view)
        and (environment.stdin_fd or not reads_stdin(sources))
    )
    if not splittable:
        return 1
    workers = requested
    if workers is None:  # auto: a list that may be long, not a few targets typed or given
        long_list = any(source.path is not None for source in sources)
        if not (long_list and environment.can_fork) or environment.typing_targets(sources):
            return 1
        fair_share = max(1, config.concurrency // AUTO_CONNECTIONS_PER_WORKER)
        workers = min(environment.cores, fair_share)
    return min(workers, config.concurrency)  # every worker has at least one connection


def _writes_record_end(view: View) -> bool:
    """A -w template holding ASCII RS, which frames a worker's records (``supervisor.worker``)."""
    template = view.write_out
    if template is None:
        return False
    parts = template.parts + template.on_error
    return any(isinstance(part, str) and "\x1e" in part for part in parts)


def reads_stdin(sources: Sequence[Source]) -> bool:
    return any(source.path == STDIN for source in sources)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _has_fd(stream: Any) -> bool:
    try:
        return stream is not None and stream.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        return False
