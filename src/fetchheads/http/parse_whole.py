"""``HeadParser``'s one-step path: a whole final head in the first chunk, parsed at once.

Pure, like ``parse``: the general, incremental path there words every error and handles every
leniency; this one takes only the common case and otherwise says "take the general path".
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fetchheads.models import ResponseHead, build_head

if TYPE_CHECKING:
    from fetchheads.http.parse import Limits

# The status line, on decoded text: [0-9], not \d, which would match any Unicode digit.
_FAST_STATUS_LINE = re.compile(r"HTTP/1\.([0-9]) ([1-9][0-9][0-9])(?: (.*))?\Z", re.S)
_VERSIONS = {str(minor): f"HTTP/1.{minor}" for minor in range(10)}
# The field lines, on decoded text: CRLF, a token (``http.parse._TOKEN``'s characters), the colon,
# blanks, and the value up to the next CR (the caller has checked that every CR is part of a CRLF
# and that there is no NUL).
_FAST_FIELD_LINE = re.compile(r"\r\n([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r]*)")


def parse_whole(data: bytes, limits: Limits) -> ResponseHead | None:
    """The common case in one step, without buffering: the first chunk holds a whole final
    head with CRLF line ends, valid UTF-8, no folding and nothing ``parse``'s rules
    would refuse. ``None`` for anything else, which then takes the general path (that also words
    every error); so this path accepts exactly what the general one accepts, and parses it
    the same (``tests/test_parse_fast.py`` holds the two to it). It decodes the block once and
    works on ``str``, and one regex pass picks out every field line: no Python per line."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or end + 4 > limits.head:
        return None
    block = data[:end]
    crlf = block.count(b"\r\n")
    # Every CR and LF of a CRLF is deleted here in pairs: any more deleted is a bare CR or LF, or
    # a NUL. One pass, where counting CRs, LFs and NULs apart took three.
    if len(block) - len(block.translate(None, b"\r\n\x00")) != 2 * crlf:
        return None
    if crlf > limits.headers:
        return None
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        return None  # Latin-1 somewhere: the general path decodes value by value
    # Limits are in bytes; a character is 1 byte in an ASCII block, else at most 4.
    scale = 1 if len(text) == end else 4
    status_end = text.find("\r\n")
    status_line = text if status_end < 0 else text[:status_end]
    match = _FAST_STATUS_LINE.match(status_line)
    if match is None or len(status_line) * scale + 2 > limits.status_line:
        return None
    minor, code, reason = match.groups()
    status = int(code)
    if status < 200 and status != 101:
        return None  # an interim head: the general path keeps it and reads on
    # One match per valid field line (a line that is not one is skipped, so fewer matches
    # than lines means "take the general path"); a continuation line starts with SP or HT,
    # not a token, so it is one of those.
    fields = _FAST_FIELD_LINE.findall(text, len(status_line))
    if len(fields) != crlf:
        return None
    line_limit = limits.line // scale
    if len(text) > line_limit and any(len(line) > line_limit for line in text.split("\r\n")[1:]):
        return None
    if " \r" in text or ("\t" in text and "\t\r" in text) or text[-1] in " \t":
        # Blanks after a value (rare): the regex took the leading ones only.
        fields = [(name, value.rstrip(" \t")) for name, value in fields]
    return build_head(
        _VERSIONS[minor], status, reason.rstrip(" \t") if reason else "", tuple(fields)
    )
