"""-L: resolving Location, when a chain stops, the deadline shared by hops, and the real thing."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from fetchheads.cli import cli
from fetchheads.config import Config
from fetchheads.errors import ErrorKind, InputError
from fetchheads.fetch.redirects import follow, hop_config, redirect_location, resolve_location
from fetchheads.models import ErrorInfo, ResponseHead, Result, Target, Timing
from fetchheads.targets import parse_target
from tests.support.nginx import Nginx
from tests.support.servers import ThreadedServer, reply, routes, silent

BASE = parse_target("http://example.com/a/b?q=1")


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("https://example.com/", "https://example.com/"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("http://other.example:80/", "http://other.example/"),
        ("//cdn.example/p", "http://cdn.example/p"),
        ("/root", "http://example.com/root"),
        ("c", "http://example.com/a/c"),
        ("../up", "http://example.com/up"),
        ("?page=2", "http://example.com/a/b?page=2"),
        ("/frag#section", "http://example.com/frag"),
        ("/with space", "http://example.com/with%20space"),
        ("/caf\u00e9", "http://example.com/caf%C3%A9"),
        ("http://[::1]:8080/v6", "http://[::1]:8080/v6"),
        ("HTTPS://EXAMPLE.COM/Case", "https://example.com/Case"),
    ],
)
def test_location_resolves_against_the_url_that_answered(location: str, expected: str) -> None:
    assert resolve_location(BASE, location).url == expected


def test_a_hop_keeps_what_the_user_typed() -> None:
    first = parse_target("example.com/a")
    hop = resolve_location(first, "https://www.example.com/")
    assert (hop.text, hop.scheme, hop.host) == ("example.com/a", "https", "www.example.com")


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("ftp://example.com/file", "unsupported scheme 'ftp'"),
        ("mailto:someone@example.com", "unsupported scheme 'mailto'"),
        ("http://exa\x01mple.com/", "control"),
        ("http://bad_host_with!/", "invalid host"),
        # What urllib itself cannot read (it raised ValueError through the whole run).
        ("http://[::1/", "not a URL: its host part cannot be read"),
        ("//[::1/", "not a URL: its host part cannot be read"),
        ("http://[zz]/", "not a URL: its host part cannot be read"),
        ("http://u:Secret\u2100@127.0.0.1/", "not a URL: its host part cannot be read"),
    ],
)
def test_a_location_that_cannot_be_fetched_is_refused(location: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        resolve_location(BASE, location)


def head(status: int, location: str | None = None) -> ResponseHead:
    headers = (("Location", location),) if location is not None else ()
    return ResponseHead("HTTP/1.1", status, "Reason", headers)


@pytest.mark.parametrize(
    ("status", "location", "followed"),
    [
        (301, "/x", "/x"),
        (302, " /x ", "/x"),
        (303, "/x", "/x"),
        (307, "/x", "/x"),
        (308, "/x", "/x"),
        (300, "/x", None),  # multiple choices: nothing to pick automatically
        (304, "/x", None),  # not modified is not a redirect
        (200, "/x", None),  # Location on a 200 is just a header
        (301, None, None),  # nothing to follow: the 301 is the response
        (301, "  ", None),
    ],
)
def test_which_responses_are_followed(
    status: int, location: str | None, followed: str | None
) -> None:
    assert redirect_location(head(status, location)) == followed


def test_credentials_stay_with_the_origin_the_user_named() -> None:
    config = Config(
        headers=(
            ("Authorization", "Bearer s3cret"),
            ("Cookie", "id=1"),
            ("Host", "v"),
            ("X-Trace", "1"),
        )
    )
    first = parse_target("https://example.com/")
    same = hop_config(config, first, parse_target("https://example.com/next"), 4.0)
    assert same.headers == config.headers
    assert same.timeout == 4.0
    for elsewhere in ("https://evil.example/", "http://example.com/", "https://example.com:8443/"):
        moved = hop_config(config, first, parse_target(elsewhere), 4.0)
        assert moved.headers == (("X-Trace", "1"),), elsewhere


class Script:
    """A fake ``fetch`` answering each URL from a table, each hop taking ``hop_seconds``."""

    def __init__(
        self, answers: dict[str, ResponseHead | ErrorInfo], hop_seconds: float = 0.0
    ) -> None:
        self.answers = answers
        self.hop_seconds = hop_seconds
        self.now = 100.0
        self.calls: list[tuple[str, float, tuple[tuple[str, str], ...]]] = []

    async def fetch(self, target: Target, config: Config) -> Result:
        self.calls.append((target.url, config.timeout, config.headers))
        started = dt.datetime.fromtimestamp(self.now, dt.UTC)
        self.now += self.hop_seconds
        answer = self.answers[target.url]
        if isinstance(answer, ErrorInfo):
            return Result(target=target.text, url=target.url, error=answer, fetched_at=started)
        return Result(
            target=target.text,
            url=target.url,
            head=answer,
            address="192.0.2.1",
            timing=Timing(total=self.hop_seconds),
            fetched_at=started,
        )

    async def follow(self, text: str, **config: object) -> Result:
        return await follow(parse_target(text), self.fetch, Config(**config))  # type: ignore[arg-type]


async def test_a_chain_reports_every_hop_and_ends_on_the_final_head() -> None:
    script = Script(
        {
            "http://a.example/": head(301, "https://a.example/"),
            "https://a.example/": head(302, "/home"),
            "https://a.example/home": head(200),
        }
    )
    result = await script.follow("a.example")
    assert result.ok
    assert result.target == "a.example"
    assert result.url == "https://a.example/home"
    assert result.head is not None
    assert result.head.status == 200
    assert [r.to_record() for r in result.redirects] == [
        {"url": "http://a.example/", "status": 301, "location": "https://a.example/"},
        {"url": "https://a.example/", "status": 302, "location": "https://a.example/home"},
    ]


async def test_a_loop_ends_with_kind_redirect_and_the_chain_so_far() -> None:
    script = Script(
        {
            "http://a.example/ping": head(307, "/pong"),
            "http://a.example/pong": head(308, "/ping"),
        }
    )
    result = await script.follow("http://a.example/ping")
    assert not result.ok
    assert result.error is not None
    assert result.error.kind is ErrorKind.REDIRECT
    assert result.error.message == "redirect loop: http://a.example/ping was already visited"
    assert [(r.url, r.location) for r in result.redirects] == [
        ("http://a.example/ping", "http://a.example/pong"),
        ("http://a.example/pong", "http://a.example/ping"),
    ]
    assert result.head is not None
    assert result.head.status == 308
    assert len(script.calls) == 2  # the loop is seen before fetching /ping again


@pytest.mark.parametrize(
    ("max_redirs", "hops", "words"),
    [(0, 0, "0 redirects"), (1, 1, "1 redirect"), (3, 3, "3 redirects")],
)
async def test_too_many_hops_stop_at_max_redirs(max_redirs: int, hops: int, words: str) -> None:
    script = Script({f"http://a.example/{n}": head(302, f"/{n + 1}") for n in range(10)})
    result = await script.follow("http://a.example/0", max_redirs=max_redirs)
    assert result.error is not None
    assert result.error.kind is ErrorKind.REDIRECT
    assert result.error.message == f"more than {words} (--max-redirs {max_redirs})"
    assert len(result.redirects) == hops
    assert result.url == f"http://a.example/{hops}"


async def test_a_location_that_cannot_be_followed_is_a_redirect_error_keeping_the_response() -> (
    None
):
    script = Script({"http://a.example/": head(301, "gopher://a.example/")})
    result = await script.follow("http://a.example/")
    assert result.error is not None
    assert result.error.kind is ErrorKind.REDIRECT
    assert "cannot follow Location 'gopher://a.example/'" in result.error.message
    assert result.head is not None
    assert result.head.status == 301


async def test_a_failing_hop_keeps_the_chain_and_its_own_kind() -> None:
    script = Script(
        {
            "http://a.example/": head(301, "https://a.example/"),
            "https://a.example/": ErrorInfo(
                ErrorKind.TLS, "certificate verification failed: expired"
            ),
        }
    )
    result = await script.follow("http://a.example/")
    assert result.error == ErrorInfo(ErrorKind.TLS, "certificate verification failed: expired")
    assert result.url == "https://a.example/"
    assert [r.url for r in result.redirects] == ["http://a.example/"]


async def test_each_hop_gets_what_is_left_of_the_deadline() -> None:
    chain: dict[str, ResponseHead | ErrorInfo] = {
        f"http://a.example/{n}": head(302, f"/{n + 1}") for n in range(5)
    }
    script = Script(chain, hop_seconds=1.5)
    result = await script.follow("http://a.example/0", timeout=4.0)
    shares = [timeout for _url, timeout, _headers in script.calls]
    assert shares == [4.0, 2.5, 1.0]  # never more than -t in total
    assert result.error is not None
    assert result.error.kind is ErrorKind.TIMEOUT
    assert "after 3 redirects" in result.error.message
    assert len(result.redirects) == 3


async def test_a_hop_that_times_out_says_the_deadline_covers_the_chain() -> None:
    script = Script(
        {
            "http://a.example/": head(301, "/slow"),
            "http://a.example/slow": ErrorInfo(
                ErrorKind.TIMEOUT, "no complete response head within 2.5s (connecting)"
            ),
        },
        hop_seconds=0.5,
    )
    result = await script.follow("http://a.example/", timeout=3.0)
    assert result.error == ErrorInfo(
        ErrorKind.TIMEOUT,
        "no complete response head within 2.5s (connecting): the rest of -t 3s after 1 redirect",
    )


async def test_the_record_has_the_first_hops_start_and_the_last_hops_facts() -> None:
    script = Script(
        {"http://a.example/": head(301, "/b"), "http://a.example/b": head(200)}, hop_seconds=2.0
    )
    result = await script.follow("http://a.example/")
    assert result.fetched_at == dt.datetime.fromtimestamp(100.0, dt.UTC)
    assert result.timing.total == 2.0  # the final hop's timing
    assert result.address == "192.0.2.1"


# --- against a real nginx -------------------------------------------------------------------------


def run_cli(*args: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(cli, list(args))
    return outcome.exit_code, outcome.output


@pytest.mark.integration
def test_L_follows_http_to_https_and_shows_both_hops(nginx: Nginx, ca_file: Path) -> None:
    start = nginx.url("/to-https")
    code, output = run_cli("--format", "plain", "-L", "--cacert", str(ca_file), start)
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == f"{start} redirect > 302 {start} -> https://localhost:{nginx.tls_port}/"
    assert lines[1] == f"{start} header > HTTP/1.1 200 OK"
    assert f"{start} header > X-Fetchheads-Test: root" in lines


@pytest.mark.integration
def test_L_follows_https_back_to_http_in_json(nginx: Nginx, ca_file: Path) -> None:
    start = nginx.url("/to-http", tls=True)
    code, output = run_cli("--json", "-L", "--cacert", str(ca_file), start)
    assert code == 0, output
    record = json.loads(output)
    assert record["target"] == start
    assert record["url"] == nginx.url("/")
    assert record["status"] == 200
    assert record["tls"] is None  # the facts are the final hop's, and it was plain http
    assert record["redirects"] == [{"url": start, "status": 301, "location": nginx.url("/")}]


@pytest.mark.integration
def test_a_real_redirect_loop_ends_with_kind_redirect(nginx: Nginx) -> None:
    code, output = run_cli("--json", "-L", nginx.url("/ping"))
    assert code == 1
    record = json.loads(output)
    assert record["ok"] is False
    assert record["error"] == {
        "kind": "redirect",
        "message": f"redirect loop: {nginx.url('/ping')} was already visited",
    }
    assert [hop["status"] for hop in record["redirects"]] == [307, 308]


@pytest.mark.integration
def test_without_L_a_redirect_is_just_a_response(nginx: Nginx) -> None:
    code, output = run_cli("--json", nginx.url("/loop"))
    assert code == 0
    record = json.loads(output)
    assert (record["status"], record["ok"], record["redirects"]) == (301, True, [])


@pytest.mark.integration
def test_max_redirs_zero_refuses_the_first_hop(nginx: Nginx) -> None:
    code, output = run_cli("--format", "plain", "-L", "--max-redirs", "0", nginx.url("/redirect"))
    assert code == 1
    assert output.splitlines()[-1] == (
        f"{nginx.url('/redirect')} error > redirect: more than 0 redirects (--max-redirs 0)"
    )


def test_credentials_given_with_H_do_not_follow_a_redirect_to_another_origin(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    elsewhere = threaded_server(reply(b"HTTP/1.1 200 OK\r\n\r\n"))
    location = f"http://127.0.0.1:{elsewhere.port}/landing"
    origin = threaded_server(reply(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\n\r\n".encode()))
    code, output = run_cli(
        "--json",
        "-L",
        "-H",
        "Authorization: Bearer s3cret",
        "-H",
        "X-Trace: 7",
        f"127.0.0.1:{origin.port}",
    )
    assert code == 0, output
    assert json.loads(output)["url"] == location
    assert b"\r\nAuthorization: Bearer s3cret\r\n" in origin.requests[0]
    assert b"Authorization" not in elsewhere.requests[0]
    assert b"\r\nX-Trace: 7\r\n" in elsewhere.requests[0]


def test_a_hop_that_never_answers_times_out_within_the_one_deadline(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    stuck = threaded_server(silent())
    origin = threaded_server(
        reply(f"HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:{stuck.port}/\r\n\r\n".encode())
    )
    code, output = run_cli("--json", "-L", "-t", "0.5", f"127.0.0.1:{origin.port}")
    assert code == 1
    record = json.loads(output)
    assert record["error"]["kind"] == "timeout"
    assert re.fullmatch(
        r"no complete response head within 0\.[0-4]\d{0,2}s \(waiting for the response head\): "
        r"the rest of -t 0\.5s after 1 redirect",
        record["error"]["message"],
    ), record["error"]["message"]
    assert [hop["status"] for hop in record["redirects"]] == [301]
    assert record["url"] == f"http://127.0.0.1:{stuck.port}/"


async def test_the_targets_own_user_and_password_stay_with_its_origin() -> None:
    script = Script(
        {
            "http://a.example/": head(302, "/next"),
            "http://a.example/next": head(302, "http://b.example/"),
            "http://b.example/": head(302, "http://other:pw@c.example/"),
            "http://c.example/": head(200),
        }
    )
    sent: list[tuple[str, str | None]] = []

    async def fetch(target: Target, config: Config) -> Result:
        sent.append((target.url, target.authorization))
        return await script.fetch(target, config)

    first = parse_target("http://user:pw@a.example/")
    result = await follow(first, fetch, Config(location=True))
    assert result.ok
    assert result.target == "http://user:***@a.example/"
    assert sent == [
        ("http://a.example/", first.authorization),
        ("http://a.example/next", first.authorization),  # the same origin: as curl does
        ("http://b.example/", None),  # another origin: never
        ("http://c.example/", parse_target("other:pw@c.example").authorization),  # its own
    ]


def test_a_location_urllib_cannot_read_is_one_record_and_the_run_goes_on(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    bad = threaded_server(
        reply(b"HTTP/1.1 302 Found\r\nLocation: http://u:Secret\xe2\x84\x80@[::1/\r\n\r\n")
    )
    good = threaded_server(reply(b"HTTP/1.1 200 OK\r\n\r\n"))
    outcome = CliRunner().invoke(
        cli, ["--json", "-L", f"http://127.0.0.1:{bad.port}/", f"http://127.0.0.1:{good.port}/"]
    )
    assert outcome.exit_code == 1
    records = {json.loads(line)["target"]: json.loads(line) for line in outcome.stdout.splitlines()}
    failed = records[f"http://127.0.0.1:{bad.port}/"]["error"]
    assert failed["kind"] == "redirect"
    assert failed["message"].endswith("not a URL: its host part cannot be read")
    assert "Secret" not in failed["message"]
    assert records[f"http://127.0.0.1:{good.port}/"]["ok"] is True
    assert "internal error" not in outcome.stderr


@pytest.mark.parametrize("timeout", ["2", "1.5"])
def test_a_first_hop_that_times_out_names_the_t_the_user_gave(
    threaded_server: Callable[..., ThreadedServer], timeout: str
) -> None:
    stuck = threaded_server(silent())
    code, output = run_cli("--json", "-L", "-t", timeout, f"127.0.0.1:{stuck.port}")
    assert code == 1
    assert json.loads(output)["error"] == {
        "kind": "timeout",
        "message": f"no complete response head within {timeout}s (waiting for the response head)",
    }


def test_waiting_for_a_rate_turn_is_no_part_of_the_chains_t(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    """docs/scale.md: the wait for a turn is not part of -t. Eight hops at 4 a second take
    ~1.75 s, far past -t 0.5, and every chain still ends at its 200."""
    server = threaded_server(
        routes(
            {
                f"/r{n}": f"HTTP/1.1 302 Found\r\nLocation: /final{n}\r\n\r\n".encode()
                for n in range(4)
            },
            default=b"HTTP/1.1 200 OK\r\n\r\n",
        )
    )
    urls = [f"http://127.0.0.1:{server.port}/r{n}" for n in range(4)]
    code, output = run_cli("--json", "-L", "--rate", "4", "-t", "0.5", *urls)
    records = [json.loads(line) for line in output.splitlines()]
    assert [(r["status"], r["error"]) for r in records] == [(200, None)] * 4, output
    assert code == 0
    assert all(len(r["redirects"]) == 1 for r in records)


def test_retried_hops_still_end_the_chain_within_its_budget() -> None:
    """-L --retries: every hop's first attempt hangs and its retry answers 302. The attempts
    and the backoff count against the chain's -t, so ten such hops do not take ten -t."""
    import socket
    import threading
    import time

    listener = socket.create_server(("127.0.0.1", 0), backlog=32)
    seen: set[str] = set()
    open_connections: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = listener.accept()
                path = connection.recv(4096).split(b" ")[1].decode()
                if path not in seen:  # the first attempt: hang until the client gives up
                    seen.add(path)
                    open_connections.append(connection)
                    continue
                hop = int(path.removeprefix("/h"))
                connection.sendall(f"HTTP/1.1 302 Found\r\nLocation: /h{hop + 1}\r\n\r\n".encode())
                connection.close()

    threading.Thread(target=serve, daemon=True).start()
    started = time.monotonic()
    try:
        port = listener.getsockname()[1]
        code, output = run_cli("--json", "-L", "-t", "0.5", "--retries", "1",
                               f"http://127.0.0.1:{port}/h0")  # fmt: skip
    finally:
        listener.close()
        for connection in open_connections:
            connection.close()
    elapsed = time.monotonic() - started
    record = json.loads(output)
    assert code == 1
    assert record["error"]["kind"] == "timeout", record
    assert len(record["redirects"]) <= 2
    assert elapsed < 3  # ten hops at ~0.6 s each would be 6 s
