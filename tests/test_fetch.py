"""fetch_one against scripted loopback servers: every target gives exactly one Result."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from fetchheads import __version__
from fetchheads.config import Config
from fetchheads.errors import ErrorKind, FetchError
from fetchheads.fetch.connection import HeadReader
from fetchheads.fetch.one import fetch_one
from fetchheads.models import Result
from fetchheads.targets import parse_target
from tests.conftest import Route, make_context
from tests.support.servers import (
    Endless,
    Handler,
    LoopbackServer,
    ThreadedServer,
    reply,
    reset,
    silent,
    speak_first,
)


async def fetch(
    handler: Handler, route: Route | None = None, *, path: str = "/", **config: object
) -> Result:
    """``handler``'s answer to ``fetch_one`` of an IP literal, by ``route`` (``inline`` if none)."""
    async with LoopbackServer(handler) as server:
        target = parse_target(f"127.0.0.1:{server.port}{path}")
        return await fetch_one(target, (route or Route("inline")).context(**config))


async def test_a_normal_head_keeps_wire_order_case_and_values(route: Route) -> None:
    result = await fetch(
        reply(
            b"HTTP/1.1 200 OK\r\n"
            b"Server: scripted\r\n"
            b"content-type: text/html; charset=utf-8\r\n"
            b"X-Empty:\r\n"
            b"\r\n"
            b"<html>body that must not matter</html>"
        ),
        route,
    )
    assert result.ok
    assert result.error is None
    assert result.head is not None
    assert (result.head.http_version, result.head.status, result.head.reason) == (
        "HTTP/1.1",
        200,
        "OK",
    )
    assert result.head.headers == (
        ("Server", "scripted"),
        ("content-type", "text/html; charset=utf-8"),
        ("X-Empty", ""),
    )


async def test_the_request_carries_path_and_default_headers() -> None:
    async with LoopbackServer(reply(b"HTTP/1.0 204 No Content\r\n\r\n")) as server:
        port = server.port
        await fetch_one(parse_target(f"127.0.0.1:{port}/health?full=1"), make_context())
    assert server.requests[0] == (
        f"GET /health?full=1 HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n".encode()
        + b"User-Agent: fetchheads/"
        + __version__.encode()
        + b"\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )


class _Counting(asyncio.Protocol):
    """A server connection that answers once the first request head is in and keeps every byte
    the client sent until it went away."""

    def __init__(self, received: list[bytes], gone: asyncio.Future[None]) -> None:
        self._received = received
        self._gone = gone
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        answered = b"\r\n\r\n" in b"".join(self._received)
        self._received.append(data)
        if not answered and b"\r\n\r\n" in b"".join(self._received):
            assert self._transport is not None
            self._transport.write(b"HTTP/1.0 204 No Content\r\n\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._gone.done():
            self._gone.set_result(None)


@pytest.mark.parametrize("spelling", ["127.0.0.1:{port}/once", "http://localhost:{port}/once"])
async def test_the_request_is_sent_once(spelling: str) -> None:
    # A plain-http request goes out the moment the connection is made; the exchange afterwards
    # must not send it again (the server would see two requests). An IP literal and a name.
    loop = asyncio.get_running_loop()
    received: list[bytes] = []
    gone: asyncio.Future[None] = loop.create_future()
    server = await loop.create_server(lambda: _Counting(received, gone), "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        target = parse_target(spelling.format(port=port))
        result = await fetch_one(target, make_context())
        await asyncio.wait_for(gone, 5)  # the client drops the connection after the head
    assert result.ok
    assert b"".join(received).count(b"GET /once HTTP/1.0") == 1


async def test_bare_lf_line_endings_are_tolerated() -> None:
    result = await fetch(reply(b"HTTP/1.0 200 OK\nServer: old\nX-A: 1\n\nbody"))
    assert result.ok
    assert result.head is not None
    assert result.head.headers == (("Server", "old"), ("X-A", "1"))


async def test_obs_fold_continuations_are_unfolded() -> None:
    result = await fetch(
        reply(b"HTTP/1.1 200 OK\r\nX-Long: first\r\n  second\r\n\tthird\r\nServer: s\r\n\r\n")
    )
    assert result.head is not None
    assert result.head.headers == (("X-Long", "first second third"), ("Server", "s"))


async def test_duplicate_set_cookie_headers_are_all_kept_in_order() -> None:
    result = await fetch(
        reply(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nVary: Accept\r\n"
            b"Set-Cookie: b=2; Path=/\r\nSet-Cookie: a=3\r\n\r\n"
        )
    )
    assert result.head is not None
    assert result.head.get_all("set-cookie") == ["a=1", "b=2; Path=/", "a=3"]
    assert [name for name, _ in result.head.headers] == [
        "Set-Cookie",
        "Vary",
        "Set-Cookie",
        "Set-Cookie",
    ]


@pytest.mark.parametrize("status_line", [b"HTTP/1.1 200", b"HTTP/1.1 200 "])
async def test_a_status_line_without_a_reason_phrase(status_line: bytes) -> None:
    result = await fetch(reply(status_line + b"\r\nServer: terse\r\n\r\n"))
    assert result.ok
    assert result.head is not None
    assert (result.head.status, result.head.reason) == (200, "")
    assert result.head.status_line == "HTTP/1.1 200"


async def test_interim_103_is_skipped_to_the_final_response() -> None:
    result = await fetch(
        reply(
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nServer: final\r\n\r\n"
        )
    )
    assert result.ok
    assert result.head is not None
    assert result.head.status == 200
    assert result.head.headers == (("Server", "final"),)
    assert [h.status for h in result.head.interim] == [103]


async def test_the_body_is_never_read_the_connection_is_dropped_after_the_head(
    route: Route,
) -> None:
    # The server sends a head, then a body without end as fast as it is read: fetchheads must
    # take the head and drop the connection at once (the server's writes fail), neither reading
    # the body nor waiting for a close.
    endless = Endless(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n", b"x" * 4096)
    async with LoopbackServer(endless) as server:
        target = parse_target(f"127.0.0.1:{server.port}/")
        result = await fetch_one(target, route.context(timeout=3.0))
        assert result.ok, result.error
        assert await asyncio.to_thread(endless.stopped.wait, 3.0), "the body is still being read"


async def test_a_refused_connection_is_kind_connect(refused_port: int, route: Route) -> None:
    result = await fetch_one(parse_target(f"127.0.0.1:{refused_port}"), route.context())
    assert not result.ok
    assert result.error is not None
    assert result.error.kind == ErrorKind.CONNECT
    assert result.error.message == f"127.0.0.1:{refused_port}: connection refused"
    assert result.head is None
    assert result.address == "127.0.0.1"
    assert result.timing.connect is None
    assert result.timing.total is not None


async def test_a_silent_server_is_kind_timeout_at_the_deadline(route: Route) -> None:
    result = await fetch(silent(), route, timeout=0.3)
    assert result.error is not None
    assert result.error.kind == ErrorKind.TIMEOUT
    assert (
        result.error.message
        == "no complete response head within 0.3s (waiting for the response head)"
    )
    assert result.head is None
    assert result.timing.connect is not None
    assert result.timing.ttfb is None
    assert result.timing.total is not None
    assert result.timing.total >= 0.3


async def test_a_close_in_the_middle_of_the_head_is_kind_protocol_and_keeps_the_headers(
    route: Route,
) -> None:
    result = await fetch(reply(b"HTTP/1.1 502 Bad Gateway\r\nServer: half\r\nX-Cut: ye"), route)
    assert not result.ok
    assert result.error is not None
    assert result.error.kind == ErrorKind.PROTOCOL
    assert "closed before the end of the head" in result.error.message
    assert result.head is not None
    assert result.head.status == 502
    assert result.head.headers == (("Server", "half"),)
    assert result.to_record()["status"] == 502


async def test_an_empty_reply_is_kind_protocol(route: Route) -> None:
    result = await fetch(reply(b""), route)
    assert result.error is not None
    assert result.error.kind == ErrorKind.PROTOCOL
    assert "empty reply" in result.error.message
    assert result.head is None


async def test_a_reset_before_any_byte_is_kind_connect(route: Route) -> None:
    result = await fetch(reset(), route)
    assert result.error is not None
    assert result.error.kind == ErrorKind.CONNECT
    assert "reset" in result.error.message


async def test_not_http_is_kind_protocol(route: Route) -> None:
    result = await fetch(reply(b"SSH-2.0-OpenSSH_9.6\r\n"), route)
    assert result.error is not None
    assert result.error.kind == ErrorKind.PROTOCOL
    assert result.error.message.startswith("not HTTP")


async def test_timing_fields_are_present_and_ordered_and_the_address_is_filled(
    route: Route,
) -> None:
    result = await fetch(reply(b"HTTP/1.1 200 OK\r\n\r\n"), route)
    timing = result.timing
    assert timing.dns is None  # an IP literal needs no lookup
    assert timing.tls is None  # plain http
    assert timing.connect is not None
    assert timing.ttfb is not None
    assert timing.total is not None
    assert 0 <= timing.connect <= timing.ttfb <= timing.total
    assert result.address == "127.0.0.1"
    record = result.to_record()
    assert set(record["timing"]) == {"dns", "connect", "tls", "ttfb", "total"}


async def test_a_name_is_resolved_and_timed() -> None:
    async with LoopbackServer(reply(b"HTTP/1.1 200 OK\r\n\r\n")) as server:
        result = await fetch_one(parse_target(f"localhost:{server.port}"), make_context())
    assert result.ok, result.error
    assert result.address == "127.0.0.1"
    timing = result.timing
    assert timing.dns is not None
    assert timing.connect is not None
    assert timing.ttfb is not None
    assert timing.total is not None
    assert 0 <= timing.dns <= timing.connect <= timing.ttfb <= timing.total


def test_timings_under_uvloop_are_finer_than_its_millisecond_clock(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    # uvloop's loop.time() ticks in whole milliseconds: timings taken from it read "connect
    # 0.0 ms" on loopback. Twenty fetches whose every timing is a whole millisecond would be it.
    import uvloop

    server = threaded_server(reply(b"HTTP/1.0 204 No Content\r\n\r\n"))
    target = parse_target(f"127.0.0.1:{server.port}/")

    async def twenty() -> list[Result]:
        return [await fetch_one(target, make_context()) for _ in range(20)]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results = runner.run(twenty())
    assert all(result.ok for result in results)
    values = [
        value
        for result in results
        for value in (result.timing.connect, result.timing.ttfb, result.timing.total)
    ]
    assert all(value is not None and value > 0 for value in values)
    assert any(round(value * 1000, 6) % 1 != 0 for value in values if value is not None)


def test_connect_is_never_later_than_the_first_byte_under_load(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    # The request goes out in connection_made; when the answer arrives before the connecting
    # task resumes, a connect time taken on resuming came out after ttfb: a negative
    # "processing" phase in the Prometheus textfile and connect > ttfb in JSON.
    import uvloop

    server = threaded_server(speak_first(b"HTTP/1.0 204 No Content\r\n\r\n"))
    target = parse_target(f"127.0.0.1:{server.port}/")

    async def many() -> list[Result]:
        context = make_context()
        return list(await asyncio.gather(*(fetch_one(target, context) for _ in range(300))))

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results = runner.run(many())
    assert all(result.ok for result in results)
    late = [
        (result.timing.connect, result.timing.ttfb)
        for result in results
        if (result.timing.connect or 0) > (result.timing.ttfb or 0)
    ]
    assert late == []


async def test_connect_timeout_bounds_the_tls_handshake_with_its_own_message() -> None:
    async with LoopbackServer(silent()) as server:
        target = parse_target(f"https://127.0.0.1:{server.port}/")
        config = Config(timeout=5.0, connect_timeout=0.3)
        result = await fetch_one(target, make_context(config))
    assert result.error is not None
    assert result.error.kind is ErrorKind.CONNECT
    assert result.error.message == "no connection within --connect-timeout 0.3s (TLS handshake)"


async def test_a_cancellation_from_outside_is_not_turned_into_a_timeout(route: Route) -> None:
    # Ctrl-C cancels the run's tasks: a fetch must let that through, not record a timeout.
    async with LoopbackServer(silent()) as server:
        target = parse_target(f"127.0.0.1:{server.port}/")
        task = asyncio.create_task(fetch_one(target, route.context(timeout=0.5)))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


class RecordingTransport:
    """What a ``HeadReader`` does to its connection: the writes, and how often it aborts it."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborts = 0

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborts += 1


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        (b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n<html>", True),
        (b"HTTP/1.1 200 OK\r\nServer x\r\n\r\n<html>", False),
    ],
)
async def test_a_plain_http_reader_drops_its_connection_where_the_head_ends(
    answer: bytes, ok: bool
) -> None:
    # In the callback that completed (or refused) the head, not a turn later in the fetching
    # task: uvloop then closes the socket before it polls again, and the body is never read.
    reader = HeadReader(asyncio.get_running_loop(), b"GET / HTTP/1.0\r\n\r\n")
    transport = RecordingTransport()
    reader.connection_made(transport)  # type: ignore[arg-type]
    assert transport.written == [b"GET / HTTP/1.0\r\n\r\n"]
    reader.data_received(answer[:10])
    assert (reader.done, transport.aborts) == (False, 0)
    reader.data_received(answer[10:])
    assert (reader.done, transport.aborts) == (True, 1)
    reader.data_received(b"more of the body")
    reader.connection_lost(None)  # the abort's own callback, a turn later
    assert transport.aborts == 1
    if ok:
        assert reader.head().headers == (("Server", "x"),)
    else:
        with pytest.raises(FetchError, match="header line without a colon"):
            reader.head()


async def test_a_reader_that_did_not_send_the_request_leaves_its_connection_open() -> None:
    # A proxy's answer to CONNECT is a head too, and the tunnel goes on over the same connection.
    reader = HeadReader(asyncio.get_running_loop())
    transport = RecordingTransport()
    reader.connection_made(transport)  # type: ignore[arg-type]
    reader.data_received(b"HTTP/1.1 200 Connection established\r\n\r\n")
    assert reader.head().status == 200
    assert (transport.written, transport.aborts) == ([], 0)
