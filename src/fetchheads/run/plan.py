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

from fetchheads.config import Config
from fetchheads.run.inputs import STDIN, Source
from fetchheads.run.process import usable_cores
from fetchheads.snapshots.recorder import SnapshotSession

if TYPE_CHECKING:
    import asyncio
    import ssl

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
    audit: AuditPlan | None = None  # --audit, --fail-under


def choose_view(
    output_format: str | None,
    *,
    waterfall: bool | None,
    progress: bool | None,
    quiet: bool,
    sources: Sequence[Source],
    environment: Environment,
) -> View:
    """The view the options ask for, their ``None`` ("auto") decided from the environment."""
    chosen = output_format or ("pretty" if environment.stdout_isatty else "plain")
    if waterfall is None:  # auto: a few targets given as arguments, nothing read
        args = sources[0].args if len(sources) == 1 else ()
        waterfall = 0 < len(args) <= WATERFALL_AUTO_TARGETS
    show_progress = not quiet and (environment.stderr_isatty if progress is None else progress)
    # The bar belongs to the terminal view; under plain or jsonl only --progress asks for it.
    # Not while someone types targets at the terminal: it would be drawn over their typing.
    bar = show_progress and (
        progress is True or (chosen == "pretty" and not environment.typing_targets(sources))
    )
    return View(format=chosen, waterfall=waterfall, summary=show_progress, bar=bar)


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
    else 1. Only the machine formats in completion order, without snapshots (``snapshots``:
    --db or --warn-days), --rate (one clock keeps connections evenly spaced) or the progress bar,
    are split; and only with real descriptors for the workers to inherit."""
    splittable = (
        view.format in ("plain", "jsonl")
        and not snapshots
        and config.order == "completion"
        and config.rate is None
        and not view.bar
        and environment.stdout_fd
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
