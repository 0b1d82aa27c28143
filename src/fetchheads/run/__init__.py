"""Running a fetch: the plan the command line hands over, one process or several, the outcome.

``plan``: ``RunPlan`` and the ``Environment`` it is decided in. ``single``: ``execute(plan)``,
one process's run. ``supervisor``: the same plan over ``--workers`` processes. ``outcome``: how
the run ended, told once. ``process``: signals, exit statuses, descriptors, limits. Nothing here
imports click or ``cli``: bad input has been refused before a plan exists.
"""

from __future__ import annotations

from fetchheads.render.output import StderrConsole
from fetchheads.run import process
from fetchheads.run.outcome import report
from fetchheads.run.plan import RunPlan
from fetchheads.run.process import ExitStatus
from fetchheads.run.single import execute
from fetchheads.run.summary import Summary, below
from fetchheads.wording import counted


def run_plan(plan: RunPlan) -> ExitStatus:
    """Run ``plan`` in this process, or under the supervisor in ``plan.workers``; tell the user
    how it ended; the exit status. SIGINT's and SIGTERM's handlers are as before afterwards."""
    with process.interrupts_restored():  # the run ignores Ctrl-C once it is over
        if plan.workers > 1:
            from fetchheads.run.supervisor import supervise  # --workers runs only

            outcome = supervise(plan)
        else:
            outcome = execute(plan)
        stderr = StderrConsole(**plan.environment.console_options())
        status = report(outcome, stderr, show_summary=plan.view.summary)
        return graded_status(plan, outcome.summary, status, stderr)


def graded_status(
    plan: RunPlan, summary: Summary, status: ExitStatus, stderr: StderrConsole
) -> ExitStatus:
    """``--fail-under GRADE``: a run that would end 0 ends 3 when a target graded worse (one that
    ends 1, failed targets, stays 1), and says so in one line on stderr, also under -q: it is the
    reason for the status."""
    floor = plan.audit.fail_under if plan.audit is not None else None
    if floor is None or status not in (ExitStatus.OK, ExitStatus.WARNING, ExitStatus.FAILED):
        return status
    under = below(summary.grades, floor)
    if not under:
        return status
    stderr.print(f"fetchheads: {counted(under, 'target')} graded under {floor} (--fail-under)")
    return ExitStatus.WARNING if status is ExitStatus.OK else status
