"""``python -m fetchheads``, and the ``fetchheads`` command's entry point (``run``)."""

import os
import signal
import sys


def run() -> None:
    """``cli.main``, imported here rather than at the top: a Ctrl-C while the program is still
    importing (click, asyncio, ssl: the first ~0.1 s) ends it quietly with 130, as a Ctrl-C a
    moment later does, instead of with a traceback from the middle of an import."""
    _interrupt_ends_the_process()
    try:
        from fetchheads.cli import main
    except KeyboardInterrupt:
        sys.exit(130)
    main()


def _interrupt_ends_the_process() -> None:
    """Ctrl-C outside a run ends the process at once, quietly, with 130. A run takes SIGINT over
    while it lasts (``run.process.StopSignals``, whose second Ctrl-C ends the process so too) and
    hands this handler back when it is over. Python's own raises KeyboardInterrupt wherever the
    process is, and a second Ctrl-C often lands just after a run it stopped has handed SIGINT
    back: in click, which printed "Aborted!" and exited 1, or in the interpreter's exit, which
    printed an "Exception ignored" traceback. Set here, for the process, not in ``cli.main``: a
    program (a test) that runs the command in its own process keeps its handler. A process started
    with SIGINT ignored (a script's background job) keeps it ignored outside a run."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted)


def _interrupted(signum: int, frame: object) -> None:
    os._exit(130)  # no clean-up to wait for: a run's own handler flushes and records first


if __name__ == "__main__":
    run()
