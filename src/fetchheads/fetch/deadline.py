"""Per-target deadlines that share one timer of the event loop.

``asyncio.timeout``, or a ``loop.call_at`` per target, arms a timer of the loop for every target and
disarms it when the target ends in time, as nearly all do. In uvloop each of those timers is a libuv
timer handle, allocated, started, stopped and closed again: ~1.4 µs a target measured alone, and
~5 µs of user CPU a target in a whole run (10,000 loopback targets, -c 100). Here the deadlines of a
run are entries in one heap, ordered by when they expire, and one timer is armed for the earliest.
A deadline whose target ends in time is only marked; the timer drops marked entries when it comes
round, and ``start`` drops them all once they outnumber the live ones, so the heap stays within a
small multiple of the targets in flight however long the run.

Each deadline behaves as ``asyncio.timeout`` does for its task: when it expires it cancels the
task, and ``timed_out()`` tells that cancellation from one that came from outside (Ctrl-C, SIGTERM)
and un-counts it. A target's deadline is its ``FetchState`` (a ``Deadline``), so starting one
builds no object of its own (~1,900 instructions a target, by callgrind).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import sys
from collections.abc import Callable

COMPACT_SLACK = 64
"""Ended entries tolerated in the heap beyond as many as there are live ones."""


class Deadlines:
    """The deadlines of one event loop. Create it inside the loop; ``start`` one per attempt."""

    __slots__ = ("_current_task", "_heap", "_live", "_order", "_timer", "_timer_at", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._current_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[object] | None]
        self._current_task = asyncio.current_task  # in C from 3.12
        if sys.version_info < (3, 12):
            # 3.11's current_task(loop) is a Python function around this dict's get (~780
            # instructions a call, by callgrind); the dict is _asyncio's, which keeps it.
            tasks = getattr(asyncio.tasks, "_current_tasks", None)
            if tasks is not None:
                self._current_task = tasks.get
        # (when, order of arrival, deadline): the order breaks ties without comparing deadlines.
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._live = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def start(self, delay: float, deadline: Deadline | None = None) -> Deadline:
        """A deadline ``delay`` seconds from now for the current task: ``deadline`` (an entry
        never started before, such as a new ``FetchState``: an ended one may still be in the
        heap) or a new one. The caller catches ``CancelledError``, asks ``timed_out()``, and
        calls ``cancel()`` in a ``finally``."""
        loop = self.loop
        task = self._current_task(loop)
        assert task is not None
        if deadline is None:
            deadline = Deadline()
        deadline._owner = self
        deadline.task = task
        deadline._cancelling = task.cancelling()
        deadline.expired = False
        when = loop.time() + delay
        heap = self._heap
        if len(heap) > 2 * self._live + COMPACT_SLACK:
            heap[:] = [entry for entry in heap if entry[2].task is not None]
            heapq.heapify(heap)
        heapq.heappush(heap, (when, next(self._order), deadline))
        self._live += 1
        if when < self._timer_at:
            self._arm(when)
        return deadline

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(when, self._fire)
        self._timer_at = when

    def _idle(self) -> None:
        if self._timer is not None:
            # Nothing left to watch (the end of a run, or a pause in it): no timer left behind.
            self._timer.cancel()
            self._timer = None
            self._timer_at = math.inf
            self._heap.clear()

    def _fire(self) -> None:
        # Everything due by the time this timer was armed for has expired, as it would have with
        # a timer of its own (the loop may call a timer a little before its time: asyncio allows
        # for its clock's resolution, uvloop counts in whole milliseconds).
        due = max(self._timer_at, self.loop.time())
        self._timer = None
        self._timer_at = math.inf
        heap = self._heap
        while heap:
            when, _, deadline = heap[0]
            if deadline.task is not None:
                if when > due:
                    self._arm(when)
                    return
                deadline.expire()
            heapq.heappop(heap)


class Deadline:
    """One task's deadline in a ``Deadlines``: ``timed_out()`` on ``CancelledError``, ``cancel()``
    when the task is done with it (always, in a ``finally``). Its fields are set by
    ``Deadlines.start``; a subclass (``FetchState``) is an entry that costs no object of its own.
    """

    __slots__ = ("_cancelling", "_owner", "expired", "task")

    _owner: Deadlines
    task: asyncio.Task[object] | None  # None once it has ended, either way
    _cancelling: int
    expired: bool

    def expire(self) -> None:
        task = self.task
        assert task is not None
        self.expired = True
        task.cancel()

    def timed_out(self) -> bool:
        """On ``CancelledError``: whether it came from this deadline (and only from it)."""
        task = self.task
        return self.expired and task is not None and task.uncancel() <= self._cancelling

    def cancel(self) -> None:
        if self.task is not None:
            self.task = None
            owner = self._owner
            owner._live -= 1  # one call fewer a target than a method of the owner's doing it
            if not owner._live:
                owner._idle()
