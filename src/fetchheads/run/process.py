"""What fetchheads asks of its own process: the open-file limit, signals, exit statuses, cores,
the event loop.

Called once per run, never at import time. Each target in flight holds one socket, so the
open-file limit (``ulimit -n``, often 1024) is what really bounds ``-c``: it is
raised to the hard limit where the system allows, and when even that is too small the concurrency
is lowered to fit, with a one-line warning, rather than failing targets with EMFILE mid-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from fetchheads.threads import STOP_SIGNALS

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


def loop_errors(
    say: Callable[[str], None],
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """The event loop's handler for an error no task awaits (an exception in one of the loop's
    own callbacks, a task that failed unobserved): asyncio's default logs it with a traceback.
    Each target's failure is in its own record; what lands here is a bug, of fetchheads or of a
    library, so the first is said in one line through ``say`` (stderr) as ``cli.main`` says
    one, the later ones not at all (thousands of targets could each add one), and the run goes
    on. With ``FETCHHEADS_DEBUG`` set, asyncio's own handler shows each with its traceback."""
    said = False

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        nonlocal said
        if os.environ.get("FETCHHEADS_DEBUG"):
            loop.default_exception_handler(context)
            return
        if said:
            return
        said = True
        error = context.get("exception")
        detail = f"{type(error).__name__}: {error}" if error is not None else context["message"]
        say(
            f"fetchheads: internal error: {detail} "
            "(the run goes on; FETCHHEADS_DEBUG=1 shows the traceback)"
        )

    return handle


def fit_concurrency(concurrency: int, open_files: int | None) -> tuple[int, str | None]:
    """``concurrency`` lowered so that one socket per target fits under ``open_files``, and the
    warning to print when it had to be lowered."""
    if open_files is None:
        return concurrency, None
    # An eighth of the rest is kept for sockets still being closed: the event loop closes a
    # finished target's socket on a later turn, so in a burst of endings (a batch of timeouts)
    # the next connections are opened while the old descriptors are still held. With the whole
    # rest, tens of targets a run failed with EMFILE at the concurrency chosen here.
    fits = max(1, (open_files - FDS_RESERVED) * 7 // 8)
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
    matching ``sys.std*`` to ``None``, so the run's ``Environment`` still sees a closed stdout."""
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


class ExitStatus(enum.IntEnum):
    """How a fetchheads process ends; ``cli`` documents each."""

    OK = 0
    FAILED = 1
    USAGE = 2
    WARNING = 3
    INTERRUPTED = 130
    BROKEN_PIPE = 141
    TERMINATED = 143


def exit_now(status: ExitStatus) -> NoReturn:
    """End the process at once with ``status``: no clean-up, no flush. For a second Ctrl-C or
    SIGTERM (which must work even from a write to a pipe nobody reads) and a worker's end."""
    os._exit(int(status))


class StopSignals:
    """SIGINT and SIGTERM during one run, in place of asyncio.Runner's handler.

    The first of either calls the run task's ``cancel()`` in its loop and is remembered
    (``status``): the run stops and waits for its reader to take the results already finished.
    The next one (of either: a ``kill`` after a Ctrl-C too; not a SIGTERM ``SAME_SIGTERM_SECONDS``
    after a SIGTERM), or one after the loop has closed (waiting for the reader to take the last
    output), ends the process at once with its status (130, 143), after ``before_exit`` (the
    supervisor ends its workers there): when that reader never reads (``fetchheads ... | less``,
    paused), Ctrl-C twice or a second ``kill`` still gets out, until ``ignore_interrupts``.
    Runner's own handler raises KeyboardInterrupt on a second Ctrl-C inside whatever callback is
    running, which uvloop logs as a "Fatal error on transport" with a traceback, or swallows,
    leaving the run hung. Where signals cannot be handled (not the main thread), each keeps its
    handler.
    """

    def __init__(self, before_exit: Callable[[], None] = lambda: None) -> None:
        self.interrupted = False
        self.terminated = False
        self._before_exit = before_exit
        self._wakeup: tuple[asyncio.AbstractEventLoop, int, int] | None = None

    def install(
        self,
        loop: asyncio.AbstractEventLoop,
        task: asyncio.Task[Any],
        on_stop: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_stop``: called at the first signal, before the task is cancelled, for what waits
        off the loop (a database write on a thread of its own) and must stop waiting."""

        def on_sigterm() -> None:
            self.terminated = True
            on_stop()
            task.cancel()

        def on_sigint() -> None:
            self.interrupted = True
            on_stop()
            task.cancel()

        # One record for both: a SIGTERM after a Ctrl-C (a person's ``kill`` once Ctrl-C did
        # not seem to end it) is the second signal too, and ends the process at once.
        first = _FirstStop()
        _on_stop_signal(
            loop,
            signal.SIGTERM,
            on_sigterm,
            ExitStatus.TERMINATED,
            self.exit_now,
            first,
            same_within=SAME_SIGTERM_SECONDS,
        )
        _on_stop_signal(
            loop, signal.SIGINT, on_sigint, ExitStatus.INTERRUPTED, self.exit_now, first
        )
        self._wake_on_signals(loop)

    def _wake_on_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make a signal wake ``loop``. Python runs a handler between two bytecodes of the main
        thread; a signal that lands just before asyncio's own loop goes to sleep in ``select()``
        (with nothing to do until the next timer: a target's deadline, up to ``-t``) waited
        there, and Ctrl-C seemed to do nothing. ``set_wakeup_fd`` has the signal write a byte to
        a pipe the loop watches. uvloop has its own such descriptor: it is left alone."""
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        try:
            previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        except ValueError:  # not the main thread: signals are not ours to handle
            previous = None
        if previous != -1:
            if previous is not None:
                signal.set_wakeup_fd(previous)
            os.close(read)
            os.close(write)
            return
        loop.add_reader(read, _drain, read)
        self._wakeup = (loop, read, write)

    def close(self) -> None:
        """Before ``install``'s loop stops: signals no longer write to it. Their handlers stay:
        a second one still ends the process."""
        if self._wakeup is None:
            return
        loop, read, write = self._wakeup
        self._wakeup = None
        signal.set_wakeup_fd(-1)
        loop.remove_reader(read)
        os.close(read)
        os.close(write)

    @property
    def received(self) -> bool:
        return self.terminated or self.interrupted

    @property
    def status(self) -> ExitStatus | None:
        """The exit status the signals received make (SIGTERM's over SIGINT's), or None."""
        if self.terminated:
            return ExitStatus.TERMINATED
        return ExitStatus.INTERRUPTED if self.interrupted else None

    def exit_now(self, status: ExitStatus) -> NoReturn:
        self._before_exit()
        exit_now(status)


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 4096):
            pass


SAME_SIGTERM_SECONDS = 0.1
"""A SIGTERM this soon after the first is the same stop, not a second one: GNU ``timeout`` sends
its signal twice at once, to the process and then to its process group, and when the first
had been handled before the second came, the run ended there, silently, nothing more written
(no ``terminated:`` line, the results not yet recorded lost, the ``runs`` row left running).
A person's second ``kill`` comes later than this."""


class _FirstStop:
    """The first stop signal of a run, SIGINT or SIGTERM: which, and when (monotonic)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.at = 0.0


def _on_stop_signal(
    loop: asyncio.AbstractEventLoop,
    signum: int,
    callback: Callable[[], None],
    status: ExitStatus,
    force: Callable[[ExitStatus], NoReturn],
    first: _FirstStop,
    *,
    same_within: float = 0.0,
) -> None:
    def handler(received: int, frame: object) -> None:
        now = time.monotonic()
        if first.signum == signum and now - first.at < same_within:
            return  # the same signal, sent twice (timeout): the run is stopping already
        if first.signum is not None or loop.is_closed():
            force(status)
        first.signum, first.at = signum, now
        loop.call_soon_threadsafe(callback)

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signum, handler)


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


class Terminated(KeyboardInterrupt):
    """SIGTERM inside ``interruptible``: it ends the wait as Ctrl-C does (whatever catches a
    KeyboardInterrupt catches it), and the run as terminated."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt inside the block, and SIGTERM ``Terminated``, as they
    stop the fetch that follows (``StopSignals``), also in a process started with SIGINT
    ignored (a script's background job): for the waits on the database before the event loop
    starts, which a library may spend in its own loop (psycopg's, for a server that never
    answers or a lock). A wait inside C (SQLite's busy timeout) sees the signal when it ends.
    The handlers are as before afterwards."""
    try:
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    before = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, before)


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


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``--loop`` names: uvloop where installed (``auto``), or asyncio's. None:
    ``uvloop`` was asked for and is not installed."""
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                return None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop
