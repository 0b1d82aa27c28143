"""Proxies: which one a target uses (curl's rules), and the real thing through tinyproxy."""

from __future__ import annotations

import base64

import pytest

from fetchheads.errors import InputError
from fetchheads.proxy import Proxy, bypasses_proxy, parse_proxy, proxy_rules
from fetchheads.targets import parse_target

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


def rules_for(environ: dict[str, str], **options: str | None) -> tuple[Proxy | None, Proxy | None]:
    rules = proxy_rules(environ, **options)
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
