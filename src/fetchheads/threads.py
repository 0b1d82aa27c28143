"""The process's helper threads (output, input), which leave SIGINT and SIGTERM to the main
thread. Here, below every package that starts one, so that each can."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@contextlib.contextmanager
def stop_signals_kept_from_new_threads() -> Iterator[None]:
    """Threads started inside block SIGINT and SIGTERM (a thread inherits its creator's mask), so
    the kernel gives those signals to the main thread. The run's handlers are ``signal.signal``
    handlers: a signal that lands in a helper thread only sets a flag, and a main thread asleep in
    the asyncio loop's epoll would not run the handler until something else woke it (see
    ``run.process.StopSignals``): with every target silent, a Ctrl-C was lost until a deadline."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
