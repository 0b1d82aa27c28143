"""End-to-end smoke tests of the core paths; the thorough suites live beside the modules' tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from fetchheads.cli import cli
from fetchheads.fetch.one import fetch_one
from fetchheads.targets import parse_target
from tests.conftest import make_context
from tests.support.nginx import Nginx
from tests.support.servers import LoopbackServer, ThreadedServer, reply

HEAD = b"HTTP/1.1 200 OK\r\nServer: scripted\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nbody"


async def test_fetch_one_reads_the_head_from_a_scripted_server() -> None:
    async with LoopbackServer(reply(HEAD)) as server:
        result = await fetch_one(parse_target(f"127.0.0.1:{server.port}"), make_context())
    assert result.ok
    assert result.head is not None
    assert result.head.status == 200
    assert result.head.headers == (
        ("Server", "scripted"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    )
    request = server.requests[0]
    assert request.startswith(b"GET / HTTP/1.0\r\nHost: 127.0.0.1:")
    assert b"\r\nUser-Agent: fetchheads/" in request


def test_cli_plain_lines_are_the_seed_format(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    server = threaded_server(reply(HEAD))
    target = f"127.0.0.1:{server.port}"
    result = CliRunner().invoke(cli, ["--format", "plain", target])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{target} header > HTTP/1.1 200 OK",
        f"{target} header > Server: scripted",
        f"{target} header > Set-Cookie: a=1",
        f"{target} header > Set-Cookie: b=2",
    ]


@pytest.mark.integration
def test_nginx_answers_in_jsonl(nginx: Nginx, ca_file: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--json", "--cacert", str(ca_file), nginx.url("/"), nginx.url("/", tls=True)]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert sorted(r["url"] for r in records) == sorted([nginx.url("/"), nginx.url("/", tls=True)])
    for record in records:
        assert record["status"] == 200
        assert ["X-Fetchheads-Test", "root"] in record["headers"]
        assert any(
            name == "Server" and value.startswith("nginx") for name, value in record["headers"]
        )
    tls_record = next(r for r in records if r["url"].startswith("https"))
    assert tls_record["tls"]["days_left"] > 300
