"""What fetchheads asks of its own process: the open-file limit, signals, a usable stdout.

Called from ``cli`` only, once per run, never at import time. Each target in flight holds one
socket, so the open-file limit (``ulimit -n``, often 1024) is what really bounds ``-c``: it is
raised to the hard limit where the system allows, and when even that is too small the concurrency
is lowered to fit, with a one-line warning, rather than failing targets with EMFILE mid-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

if sys.platform != "win32":  # Windows has no RLIMIT_NOFILE to raise
    import resource

FDS_RESERVED = 64
"""Descriptors kept free for everything that is not a target's socket: stdio, input files, the
snapshot database and its WAL, resolver threads' sockets, the event loop's own."""
NOFILE_CEILING = 1 << 20
"""Where the hard limit is "unlimited", ask for this much (Linux's default ``fs.nr_open``)."""


def raise_open_file_limit() -> int | None:
    """Raise the soft RLIMIT_NOFILE as far as the hard limit allows; return the soft limit now in
    force (``None`` where the platform has none). Never fails: a refusal keeps the old limit."""
    if sys.platform == "win32":
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = NOFILE_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        # macOS refuses more than kern.maxfilesperproc even under an unlimited hard limit:
        # step down until a value is accepted.
        while wanted > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            except (ValueError, OSError):
                wanted //= 2
                continue
            soft = wanted
            break
    return None if soft == resource.RLIM_INFINITY else soft


def fit_concurrency(concurrency: int, open_files: int | None) -> tuple[int, str | None]:
    """``concurrency`` lowered so that one socket per target fits under ``open_files``, and the
    warning to print when it had to be lowered."""
    if open_files is None:
        return concurrency, None
    fits = max(1, open_files - FDS_RESERVED)
    if concurrency <= fits:
        return concurrency, None
    return fits, (
        f"fetchheads: warning: concurrency lowered from {concurrency} to {fits} to fit the "
        f"open-file limit of {open_files} (raise it with 'ulimit -n')"
    )


def reserve_standard_fds() -> None:
    """Point any closed descriptor 0, 1 or 2 at /dev/null. Otherwise the next file or socket
    opened takes its number: a socket on fd 1 would receive our output, and libuv (uvloop)
    aborts the process when it later closes a descriptor below 3. Python has already set the
    matching ``sys.std*`` to ``None``, so ``stdout_problem`` still reports a closed stdout."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)


GC_THRESHOLD = 50_000
"""Allocations between young-generation collections (CPython's default is 700). A run allocates a
few hundred short-lived objects per target, nearly all freed by reference counting, so the default
starts a collection every couple of targets for almost nothing to find: ~5% of a 10,000-target
loopback run's CPU. Cycles (an exception and its traceback) are still collected, every 50,000
allocations; peak RSS at 1,000,000 targets is unchanged (benchmarks/run.py --memory)."""


@contextlib.contextmanager
def tuned_gc() -> Iterator[None]:
    """During the run: everything loaded at start-up out of the collector's way (``gc.freeze``),
    and the young generation collected less often. Both are undone afterwards, for callers that
    go on living (tests run the CLI in-process)."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def stdout_problem() -> str | None:
    """Why results cannot be written to stdout at all (it was closed before we started)."""
    # Python sets sys.stdout to None when descriptor 1 was closed at start (``fetchheads >&-``).
    if sys.stdout is None or getattr(sys.stdout, "buffer", None) is None:
        return "standard output is closed"
    return None


def on_sigterm(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], None], force: Callable[[], NoReturn]
) -> None:
    """As ``on_sigint``, for SIGTERM: the first calls ``callback`` in ``loop``, the next (or one
    once the loop has closed) ``force()`` at once. After the first, the run stops and waits for
    its reader to take the results already finished; when that reader never reads (``fetchheads
    ... | less``, paused), a second ``kill`` ends the process, as Ctrl-C twice does. Where
    signals cannot be handled, SIGTERM keeps its default."""
    _on_stop_signal(loop, signal.SIGTERM, callback, force)


def on_sigint(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], None], force: Callable[[], NoReturn]
) -> None:
    """On the first SIGINT call ``callback`` in ``loop``; on the next, ``force()`` at once (it
    ends the process). In place of asyncio.Runner's handler, whose KeyboardInterrupt on a second
    Ctrl-C, raised inside whatever callback is running, uvloop logs as a "Fatal error on
    transport" with a traceback, or swallows, leaving the run hung. A Ctrl-C after the loop has
    closed (waiting for the reader to take the last output) forces too, until
    ``ignore_interrupts``.
    Where signals cannot be handled, Runner's handler stays."""
    _on_stop_signal(loop, signal.SIGINT, callback, force)


def _on_stop_signal(
    loop: asyncio.AbstractEventLoop,
    signum: int,
    callback: Callable[[], None],
    force: Callable[[], NoReturn],
) -> None:
    seen = False

    def handler(signum: int, frame: object) -> None:
        nonlocal seen
        if seen or loop.is_closed():
            force()
        seen = True
        loop.call_soon_threadsafe(callback)

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signum, handler)


STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@contextlib.contextmanager
def stop_signals_kept_from_new_threads() -> Iterator[None]:
    """Threads started inside block SIGINT and SIGTERM (a thread inherits its creator's mask), so
    the kernel gives those signals to the main thread. The handlers above are ``signal.signal``
    handlers: a signal that lands in a helper thread only sets a flag, and a main thread asleep in
    the asyncio loop's epoll (which has no wakeup fd for them) would not run the handler until
    something else woke it: with every target silent, a Ctrl-C was lost until a deadline."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def hold_stop_signals() -> None:
    """Keep SIGINT and SIGTERM pending, not acted on, until ``accept_stop_signals``: while
    ``--workers`` forks, a Ctrl-C would otherwise land in a fork hook (lost), between two forks
    (a KeyboardInterrupt with half the workers started) or in a worker not yet listening. The
    held mask is inherited by each worker; a held signal is not."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def accept_stop_signals() -> None:
    """Act on SIGINT and SIGTERM again (a held one now): call once the event loop's handlers
    are in place. A no-op when nothing was held."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def ignore_interrupts() -> None:
    """The run is over (a Ctrl-C, if any, already taken): one more while the summary is printed
    and rich imported must not end the process halfway ("Aborted!" and exit 1, or an "Exception
    ignored" traceback). Undone by ``interrupts_restored`` around the whole command."""
    with contextlib.suppress(ValueError):  # not the main thread: nothing to do
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def interrupts_restored() -> Iterator[None]:
    """SIGINT's and SIGTERM's handlers as they were before, once the block is done (tests run
    the CLI in-process)."""
    previous: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):
            previous[signum] = signal.getsignal(signum)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                with contextlib.suppress(ValueError):
                    signal.signal(signum, handler)
