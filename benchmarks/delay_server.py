"""A loopback HTTP server that answers every request after a fixed delay: the latency-bound regime.

``python benchmarks/delay_server.py PORT DELAY PROCESSES [secure]`` forks PROCESSES processes that
all listen on 127.0.0.1:PORT (``SO_REUSEPORT``: the kernel spreads connections over them), each an
event loop (uvloop where installed) that reads a request head, waits DELAY seconds on a timer —
no thread, no task per connection — writes a small HTTP/1.0 response and closes. Thousands of
connections wait at once at little CPU cost, so the server is not what limits a client at
``-c 5000``. ``secure``: the response carries a typical set of security headers (CSP, HSTS,
cookies ...), what ``--audit`` spends its time on. Prints ``ready`` once every process listens;
ends on SIGTERM. With ``DELAY_TRACE=PATH`` each process appends, every 20 ms, its open
connections, how many it answered since the last line and how long they lived on average, to
``PATH.PID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: delay\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    b"Connection: close\r\n\r\nok\n"
)
SECURE_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.25.3\r\nContent-Type: text/html; charset=utf-8\r\n"
    b"Content-Security-Policy: default-src 'self'; script-src 'self' https://cdn.example.com; "
    b"style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'\r\n"
    b"Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n"
    b"X-Content-Type-Options: nosniff\r\nX-Frame-Options: SAMEORIGIN\r\n"
    b"Referrer-Policy: strict-origin-when-cross-origin\r\nX-Powered-By: PHP/8.2.1\r\n"
    b"Set-Cookie: sid=abc123; Path=/; Secure; HttpOnly; SameSite=Lax\r\n"
    b"Content-Length: 3\r\nConnection: close\r\n\r\nok\n"
)
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


OPEN = [0]
"""Connections this process holds open now (``DELAY_TRACE``)."""
LIVED = [0.0, 0]
"""Seconds the connections answered since the last trace line lived, and how many there were."""


class Delayed(asyncio.Protocol):
    def __init__(self, delay: float, response: bytes = RESPONSE) -> None:
        self._delay = delay
        self._response = response
        self._seen = b""
        self._transport: asyncio.WriteTransport | None = None
        self._answered = False
        self._opened = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream transport
        OPEN[0] += 1
        self._opened = time.monotonic()

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return
        self._seen = (self._seen + data)[-4:]
        if b"\r\n\r\n" in self._seen or b"\n\n" in self._seen:
            self._answered = True
            asyncio.get_running_loop().call_later(self._delay, self._answer)

    def _answer(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(self._response)
            transport.close()
            LIVED[0] += time.monotonic() - self._opened
            LIVED[1] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        OPEN[0] -= 1


def trace(path: str) -> None:
    """Every 20 ms, append ``monotonic-time open-connections`` to ``path``: how many targets a
    client keeps in flight, seen from the server (one file per process: ``path.PID``)."""
    loop = asyncio.get_running_loop()
    with open(f"{path}.{os.getpid()}", "a") as out:
        lived = LIVED[0] / LIVED[1] if LIVED[1] else 0.0
        out.write(f"{time.monotonic():.3f} {OPEN[0]} {LIVED[1]} {lived:.3f}\n")
    LIVED[:] = [0.0, 0]
    loop.call_later(0.02, trace, path)


def listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(8192)
    return sock


def serve(sock: socket.socket, delay: float, response: bytes = RESPONSE) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Delayed(delay, response), sock=sock, backlog=8192)
        if os.environ.get("DELAY_TRACE"):
            trace(os.environ["DELAY_TRACE"])
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        async with server:
            await stop

    asyncio.run(main())


def main() -> None:
    port, delay, processes = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    response = SECURE_RESPONSE if sys.argv[4:] == ["secure"] else RESPONSE
    sockets = [listening_socket(port) for _ in range(processes)]  # all bound before any accepts
    children = []
    for sock in sockets:
        pid = os.fork()
        if pid == 0:
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                serve(sock, delay, response)
            finally:
                os._exit(0)
        children.append(pid)
        sock.close()
    print("ready", flush=True)
    signal.sigwait(STOP_SIGNALS)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in children:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # taken by sigwait, not by a handler
    main()
