"""JSON Lines: one object per target, every key always present (docs/output.md).

``format_jsonl`` writes the record of an ordinary result (no TLS facts, redirects, changes,
warnings or audit) straight from the ``Result``, with the json module's own string and number
encoders: building the dict of ``to_record`` and walking it again cost as much as the whole HTTP
exchange at 10,000 targets a second. Anything else goes through ``to_record`` and the encoder.
Both give the same bytes; ``tests/test_jsonl_fast.py`` holds them to it.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any

from fetchheads.models import TIMING_DIGITS, Result, Timing, format_timestamp
from fetchheads.render.safe import json_safe

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))
_float = float.__repr__  # what the json module writes for a finite float


def format_record(record: dict[str, Any]) -> str:
    return json_safe(_encoder.encode(record)) + "\n"


def format_jsonl(result: Result) -> str:
    if (
        result.tls is not None
        or result.redirects
        or result.changes is not None
        or result.warnings is not None
        or result.audit is not None
    ):
        return format_record(result.to_record())
    text = encode_basestring
    head = result.head
    error = result.error
    if head is not None:
        status = str(head.status)
        reason = text(head.reason)
        version = text(head.http_version)
        headers = ", ".join([_known_pair(pair) or _pair(pair) for pair in head.headers])
    else:
        status = reason = version = "null"
        headers = ""
    url = "null" if result.url is None else text(result.url)
    address = "null" if result.address is None else text(result.address)
    if error is None:
        error_text = "null"
    else:
        error_text = f'{{"kind": {text(str(error.kind))}, "message": {text(error.message)}}}'
    encoded = (
        f'{{"target": {text(result.target)}, "url": {url}, '
        f'"ok": {"true" if error is None and head is not None else "false"}, '
        f'"status": {status}, '
        f'"reason": {reason}, "http_version": {version}, "headers": [{headers}], '
        f'"error": {error_text}, "address": {address}, "timing": {_timing(result.timing)}, '
        f'"tls": null, "redirects": [], "fetched_at": "{format_timestamp(result.fetched_at)}"}}'
    )
    return json_safe(encoded) + "\n"


PAIR_CACHE_SIZE = 1024
PAIR_MAX_CHARS = 128
"""Header lines whose JSON is kept: a list's servers repeat most of theirs (``Server: nginx``,
``Connection: close``, ``Content-Type: text/html``), and a lookup costs a third of escaping the
name and the value again. Only short lines are kept (a server chooses its lines, up to 64 KiB
each, escapes and all), and when full the cache starts over: it holds at most ~3.5 MiB however
hostile the servers and however long the run, ~150 KiB of ordinary lines."""
_PAIRS: dict[tuple[str, str], str] = {}
_known_pair = _PAIRS.get


def _pair(pair: tuple[str, str]) -> str:
    encoded = f"[{encode_basestring(pair[0])}, {encode_basestring(pair[1])}]"
    if len(pair[0]) + len(pair[1]) <= PAIR_MAX_CHARS:
        if len(_PAIRS) >= PAIR_CACHE_SIZE:
            _PAIRS.clear()
        _PAIRS[pair] = encoded
    return encoded


def _timing(timing: Timing) -> str:
    # A phase that did not happen (DNS for an IP literal, TLS for http) is ``null`` without a
    # call: two of the five in most records.
    dns, tls = timing.dns, timing.tls
    return (
        f'{{"dns": {"null" if dns is None else _seconds(dns)}, '
        f'"connect": {_seconds(timing.connect)}, '
        f'"tls": {"null" if tls is None else _seconds(tls)}, "ttfb": {_seconds(timing.ttfb)}, '
        f'"total": {_seconds(timing.total)}}}'
    )


def _seconds(value: float | None) -> str:
    """What the json module writes for ``models.seconds(value)``, i.e. ``repr(round(value, 6))``,
    at half the cost: the digits of ``round`` are those of the ``.6f`` format (both round the
    exact binary value half-even), and ``repr`` of the double nearest to them is those digits
    without trailing zeros, as long as they are at most 15 significant digits (so under 1e9 s)
    and ``repr`` does not switch to an exponent (below 1e-4). Other values take the long way.
    """
    if value is None:
        return "null"
    if _FIXED_FROM <= value < _FIXED_BELOW:
        text = _fixed(value, _FIXED_SPEC).rstrip("0")
        return text + "0" if text[-1] == "." else text
    return _float(round(value, TIMING_DIGITS))


_FIXED_FROM = 1e-4
_FIXED_BELOW = 1e9
_FIXED_SPEC = f".{TIMING_DIGITS}f"
_fixed = float.__format__
