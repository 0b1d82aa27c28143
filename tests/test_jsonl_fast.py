"""The JSON Lines fast path writes exactly what ``to_record`` through the json module writes."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import example, given
from hypothesis import strategies as st

from fetchheads.errors import ErrorKind
from fetchheads.models import (
    Alert,
    Change,
    ErrorInfo,
    Redirect,
    ResponseHead,
    Result,
    Timing,
    TLSInfo,
)
from fetchheads.render.jsonl import format_jsonl, format_record
from tests.support.records import RECORD_KEYS

text = st.text(max_size=20)
seconds = st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False)
heads = st.none() | st.builds(
    ResponseHead,
    http_version=st.sampled_from(["HTTP/1.0", "HTTP/1.1"]),
    status=st.integers(100, 999),
    reason=text,
    headers=st.lists(st.tuples(text, text), max_size=5).map(tuple),
)
errors = st.none() | st.builds(ErrorInfo, kind=st.sampled_from(list(ErrorKind)), message=text)
results = st.builds(
    Result,
    target=text,
    url=st.none() | text,
    head=heads,
    error=errors,
    address=st.none() | st.sampled_from(["127.0.0.1", "::1"]),
    timing=st.builds(
        Timing, dns=seconds, connect=seconds, tls=seconds, ttfb=seconds, total=seconds
    ),
    fetched_at=st.datetimes(timezones=st.just(dt.UTC)),
    # Results with these take the encoder path: drawn too, so both paths stay in the test.
    tls=st.none()
    | st.builds(
        TLSInfo,
        version=st.none() | text,
        cipher=st.none() | text,
        subject=st.none() | text,
        issuer=st.none() | text,
        not_after=st.none() | text,
        days_left=st.none() | st.integers(-10, 1000),
        san=st.lists(text, max_size=3).map(tuple),
    ),
    redirects=st.lists(
        st.builds(Redirect, url=text, status=st.integers(300, 399), location=text), max_size=2
    ).map(tuple),
    changes=st.none()
    | st.lists(
        st.builds(
            Change,
            name=text,
            before=st.lists(text, max_size=2).map(tuple),
            after=st.lists(text, max_size=2).map(tuple),
        ),
        max_size=2,
    ).map(tuple),
    warnings=st.none()
    | st.lists(st.builds(Alert, kind=st.just("certificate"), message=text), max_size=2).map(tuple),
)


@given(results)
def test_the_fast_path_writes_the_same_bytes_as_the_encoder(result: Result) -> None:
    fast = format_jsonl(result)
    assert fast == format_record(result.to_record())
    assert json.loads(fast) == result.to_record()
    optional = [key for key in ("changes", "warnings") if getattr(result, key) is not None]
    assert list(json.loads(fast)) == [*RECORD_KEYS, *optional]


@given(results)
@example(Result(target="\x1e", url=None, error=ErrorInfo(ErrorKind.INPUT, "bad \x1e")))
def test_the_separator_of_a_workers_records_is_never_in_a_record(result: Result) -> None:
    # --workers frames each record with RECORD_END and passes on whole records: a raw one in a
    # record would cut it in two.
    from fetchheads.render.plain import format_plain
    from fetchheads.run.supervisor.worker import RECORD_END

    assert RECORD_END not in format_jsonl(result)
    assert RECORD_END not in format_plain(result)


def test_hostile_text_is_escaped_on_the_fast_path_too() -> None:
    head = ResponseHead("HTTP/1.1", 200, "OK", (("X-Evil", '\x1b[2J\x7f\u202e\u2028"\\'),))
    line = format_jsonl(Result(target="t", url="http://t/", head=head))
    for raw in ("\x1b", "\x7f", "\u202e", "\u2028"):
        assert raw not in line
    assert json.loads(line)["headers"] == [["X-Evil", '\x1b[2J\x7f\u202e\u2028"\\']]


def test_the_cache_of_header_lines_stays_bounded_and_right() -> None:
    from fetchheads.render import jsonl

    # More distinct header lines than the cache holds (a Date a second over a long run), then
    # the first ones again: each record is still exactly the encoder's, and the cache is bounded.
    pairs = [("Date", f"second {n}") for n in range(jsonl.PAIR_CACHE_SIZE + 10)]
    for pair in [*pairs, *pairs[:20]]:
        result = Result(target="t", url=None, head=ResponseHead("HTTP/1.1", 200, "OK", (pair,)))
        assert format_jsonl(result) == format_record(result.to_record())
        assert len(jsonl._PAIRS) <= jsonl.PAIR_CACHE_SIZE
    # A server chooses its lines: a long one (escapes and wide characters make it longer still)
    # is written each time, never kept.
    long = ("X-Long", "\x1b\U0001f600" * 1000)
    result = Result(target="t", url=None, head=ResponseHead("HTTP/1.1", 200, "OK", (long,)))
    assert format_jsonl(result) == format_record(result.to_record())
    assert long not in jsonl._PAIRS


@given(st.floats(allow_nan=False, allow_infinity=False))
@example(0.0)
@example(-0.0)
@example(1e-4)
@example(0.00009999995)
@example(0.0000999999)
@example(0.0160384999)
@example(999999999.9999996)
@example(1e9)
@example(5e-324)
def test_timings_are_written_as_the_encoder_writes_them(value: float) -> None:
    # The fast path formats timings its own way (see render.jsonl._seconds): any float at all
    # must come out as json.dumps(round(value, 6)).
    result = Result(target="t", url=None, timing=Timing(connect=value, ttfb=-value, total=value))
    assert format_jsonl(result) == format_record(result.to_record())
