"""The floor client doing fetchheads' own per-target work: where one process's gap to curl lies.

``python benchmarks/peer_floor_work.py URLS C``: the bare uvloop client of ``peer_floor.py``
(a worker coroutine per slot, a protocol that writes its request the moment it connects), but each
target goes through fetchheads' pure steps as a run does them: ``parse_target``, the head parsed by
``HeadParser``, the result built with ``build_result``/``build_timing`` and a ``fetched_at``, and
the JSON Lines record written by ``format_jsonl`` to stdout in batches. What it leaves out is
fetchheads' orchestration: the run's pool and its back-pressure, the per-target deadline, the
error paths and their wording, the summary and the sinks. Read beside ``fetchheads --workers 1``
and curl on the same list (docs/performance.md): the distance from curl to this script is what
fetchheads' pure work costs in Python; the distance from this script to fetchheads is the rest.
It handles only plain-http URLs with an IP literal, and does not time out: a tool for loopback.
"""

from __future__ import annotations

import asyncio
import sys
import time

import uvloop
from peer_floor import read_urls, run_workers  # this script's neighbour: the bare client

from fetchheads.http.parse import HeadParser
from fetchheads.models import ResponseHead, build_result, build_timing, utc_now
from fetchheads.render.jsonl import format_jsonl
from fetchheads.targets import parse_target


class Head(asyncio.Protocol):
    def __init__(self, done: asyncio.Future[ResponseHead | None], request: bytes) -> None:
        self._done = done
        self._request = request
        self.parser = HeadParser()
        self.first_byte_at = 0.0
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream transport
        self._transport.write(self._request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        if not self.first_byte_at:
            self.first_byte_at = time.perf_counter()
        head = self.parser.feed(data)
        if head is not None and not self._done.done():
            self._done.set_result(head)
            assert self._transport is not None
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_result(None)


async def main(lines: list[str], concurrency: int) -> None:
    loop = asyncio.get_running_loop()
    pending = iter(lines)
    out: list[bytes] = []

    async def work() -> None:
        for line in pending:
            target = parse_target(line)
            start = time.perf_counter()
            fetched_at = utc_now()
            authority = target.authority
            request = f"GET {target.path} HTTP/1.0\r\nHost: {authority}\r\n\r\n".encode()
            done: asyncio.Future[ResponseHead | None] = loop.create_future()
            protocol = Head(done, request)
            await loop.create_connection(lambda: protocol, target.host, target.port)  # noqa: B023
            connected = time.perf_counter() - start
            head = await done
            total = time.perf_counter() - start
            timing = build_timing(None, connected, None, protocol.first_byte_at - start, total)
            result = build_result(
                target.text, target.url_at(authority), head, None, target.host, timing, None,
                (), fetched_at,
            )  # fmt: skip
            out.append(format_jsonl(result).encode())
            if len(out) >= 256:
                sys.stdout.buffer.write(b"".join(out))
                out.clear()

    await run_workers(work, concurrency)
    sys.stdout.buffer.write(b"".join(out))


if __name__ == "__main__":
    uvloop.run(main(read_urls(sys.argv[1]), int(sys.argv[2])))
