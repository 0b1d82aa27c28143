"""Properties of the response-head parser, with hypothesis.

* any bytes, cut anywhere: a head or ``ParseError``, never another exception;
* a valid head cut anywhere parses exactly as when fed whole;
* on valid heads the result is h11's (h11 is a test-only dependency).
"""

from __future__ import annotations

import contextlib
import itertools

import h11
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchheads.errors import ParseError
from fetchheads.http.parse import HeadParser, decode_text
from fetchheads.models import ResponseHead

settings.register_profile("fetchheads", max_examples=100, deadline=None)
settings.load_profile("fetchheads")

# Fragments that steer random input into the parser's interesting corners.
FRAGMENTS = [
    b"HTTP/1.1 ",
    b"HTTP/1.0 200 OK\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"200",
    b"1",
    b" OK",
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b" ",
    b"\t",
    b"Name: value\r\n",
    b"\x00",
    b"\x1b[2J",
    b"\xff\xfe",
    b"\xc3\xa9",
    b"\x16\x03\x01",
]

fragmented = st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=8), max_size=30).map(b"".join)
any_bytes = st.binary(max_size=200) | fragmented


def _cuts(data: bytes, points: list[int]) -> list[bytes]:
    cuts = sorted({min(p, len(data)) for p in points})
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def parse_chunks(chunks: list[bytes]) -> ResponseHead | str:
    """The head, or ``"error: ..."``; anything but ParseError propagates and fails the test."""
    parser = HeadParser()
    try:
        for chunk in chunks:
            head = parser.feed(chunk)
            if head is not None:
                return head
        head = parser.feed(b"")
    except ParseError as exc:
        return f"error: {exc}"
    assert head is not None
    return head


@given(any_bytes, st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_any_bytes_give_a_head_or_a_parse_error(data: bytes, points: list[int]) -> None:
    whole = parse_chunks([data])
    split = parse_chunks(_cuts(data, points))
    # Early rejection may quote fewer bytes when they arrive in pieces; the verdict is the same.
    assert isinstance(whole, str) == isinstance(split, str)
    if not isinstance(whole, str):
        assert whole == split


@given(any_bytes)
def test_partial_never_raises(data: bytes) -> None:
    parser = HeadParser()
    with contextlib.suppress(ParseError):
        parser.feed(data)
    head = parser.partial()
    assert head is None or isinstance(head, ResponseHead)


# --- valid heads ---------------------------------------------------------------------------------

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
names = st.text(TOKEN_CHARS, min_size=1, max_size=12).filter(
    # h11 interprets these two itself and would refuse random values.
    lambda name: name.lower() not in ("content-length", "transfer-encoding")
)
vchar_or_obs = st.sampled_from([bytes([c]) for c in [*range(0x21, 0x7F), *range(0x80, 0x100)]])
words = st.lists(vchar_or_obs, min_size=1, max_size=6).map(b"".join)
values = st.lists(st.tuples(words, st.sampled_from([b" ", b"\t", b"  ", b" \t"])), max_size=4).map(
    lambda parts: b"".join(w + s for w, s in parts).rstrip(b" \t")
)
ows = st.sampled_from([b"", b" ", b"\t", b"  "])


@st.composite
def valid_heads(draw: st.DrawFn) -> bytes:
    """Heads both we and h11 must accept: HTTP/1.0 or 1.1, final status, CRLF or bare LF."""
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    version = draw(st.sampled_from([b"1.0", b"1.1"]))
    status = str(draw(st.integers(min_value=200, max_value=599))).encode()
    reason = draw(st.none() | values)
    lines = [b"HTTP/" + version + b" " + status + (b"" if reason is None else b" " + reason)]
    for name, value, before, after in draw(
        st.lists(st.tuples(names, values, ows, ows), max_size=8)
    ):
        lines.append(name.encode() + b":" + before + value + after)
    return b"".join(line + eol for line in lines) + eol


def h11_head(data: bytes) -> tuple[str, int, str, tuple[tuple[str, str], ...]]:
    conn = h11.Connection(our_role=h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    event = conn.next_event()
    assert isinstance(event, h11.Response), event
    headers = tuple(
        (name.decode("ascii"), decode_text(value)) for name, value in event.headers.raw_items()
    )
    reason = decode_text(event.reason.rstrip(b" \t"))
    return f"HTTP/{event.http_version.decode()}", event.status_code, reason, headers


def _ours(head: ResponseHead) -> tuple[str, int, str, tuple[tuple[str, str], ...]]:
    return head.http_version, head.status, head.reason, head.headers


@given(valid_heads(), st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_split_of_a_valid_head_parses_the_same(data: bytes, points: list[int]) -> None:
    whole = parse_chunks([data])
    assert isinstance(whole, ResponseHead), whole
    assert parse_chunks(_cuts(data, points)) == whole
    assert parse_chunks([data[i : i + 1] for i in range(len(data))]) == whole


@given(valid_heads(), st.binary(max_size=20))
def test_valid_heads_parse_as_h11_parses_them(data: bytes, body: bytes) -> None:
    head = parse_chunks([data + body])
    assert isinstance(head, ResponseHead), head
    assert _ours(head) == h11_head(data)


@st.composite
def responses_with_interim_heads(draw: st.DrawFn) -> tuple[bytes, bytes, int]:
    """(all bytes, the final head alone, number of interim heads): empty lines first, 1xx heads
    (one followed by an empty line, as aiohttp sends), then a valid final head."""
    final = draw(valid_heads())
    interim = draw(
        st.lists(
            st.sampled_from(
                [
                    b"HTTP/1.1 100 Continue\r\n\r\n",
                    b"HTTP/1.1 102\n\n",
                    b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
                    b"HTTP/1.1 103 Early Hints\r\nLink: </a.js>\r\n\r\n\r\n",  # extra CRLF
                ]
            ),
            max_size=3,
        )
    )
    data = draw(st.sampled_from([b"", b"\r\n", b"\n\r\n"])) + b"".join(interim)
    return data + final, final, len(interim)


@given(
    responses_with_interim_heads(), st.lists(st.integers(min_value=0, max_value=1500), max_size=12)
)
def test_interim_heads_and_empty_lines_split_anywhere(
    response: tuple[bytes, bytes, int], points: list[int]
) -> None:
    data, final, interim_count = response
    whole = parse_chunks([data])
    assert isinstance(whole, ResponseHead), whole
    assert len(whole.interim) == interim_count
    alone = parse_chunks([final])
    assert isinstance(alone, ResponseHead)
    assert _ours(whole) == _ours(alone)
    assert parse_chunks(_cuts(data, points)) == whole
