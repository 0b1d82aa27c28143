"""The floor: the least a Python client on uvloop can do per target, for the latency regime.

``python benchmarks/peer_floor.py URLS C``: C coroutines take the URLs (``http://IP:PORT/PATH``)
in turn; each connects with a bare ``asyncio.Protocol`` that writes its request the moment the
connection is made, waits for the blank line ending the head, and aborts. No validation, no
deadline, no parsing, no record: the heads are printed at the end. The coroutines are started
``STARTS_PER_TURN`` to a turn of the loop, as each worker of fetchheads starts its targets (a
run of one process starts 16): started all in one turn, none of their connections would be
seen (their requests sent) until the last connect.
Whatever time this needs above the ideal (start-up plus ceil(N / C) x delay) is the machine's
and the server's, not a client's: it is the
reference against which fetchheads' own distance from the ideal is read.

``python benchmarks/peer_floor.py URLS C PROCESSES`` deals the list out over that many processes
(``floor-2`` in the benchmark, beside fetchheads' two workers), C coroutines split among them as
fetchheads splits ``-c`` among its workers.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from collections.abc import Awaitable, Callable

import uvloop

STARTS_PER_TURN = 64


class Head(asyncio.Protocol):
    def __init__(self, done: asyncio.Future[bytes], request: bytes) -> None:
        self._done = done
        self._request = request
        self._seen = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream transport
        self._transport.write(self._request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self._seen += data
        if b"\r\n\r\n" in self._seen and not self._done.done():
            self._done.set_result(self._seen.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
            assert self._transport is not None
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_result(b"")


async def run_workers(work: Callable[[], Awaitable[None]], concurrency: int) -> None:
    """``concurrency`` coroutines of ``work``, started ``STARTS_PER_TURN`` to a turn."""
    workers = []
    for n in range(concurrency):
        workers.append(asyncio.ensure_future(work()))
        if n % STARTS_PER_TURN == STARTS_PER_TURN - 1:
            await asyncio.sleep(0)  # the loop looks at its sockets before the next batch
    await asyncio.gather(*workers)


def read_urls(path: str) -> list[str]:
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


async def main(urls: list[str], concurrency: int) -> None:
    loop = asyncio.get_running_loop()
    pending = iter(urls)
    heads: list[bytes] = []

    async def work() -> None:
        for url in pending:
            authority, _, path = url.removeprefix("http://").partition("/")
            host, _, port = authority.rpartition(":")
            request = f"GET /{path} HTTP/1.0\r\nHost: {authority}\r\n\r\n".encode()
            done: asyncio.Future[bytes] = loop.create_future()
            try:
                protocol = Head(done, request)
                await loop.create_connection(lambda: protocol, host, int(port))  # noqa: B023
            except OSError:
                continue
            heads.append(await done)

    await run_workers(work, concurrency)
    sys.stdout.buffer.write(b"".join(heads))


def run_processes(urls: list[str], concurrency: int, processes: int) -> int:
    """The list dealt out over ``processes`` processes (forked once it is read, as fetchheads
    forks its workers after start-up), the concurrency split as fetchheads splits ``-c`` (the
    first take one more where it does not divide): the floor for a client of that many
    processes. Dealt out in advance, not handed out as targets finish, as fetchheads'
    supervisor does: that costs the floor nothing. The exit status: 1 if any process failed."""
    processes = max(1, min(processes, concurrency))  # every process has a connection
    base, extra = divmod(concurrency, processes)
    children = []
    for k in range(1, processes):
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                uvloop.run(main(urls[k::processes], base + (k < extra)))
                sys.stdout.buffer.flush()
                status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(status)
        children.append(pid)
    try:
        uvloop.run(main(urls[0::processes], base + (extra > 0)))
    finally:  # the others are waited for, also when this one failed
        failed = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    return 1 if any(failed) else 0


if __name__ == "__main__":
    # URLS C [PROCESSES]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    sys.exit(run_processes(read_urls(sys.argv[1]), int(sys.argv[2]), count))
