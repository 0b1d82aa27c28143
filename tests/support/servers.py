"""Scripted loopback servers for fetch and CLI tests.

Every server binds 127.0.0.1 port 0 (never anything beyond loopback). A *handler* is an async
function ``handler(reader, writer)``; ``reply(data)`` builds the common one: read the request head,
send ``data`` (raw bytes, exactly as given), close.

Two ways to run them:

* ``LoopbackServer`` inside the test's own event loop (async tests of ``fetch``/``runner``);
* ``ThreadedServer`` on its own loop in a background thread, for tests that run the CLI, which
  starts its own event loop. It is shut down in ``finally`` by the fixture that made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request_head(reader: asyncio.StreamReader, limit: int = 65536) -> bytes:
    """The request head as sent, up to and including the blank line (b"" if the client left)."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        chunk = await reader.read(4096)
        if not chunk:
            break
        data += chunk
    return data


def reply(data: bytes, *, delay: float = 0.0, close: bool = True) -> Handler:
    """Answer every request with ``data`` (after ``delay`` seconds), then close."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        if delay:
            await asyncio.sleep(delay)
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        if close:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
        else:
            await asyncio.sleep(3600)

    return handler


def routes(heads: dict[str, bytes], default: bytes = b"") -> Handler:
    """Answer each request with the head its path (without the query) names in ``heads``
    (``default`` for any other path), then close."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request_head(reader)
        parts = request.split(b" ", 2)
        path = parts[1].decode("latin-1").partition("?")[0] if len(parts) > 1 else ""
        writer.write(heads.get(path, default))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()

    return handler


def silent() -> Handler:
    """Accept, read the request, never answer (until the client goes away)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        with contextlib.suppress(ConnectionError):
            await reader.read()  # returns when the client closes
        writer.close()

    return handler


def drip(data: bytes, interval: float) -> Handler:
    """Send ``data`` one byte every ``interval`` seconds."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        try:
            for byte in data:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(interval)
        except ConnectionError:
            return
        writer.close()

    return handler


def speak_first(data: bytes) -> Handler:
    """Send ``data`` as soon as the connection is accepted, before reading anything (an SSH or
    SMTP banner; plain HTTP where the client expects a TLS handshake), then wait for the client
    to leave: closing with its bytes unread would send a reset that races the data."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            while await reader.read(65536):
                pass
        writer.close()

    return handler


def never_read() -> Handler:
    """Accept the connection, then neither read nor answer: the request sits in the socket."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    return handler


def reset() -> Handler:
    """Read the request, then reset the connection (RST) before sending a byte."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    return handler


class Endless:
    """Send ``prefix``, then ``filler`` forever, as fast as the client reads. ``sent`` counts the
    bytes written and ``stopped`` is set once the client has gone away, so a test can see that a
    head over the limits stops being read."""

    def __init__(self, prefix: bytes, filler: bytes) -> None:
        self.prefix = prefix
        self.filler = filler
        self.sent = 0
        self.stopped = threading.Event()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        try:
            writer.write(self.prefix)
            while True:
                writer.write(self.filler)
                self.sent += len(self.filler)
                await writer.drain()
                await asyncio.sleep(0)  # drain() need not yield: let the client's side run
        except ConnectionError:
            self.stopped.set()


class LoopbackServer:
    """``async with LoopbackServer(handler) as server:`` -> ``server.port`` on 127.0.0.1."""

    def __init__(self, handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._handler = handler
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self.requests: list[bytes] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handler(_Recording(reader, self.requests), writer)  # type: ignore[arg-type]
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Our own shutdown: end quietly. Python 3.11's streams log "Exception in callback"
            # for a connection task that ends cancelled; any other cancellation goes on up.
            if not self._closing:
                raise
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    async def __aenter__(self) -> LoopbackServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._server.wait_closed()


class _Recording:
    """Wraps a StreamReader so the server can keep each request head it read."""

    def __init__(self, reader: asyncio.StreamReader, requests: list[bytes]) -> None:
        self._reader = reader
        self._requests = requests
        self._buffer = b""
        self._recorded = False

    async def read(self, n: int = -1) -> bytes:
        data = await self._reader.read(n)
        if not self._recorded:
            self._buffer += data
            if b"\r\n\r\n" in self._buffer or not data:
                self._requests.append(self._buffer.split(b"\r\n\r\n")[0] + b"\r\n\r\n")
                self._recorded = True
        return data

    def __getattr__(self, name: str) -> object:
        return getattr(self._reader, name)


class ThreadedServer:
    """A ``LoopbackServer`` on its own event loop in a daemon thread (for CLI tests)."""

    def __init__(self, handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._handler = handler
        self._ssl = ssl_context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: LoopbackServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.port

    @property
    def requests(self) -> list[bytes]:
        assert self._server is not None
        return self._server.requests

    def start(self) -> ThreadedServer:
        self._thread.start()
        self._server = LoopbackServer(self._handler, ssl_context=self._ssl)
        started: Future[object] = asyncio.run_coroutine_threadsafe(
            self._server.__aenter__(), self._loop
        )
        started.result(timeout=10)
        return self

    def stop(self) -> None:
        try:
            if self._server is not None:
                asyncio.run_coroutine_threadsafe(self._server.__aexit__(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


class Blackhole:
    """A loopback address and port where a TCP connect hangs, as to a host that drops SYNs.

    A listener with a backlog of 0 that never accepts: once its queue is full the kernel drops
    further SYNs, so a connect neither succeeds nor fails until the client gives up. Binds
    ``host`` (127.0.0.2 by default, so a real server can use the same port on 127.0.0.1).
    """

    def __init__(self, host: str = "127.0.0.2", port: int = 0) -> None:
        self._listener = socket.socket()
        self._listener.bind((host, port))
        self._listener.listen(0)
        self.host = host
        self.port = int(self._listener.getsockname()[1])
        self._fillers: list[socket.socket] = []
        for _ in range(3):  # fill the accept queue (backlog 0 still queues one or two)
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((host, self.port))
            self._fillers.append(filler)

    def close(self) -> None:
        for sock in (*self._fillers, self._listener):
            sock.close()
