"""Resolution: --dns-servers through c-ares against a loopback DNS server, the system resolver's
thread pool, the per-run cache, --resolve, -4/-6 and happy eyeballs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from fetchheads.cli import cli
from fetchheads.config import Config
from fetchheads.errors import DNSError, InputError
from fetchheads.fetch import resolve as resolve_module
from fetchheads.fetch.one import FetchContext, fetch_one, make_ssl_context
from fetchheads.fetch.resolve import (
    Resolver,
    order_for_happy_eyeballs,
    parse_dns_server,
    parse_resolve,
)
from fetchheads.targets import parse_target
from tests.support.dns import DNSServer, ThreadedDNSServer
from tests.support.servers import Blackhole, LoopbackServer, ThreadedServer, reply

HEAD = b"HTTP/1.1 200 OK\r\nServer: scripted\r\n\r\n"


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    """A DNS server on loopback answering every name under ``test.`` with 127.0.0.1."""
    threaded = ThreadedDNSServer(DNSServer("test.", delay=0.05)).start()
    try:
        yield threaded.server
    finally:
        threaded.stop()


def run_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[dict[str, Any]]]:
    result = CliRunner().invoke(cli, ["--json", "-t", "5", *args], env=env)
    return result.exit_code, [json.loads(line) for line in result.output.splitlines()]


# --- --dns-servers (c-ares) -------------------------------------------------------------------


def test_dns_servers_resolve_names_and_each_name_is_asked_once(
    dns_server: DNSServer, threaded_server: Callable[..., ThreadedServer]
) -> None:
    server = threaded_server(reply(HEAD))
    names = [f"host{i}.bench.test" for i in range(20)]
    targets = [f"http://{name}:{server.port}/page{j}" for name in names for j in range(3)]
    code, records = run_json("--dns-servers", dns_server.address, "-c", "30", *targets)
    assert code == 0, records
    assert len(records) == 60
    assert all(r["ok"] and r["address"] == "127.0.0.1" for r in records)
    assert all(r["timing"]["dns"] is not None for r in records)
    # Three URLs per host, one lookup per host (A, and AAAA for a dual-stack answer).
    assert {dns_server.queries[(name, "A")] for name in names} == {1}
    # The Host header is the name, not the address.
    assert any(b"Host: host0.bench.test:" in request for request in server.requests)


def test_a_name_the_dns_server_does_not_know_is_kind_dns(dns_server: DNSServer) -> None:
    code, records = run_json("--dns-servers", dns_server.address, "http://nowhere.invalid/")
    assert code == 1
    assert records[0]["error"]["kind"] == "dns"
    assert records[0]["error"]["message"].startswith("cannot resolve nowhere.invalid")


def test_dns_servers_with_ipv6_only_asks_for_aaaa(dns_server: DNSServer) -> None:
    code, records = run_json("-6", "--dns-servers", dns_server.address, "http://only4.test/")
    assert code == 1
    assert records[0]["error"]["kind"] == "dns"
    assert dns_server.queries[("only4.test", "A")] == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9.9.9.9", "9.9.9.9"),
        ("127.0.0.1:5353", "127.0.0.1:5353"),
        ("[::1]:5353", "[::1]:5353"),
        ("::1", "::1"),
    ],
)
def test_dns_server_forms(text: str, expected: str) -> None:
    assert parse_dns_server(text) == expected


# "\u00b2" (a superscript two) is a digit to str.isdigit but not to int(): not an internal error.
@pytest.mark.parametrize("bad", ["dns.google", "1.2.3.4:99999", "[::1]x", ",", "1.2.3.4:\u00b2"])
def test_a_bad_dns_server_is_a_usage_error(bad: str) -> None:
    result = CliRunner().invoke(cli, ["--dns-servers", bad, "127.0.0.1"])
    assert result.exit_code == 2
    assert "--dns-servers" in result.output


# --- the system resolver ----------------------------------------------------------------------


def counting(calls: list[str]) -> Callable[..., list[Any]]:
    """A system ``getaddrinfo`` that answers 127.0.0.1 and notes each name it was asked."""

    def getaddrinfo(host: str, port: object, **kwargs: Any) -> list[Any]:
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]

    return getaddrinfo


def failing(calls: list[str]) -> Callable[..., list[Any]]:
    """A system ``getaddrinfo`` that knows no name, and notes each name it was asked."""

    def getaddrinfo(host: str, port: object, **kwargs: Any) -> list[Any]:
        calls.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    return getaddrinfo


async def test_system_lookups_run_as_concurrently_as_the_targets() -> None:
    """asyncio's default executor runs 6 lookups at a time here (4 in uvloop): 40 lookups that
    each wait for all the others could never finish there. The resolver's pool fits -c."""
    barrier = threading.Barrier(40, timeout=5)

    def slow_getaddrinfo(host: str, port: object, **kwargs: Any) -> list[Any]:
        barrier.wait()  # returns only when all 40 lookups are in progress at once
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]

    resolver = Resolver(concurrency=40, getaddrinfo=slow_getaddrinfo)
    try:
        results = await asyncio.gather(*(resolver.resolve(f"h{i}.example", 80) for i in range(40)))
    finally:
        await resolver.aclose()
    assert results == [[(socket.AF_INET, "127.0.0.1")]] * 40


async def test_many_urls_on_one_host_cost_one_lookup() -> None:
    calls: list[str] = []
    counting_getaddrinfo = counting(calls)
    resolver = Resolver(getaddrinfo=counting_getaddrinfo)
    try:
        await asyncio.gather(*(resolver.resolve("same.example", 80 + i % 2) for i in range(50)))
        await resolver.resolve("same.example", 443)
    finally:
        await resolver.aclose()
    assert calls == ["same.example"]


async def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolve_module, "DNS_CACHE_SIZE", 3)
    calls: list[str] = []
    counting_getaddrinfo = counting(calls)
    resolver = Resolver(getaddrinfo=counting_getaddrinfo)
    try:
        for name in ["a.example", "b.example", "c.example", "d.example", "a.example"]:
            await resolver.resolve(name, 80)
    finally:
        await resolver.aclose()
    assert calls == ["a.example", "b.example", "c.example", "d.example", "a.example"]


async def test_a_failed_lookup_is_remembered_for_the_run() -> None:
    calls: list[str] = []
    resolver = Resolver(getaddrinfo=failing(calls))
    try:
        for _ in range(3):
            with pytest.raises(DNSError, match=r"cannot resolve gone\.example: Name or service"):
                await resolver.resolve("gone.example", 80)
    finally:
        await resolver.aclose()
    assert calls == ["gone.example"]


async def test_targets_on_a_name_looked_up_before_are_timed_and_not_looked_up_again() -> None:
    calls: list[str] = []
    resolver = Resolver(getaddrinfo=counting(calls))
    ctx = FetchContext(config=Config(timeout=5.0), resolver=resolver)
    try:
        async with LoopbackServer(reply(b"HTTP/1.1 204 No Content\r\n\r\n")) as server:
            target = parse_target(f"http://cached.example:{server.port}/")
            results = [await fetch_one(target, ctx) for _ in range(3)]
    finally:
        await resolver.aclose()
    assert calls == ["cached.example"]
    for result in results:
        assert result.ok
        assert result.address == "127.0.0.1"
        assert result.timing.dns is not None  # a cached answer is still a name that was resolved


async def test_a_name_that_failed_fails_the_same_way_for_every_later_target() -> None:
    calls: list[str] = []
    resolver = Resolver(getaddrinfo=failing(calls))
    ctx = FetchContext(config=Config(timeout=5.0), resolver=resolver)
    try:
        results = [await fetch_one(parse_target("gone.example"), ctx) for _ in range(3)]
    finally:
        await resolver.aclose()
    assert calls == ["gone.example"]
    assert {(r.error.kind, r.error.message) for r in results if r.error} == {
        ("dns", "cannot resolve gone.example: Name or service not known")
    }
    assert all(not r.ok for r in results)


# --- --resolve, -4/-6 -------------------------------------------------------------------------


def test_resolve_pins_an_address_and_keeps_the_name_in_the_host_header(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    server = threaded_server(reply(HEAD))
    pin = f"pinned.example:{server.port}:127.0.0.1"
    code, records = run_json("--resolve", pin, f"http://pinned.example:{server.port}/")
    assert code == 0, records
    assert records[0]["address"] == "127.0.0.1"
    assert f"Host: pinned.example:{server.port}\r\n".encode() in server.requests[0]


def test_resolve_is_per_port_as_in_curl(threaded_server: Callable[..., ThreadedServer]) -> None:
    server = threaded_server(reply(HEAD))
    pin = f"pinned.invalid:{server.port + 1}:127.0.0.1"
    code, records = run_json("--resolve", pin, f"http://pinned.invalid:{server.port}/")
    assert code == 1
    assert records[0]["error"]["kind"] == "dns"  # the pin is for another port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Example.COM.:443:127.0.0.1", (("example.com", 443), ((socket.AF_INET, "127.0.0.1"),))),
        (
            "h:80:[::1],127.0.0.2",
            (("h", 80), ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.2"))),
        ),
    ],
)
def test_resolve_forms(text: str, expected: object) -> None:
    assert parse_resolve(text) == expected


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("example.com:443", "expected HOST:PORT:ADDR"),
        ("example.com:http:1.2.3.4", "invalid port"),
        ("example.com:443:localhost", "is not an IP address"),
        ("[::1]:443:127.0.0.1", "HOST is a name to pin, not an address"),
    ],
)
def test_a_bad_resolve_is_a_usage_error(bad: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_resolve(bad)
    result = CliRunner().invoke(cli, ["--resolve", bad, "127.0.0.1"])
    assert result.exit_code == 2
    assert message in result.output


def test_ipv4_only_refuses_an_ipv6_literal() -> None:
    code, records = run_json("-4", "http://[::1]:9/")
    assert code == 1
    assert records[0]["error"] == {"kind": "dns", "message": "::1 has no IPv4 address"}


def test_ipv6_only_skips_the_ipv4_addresses_of_a_name(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    server = threaded_server(reply(HEAD))
    pin = f"dual.example:{server.port}:127.0.0.1,::1"
    code, records = run_json("-6", "--resolve", pin, f"http://dual.example:{server.port}/")
    assert code == 1  # the server listens on 127.0.0.1 only, and -6 may not use it
    assert records[0]["error"]["kind"] == "connect"
    assert records[0]["address"] == "::1"


@pytest.mark.parametrize("flags", [("-4", "-6"), ("-6", "-4"), ("--ipv4", "--ipv6")])
def test_ipv4_only_and_ipv6_only_together_are_a_usage_error(flags: tuple[str, str]) -> None:
    result = CliRunner().invoke(cli, [*flags, "127.0.0.1"])
    assert result.exit_code == 2
    assert "-4/--ipv4 and -6/--ipv6 contradict each other" in result.output


def test_a_family_on_the_command_line_wins_over_the_other_in_the_environment() -> None:
    code, records = run_json("-4", "http://[::1]:9/", env={"FETCHHEADS_IPV6": "1"})
    assert code == 1
    assert records[0]["error"] == {"kind": "dns", "message": "::1 has no IPv4 address"}


# --- happy eyeballs ---------------------------------------------------------------------------


def test_happy_eyeballs_interleaves_the_families() -> None:
    v4 = [(socket.AF_INET, f"192.0.2.{i}") for i in range(3)]
    v6 = [(socket.AF_INET6, f"2001:db8::{i}") for i in range(2)]
    assert order_for_happy_eyeballs([*v6, *v4]) == [v6[0], v4[0], v6[1], v4[1], v4[2]]


async def test_an_address_that_hangs_does_not_hold_up_the_next_one() -> None:
    """The first address drops SYNs; the second answers. Tried one after the other, the target
    would time out; with happy eyeballs the second starts after 250 ms and wins."""
    async with LoopbackServer(reply(HEAD)) as server:
        hole = Blackhole("127.0.0.2", server.port)
        try:
            config = Config(timeout=3)
            pinned = {
                ("multi.example", server.port): [
                    (socket.AF_INET, "127.0.0.2"),
                    (socket.AF_INET, "127.0.0.1"),
                ]
            }
            resolver = Resolver(pinned=pinned)
            ctx = FetchContext(
                config=config, ssl_context=make_ssl_context(config), resolver=resolver
            )
            target = parse_target(f"http://multi.example:{server.port}/")
            result = await fetch_one(target, ctx)
            await resolver.aclose()
        finally:
            hole.close()
    assert result.ok, result.error
    assert result.address == "127.0.0.1"


async def test_when_every_address_fails_the_error_names_the_last_one() -> None:
    # Port 9 (discard) is closed on loopback addresses: both connects are refused at once.
    pinned = {("gone.example", 9): [(socket.AF_INET, "127.0.0.4"), (socket.AF_INET, "127.0.0.5")]}
    resolver = Resolver(pinned=pinned)
    config = Config(timeout=3)
    ctx = FetchContext(config=config, ssl_context=make_ssl_context(config), resolver=resolver)
    result = await fetch_one(parse_target("gone.example:9"), ctx)
    await resolver.aclose()
    assert result.error is not None
    assert result.error.kind == "connect"
    assert result.error.message == "127.0.0.5:9: connection refused"


@pytest.fixture
def mute_dns_port() -> Iterator[int]:
    """A loopback UDP port that takes DNS queries and never answers them."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def test_a_timeout_too_large_for_c_ares_still_ends_in_the_targets_deadline(
    mute_dns_port: int,
) -> None:
    """c-ares counts milliseconds in a C int: the timeout it is given is capped, so a huge
    --connect-timeout is a record that timed out, not an internal error ending the run."""
    outcome = CliRunner().invoke(
        cli,
        [
            "--json",
            "-t",
            "0.5",
            "--connect-timeout",
            "1e300",
            "--dns-servers",
            f"127.0.0.1:{mute_dns_port}",
            "http://mute.test/",
        ],
    )
    assert outcome.exit_code == 1, outcome.output
    assert "internal error" not in outcome.stderr
    assert json.loads(outcome.stdout)["error"] == {
        "kind": "timeout",
        "message": "no complete response head within 0.5s (resolving)",
    }


async def test_c_ares_is_given_at_most_its_largest_timeout(mute_dns_port: int) -> None:
    resolver = Resolver(servers=[f"127.0.0.1:{mute_dns_port}"], timeout=2147484.0)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await resolver.resolve("mute.test", 80)
    finally:
        await resolver.aclose()
    assert resolve_module.CARES_MAX_TIMEOUT * 1000 * 2 < 2**31  # doubled once for the 2nd try


async def test_a_lookup_that_got_no_answer_is_asked_again_and_may_be_retried() -> None:
    """EAI_AGAIN (the resolver got no answer) is not remembered, unlike "no such name": a retry
    asks again, and it is a failure --retries retries."""
    calls: list[str] = []

    def flaky(host: str, port: object, **kwargs: Any) -> list[Any]:
        calls.append(host)
        if len(calls) == 1:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]

    resolver = Resolver(getaddrinfo=flaky)
    try:
        with pytest.raises(DNSError) as failed:
            await resolver.resolve("flaky.example", 80)
        assert failed.value.retryable
        assert await resolver.resolve("flaky.example", 80) == [(socket.AF_INET, "127.0.0.1")]
    finally:
        await resolver.aclose()
    assert calls == ["flaky.example", "flaky.example"]


async def test_dns_servers_that_time_out_are_asked_again_on_the_next_try() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:
        mute.bind(("127.0.0.1", 0))
        mute.setblocking(False)
        resolver = Resolver(servers=[f"127.0.0.1:{mute.getsockname()[1]}"], timeout=0.1)
        try:
            for _ in range(2):
                with pytest.raises(DNSError, match=r"cannot resolve mute\.test") as failed:
                    await resolver.resolve("mute.test", 80)
                assert failed.value.retryable
        finally:
            await resolver.aclose()
        queries = 0
        with contextlib.suppress(BlockingIOError):
            while mute.recv(4096):
                queries += 1
    assert queries >= 4  # two lookups of two tries each: the second was not the first's echo
