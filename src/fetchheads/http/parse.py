"""A sans-IO parser for HTTP/1.x response heads: bytes in, a ``ResponseHead`` out.

Pure: no sockets, no asyncio. Feed it chunks as they arrive; ``feed(b"")`` means EOF. It returns
``None`` while it needs more bytes and the final ``ResponseHead`` once the blank line after a final
(non-1xx) head has arrived. Bytes after that blank line are the body and are never looked at.
Every error is a ``ParseError`` (kind ``protocol``); ``partial()`` then gives what was received.

Grammar (RFC 9112 §2.1, §4, §5)::

    response-head = *( CRLF ) status-line *( field-line CRLF ) CRLF
    status-line   = HTTP-version SP status-code [ SP reason-phrase ] CRLF
    HTTP-version  = "HTTP/1." DIGIT                ; only HTTP/1.x is spoken here
    status-code   = 3DIGIT                         ; 100-999
    reason-phrase = *( HTAB / SP / VCHAR / obs-text )
    field-line    = field-name ":" OWS field-value OWS
    field-name    = token
    obs-fold      = OWS CRLF RWS                   ; continuation line, obsolete

Leniencies, accepted and kept (each is what curl, Go, h11 or llhttp also tolerate, and none can
make two readers disagree about a header):

* bare LF ends a line as well as CRLF (RFC 9112 §2.2 allows it; old servers send it; curl, Go and
  h11 accept it, llhttp only in its lenient mode);
* empty lines before a status line are skipped (RFC 9112 §2.2 asks the same robustness of
  servers for request lines; llhttp skips them; some servers send one after ``100 Continue``).
  They count against ``MAX_HEAD``;
* the reason phrase is optional (``HTTP/1.1 200`` and ``HTTP/1.1 200 `` give ``""``): many
  servers leave it out (h11, llhttp, curl agree). It is kept exactly, leading spaces included
  (``HTTP/1.1 200  OK`` has reason ``" OK"``, as in h11 and llhttp); trailing blanks are dropped;
* status codes 100-999 are accepted as sent (the grammar is 3DIGIT; curl, h11 and llhttp
  accept 600-999 too); a 1xx other than 101 is an interim head and the final head follows;
* an obs-fold continuation is unfolded into the previous value with one SP (RFC 9112 §5.2; h11
  does the same);
* control bytes other than NUL, CR and LF are kept in values and reasons: they are the server's
  exact text, shown escaped on a terminal (``render.safe``) and exact in JSON. Value bytes that
  are not valid UTF-8 are read as Latin-1, so no byte can make decoding fail.

Rejections, because each one lets two readers of the same bytes disagree, or is not HTTP/1.x:

* an empty reply, or a reply that does not start with ``HTTP/`` (HTTP/0.9, another protocol,
  binary); a reply that looks like TLS gets the hint "try https://";
* EOF before the blank line (``partial()`` keeps the complete header lines received);
* a status line that is not ``HTTP/1.d SP ddd``: another version (HTTP/0.9 has no status line,
  HTTP/2 and later do not use this syntax; curl refuses them too), a tab or two spaces before
  the code, a code of one, two or four digits, or below 100;
* a NUL anywhere in the head (RFC 9110 §5.5: a recipient may reject it; C-string readers
  truncate there);
* a bare CR, i.e. a CR not followed by LF (RFC 9112 §2.2; llhttp rejects it: some readers end
  the line there and some do not, the classic request-smuggling split);
* a field line without a colon (h11 and llhttp reject; curl drops it. Dropping hides a line the
  user should see, and guessing where the name ends is what smuggling exploits);
* whitespace between the field name and the colon, or any other non-token byte in the name
  (RFC 9112 §5.1: "MUST reject"; proxies disagree about ``Foo : x``);
* a continuation line before the first field (RFC 9112 §2.2: it would fold into the status line);
* any of the named limits below exceeded; the message names the limit.
"""

from __future__ import annotations

import dataclasses
import re

from fetchheads.errors import ParseError
from fetchheads.http.parse_whole import parse_whole
from fetchheads.models import Headers, ResponseHead

# --- Limits -------------------------------------------------------------------------------------
# Real heads are small: the largest seen in the wild (long CSPs, a dozen cookies) stay under 32 KiB.
# curl allows 300 KiB per response and 100 KiB per line, Go's client 10 MiB, h11 16 KiB, nginx as
# a proxy 4-8 KiB for the whole head (proxy_buffer_size). We sit near curl: generous enough never
# to refuse a real server, small enough that a hostile one costs little: the parser never buffers
# more than MAX_HEAD + 1 bytes whatever the size of the reads (feed drops what lies past it), and
# parsing a head at the limit takes a few milliseconds. docs/limits.md documents these values.
MAX_STATUS_LINE = 8 * 1024
"""Bytes in the status line, CRLF included. Real ones are under 100 bytes; 8 KiB is the request
line limit of nginx and Apache, so nothing legitimate comes near it."""
MAX_LINE = 64 * 1024
"""Bytes in one field line (folded continuations count together). A big CSP is ~10-20 KiB and a
cookie at most 4 KiB (RFC 6265 §6.1); curl's own cap is 100 KiB."""
MAX_HEAD = 256 * 1024
"""Bytes of the whole response up to the final blank line: every 1xx interim head and skipped
empty line included. curl uses 300 KiB per response; this is the memory bound per connection."""
MAX_HEADERS = 500
"""Field lines in one head. Real heads carry 10-40; Node's default cap is 2000, Apache's 100.
500 leaves room for long cookie lists while a flood of tiny lines is cut short."""
MAX_INTERIM = 8
"""1xx interim responses (100 Continue, 103 Early Hints) before the final one. Servers send one or
two; their bytes count against ``MAX_HEAD`` as well, so this only names the failure sooner."""


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
_LEADING_BLANK = re.compile(rb"(?:\r?\n)+")
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: (.*))?\Z", re.S)
_PROTOCOL = b"HTTP/"
_OWS = b" \t"


def decode_text(raw: bytes | bytearray) -> str:
    """Header bytes as text: UTF-8 where valid, else Latin-1 (which maps every byte)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def describe_non_http(prefix: bytes) -> str:
    """A message for a reply that does not start with ``HTTP/``, with a hint where one helps."""
    if prefix[:1] == b"\x16" and prefix[1:2] in (b"", b"\x03"):
        return "not HTTP: the server answered with TLS; try https://"
    if prefix[:1] == b"\x15" and prefix[1:2] in (b"", b"\x03"):
        return "not HTTP: the server sent a TLS alert; try https://"
    return f"not HTTP: the reply starts {preview_bytes(prefix, 16)} (HTTP/0.9 or another protocol?)"


class HeadParser:
    """Incremental response-head parser. One instance per response; not reusable."""

    __slots__ = (
        "_buffer",
        "_consumed",
        "_done",
        "_interim",
        "_limits",
        "_line_start",
        "_newlines",
        "_scan_from",
    )

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = bytearray()  # the current message, from its status line on
        self._scan_from = 0  # where the search for LFs resumes (bytes before it were checked)
        self._newlines = 0  # LFs before ``_scan_from`` in the current message
        self._line_start = 0  # where the line in progress starts (0: still the status line)
        self._consumed = 0  # bytes of completed interim heads and skipped empty lines
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
        if not self._buffer and not self._consumed and data.startswith(b"HTTP/1."):
            head = parse_whole(data, self._limits)  # _parse_whole, without the call
            if head is not None:
                self._done = True
                return head
        buffer = self._buffer
        room = self._limits.head - self._consumed - len(buffer)
        if len(data) > room:
            # Nothing past MAX_HEAD can belong to an acceptable head: keep one byte beyond it, so
            # the limit is noticed, and the buffer never grows by more than that, however large
            # the reads are.
            data = data[: max(room, 0) + 1]
        buffer += data
        while True:
            if self._scan_from == 0:
                self._skip_leading_blank_lines()
                if len(buffer) < len(_PROTOCOL):
                    if not _PROTOCOL.startswith(buffer.lstrip(b"\r")):
                        raise ParseError(describe_non_http(bytes(buffer)))
                    return None
                if not buffer.startswith(_PROTOCOL):
                    raise ParseError(describe_non_http(bytes(buffer[:17])))
            match = _HEAD_END.search(buffer, max(0, self._scan_from - 2))
            if match is None:
                self._check_incomplete()
                return None
            end = match.end()
            if self._consumed + end > self._limits.head:
                raise ParseError(self._head_too_large())
            head = self._parse_head(bytes(buffer[: match.start() + 1]))
            del buffer[:end]
            self._scan_from = self._newlines = self._line_start = 0
            self._consumed += end
            if 100 <= head.status < 200 and head.status != 101:
                if len(self._interim) >= self._limits.interim:
                    # What follows is not kept for partial(): it could be another interim head,
                    # or a final one that the run did not wait to read.
                    buffer.clear()
                    raise ParseError(
                        f"more than {self._limits.interim} interim (1xx) responses (MAX_INTERIM)"
                    )
                self._interim.append(head)
                continue
            self._done = True
            if not self._interim:
                return head  # the common case: no copy
            return dataclasses.replace(head, interim=tuple(self._interim))

    def partial(self) -> ResponseHead | None:
        """The head so far, for error reports: the status line and the header lines up to the
        first incomplete or invalid one. ``None`` when no valid status line arrived."""
        cut = self._buffer.rfind(b"\n")
        if cut < 0:
            return None
        try:
            return self._parse_head(bytes(self._buffer[: cut + 1]), partial=True)
        except ParseError:
            return None

    # --- internals ------------------------------------------------------------------------------

    def _skip_leading_blank_lines(self) -> None:
        match = _LEADING_BLANK.match(self._buffer)
        if match is not None:
            del self._buffer[: match.end()]
            self._consumed += match.end()
            if self._consumed > self._limits.head:
                raise ParseError(self._head_too_large())

    def _eof(self) -> ResponseHead | None:
        self._done = True
        if self._consumed + len(self._buffer) > self._limits.head:
            raise ParseError(self._head_too_large())
        if not self._buffer and not self._consumed:
            raise ParseError("empty reply: the server closed the connection without a byte")
        if not self._buffer.strip(b"\r\n"):
            if self._interim:
                raise ParseError("closed after an interim (1xx) response, before the final one")
            raise ParseError("empty reply: the server sent only empty lines, then closed")
        if not self._buffer.startswith(_PROTOCOL):
            raise ParseError(describe_non_http(bytes(self._buffer[:17])))
        raise ParseError("closed before the end of the head (no blank line)")

    def _check_incomplete(self) -> None:
        """Enforce the limits on a head whose blank line has not arrived yet, looking only at the
        bytes that arrived since the last call (a server dripping bytes costs O(n), not O(n²))."""
        buffer = self._buffer
        limits = self._limits
        if self._consumed + len(buffer) > limits.head:
            raise ParseError(self._head_too_large())
        start = self._scan_from
        self._scan_from = len(buffer)
        # Each LF before ``start`` was checked already; the line in progress began at line_start.
        line_start = self._line_start
        if line_start == 0:  # still in the status line
            first_nl = buffer.find(b"\n", start)
            status_end = first_nl + 1 if first_nl >= 0 else len(buffer)
            if status_end > limits.status_line:
                raise ParseError(self._status_line_too_long())
            if first_nl < 0:
                return
            line_start = first_nl + 1
        # Complete lines that arrived now: only look at them one by one when their span could
        # hold an overlong line.
        last_nl = buffer.rfind(b"\n", max(start, line_start))
        # A line's length is its own bytes, without the CR LF ending it, as the whole head's
        # parse measures it: a head is accepted or refused alike however it was split.
        if last_nl >= 0 and last_nl + 1 - line_start > limits.line:
            at = line_start
            while (nl := buffer.find(b"\n", at)) >= 0:
                end = nl - 1 if nl > at and buffer[nl - 1] == 0x0D else nl
                if end - at > limits.line:
                    raise ParseError(self._line_too_long())
                at = nl + 1
        if last_nl >= 0:
            line_start = last_nl + 1
        self._line_start = line_start
        pending = len(buffer) - line_start - (1 if buffer.endswith(b"\r") else 0)
        if pending > limits.line:
            raise ParseError(self._line_too_long())
        self._newlines += buffer.count(b"\n", start)
        if self._newlines > limits.headers + 1:  # the status line, then one LF per field line
            raise ParseError(self._too_many_headers())

    def _head_too_large(self) -> str:
        return f"response head larger than {self._limits.head} bytes (MAX_HEAD)"

    def _status_line_too_long(self) -> str:
        return f"status line longer than {self._limits.status_line} bytes (MAX_STATUS_LINE)"

    def _line_too_long(self) -> str:
        return f"header line longer than {self._limits.line} bytes (MAX_LINE)"

    def _too_many_headers(self) -> str:
        return f"more than {self._limits.headers} header lines (MAX_HEADERS)"

    def _parse_head(self, data: bytes, *, partial: bool = False) -> ResponseHead:
        """Parse ``data``: whole lines, each ending in LF, the blank line excluded. With
        ``partial``, stop quietly at the first bad field line instead of raising."""
        lines = data.split(b"\n")
        lines.pop()  # ``data`` ends with LF: the last element is empty
        limits = self._limits
        status_raw = lines[0]
        if len(status_raw) + 1 > limits.status_line:
            raise ParseError(self._status_line_too_long())
        version, status, reason = _parse_status_line(_strip_cr(status_raw, "the status line"))
        headers: list[tuple[bytes, bytes | bytearray]] = []
        try:
            for raw in lines[1:]:
                self._parse_field_line(_strip_cr(raw, "a header line"), headers)
        except ParseError:
            if not partial:
                raise
        decoded: Headers = tuple(
            (name.decode("ascii"), decode_text(value)) for name, value in headers
        )
        return ResponseHead(version, status, reason, decoded)

    def _parse_whole(self, data: bytes) -> ResponseHead | None:
        """The common case in one step (``parse_whole``); ``None``: take the general path."""
        return parse_whole(data, self._limits)

    def _parse_field_line(
        self, line: bytes, headers: list[tuple[bytes, bytes | bytearray]]
    ) -> None:
        limits = self._limits
        if len(line) > limits.line:  # one physical line, folded or not: as ``_check_incomplete``
            raise ParseError(self._line_too_long())
        if line[:1] in (b" ", b"\t"):
            if not headers:
                raise ParseError("continuation line before the first header")
            name, value = headers[-1]
            folded = line.strip(_OWS)
            if folded:
                if not isinstance(value, bytearray):  # folds are rare: copy only then, once
                    value = bytearray(value)
                    headers[-1] = (name, value)
                if value:
                    value += b" "
                value += folded
            if len(name) + len(value) > limits.line:
                raise ParseError(self._line_too_long())
            return
        name, colon, value_raw = line.partition(b":")
        if not colon:
            raise ParseError(f"header line without a colon: {preview_bytes(line)}")
        if name[-1:] in (b" ", b"\t"):
            raise ParseError(f"whitespace before the colon in header {preview_bytes(name)}")
        if not name or not _TOKEN.issuperset(name):
            raise ParseError(f"invalid header name: {preview_bytes(name)}")
        if len(headers) >= limits.headers:
            raise ParseError(self._too_many_headers())
        headers.append((name, value_raw.strip(_OWS)))


def _strip_cr(line: bytes, where: str) -> bytes:
    line = line.removesuffix(b"\r")
    if b"\r" in line:
        raise ParseError(f"bare CR (not followed by LF) in {where}")
    if b"\x00" in line:
        raise ParseError(f"NUL byte in {where}")
    return line


def _parse_status_line(line: bytes) -> tuple[str, int, str]:
    match = _STATUS_LINE.match(line)
    if match is None:
        raise ParseError(f"bad status line: {preview_bytes(line)}")
    major, minor, code, reason = match.groups()
    version = f"HTTP/{major.decode()}.{minor.decode()}"
    if major != b"1":
        raise ParseError(f"unsupported version {version} in the status line (HTTP/1.x expected)")
    status = int(code)
    if status < 100:
        raise ParseError(f"bad status code {code.decode()} (below 100)")
    return version, status, decode_text(reason.rstrip(_OWS)) if reason else ""


def preview_bytes(raw: bytes | bytearray, limit: int = 40) -> str:
    """Hostile bytes quoted for a message: ASCII only, escapes for the rest, bounded."""
    text = bytes(raw[:limit]).decode("latin-1").encode("unicode_escape").decode("ascii")
    return "'" + text + ("..." if len(raw) > limit else "") + "'"
