"""The response-head parser, from tables: every case whole, byte by byte, and with trailing bytes
(the body), plus one test per leniency, per rejection and per limit (parse.py's docstring)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from fetchheads.errors import ErrorKind, ParseError
from fetchheads.http.parse import (
    MAX_HEAD,
    MAX_HEADERS,
    MAX_INTERIM,
    MAX_LINE,
    MAX_STATUS_LINE,
    HeadParser,
    Limits,
)
from fetchheads.http.parse_whole import parse_whole
from fetchheads.models import ResponseHead


def feed_all(chunks: Iterable[bytes], parser: HeadParser | None = None) -> ResponseHead:
    parser = parser or HeadParser()
    for chunk in chunks:
        head = parser.feed(chunk)
        if head is not None:
            return head
    head = parser.feed(b"")
    assert head is not None
    return head


def split_ways(data: bytes) -> list[list[bytes]]:
    """Whole; byte by byte; whole followed by a body; byte by byte followed by a body."""
    body = b"<html>\x00\r\n\r\nHTTP/1.1 500 no\r\n\r\n"
    return [
        [data],
        [data[i : i + 1] for i in range(len(data))],
        [data + body],
        [*(data[i : i + 1] for i in range(len(data))), body],
    ]


# --- accepted heads -----------------------------------------------------------------------------

ACCEPTED: dict[str, tuple[bytes, tuple[str, int, str, list[tuple[str, str]]]]] = {
    "plain": (
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
        (
            "HTTP/1.1",
            200,
            "OK",
            [("Server", "nginx"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
        ),
    ),
    "http/1.0, no headers": (b"HTTP/1.0 404 Not Found\r\n\r\n", ("HTTP/1.0", 404, "Not Found", [])),
    "bare LF line ends": (
        b"HTTP/1.1 200 OK\nA: 1\nB: 2\n\n",
        ("HTTP/1.1", 200, "OK", [("A", "1"), ("B", "2")]),
    ),
    "mixed CRLF and LF": (
        b"HTTP/1.1 200 OK\r\nA: 1\n\r\n",
        ("HTTP/1.1", 200, "OK", [("A", "1")]),
    ),
    "no reason phrase": (b"HTTP/1.1 301\r\n\r\n", ("HTTP/1.1", 301, "", [])),
    "empty reason after SP": (b"HTTP/1.1 200 \r\n\r\n", ("HTTP/1.1", 200, "", [])),
    "reason keeps leading space": (b"HTTP/1.1 200  OK\r\n\r\n", ("HTTP/1.1", 200, " OK", [])),
    "reason with spaces and UTF-8": (
        "HTTP/1.1 500 Oriëntatie probleem\r\n\r\n".encode(),
        ("HTTP/1.1", 500, "Oriëntatie probleem", []),
    ),
    "reason in Latin-1": (b"HTTP/1.1 200 Gr\xfc\xdfe\r\n\r\n", ("HTTP/1.1", 200, "Grüße", [])),
    "status 999": (b"HTTP/1.1 999 Weird\r\n\r\n", ("HTTP/1.1", 999, "Weird", [])),
    "future minor version": (b"HTTP/1.2 200 OK\r\n\r\n", ("HTTP/1.2", 200, "OK", [])),
    "OWS around values stripped, inner kept": (
        b"HTTP/1.1 200 OK\r\nA:\t x  y \t\r\nB:\r\nC:  \r\n\r\n",
        ("HTTP/1.1", 200, "OK", [("A", "x  y"), ("B", ""), ("C", "")]),
    ),
    "names keep case, duplicates and order": (
        b"HTTP/1.1 200 OK\r\nx-A: 1\r\nX-a: 2\r\nx-A: 3\r\n\r\n",
        ("HTTP/1.1", 200, "OK", [("x-A", "1"), ("X-a", "2"), ("x-A", "3")]),
    ),
    "colon inside the value": (
        b"HTTP/1.1 302 Found\r\nLocation: http://x:80/a:b\r\n\r\n",
        ("HTTP/1.1", 302, "Found", [("Location", "http://x:80/a:b")]),
    ),
    "obs-fold unfolded with one SP": (
        b"HTTP/1.1 200 OK\r\nA: one\r\n   two\r\n\tthree\r\nB: 2\r\n\r\n",
        ("HTTP/1.1", 200, "OK", [("A", "one two three"), ("B", "2")]),
    ),
    "obs-fold of an empty value": (
        b"HTTP/1.1 200 OK\r\nA:\r\n two\r\n\r\n",
        ("HTTP/1.1", 200, "OK", [("A", "two")]),
    ),
    "leading empty lines skipped": (
        b"\r\n\n\r\nHTTP/1.1 200 OK\r\nA: 1\r\n\r\n",
        ("HTTP/1.1", 200, "OK", [("A", "1")]),
    ),
    "UTF-8 value": (
        "HTTP/1.1 200 OK\r\nX: 日本\r\n\r\n".encode(),
        ("HTTP/1.1", 200, "OK", [("X", "日本")]),
    ),
    "Latin-1 value": (
        b"HTTP/1.1 200 OK\r\nX: caf\xe9\r\n\r\n",
        ("HTTP/1.1", 200, "OK", [("X", "café")]),
    ),
    "control bytes kept (shown escaped later)": (
        b"HTTP/1.1 200 OK\r\nX: a\x1b[31mb\x7f\x07\r\n\r\n",
        ("HTTP/1.1", 200, "OK", [("X", "a\x1b[31mb\x7f\x07")]),
    ),
    "101 is final": (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        ("HTTP/1.1", 101, "Switching Protocols", [("Upgrade", "websocket")]),
    ),
}


@pytest.mark.parametrize(("data", "expected"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted(data: bytes, expected: tuple[str, int, str, list[tuple[str, str]]]) -> None:
    for chunks in split_ways(data):
        head = feed_all(chunks)
        assert (head.http_version, head.status, head.reason, list(head.headers)) == expected


def test_interim_heads_come_before_the_final_one() -> None:
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"\r\n"  # aiohttp sends an extra CRLF here (llhttp's "HTTP 100 first, then 400")
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\n"
    )
    for chunks in split_ways(data):
        head = feed_all(chunks)
        assert (head.status, head.headers) == (200, (("A", "1"),))
        assert [(h.status, h.headers) for h in head.interim] == [
            (100, ()),
            (103, (("Link", "</s.css>; rel=preload"),)),
        ]


# --- rejected heads -----------------------------------------------------------------------------

REJECTED: dict[str, tuple[bytes, str]] = {
    "empty reply": (b"", "empty reply"),
    "only empty lines": (b"\r\n\r\n", "empty reply"),
    "HTTP/0.9 body": (b"<html><body>hi</body></html>", "not HTTP: the reply starts '<"),
    "binary": (b"\x00\x01\x02\xff garbage", "not HTTP: the reply starts '\\x00"),
    "TLS handshake on a plain connection": (b"\x16\x03\x03\x00\x5a\x02\x00", "try https://"),
    "TLS alert on a plain connection": (b"\x15\x03\x01\x00\x02\x02\x46", "try https://"),
    "SSH banner": (b"SSH-2.0-OpenSSH_9.6\r\n", "not HTTP"),
    "lower-case protocol": (b"http/1.1 200 OK\r\n\r\n", "not HTTP"),
    "RTSP": (b"RTSP/1.0 200 OK\r\n\r\n", "not HTTP"),
    "closed before the blank line": (
        b"HTTP/1.1 200 OK\r\nA: 1\r\n",
        "closed before the end of the head",
    ),
    "closed in the status line": (b"HTTP/1.1 20", "closed before the end of the head"),
    "closed after an interim head": (
        b"HTTP/1.1 100 Continue\r\n\r\n",
        "closed after an interim (1xx)",
    ),
    "HTTP/2 status line": (b"HTTP/2.0 200 OK\r\n\r\n", "unsupported version HTTP/2.0"),
    "HTTP/0.9 status line": (b"HTTP/0.9 200 OK\r\n\r\n", "unsupported version HTTP/0.9"),
    "two-digit major": (b"HTTP/11.1 200 OK\r\n\r\n", "bad status line"),
    "no minor": (b"HTTP/1 200 OK\r\n\r\n", "bad status line"),
    "two-digit status": (b"HTTP/1.1 20 OK\r\n\r\n", "bad status line"),
    "four-digit status": (b"HTTP/1.1 2000 OK\r\n\r\n", "bad status line"),
    "status below 100": (b"HTTP/1.1 099 Odd\r\n\r\n", "bad status code 099"),
    "non-digit status": (b"HTTP/1.1 2x0 OK\r\n\r\n", "bad status line"),
    "tab before the status": (b"HTTP/1.1\t200 OK\r\n\r\n", "bad status line"),
    "two spaces before the status": (b"HTTP/1.1  200 OK\r\n\r\n", "bad status line"),
    "tab after the status": (b"HTTP/1.1 200\tOK\r\n\r\n", "bad status line"),
    "line without a colon": (
        b"HTTP/1.1 200 OK\r\nA: 1\r\nno colon here\r\n\r\n",
        "header line without a colon: 'no colon here'",
    ),
    "whitespace before the colon": (
        b"HTTP/1.1 200 OK\r\nServer : x\r\n\r\n",
        "whitespace before the colon",
    ),
    "tab before the colon": (
        b"HTTP/1.1 200 OK\r\nServer\t: x\r\n\r\n",
        "whitespace before the colon",
    ),
    "space inside the name": (b"HTTP/1.1 200 OK\r\nX Powered: x\r\n\r\n", "invalid header name"),
    "empty name": (b"HTTP/1.1 200 OK\r\n: x\r\n\r\n", "invalid header name"),
    "non-ASCII name": ("HTTP/1.1 200 OK\r\nnäme: x\r\n\r\n".encode(), "invalid header name"),
    "continuation before the first header": (
        b"HTTP/1.1 200 OK\r\n Host: foo\r\n\r\n",
        "continuation line before the first header",
    ),
    "bare CR in the status line": (b"HTTP/1.1 200 OK\rA: 1\r\n\r\n", "bare CR"),
    "bare CR between headers": (b"HTTP/1.1 200 OK\r\nFoo: 1\rBar: 2\r\n\r\n", "bare CR"),
    "bare CR in a value": (b"HTTP/1.1 200 OK\r\nFoo: a\rb\r\n\r\n", "bare CR"),
    "CR before the status line": (b"\rHTTP/1.1 200 OK\r\n\r\n", "not HTTP"),
    "NUL in a value": (b"HTTP/1.1 200 OK\r\nA: x\x00y\r\n\r\n", "NUL byte"),
    "NUL in the reason": (b"HTTP/1.1 200 O\x00K\r\n\r\n", "NUL byte"),
}


@pytest.mark.parametrize(("data", "message"), REJECTED.values(), ids=REJECTED.keys())
def test_rejected(data: bytes, message: str) -> None:
    ways = split_ways(data)
    if not _rejected_before_eof(data):
        ways = ways[:2]  # a body after an unfinished head would be read as more head
    for chunks in ways:
        with pytest.raises(ParseError) as caught:
            feed_all(chunks)
        assert message in str(caught.value)
        assert caught.value.kind is ErrorKind.PROTOCOL


def _rejected_before_eof(data: bytes) -> bool:
    if not data:
        return False
    try:
        HeadParser().feed(data)
    except ParseError:
        return True
    return False


def test_non_http_is_rejected_on_its_first_bytes() -> None:
    """A TLS server's reply is refused at once, without waiting for more or for EOF."""
    parser = HeadParser()
    with pytest.raises(ParseError, match="try https://"):
        parser.feed(b"\x16")


def test_non_http_message_shows_the_first_bytes_escaped() -> None:
    with pytest.raises(ParseError) as caught:
        HeadParser().feed(b"\x1b]52;c;AAAA\x07\xff\r\n rest of it")
    assert str(caught.value) == (
        "not HTTP: the reply starts '\\x1b]52;c;AAAA\\x07\\xff\\r\\n ...' "
        "(HTTP/0.9 or another protocol?)"
    )


def test_partial_head_keeps_complete_lines_before_eof() -> None:
    parser = HeadParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\nServer: x\r\nSet-Cookie: a=1\r\nX-Tru") is None
    with pytest.raises(ParseError, match="closed before the end of the head"):
        parser.feed(b"")
    partial = parser.partial()
    assert partial is not None
    assert (partial.status, partial.headers) == (200, (("Server", "x"), ("Set-Cookie", "a=1")))


def test_partial_head_stops_at_the_bad_line() -> None:
    parser = HeadParser()
    with pytest.raises(ParseError, match="without a colon"):
        parser.feed(b"HTTP/1.1 502 Bad\r\nServer: x\r\nbroken\r\nLater: y\r\n\r\n")
    partial = parser.partial()
    assert partial is not None
    assert (partial.status, partial.headers) == (502, (("Server", "x"),))


def test_partial_is_none_without_a_status_line() -> None:
    parser = HeadParser()
    parser.feed(b"HTTP/1.1 2")
    assert parser.partial() is None


def test_a_finished_parser_refuses_more() -> None:
    parser = HeadParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\n\r\n") is not None
    with pytest.raises(ParseError, match="already finished"):
        parser.feed(b"more")


# --- limits -------------------------------------------------------------------------------------


def test_default_limits_are_the_documented_ones() -> None:
    """docs/limits.md states these numbers; change both together."""
    assert (MAX_STATUS_LINE, MAX_LINE, MAX_HEAD, MAX_HEADERS, MAX_INTERIM) == (
        8192,
        65536,
        262144,
        500,
        8,
    )


def _raises_at_limit(chunks: Iterable[bytes], name: str, limits: Limits | None = None) -> None:
    parser = HeadParser(limits or Limits())

    def feed_everything() -> None:
        for chunk in chunks:
            parser.feed(chunk)
        parser.feed(b"")

    with pytest.raises(ParseError, match=name):
        feed_everything()


def test_status_line_limit_while_streaming() -> None:
    chunks = [b"HTTP/1.1 200 ", *[b"x" * 1024] * 9]
    _raises_at_limit(chunks, "MAX_STATUS_LINE")


def test_status_line_limit_when_complete() -> None:
    _raises_at_limit([b"HTTP/1.1 200 " + b"x" * MAX_STATUS_LINE + b"\r\n\r\n"], "MAX_STATUS_LINE")


def test_status_line_at_the_limit_is_accepted() -> None:
    line = b"HTTP/1.1 200 " + b"x" * (MAX_STATUS_LINE - 15) + b"\r\n"
    assert len(line) == MAX_STATUS_LINE
    assert feed_all([line + b"\r\n"]).status == 200


def test_line_limit_while_streaming() -> None:
    chunks = [b"HTTP/1.1 200 OK\r\nX-Big: ", *[b"x" * 4096] * 17]
    _raises_at_limit(chunks, "MAX_LINE")


def test_line_limit_on_a_completed_line_in_an_unfinished_head() -> None:
    _raises_at_limit(
        [b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * MAX_LINE + b"\r\nA: 1\r\n"], "MAX_LINE"
    )


def test_line_limit_counts_folded_continuations_together() -> None:
    limits = Limits(line=100)
    folded = b"HTTP/1.1 200 OK\r\nX: " + b"".join([b" " + b"y" * 30 + b"\r\n"] * 5) + b"\r\n"
    _raises_at_limit([folded], "MAX_LINE", limits)


def test_header_count_limit() -> None:
    data = b"HTTP/1.1 200 OK\r\n" + b"A: 1\r\n" * (MAX_HEADERS + 1) + b"\r\n"
    _raises_at_limit([data], "MAX_HEADERS")
    assert (
        len(feed_all([b"HTTP/1.1 200 OK\r\n" + b"A: 1\r\n" * MAX_HEADERS + b"\r\n"]).headers)
        == MAX_HEADERS
    )


def test_header_count_limit_while_streaming() -> None:
    _raises_at_limit([b"HTTP/1.1 200 OK\r\n", *[b"A: 1\r\n"] * (MAX_HEADERS + 2)], "MAX_HEADERS")


def test_header_count_limit_while_streaming_is_exact() -> None:
    # The check on an unfinished head: exactly MAX_HEADERS lines wait for more, one more line is
    # refused at once, before any blank line or EOF comes.
    parser = HeadParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\n") is None
    for _ in range(MAX_HEADERS):
        assert parser.feed(b"A: 1\r\n") is None
    with pytest.raises(ParseError, match="more than 500 header lines"):
        parser.feed(b"A: 1\r\n")
    parser = HeadParser()
    for chunk in [b"HTTP/1.1 200 OK\r\n", *[b"A: 1\r\n"] * MAX_HEADERS]:
        assert parser.feed(chunk) is None
    head = parser.feed(b"\r\n")
    assert head is not None
    assert len(head.headers) == MAX_HEADERS


def test_header_count_limit_in_one_step_is_exact() -> None:
    # A whole head in the first chunk takes the one-step path up to exactly MAX_HEADERS lines;
    # one more is left to the general path, which refuses it.
    at_limit = b"HTTP/1.1 200 OK\r\n" + b"A: 1\r\n" * MAX_HEADERS + b"\r\n"
    head = parse_whole(at_limit, Limits())
    assert head is not None
    assert len(head.headers) == MAX_HEADERS
    over = b"HTTP/1.1 200 OK\r\n" + b"A: 1\r\n" * (MAX_HEADERS + 1) + b"\r\n"
    assert parse_whole(over, Limits()) is None
    with pytest.raises(ParseError, match="more than 500 header lines"):
        HeadParser().feed(over)


def test_interim_limit() -> None:
    interim = b"HTTP/1.1 103 Early Hints\r\n\r\n"
    _raises_at_limit([interim * (MAX_INTERIM + 1) + b"HTTP/1.1 200 OK\r\n\r\n"], "MAX_INTERIM")
    head = feed_all([interim * MAX_INTERIM + b"HTTP/1.1 200 OK\r\n\r\n"])
    assert len(head.interim) == MAX_INTERIM


def test_interim_heads_count_against_the_head_limit() -> None:
    limits = Limits(head=1000)
    interim = b"HTTP/1.1 103 Early Hints\r\nLink: " + b"x" * 300 + b"\r\n\r\n"
    _raises_at_limit([interim * 3 + b"HTTP/1.1 200 OK\r\n\r\n"], "MAX_HEAD", limits)


def test_leading_empty_lines_count_against_the_head_limit() -> None:
    _raises_at_limit([b"\r\n" * (MAX_HEAD // 2 + 1)], "MAX_HEAD")


def test_endless_head_stops_at_the_head_limit_with_bounded_memory() -> None:
    """Lines within every other limit, forever: refused once MAX_HEAD bytes arrived."""
    parser = HeadParser(Limits(headers=10**9))
    line = b"X-Filler: " + b"f" * 1000 + b"\r\n"
    fed = [b"HTTP/1.1 200 OK\r\n"]

    def feed_forever() -> None:
        parser.feed(fed[0])
        while sum(map(len, fed)) < 2 * MAX_HEAD:
            fed.append(line)
            parser.feed(line)

    with pytest.raises(ParseError, match="MAX_HEAD"):
        feed_forever()
    assert MAX_HEAD < sum(map(len, fed)) <= MAX_HEAD + len(line)


@pytest.mark.parametrize(
    ("prefix", "name"),
    [(b"HTTP/1.1 200 ", "MAX_STATUS_LINE"), (b"HTTP/1.1 200 OK\r\nA: 1\r\nX-Long: ", "MAX_LINE")],
)
def test_limits_hold_byte_by_byte_at_the_exact_byte(prefix: bytes, name: str) -> None:
    """Fed one byte at a time (a dripping server), a line is refused on the first byte past its
    limit, not later, and not by the head limit."""
    limits = Limits(status_line=300, line=200)
    parser = HeadParser(limits)
    line_begins = prefix.rfind(b"\n") + 1
    allowed = (limits.status_line if name == "MAX_STATUS_LINE" else limits.line) + line_begins
    fed = [0]

    def drip() -> None:
        for byte in prefix + b"z" * 1000:
            fed[0] += 1
            parser.feed(bytes([byte]))

    with pytest.raises(ParseError, match=name):
        drip()
    assert fed[0] == allowed + 1


def test_the_buffer_never_grows_past_the_head_limit_whatever_the_read_size() -> None:
    """One huge read (a fast server, a big socket buffer) is cut at MAX_HEAD + 1 bytes."""
    parser = HeadParser()
    with pytest.raises(ParseError, match="MAX_HEAD"):
        parser.feed(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * (MAX_HEAD // 4))
    assert len(parser._buffer) == MAX_HEAD + 1


def test_a_head_ending_just_under_the_limit_in_a_big_read_is_accepted() -> None:
    head = b"HTTP/1.1 200 OK\r\nX: " + b"v" * (MAX_HEAD - 24) + b"\r\n\r\n"
    limits = Limits(line=MAX_HEAD)
    assert len(head) == MAX_HEAD
    parsed = HeadParser(limits).feed(head + b"body" * 100_000)
    assert parsed is not None
    assert parsed.headers == (("X", "v" * (MAX_HEAD - 24)),)


@pytest.mark.parametrize("content", [16, 17])
def test_a_line_at_the_limit_is_judged_alike_however_the_head_is_split(content: int) -> None:
    """The limit is a line's own bytes, CR LF not counted: whole or in pieces, a line of
    exactly ``line`` bytes is accepted and one byte more refused."""
    limits = Limits(line=16)
    data = b"HTTP/1.1 200 OK\r\nX: " + b"v" * (content - 3) + b"\r\nY: z\r\n\r\n"
    outcomes = set()
    for cut in range(1, len(data)):
        parser = HeadParser(limits)
        try:
            head = parser.feed(data[:cut]) or parser.feed(data[cut:])
            outcomes.add("ok" if head is not None else "incomplete")
        except ParseError as exc:
            outcomes.add(str(exc))
    expected = "ok" if content <= 16 else "header line longer than 16 bytes (MAX_LINE)"
    assert outcomes == {expected}


@pytest.mark.parametrize("blanks", [13, 14])
def test_a_folded_line_at_the_limit_is_judged_alike_however_the_head_is_split(
    blanks: int,
) -> None:
    """A continuation line is measured as it was sent, its leading blanks included, whether
    the head came whole or in pieces (the pieces are judged line by line as they arrive)."""
    limits = Limits(line=16)
    data = b"HTTP/1.1 200 OK\r\nX: a\r\n" + b" " * blanks + b"bcd\r\nY: z\r\n\r\n"
    outcomes = set()
    for cut in range(1, len(data)):
        parser = HeadParser(limits)
        try:
            head = parser.feed(data[:cut]) or parser.feed(data[cut:])
            outcomes.add(head.headers[0][1] if head is not None else "incomplete")
        except ParseError as exc:
            outcomes.add(str(exc))
    expected = "a bcd" if blanks + 3 <= 16 else "header line longer than 16 bytes (MAX_LINE)"
    assert outcomes == {expected}


def test_too_many_interim_heads_keep_no_head_of_what_followed() -> None:
    """Past MAX_INTERIM the bytes after the limit are not read as the answer: no status, no
    headers (the final head that came later was never waited for)."""
    interim = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
    for count in (MAX_INTERIM + 1, MAX_INTERIM + 2):
        parser = HeadParser()
        with pytest.raises(ParseError, match="MAX_INTERIM"):
            parser.feed(interim * count + b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n")
        assert parser.partial() is None
