"""The runner and the politeness options: --rate, --retries, --shard, and memory that stays flat
however long the list (the input-order window)."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fetchheads.cli import cli
from fetchheads.config import Config
from fetchheads.errors import ErrorKind
from fetchheads.fetch.one import fetch_one, retry_delay
from fetchheads.models import Result, Target
from fetchheads.run import single
from fetchheads.run.inputs import Item, in_shard
from fetchheads.run.plan import RunPlan
from fetchheads.run.pool import STARTS_PER_TURN, STARTS_PER_TURN_ALONE, Pacer, run
from fetchheads.run.supervisor import multiprocess
from fetchheads.targets import parse_target
from tests.conftest import make_context
from tests.support.servers import (
    Handler,
    LoopbackServer,
    ThreadedServer,
    reply,
    reset,
    silent,
)

HEAD = b"HTTP/1.1 200 OK\r\nServer: scripted\r\n\r\n"

# --- --rate ----------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 9))


async def test_rate_spaces_connections_evenly_instead_of_in_bursts() -> None:
    clock = FakeClock()
    pace = Pacer(10, clock=clock, sleep=clock.sleep)
    for _ in range(5):  # five connections wanted at the same instant
        await pace()
    # The first goes at once, each next one 0.1 s after the previous: 0, 0.1, 0.2, 0.3, 0.4.
    assert clock.sleeps == [0.1, 0.2, 0.3, 0.4]


async def test_rate_does_not_bank_idle_time_for_a_burst_later() -> None:
    clock = FakeClock()
    pace = Pacer(10, clock=clock, sleep=clock.sleep)
    await pace()
    clock.now = 60.0  # a minute with nothing to do
    await pace()
    await pace()
    await pace()
    assert clock.sleeps == [0.1, 0.2]  # still 10/s, not a burst of 600


def test_waiting_for_a_rate_turn_is_not_charged_to_the_timeout(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    # 8 targets at --rate 10 take ~0.7 s to start; with -t 0.3 the later ones used to time out
    # "(waiting for --rate)" although the server answers at once.
    server = threaded_server(reply(HEAD))
    targets = [f"127.0.0.1:{server.port}/?{n}" for n in range(8)]
    result = CliRunner().invoke(cli, ["--json", "-q", "--rate", "10", "-t", "0.3", *targets])
    records = [json.loads(line) for line in result.output.splitlines()]
    assert [r["error"] for r in records] == [None] * 8
    assert result.exit_code == 0
    # Nor is the wait in the timings: each connect is a loopback connect, not a turn in line.
    assert all(r["timing"]["connect"] < 0.09 for r in records)


def test_rate_must_be_positive() -> None:
    result = CliRunner().invoke(cli, ["--rate", "0", "127.0.0.1"])
    assert result.exit_code == 2
    assert "must be a finite number greater than 0" in result.output


# --- --retries -------------------------------------------------------------------------------------


def fail_first(times: int, failure: Handler, then: Handler) -> tuple[Handler, list[int]]:
    """A handler that behaves as ``failure`` for the first ``times`` connections, then ``then``."""
    seen = [0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen[0] += 1
        await (failure if seen[0] <= times else then)(reader, writer)

    return handler, seen


async def test_a_connection_reset_is_retried_and_the_retry_answers() -> None:
    handler, seen = fail_first(1, reset(), reply(HEAD))
    async with LoopbackServer(handler) as server:
        target = parse_target(f"127.0.0.1:{server.port}")
        result = await fetch_one(target, make_context(Config(timeout=5, retries=3)))
    assert result.ok, result.error
    assert seen[0] == 2  # the success ends the retries: two of the three allowed are left


async def test_a_failure_after_retries_says_how_many_attempts_it_took() -> None:
    handler, seen = fail_first(99, reset(), reply(HEAD))
    async with LoopbackServer(handler) as server:
        target = parse_target(f"127.0.0.1:{server.port}")
        result = await fetch_one(target, make_context(Config(timeout=5, retries=2)))
    assert result.error is not None
    assert result.error.kind == ErrorKind.CONNECT
    assert result.error.message.endswith(" (after 3 attempts)"), result.error.message
    assert seen[0] == 3


async def test_without_retries_the_reset_is_the_result() -> None:
    handler, seen = fail_first(1, reset(), reply(HEAD))
    async with LoopbackServer(handler) as server:
        target = parse_target(f"127.0.0.1:{server.port}")
        result = await fetch_one(target, make_context(Config(timeout=5)))
    assert result.error is not None
    assert result.error.kind == ErrorKind.CONNECT
    assert seen[0] == 1


async def test_a_timeout_is_retried_with_a_fresh_deadline() -> None:
    handler, seen = fail_first(1, silent(), reply(HEAD))
    async with LoopbackServer(handler) as server:
        target = parse_target(f"127.0.0.1:{server.port}")
        result = await fetch_one(target, make_context(Config(timeout=0.3, retries=1)))
    assert result.ok, result.error
    assert seen[0] == 2


async def test_an_answer_is_never_retried_even_a_broken_one() -> None:
    handler, seen = fail_first(1, reply(b"SSH-2.0-OpenSSH_9.6\r\n"), reply(HEAD))
    async with LoopbackServer(handler) as server:
        target = parse_target(f"127.0.0.1:{server.port}")
        result = await fetch_one(target, make_context(Config(timeout=5, retries=3)))
    assert result.error is not None
    assert result.error.kind == ErrorKind.PROTOCOL
    assert seen[0] == 1


async def test_an_http_error_status_is_an_answer_and_not_retried() -> None:
    handler, seen = fail_first(1, reply(b"HTTP/1.1 503 Busy\r\n\r\n"), reply(HEAD))
    async with LoopbackServer(handler) as server:
        target = parse_target(f"127.0.0.1:{server.port}")
        result = await fetch_one(target, make_context(Config(timeout=5, retries=3)))
    assert result.head is not None
    assert result.head.status == 503
    assert seen[0] == 1


def test_retry_backoff_grows_and_is_jittered() -> None:
    first = [retry_delay(0) for _ in range(200)]
    third = [retry_delay(2) for _ in range(200)]
    assert all(0.1 <= d <= 0.2 for d in first)
    assert all(0.4 <= d <= 0.8 for d in third)
    assert len(set(first)) > 100  # jitter: targets failing together do not retry together
    assert max(retry_delay(30) for _ in range(50)) <= 5.0


# --- --shard ---------------------------------------------------------------------------------------


def test_shards_are_disjoint_and_together_are_the_whole_list() -> None:
    items: list[Item] = [parse_target(f"host{i}.example:{8000 + i % 7}/p{i}") for i in range(3000)]
    for shards in (1, 2, 3, 8):
        owners = [
            [k for k in range(1, shards + 1) if in_shard(item, k, shards, default_scheme="http")]
            for item in items
        ]
        assert all(len(owner) == 1 for owner in owners)  # each target in exactly one shard
        sizes = [sum(owner == [k] for owner in owners) for k in range(1, shards + 1)]
        assert min(sizes) > len(items) / shards * 0.8  # and the shards are even


def test_a_target_lands_in_the_same_shard_however_it_is_spelled() -> None:
    spellings = ["Example.COM", "http://example.com/", "example.com:80", "HTTP://example.com.:80/"]
    for shards in (2, 5, 16):
        homes = {
            next(
                k
                for k in range(1, shards + 1)
                if in_shard(parse_target(text), k, shards, default_scheme="http")
            )
            for text in spellings
        }
        assert len(homes) == 1


def test_shards_do_not_depend_on_a_seed_or_the_python_version() -> None:
    # Pinned: machines running different versions must agree, so the hash may never change. It is
    # blake2b-64 of the normalised URL, big-endian, modulo N, plus one:
    digest = hashlib.blake2b(b"https://www.example.com/", digest_size=8).digest()
    assert int.from_bytes(digest, "big") % 7 + 1 == 3
    target = parse_target("HTTPS://WWW.example.com:443")
    assert [k for k in range(1, 8) if in_shard(target, k, 7, default_scheme="http")] == [3]


def test_cli_shards_concatenate_to_the_unsharded_run(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    server = threaded_server(reply(HEAD))
    targets = [f"http://127.0.0.1:{server.port}/item{i}" for i in range(40)] + ["bad host"]

    def urls(*extra: str) -> list[str]:
        result = CliRunner().invoke(cli, ["--json", *extra, *targets])
        assert result.exit_code in (0, 1), result.output
        return [json.loads(line)["target"] for line in result.output.splitlines()]

    whole = urls()
    parts = [urls("--shard", f"{k}/3") for k in (1, 2, 3)]
    assert sorted(whole) == sorted(url for part in parts for url in part)
    assert all(parts)  # each machine got some of the work


@pytest.mark.parametrize("bad", ["0/3", "4/3", "1", "a/b", "1/0", "\u00b2/3", "1/\u00b2"])
def test_a_bad_shard_is_a_usage_error(bad: str) -> None:
    result = CliRunner().invoke(cli, ["--shard", bad, "127.0.0.1"])
    assert result.exit_code == 2
    assert "--shard" in result.output


# --- thousands at once ----------------------------------------------------------------------------


@pytest.mark.parametrize("per_turn", [STARTS_PER_TURN, STARTS_PER_TURN_ALONE])
async def test_a_burst_of_targets_sends_the_first_request_before_the_last_is_started(
    per_turn: int,
) -> None:
    """At -c 1000 a list at hand would start every target in one turn of the loop, and no
    connection made would be seen (its request sent, its connect time taken) until all were
    started: on a busy client that is most of a second charged to every target's timings."""
    turn = 0
    started: list[int] = []
    sent: list[int] = []

    def count_turns() -> None:
        nonlocal turn
        turn += 1
        if len(sent) < 1000:
            asyncio.get_running_loop().call_soon(count_turns)

    async def items() -> AsyncIterator[Item]:
        for i in range(1000):
            yield Target(text=f"t{i}", scheme="http", host="127.0.0.1", port=80)

    async def fetch(target: Target) -> Result:
        started.append(turn)
        await asyncio.sleep(0)  # the connection is made a turn later: the request goes
        sent.append(turn)
        return Result(target=target.text, url=target.url)

    count_turns()
    await run(items(), fetch, lambda _result: None, concurrency=1000, starts_per_turn=per_turn)
    assert len(started) == len(sent) == 1000
    assert min(sent) < max(started)  # the first request left before the last target started
    assert max(started.count(t) for t in set(started)) == per_turn


def test_one_process_starts_fewer_a_turn_than_a_worker(
    threaded_server: Callable[..., ThreadedServer],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A run of one process starts at most STARTS_PER_TURN_ALONE targets a turn (less CPU where
    answers come back at once); each worker of --workers keeps STARTS_PER_TURN (its cores are
    shared). Every target is still fetched either way."""
    server = threaded_server(reply(HEAD))
    bounds: list[int] = []
    real_run = run

    async def spy(*args: Any, starts_per_turn: int, **kwargs: Any) -> None:
        bounds.append(starts_per_turn)
        await real_run(*args, starts_per_turn=starts_per_turn, **kwargs)

    monkeypatch.setattr(single, "run", spy)
    targets = [f"127.0.0.1:{server.port}/?{i}" for i in range(40)]
    result = CliRunner().invoke(cli, ["--json", "-q", "--workers", "1", "-c", "40", *targets])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 40
    assert bounds == [STARTS_PER_TURN_ALONE]
    assert STARTS_PER_TURN_ALONE < STARTS_PER_TURN

    # The plan a worker would execute (not forked here: the fork is refused, as by a full
    # process table) keeps STARTS_PER_TURN.
    handed: list[RunPlan] = []

    def no_fork(plan: RunPlan, siblings: list[object]) -> object:
        handed.append(plan)
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(multiprocess, "fork_worker", no_fork)
    out = tmp_path / "out.jsonl"  # workers need real descriptors: a file, not CliRunner's
    args = ["--json", "-q", "--workers", "2", "-c", "40", "-o", str(out), *targets]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "cannot start worker 1 of 2" in result.output
    assert [single.starts_per_turn(plan) for plan in handed] == [STARTS_PER_TURN]


@pytest.mark.parametrize("output_format", ["csv", "tsv", "table"])
def test_a_run_whose_workers_cannot_start_writes_no_header_row(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, output_format: str
) -> None:
    """fork() refused: the run never began, so -o FILE is closed empty, with no header row that
    a cron job appending the output would find in the middle of its file."""

    def no_fork(plan: RunPlan, siblings: list[object]) -> object:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(multiprocess, "fork_worker", no_fork)
    out = tmp_path / f"out.{output_format}"
    args = ["--format", output_format, "--fields", "target,status", "--workers", "2"]
    result = CliRunner().invoke(cli, [*args, "-o", str(out), "127.0.0.1:1", "127.0.0.1:2"])
    assert result.exit_code == 1
    assert "cannot start worker 1 of 2" in result.output
    assert out.read_bytes() == b""


class Gate:
    """The output's ``throttle``: paused until ``resume``."""

    def __init__(self) -> None:
        self.paused = False
        self._open = asyncio.Event()

    def pause(self) -> None:
        self.paused = True
        self._open.clear()

    def resume(self) -> None:
        self.paused = False
        self._open.set()

    async def resumed(self) -> None:
        await self._open.wait()


async def test_output_paused_while_a_burst_waits_for_its_turn_starts_nothing_more() -> None:
    """The reader stops reading while most of a -c 300 burst still waits for its turn to start:
    no target is started until it reads again (they would only add to the backlog)."""
    gate = Gate()
    started = 0
    while_paused = 0

    async def items() -> AsyncIterator[Item]:
        for i in range(300):
            yield Target(text=f"t{i}", scheme="http", host="127.0.0.1", port=80)

    async def fetch(target: Target) -> Result:
        nonlocal started, while_paused
        started += 1
        while_paused += gate.paused
        await asyncio.sleep(0)
        if not gate.paused and started < 300:
            gate.pause()  # the first results fill the reader's pipe
            asyncio.get_running_loop().call_later(0.05, gate.resume)
        return Result(target=target.text, url=target.url)

    await run(items(), fetch, lambda _result: None, concurrency=300, throttle=gate)
    assert started == 300
    assert while_paused == 0


def test_a_run_asks_for_its_event_loop_a_fixed_number_of_times_not_once_a_target(
    threaded_server: Callable[..., ThreadedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On CPython 3.11 every asyncio.get_running_loop() is a system call (getpid, to notice a
    fork): asked for at each target, it was ~1.3 system calls a target the bare client has not.
    -c 1: every target is a turn of the loop of its own, so nothing is shared between them."""
    server = threaded_server(reply(HEAD))
    real = asyncio.get_running_loop
    main = threading.main_thread()
    asked = 0

    def counted() -> asyncio.AbstractEventLoop:
        nonlocal asked
        asked += threading.current_thread() is main  # not the server's own thread
        return real()

    monkeypatch.setattr(asyncio, "get_running_loop", counted)

    def asks(n: int) -> int:
        nonlocal asked
        asked = 0
        targets = [f"127.0.0.1:{server.port}/?{i}" for i in range(n)]
        result = CliRunner().invoke(cli, ["--json", "-q", "--workers", "1", "-c", "1", *targets])
        assert result.exit_code == 0, result.output
        assert len(result.output.splitlines()) == n
        return asked

    assert asks(30) == asks(5)


# --- bounded memory --------------------------------------------------------------------------------


async def test_input_order_reads_a_bounded_window_ahead_of_a_slow_target() -> None:
    """One slow target at the front must not make the runner read (and hold) the whole list."""
    read = 0
    release = asyncio.Event()
    emitted: list[str] = []

    async def items() -> AsyncIterator[Item]:
        nonlocal read
        for i in range(100_000):
            read += 1
            yield Target(text=f"t{i}", scheme="http", host="127.0.0.1", port=80)

    async def fetch(target: Target) -> Result:
        if target.text == "t0":
            await release.wait()
        return Result(target=target.text, url=target.url)

    runner = asyncio.create_task(
        run(items(), fetch, lambda r: emitted.append(r.target), concurrency=10, ordered=True)
    )
    previous = -1
    while read != previous:  # until the producer is blocked on the window
        previous = read
        for _ in range(50):
            await asyncio.sleep(0)
    assert read <= 10 * 6 + 1  # the window (4x) plus the queue (2x) and the slow one
    assert emitted == []  # nothing may overtake t0
    release.set()
    await runner
    assert read == 100_000
    assert emitted[:3] == ["t0", "t1", "t2"]
    assert emitted == [f"t{i}" for i in range(100_000)]


async def test_completion_order_reads_a_bounded_window_too() -> None:
    read = 0
    release = asyncio.Event()

    async def items() -> AsyncIterator[Item]:
        nonlocal read
        for i in range(10_000):
            read += 1
            yield Target(text=f"t{i}", scheme="http", host="127.0.0.1", port=80)

    async def fetch(target: Target) -> Result:
        await release.wait()
        return Result(target=target.text, url=target.url)

    count = 0

    def emit(result: Result) -> None:
        nonlocal count
        count += 1

    runner = asyncio.create_task(run(items(), fetch, emit, concurrency=10))
    for _ in range(500):
        await asyncio.sleep(0)
    assert read <= 10 * 3 + 1  # the workers and the queue, not the list
    release.set()
    await runner
    assert count == 10_000
