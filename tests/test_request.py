"""The request bytes: what a server (and anyone reading its logs) sees from fetchheads."""

from __future__ import annotations

import pytest

from fetchheads import __version__
from fetchheads.config import Config
from fetchheads.errors import InputError
from fetchheads.http.request import build_request, parse_header_option
from fetchheads.targets import parse_target

UA = b"User-Agent: fetchheads/" + __version__.encode()


def request(text: str, **config: object) -> bytes:
    return build_request(parse_target(text), Config(**config))  # type: ignore[arg-type]


def test_the_default_request_is_exact() -> None:
    assert request("www.example.com") == (
        b"GET / HTTP/1.0\r\n"
        b"Host: www.example.com\r\n" + UA + b"\r\n"
        b"Accept: */*\r\n"
        b"Connection: close\r\n"
        b"\r\n"
    )


def test_path_query_port_and_ipv6_reach_the_request_line_and_host() -> None:
    assert request("http://example.com:8080/a/b?x=1#frag").startswith(
        b"GET /a/b?x=1 HTTP/1.0\r\nHost: example.com:8080\r\n"
    )
    assert request("[::1]:8080").startswith(b"GET / HTTP/1.0\r\nHost: [::1]:8080\r\n")
    assert request("https://example.com/").startswith(b"GET / HTTP/1.0\r\nHost: example.com\r\n")
    assert b"Host: xn--bcher-kva.example\r\n" in request("bücher.example")


def test_absolute_form_for_plain_http_proxies() -> None:
    data = build_request(parse_target("example.com:8080/x"), Config(), absolute_form=True)
    assert data.startswith(b"GET http://example.com:8080/x HTTP/1.0\r\n")


def test_method_head() -> None:
    assert request("example.com", method="HEAD").startswith(b"HEAD / HTTP/1.0\r\n")


def test_user_agent_option() -> None:
    data = request("example.com", user_agent="Mozilla/5.0 (X11) probe")
    assert b"\r\nUser-Agent: Mozilla/5.0 (X11) probe\r\n" in data
    assert b"fetchheads/" not in data


def test_extra_headers_follow_the_defaults_in_the_order_given() -> None:
    data = request(
        "example.com",
        headers=(("Accept-Language", "zh"), ("X-Probe", "1"), ("X-Probe", "2")),
    )
    assert data.endswith(
        b"Connection: close\r\nAccept-Language: zh\r\nX-Probe: 1\r\nX-Probe: 2\r\n\r\n"
    )


def test_a_header_option_replaces_a_default_in_place_whatever_its_case() -> None:
    data = request("example.com", headers=(("host", "other.example"), ("ACCEPT", "text/html")))
    assert data == (
        b"GET / HTTP/1.0\r\n"
        b"host: other.example\r\n" + UA + b"\r\n"
        b"ACCEPT: text/html\r\n"
        b"Connection: close\r\n"
        b"\r\n"
    )


def test_an_empty_header_option_removes_the_default() -> None:
    data = request("example.com", headers=(("Accept", ""), ("Connection", "")))
    assert data == (b"GET / HTTP/1.0\r\nHost: example.com\r\n" + UA + b"\r\n\r\n")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("X-A: 1", ("X-A", "1")),
        ("X-A:1", ("X-A", "1")),
        ("  X-A :  spaced value \t", ("X-A", "spaced value")),
        ("Accept:", ("Accept", "")),
        ("X-Url: http://a:b/c", ("X-Url", "http://a:b/c")),
        ("X-Latin: caf\xe9", ("X-Latin", "caf\xe9")),
    ],
)
def test_header_option_parsing(text: str, parsed: tuple[str, str]) -> None:
    assert parse_header_option(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "X-A: 1\r\nX-Injected: 2",
        "X-A: 1\nX-Injected: 2",
        "X-A: 1\rX",
        "X-A: nul\x00",
        "X A: 1",
        "X-A\r\nEvil: 1",
        "no colon here",
        ": no name",
        "X-A: \u4e2d\u6587",  # not Latin-1: it could not be sent as the user wrote it
    ],
)
def test_header_injection_and_unsendable_headers_are_refused(text: str) -> None:
    with pytest.raises(InputError):
        parse_header_option(text)


def test_an_empty_host_option_sends_no_host_header_for_any_target() -> None:
    config = Config(headers=(("Host", ""), ("X-A", "1")))
    for text in ("example.com", "http://[::1]:8080/x"):
        path = parse_target(text).path
        expected = f"GET {path} HTTP/1.0\r\n".encode() + UA + b"\r\nAccept: */*\r\n"
        assert build_request(parse_target(text), config) == (
            expected + b"Connection: close\r\nX-A: 1\r\n\r\n"
        )


def test_a_targets_user_and_password_are_sent_as_basic_authorization() -> None:
    sent = request("http://al%40ice:pw@example.com/x")
    assert sent.startswith(
        b"GET /x HTTP/1.0\r\nHost: example.com\r\nAuthorization: Basic YWxAaWNlOnB3\r\n"
    )
    # -H Authorization wins, as in curl; -H 'Authorization:' sends none at all.
    given = request("http://u:pw@example.com/", headers=(("Authorization", "Bearer t"),))
    assert given.count(b"Authorization") == 1
    assert b"\r\nAuthorization: Bearer t\r\n" in given
    assert b"Authorization" not in request(
        "http://u:pw@example.com/", headers=(("Authorization", ""),)
    )
