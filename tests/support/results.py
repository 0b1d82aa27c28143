"""Results from real fetches of scripted loopback servers, for the format and filter tests.

``HEAD`` is a head with every case the formats must get right: a header sent twice, two
Set-Cookie lines (one with the comma of an Expires date), a value a spreadsheet would run as a
formula, a value with terminal escape sequences, and one with rich markup.
"""

from __future__ import annotations

import ssl

from fetchheads.config import Config
from fetchheads.fetch.one import fetch_one
from fetchheads.fetch.redirects import follow
from fetchheads.models import Result
from fetchheads.run.inputs import to_item
from fetchheads.targets import parse_target
from tests.conftest import make_context
from tests.support.servers import LoopbackServer, reply

HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: scripted\r\n"
    b"Content-Type: text/html\r\n"
    b"X-Multi: a\r\n"
    b"x-multi: b\r\n"
    b"Set-Cookie: id=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT\r\n"
    b"Set-Cookie: theme=dark\r\n"
    b'X-Formula: =HYPERLINK("http://evil.invalid","click")\r\n'
    b"X-Evil: a\x1b]52;c;cHduZWQ=\x07b\x1b[2Jc\r\n"
    b"X-Markup: [bold red]not markup[/]\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
BARE = b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"


async def fetch_head(data: bytes, *, path: str = "/", **config: object) -> Result:
    """One fetch of a loopback server that answers ``data``."""
    async with LoopbackServer(reply(data)) as server:
        target = parse_target(f"127.0.0.1:{server.port}{path}")
        return await fetch_one(target, make_context(Config(**{"timeout": 5.0, **config})))  # type: ignore[arg-type]


async def fetch_refused(port: int) -> Result:
    """A target nobody listens on: kind ``connect``."""
    return await fetch_one(parse_target(f"127.0.0.1:{port}"), make_context())


async def fetch_tls(context: ssl.SSLContext, ca_file: str, data: bytes = HEAD) -> Result:
    """An https fetch of ``localhost`` with the trustme CA trusted: the TLS facts filled."""
    async with LoopbackServer(reply(data), ssl_context=context) as server:
        target = parse_target(f"https://localhost:{server.port}/")
        return await fetch_one(target, make_context(Config(timeout=5.0, cacert=ca_file)))


def input_error(text: str) -> Result:
    """The record a bad input line becomes, as the runner makes it."""
    item = to_item(text, "http")
    assert isinstance(item, Result), text
    return item


async def fetch_following(url: str) -> Result:
    """One fetch of ``url`` with ``-L``: its redirects followed as a run follows them."""
    config = Config(timeout=5.0, location=True)
    return await follow(
        parse_target(url), lambda target, hop: fetch_one(target, make_context(hop)), config
    )
