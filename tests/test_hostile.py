"""Misbehaving scripted servers: every one ends in one honest record, bounded in time and memory.

Each case runs alone (``fetch_one`` against an in-loop server), and all of them together run in a
single CLI invocation beside a good server, which must finish normally and promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from fetchheads.cli import cli
from fetchheads.config import Config
from fetchheads.errors import ErrorKind
from fetchheads.fetch import connection as connection_module
from fetchheads.fetch import one as fetch_module
from fetchheads.fetch.connection import READ_CHUNK
from fetchheads.fetch.one import fetch_one
from fetchheads.http.parse import MAX_HEAD, HeadParser
from fetchheads.models import Result
from fetchheads.targets import parse_target
from tests.conftest import ROUTES, Route, make_context
from tests.support.servers import (
    Endless,
    Handler,
    LoopbackServer,
    ThreadedServer,
    drip,
    never_read,
    reply,
    reset,
    silent,
    speak_first,
)

STALL_TIMEOUT = 0.5
"""The deadline of a case that must end as ``timeout``: short, so the stalls end quickly."""
TIMEOUT = 10.0
"""The deadline of every other case: it must end by its own error, never by this deadline, so it
is far out of reach even on a loaded machine (a shared one once took over 0.5 s)."""
GOOD_HEAD = b"HTTP/1.1 200 OK\r\nServer: good\r\n\r\n"


@dataclasses.dataclass(frozen=True)
class Case:
    """A misbehaving server and the record it must produce."""

    handler: Callable[[], Handler]
    kind: ErrorKind | None  # None: the head is accepted
    message: str  # a fragment of the error message (or of a header value when accepted)
    headers: tuple[tuple[str, str], ...] = ()  # headers kept in the record
    scheme: str = "http"


CASES: dict[str, Case] = {
    # --- stalls: each ends at the deadline, whatever phase it is in
    "accepts and never answers": Case(silent, ErrorKind.TIMEOUT, "waiting for the response head"),
    "accepts and never reads": Case(never_read, ErrorKind.TIMEOUT, "waiting for the response head"),
    "drips one byte every 0.2 s": Case(
        lambda: drip(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", 0.2),
        ErrorKind.TIMEOUT,
        "no complete response head within",
    ),
    "stalls the TLS handshake": Case(silent, ErrorKind.TIMEOUT, "(TLS handshake)", scheme="https"),
    # --- malformed heads
    "empty reply": Case(lambda: reply(b""), ErrorKind.PROTOCOL, "empty reply"),
    "closes before the blank line": Case(
        lambda: reply(b"HTTP/1.1 503 Busy\r\nServer: half\r\nRetry-After: 5\r\nX-Cu"),
        ErrorKind.PROTOCOL,
        "closed before the end of the head",
        headers=(("Server", "half"), ("Retry-After", "5")),
    ),
    "HTTP/0.9 body": Case(
        lambda: reply(b"<html>hello</html>"),
        ErrorKind.PROTOCOL,
        "not HTTP: the reply starts '<html>",
    ),
    "TLS on a plain connection": Case(
        lambda: reply(b"\x15\x03\x01\x00\x02\x02\x46"), ErrorKind.PROTOCOL, "try https://"
    ),
    "binary garbage": Case(
        lambda: reply(b"\x00\xff\xfe\x1b[2J\x9b" * 50), ErrorKind.PROTOCOL, "not HTTP"
    ),
    "bad status code": Case(
        lambda: reply(b"HTTP/1.1 2000 OK\r\n\r\n"), ErrorKind.PROTOCOL, "bad status line"
    ),
    "line without a colon": Case(
        lambda: reply(b"HTTP/1.1 200 OK\r\nServer: x\r\nnonsense\r\n\r\n"),
        ErrorKind.PROTOCOL,
        "header line without a colon",
        headers=(("Server", "x"),),
    ),
    "whitespace before the colon": Case(
        lambda: reply(b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"),
        ErrorKind.PROTOCOL,
        "whitespace before the colon",
    ),
    "bare CR": Case(
        lambda: reply(b"HTTP/1.1 200 OK\r\nA: 1\rB: 2\r\n\r\n"), ErrorKind.PROTOCOL, "bare CR"
    ),
    "NUL": Case(lambda: reply(b"HTTP/1.1 200 OK\r\nA: 1\x002\r\n\r\n"), ErrorKind.PROTOCOL, "NUL"),
    "continuation first": Case(
        lambda: reply(b"HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n"),
        ErrorKind.PROTOCOL,
        "continuation line before the first header",
    ),
    # --- over the limits
    "endless head": Case(
        lambda: Endless(b"HTTP/1.1 200 OK\r\n", b"X-Filler: " + b"f" * 2000 + b"\r\n"),
        ErrorKind.PROTOCOL,
        "(MAX_HEAD)",
    ),
    "endless status line": Case(
        lambda: Endless(b"HTTP/1.1 200 ", b"x" * 4096), ErrorKind.PROTOCOL, "(MAX_STATUS_LINE)"
    ),
    "endless header line": Case(
        lambda: Endless(b"HTTP/1.1 200 OK\r\nX-Long: ", b"y" * 4096),
        ErrorKind.PROTOCOL,
        "(MAX_LINE)",
    ),
    "a flood of headers": Case(
        lambda: Endless(b"HTTP/1.1 200 OK\r\n", b"A: 1\r\n"), ErrorKind.PROTOCOL, "(MAX_HEADERS)"
    ),
    "endless interim responses": Case(
        lambda: Endless(b"", b"HTTP/1.1 103 Early Hints\r\n\r\n"),
        ErrorKind.PROTOCOL,
        "(MAX_INTERIM)",
    ),
    "resets before a byte": Case(reset, ErrorKind.CONNECT, "connection reset"),
    "plain HTTP on an https target": Case(
        lambda: speak_first(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
        ErrorKind.TLS,
        "(plain HTTP on this port? try http://)",
        scheme="https",
    ),
    "SSH banner on an https target": Case(
        lambda: speak_first(b"SSH-2.0-OpenSSH_9.6\r\n"),
        ErrorKind.TLS,
        "try http://",
        scheme="https",
    ),
    # --- odd but acceptable: escape bytes are data, kept exactly
    "escape sequences in values": Case(
        lambda: reply(b"HTTP/1.1 200 OK\r\nX-Evil: \x1b]52;c;QUJD\x07\x1b[2J\r\n\r\n"),
        None,
        "\x1b]52;c;QUJD\x07\x1b[2J",
        headers=(("X-Evil", "\x1b]52;c;QUJD\x07\x1b[2J"),),
    ),
}


def check(case: Case, result: Result) -> None:
    if case.kind is None:
        assert result.ok, result.error
        assert result.head is not None
        assert result.head.headers == case.headers
        return
    assert result.error is not None, result
    assert result.error.kind == case.kind, result.error
    assert case.message in result.error.message
    if case.headers:
        assert result.head is not None
        assert result.head.headers == case.headers


@pytest.mark.parametrize(
    ("name", "route"),
    [
        pytest.param(name, route, id=name if case.scheme == "https" else f"{name}-{route}")
        for name, case in CASES.items()
        # https has one path whatever the options: once is enough
        for route in (ROUTES if case.scheme == "http" else ["inline"])
    ],
    indirect=["route"],
)
async def test_one_misbehaving_server(name: str, route: Route) -> None:
    case = CASES[name]
    timeout = STALL_TIMEOUT if case.kind == ErrorKind.TIMEOUT else TIMEOUT
    started = time.monotonic()
    async with LoopbackServer(case.handler()) as server:
        target = parse_target(f"{case.scheme}://127.0.0.1:{server.port}/")
        result = await fetch_one(target, route.context(timeout=timeout))
    check(case, result)
    # One deadline covers every phase: nothing runs past it (a generous margin for a busy box).
    assert time.monotonic() - started < timeout + 1.0


@pytest.fixture
def counting_parser(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes handed to each parser ``fetch`` creates."""
    fed: list[int] = []

    class CountingParser(HeadParser):
        __slots__ = ("_index",)

        def __init__(self) -> None:
            super().__init__()
            self._index = len(fed)
            fed.append(0)

        def feed(self, data: bytes) -> object:  # type: ignore[override]
            fed[self._index] += len(data)
            return super().feed(data)

    monkeypatch.setattr(connection_module, "HeadParser", CountingParser)
    return fed


async def test_an_endless_head_stops_being_read_after_max_head(
    counting_parser: list[int], route: Route
) -> None:
    endless = Endless(b"HTTP/1.1 200 OK\r\n", b"X-Filler: " + b"f" * 2000 + b"\r\n")
    async with LoopbackServer(endless) as server:
        result = await fetch_one(
            parse_target(f"127.0.0.1:{server.port}"), route.context(timeout=10)
        )
        assert result.error is not None
        assert result.error.message == "response head larger than 262144 bytes (MAX_HEAD)"
        # The connection is dropped at once: the server's next writes fail.
        assert await _wait_for(endless.stopped.is_set)
    # Memory stays bounded: the parser never saw more than the limit plus one read.
    assert counting_parser == [pytest.approx(MAX_HEAD, abs=READ_CHUNK)]
    # The header lines that arrived complete are kept in the record.
    assert result.head is not None
    assert result.head.status == 200
    assert result.head.headers[0] == ("X-Filler", "f" * 2000)


async def _wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def test_twenty_misbehaving_servers_and_a_good_one_in_one_run(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    """The issue's "done when": one CLI run, one correct record each, within the timeout + 1 s,
    and the good server is reported before any stall ends, not held back by them."""
    assert len(CASES) >= 20
    expected: dict[str, Case] = {}
    for case in CASES.values():
        server = threaded_server(case.handler())
        expected[f"{case.scheme}://127.0.0.1:{server.port}/"] = case
    good = threaded_server(reply(GOOD_HEAD))
    good_target = f"http://127.0.0.1:{good.port}/"
    # One -t for all: long enough that no non-stall case can reach it on a busy machine, short
    # enough that the stalls end soon.
    timeout = 2.0
    started = time.monotonic()
    outcome = CliRunner().invoke(cli, ["--json", "-t", str(timeout), good_target, *expected])
    elapsed = time.monotonic() - started
    assert outcome.exit_code == 1, outcome.output
    records = [json.loads(line) for line in outcome.output.splitlines()]
    assert sorted(r["target"] for r in records) == sorted([good_target, *expected])
    first_timeout = min(
        i for i, r in enumerate(records) if r["error"] and r["error"]["kind"] == "timeout"
    )
    good_index = next(i for i, r in enumerate(records) if r["target"] == good_target)
    assert good_index < first_timeout, "the good server waited for the stalled ones"
    assert records[good_index]["ok"] is True
    assert records[good_index]["headers"] == [["Server", "good"]]
    for record in records:
        if record["target"] == good_target:
            continue
        case = expected[record["target"]]
        if case.kind is None:
            assert record["ok"] is True
            assert record["headers"] == [list(h) for h in case.headers]
        else:
            assert record["error"]["kind"] == str(case.kind), record
            assert case.message in record["error"]["message"], record
            if case.headers:
                assert record["headers"] == [list(h) for h in case.headers]
    assert elapsed < timeout + 1.0, f"the run took {elapsed:.2f}s"


async def https_after_a_pause(handler: Handler, monkeypatch: pytest.MonkeyPatch) -> Result:
    """An https fetch from a server running ``handler``, the connection waiting 0.2 s between
    connect and the TLS handshake: whatever the server does first has reached the plain reader
    by then (a banner, its FIN)."""
    real_connect = connection_module.connect

    async def connect_then_pause(*args: Any, **kwargs: Any) -> Any:
        connection = await real_connect(*args, **kwargs)
        await asyncio.sleep(0.2)
        return connection

    monkeypatch.setattr(fetch_module, "connect", connect_then_pause)
    async with LoopbackServer(handler) as server:
        target = parse_target(f"https://127.0.0.1:{server.port}/")
        return await fetch_one(target, make_context(Config(timeout=5)))


async def test_a_server_that_speaks_before_the_tls_handshake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A banner that lands in the plain reader before start_tls is never seen by TLS: it must be
    reported at once, not waited on until the deadline."""
    result = await https_after_a_pause(speak_first(b"SSH-2.0-OpenSSH_9.6\r\n"), monkeypatch)
    assert result.error is not None
    assert result.error.kind == ErrorKind.TLS
    assert result.error.message == (
        "handshake failed: the server spoke first, not TLS: 'SSH-2.0-OpenSSH_9.6\\r\\n' "
        "(plain HTTP on this port? try http://)"
    )
    assert result.timing.total is not None
    assert result.timing.total < 5


def close_at_once() -> Handler:
    """Accept the connection, then close it without reading or sending a byte."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    return handler


async def test_an_https_server_that_closes_before_the_handshake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server's close lands in the plain reader before start_tls: a TLS failure that says
    so, at once (the handshake is never begun on the dead connection)."""
    result = await https_after_a_pause(close_at_once(), monkeypatch)
    assert result.error is not None
    assert result.error.kind == ErrorKind.TLS
    assert result.error.message == (
        "handshake failed: the server closed the connection before the handshake"
    )
    assert result.head is None


def test_https_servers_that_close_at_once_print_no_traceback() -> None:
    """Through the CLI, on its default loop (uvloop), against a listener that closes each
    connection the moment it accepts it, so the close usually beats the handshake: every target
    a one-line TLS failure, and nothing on stderr but what a run prints anyway."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)

    def close_each() -> None:
        with contextlib.suppress(OSError):  # the listener closed: the test is over
            while True:
                connection, _ = listener.accept()
                connection.close()

    threading.Thread(target=close_each, daemon=True).start()
    try:
        port = listener.getsockname()[1]
        targets = [f"https://127.0.0.1:{port}/{n}" for n in range(20)]
        outcome = CliRunner().invoke(cli, ["--json", "-t", "5", *targets])
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread, which ends
        listener.close()
    assert outcome.exit_code == 1, outcome.output
    records = [json.loads(line) for line in outcome.stdout.splitlines()]
    assert len(records) == 20
    for record in records:
        assert record["error"]["kind"] == "tls", record
        assert record["error"]["message"].startswith("handshake failed: "), record
    assert outcome.stderr == ""


@pytest.mark.parametrize("how", ["close", "reset"])
def test_an_https_server_that_drops_the_handshake_is_retried(how: str) -> None:
    """A server (a load balancer) that closes or resets the connection without a word of TLS
    gave no answer: --retries tries again, as after a reset before any byte over http."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    accepted: list[float] = []

    def drop_each() -> None:
        with contextlib.suppress(OSError):  # the listener closed: the test is over
            while True:
                connection, _ = listener.accept()
                accepted.append(time.monotonic())
                if how == "reset":  # RST instead of FIN
                    connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                else:
                    connection.recv(1)  # the ClientHello has arrived: the handshake has begun
                connection.close()

    threading.Thread(target=drop_each, daemon=True).start()
    try:
        port = listener.getsockname()[1]
        outcome = CliRunner().invoke(
            cli, ["--json", "-t", "5", "--retries", "2", f"https://127.0.0.1:{port}/"]
        )
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
    assert outcome.exit_code == 1, outcome.output
    error = json.loads(outcome.stdout)["error"]
    # A reset may reach the plain reader before the handshake starts: a connect error then
    assert error["kind"] == "tls" if how == "close" else error["kind"] in ("tls", "connect")
    assert error["message"].endswith("(after 3 attempts)")
    assert len(accepted) == 3


def test_an_https_server_that_closes_amid_the_handshake_is_said_so_not_reset() -> None:
    """A server that takes the ClientHello and closes (FIN, not RST) read 'connection reset'."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)

    def close_after_the_hello() -> None:
        with contextlib.suppress(OSError):  # the listener closed: the test is over
            while True:
                connection, _ = listener.accept()
                with connection:
                    header = connection.recv(5, socket.MSG_WAITALL)  # the record's header
                    connection.recv(int.from_bytes(header[3:5]), socket.MSG_WAITALL)
                    connection.shutdown(socket.SHUT_WR)  # all read: a FIN, no reset
                    connection.settimeout(5)
                    while connection.recv(4096):  # until the client leaves
                        pass

    threading.Thread(target=close_after_the_hello, daemon=True).start()
    try:
        port = listener.getsockname()[1]
        outcomes = [
            CliRunner().invoke(
                cli, ["--loop", loop, "-w", "%{errormsg}\\n", f"https://127.0.0.1:{port}/"]
            )
            for loop in ("asyncio", "uvloop")
        ]
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
    for outcome in outcomes:
        assert (outcome.exit_code, outcome.stdout) == (
            1,
            "handshake failed: the server closed the connection midway\n",
        )


@pytest.mark.parametrize(
    "name",
    [
        "endless head",
        "a flood of headers",
        "NUL",
        "closes before the blank line",
        "drips one byte every 0.2 s",
        "accepts and never answers",
    ],
)
async def test_a_refused_head_is_freed_as_soon_as_its_record_is_made(
    name: str, route: Route
) -> None:
    """A head the parser refused, or one cut short by the deadline, holds up to MAX_HEAD bytes.
    Once the record is made nothing may keep it, not even a reference cycle the cyclic collector
    frees only now and then: a 100,000-line list with such servers in it grew to gigabytes (1.4 GB
    for 3,000 floods of headers at -c 500, where ordinary heads stay at 30 MB). Here the parser
    must be gone by reference counting alone."""
    case = CASES[name]

    def parsers() -> int:
        return sum(isinstance(o, HeadParser) for o in gc.get_objects())

    async with LoopbackServer(case.handler()) as server:
        target = parse_target(f"http://127.0.0.1:{server.port}/")
        gc.collect()
        gc.disable()
        try:
            before = parsers()
            for _ in range(3):
                timeout = STALL_TIMEOUT if case.kind == ErrorKind.TIMEOUT else TIMEOUT
                result = await fetch_one(target, route.context(timeout=timeout))
                check(case, result)
                del result
            await asyncio.sleep(0.05)  # the aborted transports' last callbacks run
            left = parsers() - before
        finally:
            gc.enable()
    assert left == 0, f"{left} refused heads still held after their records were made"
