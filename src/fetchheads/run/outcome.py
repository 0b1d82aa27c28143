"""How a run ended, and the one place that tells the user: the summary line, "interrupted", and
a stdout that could not be written. The same for one process and for ``--workers``."""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from fetchheads.render.output import StderrConsole
from fetchheads.run.process import ExitStatus
from fetchheads.run.summary import Summary

SUMMARISED = frozenset(
    {
        ExitStatus.OK,
        ExitStatus.FAILED,
        ExitStatus.WARNING,
        ExitStatus.INTERRUPTED,  # what finished before Ctrl-C, as counted
    }
)


@dataclasses.dataclass(slots=True)
class Outcome:
    status: ExitStatus
    summary: Summary
    started: float  # time.monotonic() when the run began
    note: str = ""  # added to the summary line: snapshots recorded, workers used
    output_error: OSError | None = None  # stdout could not be written
    began: bool = True  # False: the run stopped before fetching (no worker could start)
    read: int = 0  # targets read from the input when it stopped...
    all_read: bool = True  # ...and whether that was all of it


_STOPPED = {ExitStatus.INTERRUPTED: "interrupted", ExitStatus.TERMINATED: "terminated"}


def report(outcome: Outcome, stderr: StderrConsole, *, show_summary: bool) -> ExitStatus:
    """Tell the user how the run ended (on stderr); the process's exit status."""
    if outcome.output_error is not None:
        return output_failed(outcome.output_error, stderr)
    status = outcome.status
    if show_summary and outcome.began and status in SUMMARISED:
        elapsed = time.monotonic() - outcome.started
        stderr.print(outcome.summary.describe(elapsed) + outcome.note, style="dim")
    how = _STOPPED.get(status)
    if how is not None:  # also under -q: a cron job ended by `timeout` mails this line
        summary = outcome.summary
        stderr.print(f"fetchheads: {summary.stopped(how, outcome.read, all_read=outcome.all_read)}")
    return status


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
