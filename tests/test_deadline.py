"""Deadlines sharing one timer: each still cancels its own task at its own time, and only then."""

from __future__ import annotations

import asyncio

import pytest

from fetchheads.fetch.deadline import COMPACT_SLACK, Deadline, Deadlines


async def _wait(deadlines: Deadlines, delay: float, work: float) -> tuple[bool, float]:
    """Sleep ``work`` s under a deadline of ``delay`` s: (timed out?, when it ended)."""
    loop = asyncio.get_running_loop()
    deadline = deadlines.start(delay)
    try:
        await asyncio.sleep(work)
    except asyncio.CancelledError:
        if not deadline.timed_out():
            raise
        return True, loop.time()
    finally:
        deadline.cancel()
    return False, loop.time()


async def test_each_deadline_expires_at_its_own_time_whatever_the_order_they_were_set() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    start = loop.time()
    # A long deadline first, then shorter ones: the shared timer must come round for each.
    delays = [0.4, 0.1, 0.3, 0.05, 0.2]
    outcomes = await asyncio.gather(*(_wait(deadlines, delay, 5.0) for delay in delays))
    for delay, (timed_out, ended) in zip(delays, outcomes, strict=True):
        assert timed_out
        assert ended - start >= delay - 0.002  # never early (beyond the clock's resolution)
    ends = [ended for _, ended in outcomes]
    assert sorted(ends) == [ends[i] for i in (3, 1, 4, 2, 0)]  # in the order of their delays


async def test_work_that_ends_in_time_is_never_cancelled() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    outcomes = await asyncio.gather(*(_wait(deadlines, 0.2, 0.01 * (i % 5)) for i in range(50)))
    assert not any(timed_out for timed_out, _ in outcomes)
    await asyncio.sleep(0.3)  # past every deadline: nothing fires late into someone else's work


async def test_a_cancellation_from_outside_is_not_taken_for_the_deadline() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    task = asyncio.create_task(_wait(deadlines, 5.0, 5.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_ended_deadlines_do_not_pile_up_behind_a_long_one() -> None:
    # One slow target holds the earliest deadline; thousands finish behind it. The heap must not
    # keep them all (memory stays flat however long the run).
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    slow = asyncio.create_task(_wait(deadlines, 5.0, 5.0))
    await asyncio.sleep(0)
    for _ in range(10_000):
        await _wait(deadlines, 5.0, 0)
    assert len(deadlines._heap) <= 2 * 2 + COMPACT_SLACK + 1
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert deadlines._timer is None  # nothing left to watch: no timer left armed


async def test_a_deadline_that_fired_is_uncounted_from_its_task() -> None:
    # As asyncio.timeout does: once the timeout is handled, the task's cancellation count is back
    # where it was, so the next attempt (a retry) and any asyncio.timeout after it start clean.
    deadlines = Deadlines(asyncio.get_running_loop())
    task = asyncio.current_task()
    assert task is not None
    for _ in range(2):
        timed_out, _ = await _wait(deadlines, 0.01, 5.0)
        assert timed_out
        assert task.cancelling() == 0


async def test_an_outside_cancellation_in_the_same_pass_as_the_deadline_wins() -> None:
    # The shared timer fires the deadline, and Ctrl-C cancels the task before it runs again: the
    # task must end cancelled, not carry on as if only its deadline had passed.
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    started: asyncio.Future[Deadline] = loop.create_future()

    async def work() -> str:
        deadline = deadlines.start(5.0)
        started.set_result(deadline)
        try:
            await asyncio.sleep(5.0)
        except asyncio.CancelledError:
            if not deadline.timed_out():
                raise
            return "timed out"
        finally:
            deadline.cancel()
        return "finished"

    task = asyncio.create_task(work())
    deadline = await started
    deadline.expire()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
