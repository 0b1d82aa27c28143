"""A sans-IO parser for HTTP/1.x response heads: bytes in, a ``ResponseHead`` out.

Pure: no sockets, no asyncio. Feed it chunks as they arrive; ``feed(b"")`` means EOF. It returns
``None`` while it needs more bytes and the final ``ResponseHead`` once the blank line after a final
(non-1xx) head has arrived. Bytes after that blank line are the body and are never looked at.

Grammar (RFC 9112 §2.1, §4, §5)::

    response-head = status-line *( field-line CRLF ) CRLF
    status-line   = HTTP-version SP status-code SP [ reason-phrase ] CRLF
    HTTP-version  = "HTTP/" DIGIT "." DIGIT
    status-code   = 3DIGIT
    field-line    = field-name ":" OWS field-value OWS
    field-name    = token
    obs-fold      = OWS CRLF RWS            ; continuation line, obsolete

Leniencies (each one is what curl, Go and h11 also tolerate, and none of them can change what a
later header means):

* bare LF ends a line as well as CRLF (RFC 9112 §2.2 allows it; old servers send it);
* the status line may stop after the code, with or without the SP (``HTTP/1.1 200``): the reason
  phrase is optional and many servers leave it out;
* an obs-fold continuation is unfolded into the previous value with one SP (RFC 9112 §5.2);
* control bytes other than NUL, CR and LF are kept in values: they are the server's text, shown
  escaped on a terminal and exact in JSON.

Rejections (kind ``protocol``), because each one lets two readers of the same bytes disagree:

* a NUL or a bare CR anywhere in the head (RFC 9110 §5.5, RFC 9112 §2.2);
* a field line without a colon, an empty or non-token field name, whitespace before the colon
  (RFC 9112 §5.1);
* a continuation line before the first field (RFC 9112 §2.2);
* a status line that is not ``HTTP/d.d ddd``;
* any of the named limits below exceeded.
"""

from __future__ import annotations

import dataclasses
import re

from fetchheads.errors import ParseError
from fetchheads.models import Headers, ResponseHead

# --- Limits -------------------------------------------------------------------------------------
# Real heads are small: the largest seen in the wild (long CSPs, a dozen cookies) stay under 32 KiB.
# curl allows 300 KiB per response and 100 KiB per line, Go 10 MiB, h11 16 KiB. We sit near curl:
# generous enough never to refuse a real server, small enough that 100 hostile servers in flight
# cost at most 25 MiB of buffers.
MAX_STATUS_LINE = 8 * 1024
"""Bytes in the status line, CRLF included. Real ones are under 100 bytes."""
MAX_LINE = 64 * 1024
"""Bytes in one field line (folded continuations count together). A big CSP is ~10 KiB."""
MAX_HEAD = 256 * 1024
"""Bytes in the whole response, every 1xx interim head included, up to the final blank line."""
MAX_HEADERS = 500
"""Field lines in one head. Chrome's and curl's practical limits are in the hundreds."""
MAX_INTERIM = 8
"""1xx interim responses (100 Continue, 103 Early Hints) before the final one."""


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    status_line: int = MAX_STATUS_LINE
    line: int = MAX_LINE
    head: int = MAX_HEAD
    headers: int = MAX_HEADERS
    interim: int = MAX_INTERIM


DEFAULT_LIMITS = Limits()

_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_HEAD_END = re.compile(rb"\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?:[ \t](.*))?\Z", re.S)
_OWS = b" \t"


def decode_text(raw: bytes) -> str:
    """Header bytes as text: UTF-8 where valid, else Latin-1 (which maps every byte)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def describe_non_http(prefix: bytes) -> str:
    """A message for a reply that does not start with ``HTTP/``, with a hint where one helps."""
    if prefix[:1] == b"\x16" and prefix[1:2] == b"\x03":
        return "not HTTP: the server answered with TLS; try https://"
    if prefix[:1] == b"\x15" and prefix[1:2] == b"\x03":
        return "not HTTP: the server sent a TLS alert; try https://"
    shown = prefix[:16].decode("latin-1").encode("unicode_escape").decode("ascii")
    return f"not HTTP: the reply starts {shown!r} (HTTP/0.9 or another protocol?)"


class HeadParser:
    """Incremental response-head parser. One instance per response; not reusable."""

    __slots__ = ("_buffer", "_consumed", "_done", "_interim", "_limits", "_scan_from")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = bytearray()
        self._scan_from = 0  # where the search for the blank line resumes
        self._consumed = 0  # bytes of completed interim heads, counted against ``head``
        self._interim: list[ResponseHead] = []
        self._done = False

    def feed(self, data: bytes) -> ResponseHead | None:
        """Take the next chunk (``b""`` for EOF); return the final head once it is complete.

        Raises ``ParseError`` on bytes that are not an acceptable head, on EOF before the blank
        line, and on any limit exceeded; ``partial()`` then gives what was received.
        """
        if self._done:
            raise ParseError("parser already finished")
        if not data:
            return self._eof()
        buffer = self._buffer
        buffer += data
        while True:
            if len(buffer) >= 5 and not buffer.startswith(b"HTTP/"):
                raise ParseError(describe_non_http(bytes(buffer[:16])))
            match = _HEAD_END.search(buffer, max(0, self._scan_from - 2))
            if match is None:
                self._check_incomplete()
                self._scan_from = len(buffer)
                return None
            end = match.end()
            if self._consumed + end > self._limits.head:
                raise ParseError(self._head_too_large())
            head = self._parse_head(bytes(buffer[: match.start() + 1]), complete=True)
            del buffer[:end]
            self._scan_from = 0
            self._consumed += end
            if 100 <= head.status < 200 and head.status != 101:
                if len(self._interim) >= self._limits.interim:
                    raise ParseError(
                        f"more than {self._limits.interim} interim (1xx) responses (MAX_INTERIM)"
                    )
                self._interim.append(head)
                continue
            self._done = True
            return dataclasses.replace(head, interim=tuple(self._interim))

    def partial(self) -> ResponseHead | None:
        """The head so far (status line and complete field lines), for error reports."""
        data = bytes(self._buffer)
        cut = data.rfind(b"\n")
        if cut < 0:
            return None
        try:
            return self._parse_head(data[: cut + 1], complete=False)
        except ParseError:
            return None

    # --- internals ------------------------------------------------------------------------------

    def _eof(self) -> ResponseHead | None:
        self._done = True
        if not self._buffer and not self._interim:
            raise ParseError("empty reply: the server closed the connection without a byte")
        if not self._buffer:
            raise ParseError("closed after an interim (1xx) response, before the final one")
        if not self._buffer.startswith(b"HTTP/"):
            raise ParseError(describe_non_http(bytes(self._buffer[:16])))
        raise ParseError("closed before the end of the head (no blank line)")

    def _check_incomplete(self) -> None:
        """Enforce the limits on a head whose blank line has not arrived yet."""
        buffer = self._buffer
        limits = self._limits
        if self._consumed + len(buffer) > limits.head:
            raise ParseError(self._head_too_large())
        first_nl = buffer.find(b"\n")
        if first_nl < 0:
            if len(buffer) > limits.status_line:
                raise ParseError(f"status line longer than {limits.status_line} bytes")
            return
        last_nl = buffer.rfind(b"\n")
        if len(buffer) - last_nl - 1 > limits.line:
            raise ParseError(f"header line longer than {limits.line} bytes")

    def _head_too_large(self) -> str:
        return f"response head larger than {self._limits.head} bytes (MAX_HEAD)"

    def _parse_head(self, data: bytes, *, complete: bool) -> ResponseHead:
        """Parse ``data``: whole lines, each ending in LF, the blank line excluded."""
        if b"\x00" in data:
            raise ParseError("NUL byte in the response head")
        lines = data.split(b"\n")
        lines.pop()  # ``data`` ends with LF: the last element is empty
        limits = self._limits
        status_raw = lines[0]
        if len(status_raw) + 1 > limits.status_line:
            raise ParseError(f"status line longer than {limits.status_line} bytes")
        status_raw = status_raw.removesuffix(b"\r")
        if b"\r" in status_raw:
            raise ParseError("bare CR in the status line")
        version, status, reason = _parse_status_line(status_raw)

        headers: list[tuple[bytes, bytearray]] = []
        for raw in lines[1:]:
            line = raw.removesuffix(b"\r")
            if b"\r" in line:
                raise ParseError("bare CR in a header line")
            if line[:1] in (b" ", b"\t"):
                if not headers:
                    raise ParseError("continuation line before the first header")
                value = headers[-1][1]
                folded = line.strip(_OWS)
                if folded:
                    if value:
                        value += b" "
                    value += folded
                if len(headers[-1][0]) + len(value) > limits.line:
                    raise ParseError(f"header line longer than {limits.line} bytes")
                continue
            if len(line) > limits.line:
                raise ParseError(f"header line longer than {limits.line} bytes")
            name, colon, value_raw = line.partition(b":")
            if not colon:
                raise ParseError(f"header line without a colon: {_preview(line)}")
            if not name or not _TOKEN.issuperset(name):
                raise ParseError(f"invalid header name: {_preview(name)}")
            if len(headers) >= limits.headers:
                raise ParseError(f"more than {limits.headers} header lines (MAX_HEADERS)")
            headers.append((name, bytearray(value_raw.strip(_OWS))))
        decoded: Headers = tuple(
            (name.decode("ascii"), decode_text(bytes(value))) for name, value in headers
        )
        del complete  # the same rules hold for partial heads; kept for readability at call sites
        return ResponseHead(version, status, reason, decoded)


def _parse_status_line(line: bytes) -> tuple[str, int, str]:
    match = _STATUS_LINE.match(line)
    if match is None:
        raise ParseError(f"bad status line: {_preview(line)}")
    major, minor, code, reason = match.groups()
    status = int(code)
    if status < 100:
        raise ParseError(f"bad status code {status}")
    version = f"HTTP/{major.decode()}.{minor.decode()}"
    return version, status, decode_text(reason.strip(_OWS)) if reason else ""


def _preview(raw: bytes, limit: int = 40) -> str:
    text = raw[:limit].decode("latin-1").encode("unicode_escape").decode("ascii")
    return repr(text + ("..." if len(raw) > limit else ""))
