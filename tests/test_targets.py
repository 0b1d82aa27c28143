"""Targets: the forms a user types, and how input lines become targets.

The exhaustive hostile-input cases (smuggling attempts, odd Unicode, limits at their edges) live in
the input-hardening tests; these pin the everyday forms docs/usage.md promises.
"""

from __future__ import annotations

import base64
import re

import pytest

from fetchheads.errors import InputError
from fetchheads.targets import (
    MAX_LINE_CHARS,
    OVERLONG_SHOWN,
    LineSplitter,
    OverlongLine,
    parse_target,
)


@pytest.mark.parametrize(
    ("text", "url", "host", "port"),
    [
        ("www.example.com", "http://www.example.com/", "www.example.com", 80),
        ("WWW.Example.COM.", "http://www.example.com/", "www.example.com", 80),
        ("example.com:8080", "http://example.com:8080/", "example.com", 8080),
        ("127.0.0.1", "http://127.0.0.1/", "127.0.0.1", 80),
        ("127.0.0.1:8000", "http://127.0.0.1:8000/", "127.0.0.1", 8000),
        ("[::1]", "http://[::1]/", "::1", 80),
        ("[::1]:8080", "http://[::1]:8080/", "::1", 8080),
        ("[2001:db8:0:0::1]:81", "http://[2001:db8::1]:81/", "2001:db8::1", 81),
        ("::1", "http://[::1]/", "::1", 80),
        ("2001:db8::42", "http://[2001:db8::42]/", "2001:db8::42", 80),
        ("http://example.com", "http://example.com/", "example.com", 80),
        ("https://example.com", "https://example.com/", "example.com", 443),
        ("HTTPS://Example.com:8443/health", "https://example.com:8443/health", "example.com", 8443),
        ("http://example.com/a/b?x=1&y=2", "http://example.com/a/b?x=1&y=2", "example.com", 80),
        ("http://example.com/page#section", "http://example.com/page", "example.com", 80),
        ("example.com/status?verbose", "http://example.com/status?verbose", "example.com", 80),
        ("example.com?q=1", "http://example.com/?q=1", "example.com", 80),
        ("https://[::1]:8443/x", "https://[::1]:8443/x", "::1", 8443),
        ("  padded.example  ", "http://padded.example/", "padded.example", 80),
    ],
)
def test_target_forms(text: str, url: str, host: str, port: int) -> None:
    target = parse_target(text)
    assert (target.url, target.host, target.port) == (url, host, port)
    assert target.text == text.strip()  # the user's own words label the output


def test_international_names_are_idna_encoded() -> None:
    target = parse_target("bücher.example")
    assert target.host == "xn--bcher-kva.example"
    assert target.url == "http://xn--bcher-kva.example/"
    assert target.text == "bücher.example"
    assert parse_target("https://Bücher.example/ü").url == ("https://xn--bcher-kva.example/%C3%BC")


def test_scheme_option_applies_to_bare_targets_only() -> None:
    assert parse_target("example.com", default_scheme="https").url == "https://example.com/"
    assert parse_target("example.com:8443", default_scheme="https").port == 8443
    assert parse_target("http://example.com", default_scheme="https").url == "http://example.com/"


def test_bare_port_443_means_https() -> None:
    assert parse_target("example.com:443").url == "https://example.com/"
    assert parse_target("[::1]:443").url == "https://[::1]/"
    # ...but an explicit scheme is what the user asked for.
    assert parse_target("http://example.com:443").url == "http://example.com:443/"


def test_the_host_header_authority_omits_default_ports_only() -> None:
    assert parse_target("example.com:80").authority == "example.com"
    assert parse_target("example.com:8080").authority == "example.com:8080"
    assert parse_target("https://example.com:443").authority == "example.com"
    assert parse_target("https://example.com:80").authority == "example.com:80"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty target"),
        ("ftp://example.com", "unsupported scheme 'ftp'"),
        ("example.com:0", "port 0 out of range"),
        ("example.com:65536", "port 65536 out of range"),
        ("example.com:http", "invalid port 'http'"),
        ("256.0.0.1", "invalid IPv4 address '256.0.0.1'"),
        ("1.2.3.4.5", "invalid IPv4 address"),
        ("127.0.0.08", "invalid IPv4 address"),  # 08 is no octal number
        ("example.123", "invalid IPv4 address"),  # no top-level domain is a number
        ("exa mple.com", "control or space character"),
        ("[::1", "unclosed '['"),
        ("fe80::1:2:3:4:5:6:7:8", "IPv6 addresses must be in brackets"),
        ("under_score-.example", "invalid host name"),
        ("a" * 64 + ".example", "host label longer than 63"),
        ("http://", "no host in target"),
        # Measured in UTF-8 bytes, as a line of a file is: 2,100 characters here, 4,219 bytes.
        ("http://example.com/" + "é" * 2100, "target longer than 4096 bytes"),
        # A byte that is not UTF-8 is one byte of the line, and named: not counted as three.
        ("http://example.com/" + "\udce9" * 1100 + "a" * 2900, "byte 0xE9 in target is not UTF-8"),
    ],
)
def test_bad_targets_get_a_message_a_user_can_act_on(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("[", r"\[")):
        parse_target(text)


# --- input lines ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "127.1",
        "0x7f.1",
        "0X7F.0.0.1",
        "2130706433",
        "0177.0.0.1",
        "0x7f000001",
        "127.0.1",
        "127.1.",
    ],
)
def test_ipv4_in_every_spelling_is_the_address_curl_and_browsers_reach(text: str) -> None:
    for spelling in (text, f"http://{text}:8080/x"):
        target = parse_target(spelling)
        assert target.host == "127.0.0.1", spelling
        assert target.text == spelling  # what the user typed stays what records call it
    assert parse_target(f"http://{text}:8080/x").url == "http://127.0.0.1:8080/x"


def test_names_that_only_look_numeric_stay_names() -> None:
    assert parse_target("0x7f.example").host == "0x7f.example"
    assert parse_target("1.2.3.4a").host == "1.2.3.4a"
    assert parse_target("a.0xg").host == "a.0xg"


def test_user_and_password_become_basic_credentials_and_never_show() -> None:
    target = parse_target("http://al%40ice:s3cr%3At@127.0.0.1:8080/p")
    assert target.authorization == "Basic " + base64.b64encode(b"al@ice:s3cr:t").decode()
    assert (target.host, target.port, target.url) == ("127.0.0.1", 8080, "http://127.0.0.1:8080/p")
    assert target.text == "http://al%40ice:***@127.0.0.1:8080/p"
    assert "s3cr" not in repr(target)
    bare = parse_target("token@127.0.0.1:81")
    assert (bare.text, bare.authorization) == ("***@127.0.0.1:81", "Basic " + b64("token:"))
    # An @ in the path is not user information (https://example.social/@name).
    assert parse_target("http://127.0.0.1/@name").authorization is None


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_line_splitter_numbers_lines_and_drops_bom_and_cr() -> None:
    splitter = LineSplitter()
    out = splitter.feed(b"\xef\xbb\xbfone.example\r\n\r\n# comment\r\ntwo")
    assert out == [(1, "one.example"), (2, ""), (3, "# comment")]
    assert splitter.feed(b".example\n") == [(4, "two.example")]
    assert splitter.feed(b"last") == []
    assert splitter.feed(b"") == [(5, "last")]  # the unterminated last line is not lost
    assert splitter.feed(b"") == []


def test_line_splitter_gives_the_same_lines_however_the_bytes_are_split() -> None:
    data = b"\xef\xbb\xbfa.example\r\nb.example\n\n  c.example  \r\n"
    whole = LineSplitter()
    expected = whole.feed(data) + whole.feed(b"")
    split = LineSplitter()
    got = []
    for byte in data:
        got += split.feed(bytes([byte]))
    got += split.feed(b"")
    assert got == expected == [(1, "a.example"), (2, "b.example"), (3, ""), (4, "c.example")]


def test_a_comment_after_whitespace_ends_the_line_but_a_fragment_stays() -> None:
    data = (
        b"127.0.0.1:8080 # trailing comment\n"
        b"host.example\t#tab then comment\n"
        b"http://a.example/p#frag\n"
        b"http://b.example/p#frag   # both\n"
        b"   # only a comment\n"
    )
    splitter = LineSplitter()
    assert splitter.feed(data) == [
        (1, "127.0.0.1:8080"),
        (2, "host.example"),
        (3, "http://a.example/p#frag"),
        (4, "http://b.example/p#frag"),
        (5, "# only a comment"),  # skipped by the reader, as before
    ]


def test_a_bom_is_only_dropped_at_the_start_of_the_input() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a\n\xef\xbb\xbfb\n") == [(1, "a"), (2, "\ufeffb")]


def test_an_overlong_line_is_reported_not_kept_and_the_next_line_survives() -> None:
    splitter = LineSplitter()
    long_line = b"x" * (MAX_LINE_CHARS * 3)
    out: list[tuple[int, str | OverlongLine]] = []
    # Streamed in pieces: the splitter must not buffer the whole line to notice it is too long.
    for start in range(0, len(long_line), 1000):
        out += splitter.feed(long_line[start : start + 1000])
        assert len(splitter._pending) <= MAX_LINE_CHARS + 4  # room for a BOM and a CR
    out += splitter.feed(b"\nnext.example\n")
    assert out == [(1, OverlongLine("x" * OVERLONG_SHOWN)), (2, "next.example")]


def test_an_overlong_line_in_one_chunk_is_reported() -> None:
    splitter = LineSplitter()
    data = b"ok.example\n" + b"y" * (MAX_LINE_CHARS + 1) + b"\nafter.example\n"
    assert splitter.feed(data) == [
        (1, "ok.example"),
        (2, OverlongLine("y" * OVERLONG_SHOWN)),
        (3, "after.example"),
    ]


def test_a_line_of_exactly_the_limit_is_kept() -> None:
    splitter = LineSplitter()
    line = b"z" * MAX_LINE_CHARS
    assert splitter.feed(line + b"\n") == [(1, line.decode())]


def test_a_line_of_exactly_the_limit_is_kept_after_a_bom_and_before_a_cr() -> None:
    """The limit is the line's own bytes: a BOM and CRLF line ends are fine (docs/usage.md)."""
    line = b"z" * MAX_LINE_CHARS
    assert LineSplitter().feed(b"\xef\xbb\xbf" + line + b"\r\n") == [(1, line.decode())]
    assert LineSplitter().feed(b"a\r\n" + line + b"\r\n") == [(1, "a"), (2, line.decode())]
    # Fed a byte at a time, the line is held whole all the same.
    splitter = LineSplitter()
    out: list[tuple[int, str | OverlongLine]] = []
    for byte in b"\xef\xbb\xbf" + line + b"\r\n":
        out += splitter.feed(bytes([byte]))
    assert out == [(1, line.decode())]
    # One byte more is overlong, with a CR or without.
    longer = b"z" * (MAX_LINE_CHARS + 1)
    assert LineSplitter().feed(longer + b"\r\n") == [(1, OverlongLine("z" * OVERLONG_SHOWN))]


def test_undecodable_bytes_become_a_target_that_fails_validation() -> None:
    splitter = LineSplitter()
    [(number, text)] = splitter.feed(b"\xff\xfe.example\n")
    assert number == 1
    assert isinstance(text, str)
    with pytest.raises(InputError, match=r"^byte 0xFF in target is not UTF-8$"):
        parse_target(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1/caf\udce9", "byte 0xE9 in target is not UTF-8"),  # as Python keeps argv
        ("http://h\udcff.example/", "byte 0xFF in target is not UTF-8"),
        ("127.0.0.1/\ud800", "lone surrogate U+D800 in target"),
    ],
)
def test_text_that_is_not_unicode_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        parse_target(text)
