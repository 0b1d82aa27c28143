"""A loopback DNS server for resolver tests and the DNS benchmark (dnslib for the wire format).

It binds 127.0.0.1 port 0 (UDP) and answers every name under ``zone``: A queries with ``ipv4``,
AAAA queries with ``ipv6`` (or no data when it is ``None``), after ``delay`` seconds — a slow
resolver, answering many queries at once as a real one does. Names outside the zone are NXDOMAIN.
``queries`` counts what was asked, as ``(name, type)`` pairs.

Use ``async with DNSServer(...)`` inside a test's loop, or ``ThreadedDNSServer`` (its own loop in
a daemon thread) for the CLI and the benchmarks.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import threading
import typing
from concurrent.futures import Future

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self._server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = DNSRecord.parse(data)
        except Exception:  # a malformed query: a real server would drop it too
            return
        reply = self._server.answer(request)
        loop = asyncio.get_running_loop()
        loop.call_later(self._server.delay, self._send, reply.pack(), addr)

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)


class DNSServer:
    def __init__(
        self,
        zone: str = "test.",
        *,
        ipv4: str = "127.0.0.1",
        ipv6: str | None = None,
        delay: float = 0.0,
    ) -> None:
        self.zone = zone if zone.endswith(".") else zone + "."
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.delay = delay
        self.queries: collections.Counter[tuple[str, str]] = collections.Counter()
        self._transport: asyncio.DatagramTransport | None = None

    @property
    def port(self) -> int:
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as ``--dns-servers`` takes it."""
        return f"127.0.0.1:{self.port}"

    def answer(self, request: DNSRecord) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        self.queries[(name.rstrip("."), qtype)] += 1
        if not (name == self.zone or name.endswith("." + self.zone)):
            reply.header.rcode = RCODE.NXDOMAIN
        elif qtype == "A":
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(self.ipv4), ttl=60))
        elif qtype == "AAAA" and self.ipv6 is not None:
            reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA(self.ipv6), ttl=60))
        return reply

    async def __aenter__(self) -> DNSServer:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        sock = transport.get_extra_info("socket")
        # A burst of queries must not overflow the default ~200 KiB receive buffer (a few hundred
        # datagrams): a dropped query is a client timeout, which would measure the kernel.
        for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            if option is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, 8 * 1024 * 1024)
                    break
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()
            await asyncio.sleep(0)  # let the transport finish closing in this loop


class ThreadedDNSServer:
    """A ``DNSServer`` on its own event loop in a daemon thread; ``stop()`` in ``finally``."""

    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> ThreadedDNSServer:
        self._thread.start()
        started: Future[DNSServer] = asyncio.run_coroutine_threadsafe(
            self.server.__aenter__(), self._loop
        )
        started.result(timeout=10)
        return self

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.server.__aexit__(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


def main() -> None:
    """``python -m tests.support.dns ZONE DELAY``: serve until killed; prints the port first."""
    import sys

    zone, delay = sys.argv[1], float(sys.argv[2])

    async def serve() -> None:
        async with DNSServer(zone, delay=delay) as server:
            print(server.port, flush=True)
            await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
