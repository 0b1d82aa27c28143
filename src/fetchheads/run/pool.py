"""Targets in, results out: a fixed pool of workers fed from a bounded queue.

Input is read while the first targets are already in flight, and never more than a bounded window
ahead of them, so memory does not grow with the length of the list. Results are handed to ``emit``
the moment each target finishes, or in input order with ``ordered`` (a reorder window bounded by
the queue plus the workers). A fixed pool of workers, not a task per target: a million targets
cost ``concurrency`` tasks, not a million. While the output is behind its reader (``throttle``)
no new target is started; those in flight finish as usual. At most ``STARTS_PER_TURN`` targets
(``STARTS_PER_TURN_ALONE`` in a run of one process) are started in one turn of the event loop
(``_Ramp``), so a run that opens thousands of connections at once still sends each request as
its connection is made.

Also here: ``Pacer`` (``--rate``).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from fetchheads.models import Result, Target
from fetchheads.run.inputs import Item


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


STARTS_PER_TURN = 64
"""Targets started in one turn of the event loop, at most, in a worker of ``--workers``. A turn
runs every callback that is ready before the loop looks at its sockets again: with ``-c 5000``
and a list at hand, 5,000 connects (~0.5 s of CPU) would be made before the first connection
made is seen, so each request would leave, and each connect time be measured, only after the
whole burst. 64 connects are a few milliseconds of work between two looks."""

STARTS_PER_TURN_ALONE = 16
"""The same bound in a run that keeps one process. Where the loop is busy (answers that come
back at once), 16 a turn binds: the starts that a turn's answers freed wait, and go out together
at the start of the next turn, rather than each right after its answer is written. Measured on
the 2-core machine of docs/performance.md one process took 6-9% less CPU for 10,000 loopback
targets at ``-c 100`` and ``-c 200`` (medians of 13 to 31 rounds, taken in turns; also with the
process and the server each pinned to a core of its own); against a server 200 ms away
(``-c 1000``, ``-c 5000``) within the noise; https 1.5% more. In workers, which share the cores
with one another and the supervisor, the same bound took 4% more (8 a turn: 11% more), so they
keep 64. Where the loop is idle (answers far away) a turn is short and the bound rarely bites."""


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
    starts_per_turn: int = STARTS_PER_TURN,
) -> None:
    """Fetch every target with ``concurrency`` workers; ``emit`` each result as it is ready, and
    start at most ``starts_per_turn`` in one turn of the loop.

    While ``throttle`` is paused a worker starts no new target: the results of those in flight
    are still emitted, and their deadlines run as if nothing were amiss."""
    # Asked for once: on CPython 3.11 each asyncio.get_running_loop() is a system call (getpid).
    loop = asyncio.get_running_loop()
    feed = _Feed(concurrency * 2, loop)
    # In input order, one slow target holds back every later result: the window bounds how many
    # may wait behind it, so memory stays flat however long the list.
    window = asyncio.Semaphore(concurrency * 4)
    reorder = _Reorder(emit, window.release)

    async def produce() -> None:
        jobs, limit = feed.jobs, feed.limit
        seq = 0
        held = 0  # an item read but waiting for room in the feed: read, and not finished
        try:
            async for item in items:
                held = 1
                if ordered:
                    await window.acquire()
                if len(jobs) >= limit:  # feed.full() and feed.put(), spelled out: two calls
                    await feed.space()  # fewer a target
                jobs.append((seq, item))
                if feed.idle:
                    feed.wake_one()
                seq += 1
                held = 0
            if intake is not None:
                intake.complete = True
        finally:
            feed.close()
            if intake is not None:
                intake.read = seq + held

    ramp = _Ramp(starts_per_turn, loop)

    async def work() -> None:
        jobs = feed.jobs
        while True:
            if throttle is not None and throttle.paused:
                await throttle.resumed()
                continue
            if jobs and not ramp.start():
                await ramp.turn()  # a start of the next turn is this worker's
                if not jobs or (throttle is not None and throttle.paused):
                    continue  # the output fell behind while this worker waited: start nothing
            if jobs:
                seq, item = jobs.popleft()
                if feed.reader_waits is not None:
                    feed.taken()
            elif feed.closed:
                return
            else:
                await feed.wait()
                continue
            result = item if isinstance(item, Result) else await fetch(item)
            if ordered:
                reorder.deliver(seq, result)
            else:
                emit(result)  # not through a lambda taking seq: one call fewer a target

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

    __slots__ = ("closed", "idle", "jobs", "limit", "loop", "reader_waits")

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.jobs: collections.deque[tuple[int, Item]] = collections.deque()
        self.closed = False
        self.limit = limit
        self.idle: collections.deque[asyncio.Future[None]] = collections.deque()
        # Set while the reader waits for room (``space``); a worker that takes a job calls
        # ``taken`` only then.
        self.reader_waits: asyncio.Future[None] | None = None

    def close(self) -> None:
        self.closed = True
        while self.idle:
            self.wake_one()

    def taken(self) -> None:
        space = self.reader_waits
        if space is not None and len(self.jobs) <= self.limit // 2:
            self.reader_waits = None
            if not space.done():
                space.set_result(None)

    async def space(self) -> None:
        self.reader_waits = self.loop.create_future()
        await self.reader_waits

    async def wait(self) -> None:
        waiter: asyncio.Future[None] = self.loop.create_future()
        self.idle.append(waiter)
        await waiter

    def wake_one(self) -> None:
        while self.idle:
            waiter = self.idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class _Ramp:
    """At most ``per_turn`` starts in one turn of the event loop; the others wait, in order, for
    the next turns. ``start`` is the fast path (a count); only a start over the limit waits on a
    future of its own, released ``per_turn`` at a time by a callback once a turn."""

    __slots__ = ("_armed", "_left", "_loop", "_per_turn", "_waiting")

    def __init__(self, per_turn: int, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._per_turn = per_turn
        self._left = per_turn
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._armed = False  # a _next_turn callback is scheduled

    def start(self) -> bool:
        """Whether one more start fits in this turn (and count it); if not, ``await turn()``."""
        if self._left and not self._waiting:
            self._left -= 1
            if not self._armed:  # _arm(), spelled out: most starts find it armed, with no call
                self._arm()
            return True
        return False

    async def turn(self) -> None:
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiting.append(waiter)
        self._arm()
        await waiter

    def _arm(self) -> None:
        if not self._armed:
            self._armed = True
            self._loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        # Run at the start of the next turn, after the loop has looked at its sockets: the
        # waiters released now each take one of this turn's starts (they run in the turn after).
        self._armed = False
        self._left = self._per_turn
        waiting = self._waiting
        while waiting and self._left:
            waiter = waiting.popleft()
            if not waiter.done():  # not cancelled
                waiter.set_result(None)
                self._left -= 1
        if waiting or self._left < self._per_turn:
            self._arm()


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
