"""Proxies: which one a target uses (curl's rules), and the real thing through tinyproxy."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from fetchheads.cli import cli
from fetchheads.config import Config
from fetchheads.connect_to import ConnectTo, parse_connect_to
from fetchheads.errors import ErrorKind, InputError
from fetchheads.fetch.one import fetch_one
from fetchheads.http.request import connect_request, proxied_request
from fetchheads.models import ErrorInfo, Result
from fetchheads.proxy import Proxy, bypasses_proxy, parse_proxy, proxy_rules
from fetchheads.targets import parse_target
from tests.conftest import make_context
from tests.support.nginx import Nginx
from tests.support.servers import Handler, LoopbackServer, ThreadedServer, reply, silent
from tests.support.tinyproxy import Tinyproxy

HTTP = parse_target("http://www.example.com/")
HTTPS = parse_target("https://www.example.com/")


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("http://127.0.0.1:3128", "127.0.0.1", 3128),
        ("127.0.0.1:3128", "127.0.0.1", 3128),  # curl's default scheme is http
        ("proxy.example", "proxy.example", 1080),  # and its default port 1080
        ("http://PROXY.Example:8080/", "proxy.example", 8080),
        ("http://[::1]:8888", "::1", 8888),
    ],
)
def test_proxy_urls_are_read_as_curl_reads_them(text: str, host: str, port: int) -> None:
    proxy = parse_proxy(text)
    assert (proxy.host, proxy.port, proxy.authorization) == (host, port, None)


def test_proxy_credentials_become_a_basic_proxy_authorization() -> None:
    proxy = parse_proxy("http://al%40ice:p%3Ass@127.0.0.1:3128")
    assert proxy.authorization == "Basic " + base64.b64encode(b"al@ice:p:ss").decode()
    assert "p:ss" not in repr(proxy)  # never printed by accident


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("socks5://127.0.0.1:1080", "unsupported proxy scheme 'socks5'"),
        ("https://127.0.0.1:3128", "unsupported proxy scheme 'https'"),
        ("http://127.0.0.1:99999", "invalid proxy"),
        ("http://:3128", "no host"),
        ("http://127.0.0.1:3128/path", "not a URL with a path"),
        ("http://bad host:1", "invalid proxy"),
    ],
)
def test_bad_proxies_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_proxy(text)


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypass"),
    [
        ("www.example.com", "*", True),
        ("www.example.com", "example.com", True),
        ("www.example.com", ".example.com", True),
        ("example.com", ".example.com", True),
        ("www.example.com", "EXAMPLE.COM.", True),
        ("notexample.com", "example.com", False),
        ("www.example.com", "other.org, example.com", True),
        ("www.example.com", "other.org,,  ,www.example.com ", True),
        ("www.example.com", "www.example.com.au", False),
        ("www.example.com", "", False),
        ("www.example.com", "*.example.com", False),  # curl has no globs: '*' only alone
        ("10.1.2.3", "10.0.0.0/8", True),
        ("10.1.2.3", "10.1.2.3", True),
        ("11.1.2.3", "10.0.0.0/8", False),
        ("127.0.0.1", "localhost", False),  # a name never matches an address
        ("localhost", "127.0.0.1", False),
        ("::1", "::1", True),
        ("::1", "[::1]", True),
        ("fe80::1", "fe80::/10", True),
        ("2001:db8::1", "fe80::/10", False),
    ],
)
def test_no_proxy_matching_follows_curl(host: str, no_proxy: str, bypass: bool) -> None:
    assert bypasses_proxy(host, no_proxy) is bypass


def rules_for(
    environ: dict[str, str], *, proxy: str | None = None, noproxy: str | None = None
) -> tuple[Proxy | None, Proxy | None]:
    rules = proxy_rules(environ, proxy=proxy, noproxy=noproxy)
    return rules.proxy_for(HTTP), rules.proxy_for(HTTPS)


def test_each_scheme_reads_its_own_variable() -> None:
    http, https = rules_for({"http_proxy": "127.0.0.1:1", "https_proxy": "127.0.0.1:2"})
    assert (http, https) == (Proxy("127.0.0.1", 1), Proxy("127.0.0.1", 2))


def test_upper_case_https_proxy_is_read_but_upper_case_http_proxy_never_is() -> None:
    # HTTP_PROXY is what a CGI program sees for a client's "Proxy:" header (httpoxy).
    http, https = rules_for({"HTTP_PROXY": "127.0.0.1:1", "HTTPS_PROXY": "127.0.0.1:2"})
    assert (http, https) == (None, Proxy("127.0.0.1", 2))


def test_lower_case_wins_and_all_proxy_is_the_fallback() -> None:
    environ = {
        "https_proxy": "127.0.0.1:2",
        "HTTPS_PROXY": "127.0.0.1:3",
        "ALL_PROXY": "127.0.0.1:4",
    }
    assert rules_for(environ) == (Proxy("127.0.0.1", 4), Proxy("127.0.0.1", 2))
    assert rules_for({"all_proxy": "127.0.0.1:5", "ALL_PROXY": "127.0.0.1:4"})[0] == Proxy(
        "127.0.0.1", 5
    )


def test_an_empty_variable_means_no_proxy_and_hides_the_rest() -> None:
    assert (
        rules_for({"https_proxy": "", "HTTPS_PROXY": "127.0.0.1:3", "all_proxy": "127.0.0.1:4"})[1]
        is None
    )


def test_the_option_overrides_the_environment_and_empty_disables_it() -> None:
    environ = {"http_proxy": "127.0.0.1:1", "https_proxy": "127.0.0.1:2"}
    assert rules_for(environ, proxy="127.0.0.1:9") == (Proxy("127.0.0.1", 9), Proxy("127.0.0.1", 9))
    assert rules_for(environ, proxy="") == (None, None)


def test_no_proxy_applies_to_the_option_too_and_noproxy_replaces_the_variable() -> None:
    environ = {"https_proxy": "127.0.0.1:2", "no_proxy": "example.com", "NO_PROXY": "other.org"}
    assert rules_for(environ) == (None, None)
    assert rules_for(environ, proxy="127.0.0.1:9") == (None, None)
    assert rules_for(environ, noproxy="")[1] == Proxy("127.0.0.1", 2)
    assert rules_for({"https_proxy": "127.0.0.1:2", "NO_PROXY": "example.com"})[1] is None


def test_a_bad_variable_is_named_in_the_error() -> None:
    with pytest.raises(InputError, match=r"^https_proxy: unsupported proxy scheme 'socks5'"):
        proxy_rules({"https_proxy": "socks5://127.0.0.1:1"})
    with pytest.raises(InputError, match=r"^--proxy: "):
        proxy_rules({}, proxy="ftp://x")


# --- the bytes sent to a proxy -------------------------------------------------------------------


def test_plain_http_goes_to_the_proxy_in_absolute_form_with_its_credentials() -> None:
    proxy = parse_proxy("http://u:p@127.0.0.1:3128")
    request = proxied_request(parse_target("http://origin.example:8080/a?b=1"), Config(), proxy)
    lines = request.decode().split("\r\n")
    assert lines[0] == "GET http://origin.example:8080/a?b=1 HTTP/1.0"
    assert "Host: origin.example:8080" in lines
    assert f"Proxy-Authorization: {proxy.authorization}" in lines


def test_a_proxy_authorization_given_with_H_is_not_doubled() -> None:
    proxy = parse_proxy("http://u:p@127.0.0.1:3128")
    config = Config(headers=(("Proxy-Authorization", "Bearer mine"),))
    request = proxied_request(parse_target("http://origin.example/"), config, proxy).decode()
    assert request.count("Proxy-Authorization") == 1
    assert "Proxy-Authorization: Bearer mine" in request


def test_the_tunnel_request_names_the_origin() -> None:
    assert connect_request("::1", 8443, Proxy("127.0.0.1", 3128), "fetchheads/1") == (
        b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\nUser-Agent: fetchheads/1\r\n\r\n"
    )


# --- proxies that misbehave (scripted), each failure blamed on the proxy ---------------------------


@dataclasses.dataclass
class Proxied:
    result: Result
    proxy_port: int
    requests: list[bytes]


async def fetch_via(
    handler: Handler,
    url: str,
    *,
    seconds: float = 5.0,
    connect_to: tuple[ConnectTo, ...] = (),
    retries: int = 0,
) -> Proxied:
    """Fetch ``url`` through a scripted proxy (with credentials user:pw)."""
    async with LoopbackServer(handler) as proxy:
        rules = proxy_rules({}, proxy=f"http://user:pw@127.0.0.1:{proxy.port}")
        config = Config(timeout=seconds, proxies=rules, connect_to=connect_to, retries=retries)
        result = await fetch_one(parse_target(url), make_context(config))
        return Proxied(result, proxy.port, proxy.requests)


async def test_plain_http_through_a_proxy_never_resolves_the_origin_itself() -> None:
    proxied = await fetch_via(
        reply(b"HTTP/1.1 200 OK\r\nVia: scripted-proxy\r\n\r\n"), "http://origin.invalid/p"
    )
    result = proxied.result
    assert result.ok, result.error
    assert result.head is not None
    assert result.head.get("Via") == "scripted-proxy"
    assert result.address == "127.0.0.1"  # the proxy's: the origin's is the proxy's business
    assert proxied.requests[0].startswith(
        b"GET http://origin.invalid/p HTTP/1.0\r\nHost: origin.invalid\r\n"
    )
    assert b"\r\nProxy-Authorization: Basic dXNlcjpwdw==\r\n" in proxied.requests[0]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
            "CONNECT answered 407 Proxy Authentication Required",
        ),
        (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", "CONNECT answered 502 Bad Gateway"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP answer to CONNECT"),
        (b"", "no answer to CONNECT"),
    ],
)
async def test_a_proxy_that_will_not_tunnel_is_kind_connect_and_named(
    answer: bytes, message: str
) -> None:
    proxied = await fetch_via(reply(answer), "https://origin.invalid:8443/")
    result = proxied.result
    assert result.error is not None
    assert result.error.kind is ErrorKind.CONNECT
    assert result.error.message.startswith(f"proxy 127.0.0.1:{proxied.proxy_port}: {message}"), (
        result.error.message
    )
    assert result.head is None  # the proxy's answer is not the origin's head
    assert proxied.requests[0].startswith(
        b"CONNECT origin.invalid:8443 HTTP/1.1\r\nHost: origin.invalid:8443\r\n"
    )
    assert b"\r\nProxy-Authorization: Basic dXNlcjpwdw==\r\n" in proxied.requests[0]


@pytest.mark.parametrize(
    ("answer", "attempts"),
    [
        (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", 1),
        (b"HTTP/1.1 403 Forbidden\r\n\r\n", 1),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", 1),
        (b"", 3),  # no answer at all: that one is worth asking again
    ],
)
async def test_a_proxy_refusal_is_an_answer_and_never_retried(answer: bytes, attempts: int) -> None:
    proxied = await fetch_via(reply(answer), "https://origin.invalid/", retries=2)
    assert len(proxied.requests) == attempts
    assert proxied.result.error is not None
    assert proxied.result.error.kind is ErrorKind.CONNECT
    assert proxied.result.error.message.endswith(" (after 3 attempts)") == (attempts > 1)


async def test_connect_to_changes_what_the_tunnel_asks_for_not_the_request() -> None:
    rules = (parse_connect_to("origin.invalid:443:10.9.8.7:8443"),)
    proxied = await fetch_via(
        reply(b"HTTP/1.1 403 Forbidden\r\n\r\n"), "https://origin.invalid/", connect_to=rules
    )
    assert proxied.requests[0].startswith(b"CONNECT 10.9.8.7:8443 HTTP/1.1\r\n")
    plain = await fetch_via(
        reply(b"HTTP/1.1 200 OK\r\n\r\n"), "http://origin.invalid/", connect_to=rules
    )
    assert plain.requests[0].startswith(b"GET http://origin.invalid/ HTTP/1.0\r\n")


async def test_a_silent_proxy_times_out_in_the_proxy_phase() -> None:
    result = (await fetch_via(silent(), "https://origin.invalid/", seconds=0.3)).result
    assert result.error is not None
    assert result.error.kind is ErrorKind.TIMEOUT
    assert "(proxy CONNECT" in result.error.message


async def test_a_proxy_that_refuses_connections_is_blamed_not_the_target(refused_port: int) -> None:
    rules = proxy_rules({"http_proxy": f"127.0.0.1:{refused_port}"})
    result = await fetch_one(
        parse_target("http://origin.invalid/"), make_context(Config(proxies=rules))
    )
    assert result.error == ErrorInfo(
        ErrorKind.CONNECT, f"proxy 127.0.0.1:{refused_port}: connection refused"
    )


async def test_a_proxy_name_that_does_not_resolve_is_a_proxy_failure() -> None:
    rules = proxy_rules({}, proxy="http://proxy.invalid:3128")
    result = await fetch_one(
        parse_target("http://origin.invalid/"), make_context(Config(proxies=rules))
    )
    assert result.error is not None
    assert result.error.kind is ErrorKind.CONNECT
    assert result.error.message.startswith("proxy proxy.invalid:3128: cannot resolve proxy.invalid")


# --- a real proxy: tinyproxy on loopback -----------------------------------------------------------


def cli_run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    outcome = CliRunner().invoke(cli, list(args), env=env)
    return outcome.exit_code, outcome.output


@pytest.mark.integration
def test_plain_http_through_tinyproxy(tinyproxy: Tinyproxy, nginx: Nginx) -> None:
    code, output = cli_run("--json", "--proxy", tinyproxy.url, nginx.url("/"))
    assert code == 0, output
    record = json.loads(output)
    assert record["status"] == 200
    assert ["X-Fetchheads-Test", "root"] in record["headers"]
    assert "Request (file descriptor" in tinyproxy.log_text()
    assert f"GET {nginx.url('/')} HTTP/1.0" in tinyproxy.log_text()


@pytest.mark.integration
def test_https_proxy_variable_tunnels_through_tinyproxy(
    tinyproxy: Tinyproxy, nginx: Nginx, ca_file: Path
) -> None:
    url = nginx.url("/", tls=True)
    code, output = cli_run(
        "--json", "--cacert", str(ca_file), url, env={"https_proxy": tinyproxy.url}
    )
    assert code == 0, output
    record = json.loads(output)
    assert record["status"] == 200
    assert record["tls"]["san"][0] == "localhost"  # TLS with the origin, through the tunnel
    assert f"CONNECT localhost:{nginx.tls_port} HTTP/1.1" in tinyproxy.log_text()


@pytest.mark.integration
def test_a_rejected_certificate_is_looked_at_through_the_same_tunnel(
    tinyproxy: Tinyproxy, nginx: Nginx
) -> None:
    url = nginx.url("/", tls=True)
    connect = f"CONNECT localhost:{nginx.tls_port} HTTP/1.1"
    before = tinyproxy.log_text().count(connect)
    code, output = cli_run("--json", url, env={"https_proxy": tinyproxy.url})  # system store
    assert code == 1
    record = json.loads(output)
    assert record["error"]["kind"] == "tls"
    assert record["error"]["message"].endswith(
        "which is not trusted: give --cacert FILE, or -k to look anyway"
    )
    assert record["tls"]["san"][0] == "localhost"  # the second look went through the proxy too
    assert tinyproxy.log_text().count(connect) == before + 2  # the verified one, and the look


@pytest.mark.integration
def test_L_hops_each_go_through_the_proxy(
    tinyproxy: Tinyproxy, nginx: Nginx, ca_file: Path
) -> None:
    start = nginx.url("/to-https")
    code, output = cli_run(
        "--format", "plain", "-L", "--cacert", str(ca_file), "--proxy", tinyproxy.url, start
    )
    assert code == 0, output
    assert output.splitlines()[1] == f"{start} header > HTTP/1.1 200 OK"
    log = tinyproxy.log_text()
    assert f"GET {start} HTTP/1.0" in log
    assert f"CONNECT localhost:{nginx.tls_port} HTTP/1.1" in log


@pytest.mark.integration
def test_tinyproxy_refusing_a_tunnel_is_reported_as_the_proxy(
    tinyproxy: Tinyproxy, nginx: Nginx
) -> None:
    # tinyproxy tunnels only to nginx's TLS port (ConnectPort): a tunnel to the http port is refused.
    code, output = cli_run(
        "--format", "plain", "--proxy", tinyproxy.url, f"https://localhost:{nginx.port}/"
    )
    assert code == 1
    assert output == (
        f"https://localhost:{nginx.port}/ error > connect: proxy 127.0.0.1:{tinyproxy.port}: "
        "CONNECT answered 403 Access violation\n"
    )


@pytest.mark.integration
def test_no_proxy_sends_listed_hosts_direct(nginx: Nginx, refused_port: int, ca_file: Path) -> None:
    env = {"https_proxy": f"http://127.0.0.1:{refused_port}", "no_proxy": "example.com,localhost"}
    url = nginx.url("/", tls=True)
    assert cli_run("--json", "--cacert", str(ca_file), url, env=env)[0] == 0
    code, output = cli_run("--json", "--cacert", str(ca_file), "--noproxy", "", url, env=env)
    assert code == 1
    assert (
        json.loads(output)["error"]["message"]
        == f"proxy 127.0.0.1:{refused_port}: connection refused"
    )


def test_a_bad_proxy_variable_is_a_usage_error() -> None:
    code, output = cli_run("http://127.0.0.1:9/", env={"http_proxy": "socks5://127.0.0.1:1080"})
    assert code == 2
    assert "http_proxy: unsupported proxy scheme 'socks5'" in output


@pytest.mark.parametrize("spelling", ["127.1", "0x7f.1", "2130706433", "0177.0.0.1"])
def test_noproxy_ranges_see_ipv4_however_it_is_spelled(
    spelling: str, threaded_server: Callable[[Handler], ThreadedServer], refused_port: int
) -> None:
    server = threaded_server(reply(b"HTTP/1.1 200 OK\r\n\r\n"))
    proxy = f"http://127.0.0.1:{refused_port}"
    url = f"http://{spelling}:{server.port}/"
    code, output = cli_run("--json", "--proxy", proxy, "--noproxy", "127.0.0.0/8", url)
    assert code == 0, output
    record = json.loads(output)
    assert (record["target"], record["url"]) == (url, f"http://127.0.0.1:{server.port}/")


def test_empty_proxy_variables_of_fetchheads_mean_what_the_empty_options_mean(
    threaded_server: Callable[..., ThreadedServer], refused_port: int
) -> None:
    """FETCHHEADS_PROXY='' is --proxy '' (no proxy, whatever http_proxy says), and
    FETCHHEADS_NOPROXY='' is --noproxy '' (no_proxy from the environment no longer applies)."""
    server = threaded_server(reply(b"HTTP/1.1 200 OK\r\nServer: direct\r\n\r\n"))
    url = f"http://127.0.0.1:{server.port}/"
    proxy = f"http://127.0.0.1:{refused_port}"
    code, output = cli_run("--json", url, env={"http_proxy": proxy, "FETCHHEADS_PROXY": ""})
    assert (code, json.loads(output)["status"]) == (0, 200)
    env = {"http_proxy": proxy, "no_proxy": "127.0.0.1", "FETCHHEADS_NOPROXY": ""}
    code, output = cli_run("--json", url, env=env)
    assert code == 1
    assert (
        json.loads(output)["error"]["message"]
        == f"proxy 127.0.0.1:{refused_port}: connection refused"
    )


@pytest.mark.parametrize("tail", ["", "/x@", "/a@b", "?x@y", "#@"])
def test_a_proxy_url_urllib_refuses_is_named_without_its_password(tail: str) -> None:
    code, output = cli_run(
        "--proxy", f"http://u:pa\u2100ss@127.0.0.1:3128{tail}", "http://127.0.0.1:9/"
    )
    assert code == 2
    assert "pa\u2100ss" not in output
    assert "invalid proxy 'http://u:***@127.0.0.1:3128" in output
