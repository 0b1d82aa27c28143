"""Writing to stdout and stderr without ever making the event loop wait for their reader.

A reader may stop reading for as long as it likes: ``less`` paused on a screen, a log shipper
that is behind, a terminal held with Ctrl-S or in tmux's copy mode. A ``write()`` from the event
loop would then block the loop, every target in flight would run out its deadline meanwhile, and
answers that had arrived would be recorded as timeouts. So the loop hands the bytes to ``Writer``,
whose thread does the blocking writes, in order, while the loop goes on.

What is handed over and not yet written is the *backlog*. Above ``HIGH_WATER`` the writer is
``paused``: the run starts no new target (``run.pool.run``'s ``throttle``) until the reader has
taken the backlog down to ``LOW_WATER``. Targets already in flight finish, and their results
join the backlog: it is bounded by ``HIGH_WATER`` plus what the connections in flight can add.

Why a thread, not the loop's own non-blocking writes: ``O_NONBLOCK`` belongs to the open file
description, which stdout shares with every process that inherited it (the shell on a terminal,
the next command of ``{ fetchheads ...; echo done; } | less``). Setting it would make their writes
fail with EAGAIN, and a process ended by a signal could not set it back. The thread writes with
``os.write`` on the descriptor, not through a buffered file object, so if it is left blocked at
exit it holds no lock that the interpreter's shutdown needs.

A regular file (and ``/dev/null``) does not wait for a reader: ``may_wait`` says so, and the
sinks write to it directly, as fast as before. Pipes, FIFOs, sockets and terminals go through
the writer.

Errors (EPIPE, ENOSPC, EIO...) are per descriptor: the first is kept in ``errors``, reported to
the handler given to ``on_error`` on the loop, and later bytes for that descriptor are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import stat
import threading
from collections.abc import Callable

from fetchheads.threads import stop_signals_kept_from_new_threads

HIGH_WATER = 1024 * 1024
"""Bytes waiting for the reader before the run stops starting new targets: a few thousand
records, enough that a reader that is merely slower than the run is never idle."""
LOW_WATER = 256 * 1024
"""...and once the reader has brought the backlog down to this, the run starts targets again."""

_END = -1


def may_wait(fd: int) -> bool:
    """Whether a write to ``fd`` can wait for a reader: a pipe, a socket, a terminal (Ctrl-S).
    Not a regular file, nor a character device that is not a terminal (``/dev/null``)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return True  # the write will say what is wrong; the writer reports it
    return not (stat.S_ISREG(mode) or (stat.S_ISCHR(mode) and not os.isatty(fd)))


class Writer:
    """Bytes for one or more descriptors, written in the order given by a thread of its own.

    ``write`` is called from the event loop (after the loop has ended too, for a last flush);
    ``close`` waits until everything is written. The thread starts on the first ``write``: a
    ``--workers`` supervisor forks its workers before it writes anything, and a process must
    not fork while it has a second thread.
    """

    def __init__(self) -> None:
        self.errors: dict[int, OSError] = {}
        self.paused = False
        self._handlers: dict[int, Callable[[OSError], None]] = {}
        self._jobs: queue.SimpleQueue[tuple[int, bytes]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Each counter has one writer (the loop, the thread), so neither needs a lock; the pause
        # and its end are decided under ``_lock``, so that neither side misses the other's move.
        self._queued = 0
        self._written = 0
        self._lock = threading.Lock()
        self._resuming = False
        self._resumed: asyncio.Event | None = None

    @property
    def backlog(self) -> int:
        """Bytes handed over and not yet written (or dropped after an error)."""
        return self._queued - self._written

    def on_error(self, fd: int, handler: Callable[[OSError], None]) -> None:
        """Call ``handler`` on the loop with the first error writing to ``fd``."""
        self._handlers[fd] = handler

    def write(self, fd: int, data: bytes) -> None:
        if self._thread is None:
            self._start()
        self._queued += len(data)
        self._jobs.put((fd, data))
        if not self.paused and self._queued - self._written >= HIGH_WATER:
            self._pause()

    async def resumed(self) -> None:
        """Until the backlog is down to ``LOW_WATER`` (at once when it is not ``paused``)."""
        if self._resumed is not None:
            await self._resumed.wait()

    def close(self) -> None:
        """Wait until everything handed over is written (or has failed); end the thread.

        Blocks for as long as the reader does not read: a second Ctrl-C or SIGTERM ends the
        process from there (``run.process.StopSignals``), as it did from a blocked write."""
        if self._thread is not None:
            self._jobs.put((_END, b""))
            self._thread.join()
            self._thread = None

    def _start(self) -> None:
        with contextlib.suppress(RuntimeError):  # a last flush after the loop: nobody to tell
            self._loop = asyncio.get_running_loop()
            self._resumed = asyncio.Event()
            self._resumed.set()
        self._thread = threading.Thread(target=self._serve, name="fetchheads-output", daemon=True)
        with stop_signals_kept_from_new_threads():
            self._thread.start()

    def _pause(self) -> None:
        if self._resumed is None:
            return
        with self._lock:
            self.paused = True
            self._resumed.clear()
            # The thread may have written it all since the test above, and seen no pause.
            if self._queued - self._written <= LOW_WATER:
                self._resume()

    def _resume(self) -> None:
        """On the loop (under ``_lock`` from ``_pause``)."""
        self._resuming = False
        if self.paused:
            self.paused = False
            assert self._resumed is not None
            self._resumed.set()

    def _resume_locked(self) -> None:
        with self._lock:
            self._resume()

    # --- the thread ---------------------------------------------------------------------------

    def _serve(self) -> None:
        jobs = self._jobs
        while True:
            batch = [jobs.get()]
            with contextlib.suppress(queue.Empty):
                while True:  # everything handed over meanwhile: one write per descriptor run
                    batch.append(jobs.get_nowait())
            start = 0
            for end in range(1, len(batch) + 1):
                fd = batch[start][0]
                if end < len(batch) and batch[end][0] == fd:
                    continue
                if fd == _END:
                    return
                chunks = [data for _, data in batch[start:end]]
                self._write_all(fd, chunks[0] if len(chunks) == 1 else b"".join(chunks))
                start = end

    def _write_all(self, fd: int, data: bytes) -> None:
        if fd not in self.errors:
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(fd, view) :]
            except OSError as exc:
                self.errors[fd] = exc
                self._tell(self._report, fd, exc)
        self._written += len(data)
        if self.paused and not self._resuming:
            with self._lock:
                if self.paused and not self._resuming and self.backlog <= LOW_WATER:
                    self._resuming = True
                    self._tell(self._resume_locked)

    def _tell(self, callback: Callable[..., None], *args: object) -> None:
        """``callback(*args)`` on the loop, if it is still running."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # closed: ``errors`` says it all
                self._loop.call_soon_threadsafe(callback, *args)

    def _report(self, fd: int, exc: OSError) -> None:
        handler = self._handlers.get(fd)
        if handler is not None:
            handler(exc)
