"""The parser's one-step path for a whole head in the first chunk agrees with the general path."""

from __future__ import annotations

from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from fetchheads.errors import ParseError
from fetchheads.http import parse as parse_module
from fetchheads.http.parse import HeadParser
from fetchheads.models import ResponseHead

lines = st.lists(
    st.sampled_from(
        [
            b"Server: nginx",
            b"X-A:b",
            b"X-Sp:  padded  ",
            b" folded",
            b"\tfolded",
            b"No colon",
            b"Bad Name: x",
            b"Bad :x",
            b"X-Nul: a\x00b",
            b"X-CR: a\rb",
            b"X-Utf8: \xc3\xa9",
            b"X-Latin: \xe9",
            b"",
            b"X-Empty:",
            b"X!#$%&'*+.^_`|~: token",
            b"N\xc3\xa4me: x",
            b"-: dash",
            b"X-Tab:\tv\t",
            b"X-Colon: a: b",
        ]
    ),
    max_size=6,
)
status_lines = st.sampled_from(
    [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.0 404",
        b"HTTP/1.1 103 Early Hints",
        b"HTTP/2.0 200 OK",
        b"HTTP/1.1 99 Low",
        b"HTTP/1.1 200 OK\n",
        b"HTTP/1.1 301 Moved Permanently",
        b"HTTP/1.1 101 Switching Protocols",
        b"HTTP/1.1 2\xd9\xa30 Arabic-Indic digit",
        b"HTTP/1.1 200 \xc3\x89t\xc3\xa9 ",
        b"HTTP/1.1 200 \xe9t\xe9",
        b"HTTP/1.1 200\t OK",
    ]
)
ends = st.sampled_from([b"\r\n", b"\n"])


def general(data: bytes) -> ResponseHead | str | None:
    """The parser without its one-step path: ``feed`` calls the module's ``parse_whole`` itself
    (not a method a subclass could turn off), so it is turned off there."""
    with mock.patch.object(parse_module, "parse_whole", _never_whole):
        try:
            return HeadParser().feed(data)
        except ParseError as exc:
            return f"error: {exc}"


def _never_whole(data: bytes, limits: object) -> None:
    return None


def test_general_really_leaves_out_the_one_step_path() -> None:
    """Else the comparisons below would compare the one-step path with itself."""
    calls = []
    with mock.patch.object(parse_module, "parse_whole", lambda *a: calls.append(a)):
        HeadParser().feed(b"HTTP/1.1 200 OK\r\n\r\n")
    assert len(calls) == 1  # feed goes through the name general() replaces


def whole(data: bytes) -> ResponseHead | str | None:
    try:
        return HeadParser().feed(data)
    except ParseError as exc:
        return f"error: {exc}"


@given(status_lines, lines, ends, st.binary(max_size=8))
def test_the_one_step_path_parses_as_the_general_path(
    status: bytes, fields: list[bytes], end: bytes, body: bytes
) -> None:
    data = end.join([status, *fields]) + end + end + body
    assert whole(data) == general(data)


def test_an_ordinary_head_takes_the_one_step_path() -> None:
    head = HeadParser()._parse_whole(b"HTTP/1.1 200 OK\r\nServer: nginx\r\nX-A:  b \r\n\r\nbody")
    assert head == ResponseHead("HTTP/1.1", 200, "OK", (("Server", "nginx"), ("X-A", "b")))


valid_lines = st.lists(
    st.sampled_from(
        [
            b"Server: nginx",
            b"X-A:b",
            b"X-Sp:  padded  ",
            b"X-Tab:\tv\t",
            b"X-Empty:",
            b"X-Blank: \t ",
            b"X!#$%&'*+.^_`|~: token",
            b"X-Colon: a: b",
            b"X-Utf8: \xc3\xa9",
            b"X-Ctl: a\x01\x7fb",
        ]
    ),
    max_size=6,
)
valid_status_lines = st.sampled_from(
    [b"HTTP/1.1 200 OK", b"HTTP/1.0 404", b"HTTP/1.1 301 Moved ", b"HTTP/1.1 200 \xc3\x89t\xc3\xa9"]
)


@given(valid_status_lines, valid_lines)
def test_every_valid_crlf_head_takes_the_one_step_path(status: bytes, fields: list[bytes]) -> None:
    # Not only the same answer as the general path: the one-step path must not quietly hand
    # ordinary heads (blanks around values, control bytes, UTF-8) over to the slow path.
    data = b"\r\n".join([status, *fields]) + b"\r\n\r\nbody"
    assert HeadParser()._parse_whole(data) == general(data)


head_bytes = st.lists(
    st.one_of(
        st.sampled_from([b"HTTP/1.1 200 OK", b"\r\n", b"\n", b"\r", b":", b" ", b"\t", b"X-A"]),
        st.binary(max_size=6),
    ),
    max_size=12,
)


@given(head_bytes, st.sampled_from([b"\r\n\r\n", b"\n\n", b"\r\n\n"]))
def test_random_bytes_parse_as_the_general_path(pieces: list[bytes], end: bytes) -> None:
    # Lines built from whole pieces miss what a hostile server sends: bare CRs, NULs and colons
    # in odd places, stray bytes before the status line. Whatever the bytes, one step or many,
    # the answer (a head, an error, or "need more") must be the same.
    data = b"".join(pieces) + end
    assert whole(data) == general(data)
    assert whole(b"HTTP/1.1 200 OK\r\n" + data) == general(b"HTTP/1.1 200 OK\r\n" + data)
