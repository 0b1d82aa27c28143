"""Targets in, results out: a fixed pool of workers fed from a bounded queue.

Input is read while the first targets are already in flight, and never more than a bounded window
ahead of them, so memory does not grow with the length of the list. Results are handed to ``emit``
the moment each target finishes, or in input order with ``ordered`` (a reorder window bounded by
the queue plus the workers). A fixed pool of workers, not a task per target: a million targets
cost ``concurrency`` tasks, not a million. While the output is behind its reader (``throttle``)
no new target is started; those in flight finish as usual.

Also here: ``in_shard`` (``--shard K/N``) and ``Pacer`` (``--rate``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import os
import queue
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

from fetchheads import process
from fetchheads.credentials import redact_url
from fetchheads.errors import ErrorKind, InputError
from fetchheads.models import ErrorInfo, Result, Target
from fetchheads.targets import MAX_LINE_CHARS, LineSplitter, OverlongLine, parse_target

READ_SIZE = 64 * 1024
STDIN = "-"

Item = Target | Result


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """Where targets come from: the command line (``args``) or a file (``path``, ``-`` = stdin)."""

    args: tuple[str, ...] = ()
    path: str | None = None


def input_error(text: str, message: str, *, where: str | None = None) -> Result:
    """The record for a target that could not become a request (a password in it shown as
    ``***``: the record is printed and stored)."""
    text = redact_url(text)
    shown = text if len(text) <= 200 else text[:200] + "…"
    prefix = f"{where}: " if where else ""
    return Result(target=shown, url=None, error=ErrorInfo(ErrorKind.INPUT, prefix + message))


def to_item(
    text: str, default_scheme: str, *, where: str | None = None, line: int | None = None
) -> Item:
    try:
        return parse_target(text, default_scheme=default_scheme, line=line)
    except InputError as exc:
        return input_error(text, str(exc), where=where)


async def read_sources(sources: Sequence[Source], default_scheme: str) -> AsyncIterator[Item]:
    """Every target of every source, in order, streamed: files are read in chunks on a thread."""
    reader = InputThread()
    try:
        for source in sources:
            if source.path is None:
                for text in source.args:
                    yield to_item(text, default_scheme)
                continue
            name = "stdin" if source.path == STDIN else source.path
            try:
                read, close = _open_input(source.path)
            except OSError as exc:
                yield _unreadable(name, exc)
                continue
            try:
                splitter = LineSplitter()
                while True:
                    # Whatever is available now (at most one read), so a slow producer upstream
                    # of a pipe, or a person typing, sees each target fetched at once.
                    try:
                        chunk = await reader.call(read)
                    except OSError as exc:  # the rest of this input is lost; the run goes on
                        yield _unreadable(name, exc)
                        break
                    for number, line in splitter.feed(chunk):
                        where = f"{name}:{number}"
                        if isinstance(line, OverlongLine):
                            yield input_error(
                                line.start + "…",
                                f"line longer than {MAX_LINE_CHARS} bytes",
                                where=where,
                            )
                        elif line and not line.startswith("#"):
                            yield to_item(line, default_scheme, where=where, line=number)
                    if not chunk:
                        break
            finally:
                reader.after_reads(close)
    finally:
        reader.close()


def _unreadable(name: str, exc: OSError) -> Result:
    """A failed read of an input is one record, like a bad line: the run goes on without it."""
    return input_error(name, f"cannot read {name}: {exc.strerror or exc}")


class InputThread:
    """One daemon thread for the blocking reads of input files and stdin.

    Not a ``ThreadPoolExecutor``: leaving its ``with`` block, and the interpreter's exit, both wait
    for a read in progress, and a read of a terminal, or of a pipe whose writer is alive but quiet,
    may never return: Ctrl-C or SIGTERM would then hang until the user pressed Ctrl-D. A daemon
    thread is left behind at exit instead. Reads go to the file descriptor (``os.read``), not to a
    buffered file object, so the abandoned thread holds no lock that interpreter shutdown needs.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def call(self, read: Callable[[], bytes]) -> bytes:
        """``read()`` on the thread; cancelling the caller does not wait for it to return."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()

        def job() -> None:
            try:
                data = read()
            except (OSError, ValueError) as exc:  # a read error, or a file closed under it
                _hand_over(loop, future.set_exception, future, exc)
            else:
                _hand_over(loop, future.set_result, future, data)

        if self._thread is None:
            self._thread = threading.Thread(
                target=self._serve, name="fetchheads-input", daemon=True
            )
            with process.stop_signals_kept_from_new_threads():
                self._thread.start()
        self._jobs.put(job)
        return await future

    def after_reads(self, action: Callable[[], None]) -> None:
        """Run ``action`` (closing a file) once the read in progress is over: never under it."""
        if self._thread is None:
            action()
        else:
            self._jobs.put(action)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def close(self) -> None:
        """The thread ends after the read in progress, if any; nobody waits for it."""
        self._jobs.put(None)


def _hand_over(
    loop: asyncio.AbstractEventLoop,
    setter: Callable[[Any], None],
    future: asyncio.Future[bytes],
    value: object,
) -> None:
    def settle() -> None:
        if not future.done():  # the caller may have been cancelled meanwhile
            setter(value)

    # The loop is closed when the run ended while this read was blocked: nobody is waiting.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(settle)


def in_shard(item: Item, shard: int, shards: int) -> bool:
    """Whether ``item`` belongs to shard ``shard`` (1..``shards``) of ``--shard K/N``.

    The hash is of the normalised URL (``http://example.com/``: scheme, IDNA host, port and path
    as fetchheads sends them), so every spelling of one target lands in the same shard, on every
    machine, with no seed to share. A line that is not a valid target is sharded by its text, so
    its error record, too, comes from exactly one shard. blake2b because it is in the standard
    library, fast, and stable across Python versions and platforms (``hash()`` is salted).
    """
    import hashlib  # only --shard pays for the import

    key = item.url if isinstance(item, Target) else item.target
    digest = hashlib.blake2b((key or "").encode("utf-8", "surrogateescape"), digest_size=8)
    return int.from_bytes(digest.digest(), "big") % shards == shard - 1


async def select_shard(items: AsyncIterator[Item], shard: int, shards: int) -> AsyncIterator[Item]:
    async for item in items:
        if in_shard(item, shard, shards):
            yield item


class Pacer:
    """``--rate N``: new connections evenly spaced 1/N s apart, never in bursts.

    Each caller reserves the next free slot and sleeps until it; a slot is never earlier than now,
    so an idle spell does not bank credit for a burst afterwards (a token bucket of size one).
    ``clock`` and ``sleep`` are the loop's by default; tests pass their own.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")

    async def __call__(self) -> None:
        now = self._clock() if self._clock is not None else asyncio.get_running_loop().time()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await self._sleep(slot - now)


def _open_input(path: str) -> tuple[Callable[[], bytes], Callable[[], None]]:
    """``(read, close)`` for a path, ``-`` being stdin; ``read()`` returns at most one read."""
    if path == STDIN:
        stream = sys.stdin.buffer
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # no descriptor: CliRunner's BytesIO
            return functools.partial(_read_some, stream), lambda: None
        return functools.partial(os.read, fd, READ_SIZE), lambda: None
    # Unbuffered: every read is one os.read. Closed through the returned ``close``.
    raw = open(path, "rb", buffering=0)  # noqa: SIM115
    return functools.partial(raw.read, READ_SIZE), raw.close


def _read_some(stream: Any) -> bytes:
    read1 = getattr(stream, "read1", None)
    return bytes(read1(READ_SIZE) if read1 is not None else stream.read(READ_SIZE))


@dataclasses.dataclass(slots=True)
class Intake:
    """How far ``run`` got through its input, filled in when it stops reading: after Ctrl-C,
    ``read`` less the results emitted is how many targets were not finished."""

    read: int = 0
    complete: bool = False  # every item was read


class Throttle(Protocol):
    """Backpressure from the output (``render.writer.Writer``): while ``paused``, start nothing."""

    paused: bool

    async def resumed(self) -> None: ...


async def run(
    items: AsyncIterator[Item],
    fetch: Callable[[Target], Awaitable[Result]],
    emit: Callable[[Result], None],
    *,
    concurrency: int,
    ordered: bool = False,
    intake: Intake | None = None,
    throttle: Throttle | None = None,
) -> None:
    """Fetch every target with ``concurrency`` workers; ``emit`` each result as it is ready.

    While ``throttle`` is paused a worker starts no new target: the results of those in flight
    are still emitted, and their deadlines run as if nothing were amiss."""
    feed = _Feed(concurrency * 2)
    # In input order, one slow target holds back every later result: the window bounds how many
    # may wait behind it, so memory stays flat however long the list.
    window = asyncio.Semaphore(concurrency * 4)
    reorder = _Reorder(emit, window.release)
    deliver = reorder.deliver if ordered else (lambda _seq, result: emit(result))

    async def produce() -> None:
        seq = 0
        held = 0  # an item read but waiting for room in the feed: read, and not finished
        try:
            async for item in items:
                held = 1
                if ordered:
                    await window.acquire()
                if feed.full():
                    await feed.space()
                feed.put((seq, item))
                seq += 1
                held = 0
            if intake is not None:
                intake.complete = True
        finally:
            feed.close()
            if intake is not None:
                intake.read = seq + held

    async def work() -> None:
        jobs = feed.jobs
        while True:
            if throttle is not None and throttle.paused:
                await throttle.resumed()
                continue
            if jobs:
                seq, item = jobs.popleft()
                feed.taken()
            elif feed.closed:
                return
            else:
                await feed.wait()
                continue
            deliver(seq, item if isinstance(item, Result) else await fetch(item))

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(produce())
            for _ in range(concurrency):
                group.create_task(work())
    finally:
        # Interrupted (Ctrl-C, SIGTERM): results that finished but were waiting for an earlier,
        # unfinished one are still handed on (printed, recorded), in input order, the unfinished
        # ones' places skipped. After a complete run nothing is held.
        reorder.drain()


class _Feed:
    """The bounded hand-off from the reader to the workers: a deque and two kinds of wake-up.

    Not an ``asyncio.Queue``: its ``get`` and ``put`` are coroutines with a future and a wake-up
    per item, which at thousands of targets a second cost more than the rest of the hand-off. A
    worker here takes a job with a ``popleft``; only an idle worker waits (on a future of its
    own), and the reader sleeps while the deque is full and wakes once it has drained to half.
    """

    __slots__ = ("_idle", "_limit", "_space", "closed", "jobs")

    def __init__(self, limit: int) -> None:
        self.jobs: collections.deque[tuple[int, Item]] = collections.deque()
        self.closed = False
        self._limit = limit
        self._idle: collections.deque[asyncio.Future[None]] = collections.deque()
        self._space: asyncio.Future[None] | None = None

    def full(self) -> bool:
        return len(self.jobs) >= self._limit

    def put(self, job: tuple[int, Item]) -> None:
        self.jobs.append(job)
        self._wake_one()

    def close(self) -> None:
        self.closed = True
        while self._idle:
            self._wake_one()

    def taken(self) -> None:
        space = self._space
        if space is not None and len(self.jobs) <= self._limit // 2:
            self._space = None
            if not space.done():
                space.set_result(None)

    async def space(self) -> None:
        self._space = asyncio.get_running_loop().create_future()
        await self._space

    async def wait(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        await waiter

    def _wake_one(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class _Reorder:
    """Hands results to ``emit`` in sequence order, holding early ones until their turn."""

    def __init__(self, emit: Callable[[Result], None], released: Callable[[], None]) -> None:
        self._emit = emit
        self._released = released
        self._next = 0
        self._held: dict[int, Result] = {}

    def deliver(self, seq: int, result: Result) -> None:
        if seq != self._next:
            self._held[seq] = result
            return
        self._emit(result)
        self._released()
        self._next += 1
        while self._next in self._held:
            self._emit(self._held.pop(self._next))
            self._released()
            self._next += 1

    def drain(self) -> None:
        """Hand on every held result, in sequence order, gaps and all."""
        for seq in sorted(self._held):
            self._emit(self._held.pop(seq))
