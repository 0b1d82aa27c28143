"""Every response case of llhttp's test suite, through our parser
(tests/data/llhttp-response-cases.json: 85 cases of nodejs/llhttp v9.4.2, MIT, see
tests/data/LICENSE-llhttp).

Where llhttp accepts the first message, we must give the same version, status, reason and headers
(values compared with trailing spaces and tabs stripped; for a 1xx first message the final
response is the one after it). Where llhttp rejects, we reject too. Every exception is listed in
``DEVIATIONS`` with its reason, and a listed case that stops deviating fails the test, so the list
stays true.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fetchheads.errors import ParseError
from fetchheads.http.parse import HeadParser
from fetchheads.models import ResponseHead

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "llhttp-response-cases.json").read_text("utf-8")
)

_BARE_LF = (
    "we accept a bare LF as a line end (RFC 9112 §2.2; curl, Go and h11 accept it, llhttp only "
    "in its lenient mode): old servers and embedded devices send it, and it cannot make two "
    "readers disagree"
)
_NOT_HTTP1 = (
    "we speak HTTP/1.x only: a status line claiming another version has another syntax (HTTP/0.9 "
    "has no status line at all), so it is rejected as curl does; llhttp accepts 0.9 and, "
    "leniently, any version"
)
_OTHER_PROTOCOL = (
    "llhttp also parses RTSP and ICE replies; an answer to an HTTP request that is not HTTP is "
    "a protocol error for a header fetcher"
)

DEVIATIONS: dict[str, str] = {
    # llhttp strict rejects, we accept:
    "Only LFs present and no body": _BARE_LF,
    "Only LFs present": _BARE_LF,
    "No carriage ret": _BARE_LF,
    # llhttp accepts (strict or lenient), we reject:
    "HTTP version 0.9": _NOT_HTTP1,
    "Invalid HTTP version (lenient)": _NOT_HTTP1,
    "RTSP response": _OTHER_PROTOCOL,
    "ICE response": _OTHER_PROTOCOL,
    "Bare CR after response line (lenient)": (
        "a CR not followed by LF is rejected (RFC 9112 §2.2): readers that end the line at the "
        "CR and readers that do not see different headers, the classic smuggling split; llhttp "
        "too rejects it in strict mode"
    ),
    # both accept, with a different value:
    "Invalid OBS fold after chunked value": (
        "an obs-fold is replaced by exactly one SP (RFC 9112 §5.2 allows one or more), as h11 "
        "does; llhttp's lenient mode keeps the fold's own whitespace ('chunked  abc')"
    ),
}


def _final_expected(case: dict[str, Any]) -> dict[str, Any]:
    messages = case["expected"]
    first = messages[0]
    status = first.get("status") or 0
    if first["result"] == "ok" and 100 <= status < 200 and status != 101 and len(messages) > 1:
        return dict(messages[1])
    return dict(first)


def _feed(raw: bytes, pieces: int | None) -> ResponseHead:
    """Feed ``raw`` whole (``pieces=None``) or one byte at a time, then EOF if still needed."""
    parser = HeadParser()
    chunks = [raw] if pieces is None else [raw[i : i + 1] for i in range(len(raw))]
    for chunk in chunks:
        head = parser.feed(chunk)
        if head is not None:
            return head
    head = parser.feed(b"")
    assert head is not None  # feed(b"") raises rather than return None
    return head


def _outcome(raw: bytes, pieces: int | None) -> tuple[Any, ...]:
    try:
        head = _feed(raw, pieces)
    except ParseError:
        return ("error",)
    return (
        "ok",
        head.http_version,
        head.status,
        head.reason,
        [[name, value.rstrip(" \t")] for name, value in head.headers],
    )


def _llhttp_text(value: str) -> str:
    """llhttp's tests write a tab in a span as the two characters ``\\t``."""
    return value.replace("\\t", "\t").rstrip(" \t")


def _llhttp_outcome(case: dict[str, Any]) -> tuple[Any, ...]:
    want = _final_expected(case)
    if want["result"] != "ok":
        return ("error",)
    return (
        "ok",
        f"{want['protocol']}/{want['version']}",
        want["status"],
        want["status_text"],
        [[name, _llhttp_text(value)] for name, value in want["headers"]],
    )


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_llhttp_case(case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["raw_hex"])
    ours = _outcome(raw, None)
    assert _outcome(raw, 1) == ours, "byte-by-byte feeding changed the outcome"
    theirs = _llhttp_outcome(case)
    if case["name"] in DEVIATIONS:
        assert ours != theirs, f"no longer deviates, remove it from DEVIATIONS: {case['name']}"
    else:
        assert ours == theirs


def test_every_deviation_names_a_real_case() -> None:
    names = {case["name"] for case in CASES}
    assert set(DEVIATIONS) <= names
    assert len(CASES) == 85
