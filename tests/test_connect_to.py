"""--connect-to: parsing curl's HOST:PORT:CONNECT_HOST:CONNECT_PORT, and reaching the other server."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner

from fetchheads.cli import cli
from fetchheads.connect_to import ConnectTo, connect_address, parse_connect_to
from fetchheads.errors import InputError
from tests.support.servers import Handler, ThreadedServer, reply


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("example.com:443:127.0.0.1:8443", ConnectTo("example.com", 443, "127.0.0.1", 8443)),
        ("Example.COM:443:origin.example:", ConnectTo("example.com", 443, "origin.example", None)),
        ("::127.0.0.1:", ConnectTo(None, None, "127.0.0.1", None)),
        (":80::8080", ConnectTo(None, 80, None, 8080)),
        ("[::1]:443:[::2]:8443", ConnectTo("::1", 443, "::2", 8443)),
        ("bücher.example:80:127.0.0.1:81", ConnectTo("xn--bcher-kva.example", 80, "127.0.0.1", 81)),
    ],
)
def test_rules_parse_with_empty_fields_meaning_any_or_same(text: str, rule: ConnectTo) -> None:
    assert parse_connect_to(text) == rule


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("example.com:443:127.0.0.1", "HOST:PORT:CONNECT_HOST:CONNECT_PORT"),
        ("a:1:b:2:c", "HOST:PORT:CONNECT_HOST:CONNECT_PORT"),
        ("example.com:https:127.0.0.1:1", "bad port 'https'"),
        ("example.com:443:127.0.0.1:70000", "bad port '70000'"),
        ("[::1:443:127.0.0.1:1", "unclosed"),
        ("[::1]x:443:127.0.0.1:1", "expected ':'"),
        ("exa mple.com:443:127.0.0.1:1", "bad host"),
    ],
)
def test_malformed_rules_are_refused(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_connect_to(text)


def test_the_first_matching_rule_wins_and_others_connect_as_usual() -> None:
    rules = [
        parse_connect_to("a.example:443:10.0.0.1:8443"),
        parse_connect_to("a.example::10.0.0.2:"),
        parse_connect_to(":8080::9090"),
    ]
    assert connect_address(rules, "a.example", 443) == ("10.0.0.1", 8443)
    assert connect_address(rules, "a.example", 80) == ("10.0.0.2", 80)
    assert connect_address(rules, "b.example", 8080) == ("b.example", 9090)
    assert connect_address(rules, "b.example", 443) == ("b.example", 443)


# --- reaching another server under the first one's name --------------------------------------------


def answering(name: bytes) -> Handler:
    return reply(b"HTTP/1.1 200 OK\r\nX-Server: " + name + b"\r\n\r\n")


@pytest.fixture
def sni_recording_context(server_cert: trustme.LeafCert) -> tuple[ssl.SSLContext, list[str | None]]:
    """A server TLS context that remembers the SNI name of every handshake."""
    names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    return context, names


def test_https_reaches_the_second_server_with_the_first_ones_host_and_sni(
    threaded_server: Callable[..., ThreadedServer],
    server_ssl_context: ssl.SSLContext,
    sni_recording_context: tuple[ssl.SSLContext, list[str | None]],
    ca_file: Path,
) -> None:
    first = threaded_server(answering(b"A"), ssl_context=server_ssl_context)
    context, sni_names = sni_recording_context
    second = threaded_server(answering(b"B"), ssl_context=context)
    url = f"https://localhost:{first.port}/"
    rule = f"localhost:{first.port}:127.0.0.1:{second.port}"
    outcome = CliRunner().invoke(
        cli, ["--json", "--cacert", str(ca_file), "--connect-to", rule, url]
    )
    assert outcome.exit_code == 0, outcome.output
    record = json.loads(outcome.output)
    assert ["X-Server", "B"] in record["headers"]
    assert record["url"] == url
    assert record["tls"]["san"][0] == "localhost"  # verified against the name asked for
    assert sni_names == ["localhost"]
    assert f"\r\nHost: localhost:{first.port}\r\n".encode() in second.requests[0]
    assert first.requests == []


def test_http_to_a_name_that_does_not_resolve_connects_where_told(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    server = threaded_server(answering(b"B"))
    outcome = CliRunner().invoke(
        cli,
        [
            "--format",
            "plain",
            "--connect-to",
            f"::127.0.0.1:{server.port}",
            "http://origin.invalid:8080/x",
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    assert "http://origin.invalid:8080/x header > X-Server: B" in outcome.output.splitlines()
    assert server.requests[0].startswith(b"GET /x HTTP/1.0\r\nHost: origin.invalid:8080\r\n")


def test_a_rule_for_another_port_leaves_the_connection_alone(
    threaded_server: Callable[..., ThreadedServer], refused_port: int
) -> None:
    server = threaded_server(answering(b"A"))
    rule = f"127.0.0.1:{refused_port}:127.0.0.1:{refused_port}"
    outcome = CliRunner().invoke(
        cli, ["--format", "plain", "--connect-to", rule, f"127.0.0.1:{server.port}"]
    )
    assert outcome.exit_code == 0, outcome.output
    assert f"127.0.0.1:{server.port} header > X-Server: A" in outcome.output.splitlines()


def test_a_bad_rule_is_a_usage_error() -> None:
    outcome = CliRunner().invoke(cli, ["--connect-to", "example.com:443", "example.com"])
    assert outcome.exit_code == 2
    assert "HOST:PORT:CONNECT_HOST:CONNECT_PORT" in outcome.output


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("faß.test", "xn--fa-hia.test"),  # IDNA 2008: not fass.test, another domain
        ("a.ß.test", "a.xn--zca.test"),
        ("Ⅸ.test", "ix.test"),  # UTS #46 mapping
        ("☃.test", "xn--n3h.test"),  # refused by IDNA 2008: IDNA 2003, as curl falls back
        ("test.ΣΑΣ", "test.xn--mxa9ab"),  # capitals folded by UTS #46, never a final ς
    ],
)
def test_international_names_are_sent_as_curl_sends_them(
    threaded_server: Callable[..., ThreadedServer], name: str, sent: str
) -> None:
    """The Host header fetchheads sends for a name that is not ASCII is the one curl (libidn2)
    sends for the same URL to the same server."""
    server = threaded_server(answering(b"B"))
    url = f"http://{name}:{server.port}/"
    route = f"::127.0.0.1:{server.port}"
    curl = shutil.which("curl")
    assert curl is not None
    subprocess.run(
        [curl, "-s", "--http1.0", "-o", "/dev/null", "--connect-to", route, url], check=True
    )
    outcome = CliRunner().invoke(cli, ["-q", "--json", "--connect-to", route, url])
    assert outcome.exit_code == 0, outcome.output
    curls, ours = (request.split(b"\r\n")[1] for request in server.requests)
    assert curls == ours == f"Host: {sent}:{server.port}".encode()
