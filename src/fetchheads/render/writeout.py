"""``-w/--write-out TEMPLATE``: curl's templates, one per target. Pure.

The template is compiled once (``compile_write_out``) into literal text and accessors; each
result is then one join. What a template may hold:

* curl's variables, printed exactly as curl 7.88+ prints them (checked against curl itself in
  ``tests/test_writeout.py``): ``%{url}``, ``%{url_effective}``, ``%{http_code}`` and
  ``%{response_code}`` (three digits, ``000`` when no response came), ``%{http_version}`` (``1``,
  ``1.1``, ``2``, ``1.2`` for a minor version curl refuses; ``0`` without a response),
  ``%{remote_ip}``, ``%{remote_port}``, the times ``%{time_namelookup}``, ``%{time_connect}``,
  ``%{time_appconnect}``,
  ``%{time_starttransfer}``, ``%{time_total}`` (seconds from the start, six decimals, ``0.000000``
  for a phase that did not happen; under ``-L`` each adds up the hops, as curl's do),
  ``%{num_headers}``, ``%{num_redirects}``, ``%{content_type}``,
  ``%{errormsg}``, ``%{exitcode}`` (curl's exit code for the same failure: 6 DNS, 7 connect, 28
  timeout, 35/60 TLS (56 after the handshake), 8 protocol, 52 an empty reply (or a status line cut
  short), 47 redirects (1 or 3 a Location it cannot follow), 3 a bad URL), ``%{json}``,
  ``%{header_json}``, ``%header{NAME}`` (the *first* value, as curl), and ``%{onerror}``: the
  rest of the template is printed only for a target that failed.
* every field of ``render.fields`` as ``%{field}``: ``%{status}``, ``%{header:server}`` (all
  values, joined), ``%{cert.days_left}`` ... Where a name is both, curl's meaning wins
  (``%{http_version}`` is ``1.1``, the field ``http_version`` is ``HTTP/1.1`` elsewhere).
* ``%%`` for ``%``, and ``\\n``, ``\\r``, ``\\t``. Any other ``%`` or ``\\`` is printed as it
  stands together with the character after it, as curl does (so ``\\\\n`` prints ``\\\\n``,
  and ``%\\n`` prints ``%\\n``, as in curl).

Unlike curl, which prints nothing for an unknown variable and warns, an unknown name is refused
when the template is compiled (``SpecError``, naming the known ones): a typo should not cost a
whole run. Values are made safe for a terminal (``render.safe``): control characters from the
server are shown escaped; the template's own text (its ``\\n``) is printed as written.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable

from fetchheads.errors import AFTER_HANDSHAKE, ErrorKind
from fetchheads.models import DEFAULT_PORTS, ResponseHead, Result
from fetchheads.render.fields import (
    BUILTIN,
    SpecError,
    Value,
    Vocabulary,
    near_names,
    value_text,
)
from fetchheads.render.safe import json_safe, terminal_safe
from fetchheads.targets import not_utf8, undecodable_byte, undecodable_replaced

Part = str | Callable[[Result], str]

LIST_SEPARATOR = " | "
"""How ``%{field}`` shows a list (``cert.san``, ``header:set-cookie``): one line per target."""


# --- curl's variables ----------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return f"{value or 0.0:.6f}"


def _curl_time(phase: str) -> Callable[[Result], float | None]:
    """curl's ``time_*``: under ``-L`` curl adds each hop's time to the same counter, so
    ``time_total`` is the whole chain's and ``time_starttransfer`` the hops' first bytes added up;
    without redirects, the target's own timing."""

    def get(result: Result) -> float | None:
        timings = result.chain_timings
        if len(timings) == 1:
            own: float | None = getattr(timings[0], phase)
            return own
        return sum(getattr(timing, phase) or 0.0 for timing in timings)

    return get


def _answer(result: Result) -> ResponseHead | None:
    """The last head received, as curl reads it: a head cut short still had its status line, a
    chain that could not follow a redirect ends on that redirect, and one whose next hop got no
    answer (refused, timed out) on the redirect before it (``curl -L`` prints its 301)."""
    if result.head is not None:
        return result.head
    return result.redirects[-1].head if result.redirects else None


def _code(result: Result) -> int:
    head = _answer(result)
    return head.status if head is not None else 0


def _http_version(result: Result) -> str:
    """curl's ``1``, ``1.1``; another minor version the parser accepted (``HTTP/1.2``, read as
    1.1 as RFC 9112 §2.3 says; curl refuses it) as the server named it, ``1.2``, never the ``0``
    of no answer beside a status code."""
    head = _answer(result)
    if head is None:
        return "0"
    version = head.http_version
    return _CURL_VERSIONS.get(version) or version.removeprefix("HTTP/")


_CURL_VERSIONS = {"HTTP/1.0": "1", "HTTP/1.1": "1.1", "HTTP/2": "2", "HTTP/3": "3"}


def _remote_ip(result: Result) -> str:
    """The address connected to; empty when no connection was made (a refused connect), as in
    curl, although the record's ``address`` names the one tried."""
    return result.address or "" if result.timing.connect is not None else ""


def _remote_port(result: Result) -> int:
    """The port connected to: the answering URL's (curl prints 0 without a connection)."""
    if not result.address or not result.url or result.timing.connect is None:
        return 0
    scheme, _, rest = result.url.partition("://")
    authority = rest.split("/", 1)[0]
    host_end = authority.rfind("]") + 1  # past an IPv6 literal's brackets, if any
    _, colon, port = authority[host_end:].rpartition(":")
    return int(port) if colon and port.isdigit() else DEFAULT_PORTS.get(scheme, 0)


def _given(result: Result) -> str:
    """The URL as the user wrote it, before fetchheads (or curl) completed it: curl's ``%{url}``
    prints ``127.0.0.1:8000`` for ``127.0.0.1:8000``, and the first URL after redirects."""
    return result.target


def _num_headers(result: Result) -> int:
    head = _answer(result)
    return len(head.headers) if head is not None else 0


def _content_type(result: Result) -> str | None:
    """The last Content-Type, as curl takes it (each one it reads replaces the one before); under
    ``-L`` the redirect's when the next hop got no answer, as ``%{http_code}``."""
    head = _answer(result)
    values = head.get_all("Content-Type") if head is not None else []
    return values[-1] if values else None


def _errormsg(result: Result) -> str | None:
    return result.error.message if result.error is not None else None


_CURL_EXIT_CODES = {
    ErrorKind.INPUT: 3,  # CURLE_URL_MALFORMAT
    ErrorKind.DNS: 6,  # CURLE_COULDNT_RESOLVE_HOST
    ErrorKind.CONNECT: 7,  # CURLE_COULDNT_CONNECT
    ErrorKind.TLS: 35,  # CURLE_SSL_CONNECT_ERROR
    ErrorKind.TIMEOUT: 28,  # CURLE_OPERATION_TIMEDOUT
    ErrorKind.PROTOCOL: 8,  # CURLE_WEIRD_SERVER_REPLY
    ErrorKind.REDIRECT: 47,  # CURLE_TOO_MANY_REDIRECTS
}
_CURL_VERIFY_FAILED = 60  # CURLE_PEER_FAILED_VERIFICATION
_CURL_RECV_ERROR = 56  # CURLE_RECV_ERROR: TLS failed on an established connection
_CURL_GOT_NOTHING = 52  # CURLE_GOT_NOTHING: the server closed without a byte of reply
_CURL_UNSUPPORTED = 1  # CURLE_UNSUPPORTED_PROTOCOL: curl reads a reply without an HTTP/1.x
# status line as HTTP/0.9, which it refuses
# fetch.one's words for a proxy that did not open the tunnel (refused it, closed, answered
# something else): curl's CURLE_RECV_ERROR, 56, for all of them; and --connect-timeout's, 28
_PROXY_TUNNEL = re.compile(
    r"proxy \S+: (?:CONNECT answered |no answer to CONNECT: |not an HTTP answer to CONNECT: )"
)
_CONNECT_TIMED_OUT = "no connection within --connect-timeout "
# fetch.redirects' words for a Location it cannot follow: curl's 1 for another scheme
# (CURLE_UNSUPPORTED_PROTOCOL), 3 for one that is not a URL it can fetch (CURLE_URL_MALFORMAT)
_CANNOT_FOLLOW = "cannot follow Location "
_OTHER_SCHEME = re.compile(r": unsupported scheme '[^']*'\Z")
_CURL_URL_MALFORMAT = _CURL_EXIT_CODES[ErrorKind.INPUT]
# http.parse's words for those cases
_NOTHING = "empty reply: the server closed the connection without a byte"
_NOTHING_AFTER_INTERIM = "closed after an interim (1xx) response"
_CUT_SHORT = "closed before the end of the head"  # curl: 52 as well when no status line came
_NOT_HTTP = (
    "not HTTP",
    "bad status line",
    "bad status code",
    "unsupported version",
    "empty reply: the server sent only empty lines",
)


def _exitcode(result: Result) -> int:
    error = result.error
    if error is None:
        return 0
    if error.kind is ErrorKind.TLS and error.message.startswith("certificate"):
        return _CURL_VERIFY_FAILED
    if error.kind is ErrorKind.TLS and error.message.startswith(AFTER_HANDSHAKE):
        return _CURL_RECV_ERROR
    if error.kind is ErrorKind.CONNECT:
        if _PROXY_TUNNEL.match(error.message):
            return _CURL_RECV_ERROR
        if error.message.startswith(_CONNECT_TIMED_OUT):
            return _CURL_EXIT_CODES[ErrorKind.TIMEOUT]
    if error.kind is ErrorKind.REDIRECT and error.message.startswith(_CANNOT_FOLLOW):
        if _OTHER_SCHEME.search(error.message):
            return _CURL_UNSUPPORTED
        return _CURL_URL_MALFORMAT
    if error.kind is ErrorKind.PROTOCOL:
        if error.message == _NOTHING or error.message.startswith(_NOTHING_AFTER_INTERIM):
            return _CURL_GOT_NOTHING
        if result.head is None and error.message.startswith(_CUT_SHORT):
            return _CURL_GOT_NOTHING  # a status line cut short: curl counts no header line
        if error.message.startswith(_NOT_HTTP):
            return _CURL_UNSUPPORTED
    return _CURL_EXIT_CODES.get(error.kind, 1)


def _time(phase: str) -> tuple[Callable[[Result], str], Callable[[Result], object]]:
    get = _curl_time(phase)
    return (lambda r: _seconds(get(r)), lambda r: _Seconds(get(r)))


# name -> (text, json value). Kept in curl's (alphabetical) order: %{json} lists them so.
_CURL: dict[str, tuple[Callable[[Result], str], Callable[[Result], object]]] = {
    "content_type": (lambda r: _content_type(r) or "", _content_type),
    "errormsg": (lambda r: _errormsg(r) or "", _errormsg),
    "exitcode": (lambda r: str(_exitcode(r)), _exitcode),
    "http_code": (lambda r: f"{_code(r):03d}", _code),
    "http_version": (_http_version, _http_version),
    "num_headers": (lambda r: str(_num_headers(r)), _num_headers),
    "num_redirects": (lambda r: str(len(r.redirects)), lambda r: len(r.redirects)),
    "remote_ip": (_remote_ip, _remote_ip),
    "remote_port": (lambda r: str(_remote_port(r)), _remote_port),
    "response_code": (lambda r: f"{_code(r):03d}", _code),
    "time_appconnect": _time("tls"),
    "time_connect": _time("connect"),
    "time_namelookup": _time("dns"),
    "time_starttransfer": _time("ttfb"),
    "time_total": _time("total"),
    "url": (_given, _given),
    "url_effective": (lambda r: r.url or "", lambda r: r.url or ""),
}


@dataclasses.dataclass(frozen=True, slots=True)
class _Seconds:
    """A time in ``%{json}``: a number with six decimals, as curl writes it (``0.000088``)."""

    value: float | None


def _json_value(value: object) -> str:
    if isinstance(value, _Seconds):
        return _seconds(value.value)
    return _compact(value)


def _json(result: Result) -> str:
    items = [f'"{name}":{_json_value(as_json(result))}' for name, (_, as_json) in _CURL.items()]
    return json_safe("{" + ",".join(items) + "}")


def _header_json(result: Result) -> str:
    """curl's layout: names lower-cased in order of first appearance, each with every value."""
    grouped: dict[str, list[str]] = {}
    for name, value in result.head.headers if result.head is not None else ():
        grouped.setdefault(name.lower(), []).append(value)
    items = [f"{_compact(name)}:{_compact(values)}" for name, values in grouped.items()]
    return json_safe("{" + ",\n".join(items) + "\n}")


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _text(get: Callable[[Result], str]) -> Callable[[Result], str]:
    return lambda result: terminal_safe(get(result))


_SPECIAL = {"json": _json, "header_json": _header_json}
# curl's other -w variables (curl 8.x's manual): about transfers, bodies, proxies and files,
# which a head fetched by fetchheads does not have. Named as curl's, not taken for headers.
_CURL_UNSUPPORTED_VARIABLES = frozenset(
    [
        "certs",
        "conn_id",
        "filename_effective",
        "ftp_entry_path",
        "http_connect",
        "local_ip",
        "local_port",
        "method",
        "num_certs",
        "num_connects",
        "num_retries",
        "proxy_ssl_verify_result",
        "proxy_used",
        "redirect_url",
        "referer",
        "scheme",
        "size_download",
        "size_header",
        "size_request",
        "size_upload",
        "speed_download",
        "speed_upload",
        "ssl_verify_result",
        "stderr",
        "stdout",
        "time_posttransfer",
        "time_pretransfer",
        "time_queue",
        "time_redirect",
        "urlnum",
        "xfer_id",
    ]
)
ONERROR = "onerror"


def _header_first(name: str) -> Callable[[Result], str]:
    def get(result: Result) -> str:
        value = result.head.get(name) if result.head is not None else None
        return terminal_safe(value.strip()) if value is not None else ""

    return get


def _field(get: Callable[[Result], Value]) -> Callable[[Result], str]:
    return lambda result: terminal_safe(value_text(get(result), list_separator=LIST_SEPARATOR))


# --- the template --------------------------------------------------------------------------------

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}  # only these: curl prints "\\" as two backslashes
_WORD_BRACE = re.compile(r"([a-z]+)\{")  # curl's %output{...}, %time{...}: not ours


@dataclasses.dataclass(frozen=True, slots=True)
class WriteOut:
    """A compiled template: ``render(result)`` is the text for one target."""

    parts: tuple[Part, ...]
    on_error: tuple[Part, ...] = ()  # what follows %{onerror}: printed for failures only
    names: frozenset[str] = frozenset()  # the variables it prints, as written (``audit.grade``)

    def render(self, result: Result) -> str:
        text = "".join([p if isinstance(p, str) else p(result) for p in self.parts])
        if self.on_error and result.error is not None:
            text += "".join([p if isinstance(p, str) else p(result) for p in self.on_error])
        return text


def known_variables(vocabulary: Vocabulary = BUILTIN) -> list[str]:
    return [
        *sorted([*_CURL, *_SPECIAL, ONERROR]),
        "header{NAME}",
        *(name for name in vocabulary.names() if name not in _CURL),
    ]


def compile_write_out(template: str, vocabulary: Vocabulary = BUILTIN) -> WriteOut:
    """Compile ``template`` once. Raises ``SpecError`` for an unknown or unclosed variable."""
    parts: list[Part] = []
    before_error: list[Part] | None = None
    literal: list[str] = []
    names: set[str] = set()
    i = 0
    end = len(template)
    while i < end:
        char = template[i]
        if char == "\\" and i + 1 < end:  # as curl: the next character is taken with it
            following = template[i + 1]
            literal.append(_ESCAPES.get(following) or char + following)
            i += 2
            continue
        if char != "%" or i + 1 == end:
            literal.append(char)
            i += 1
            continue
        following = template[i + 1]
        if following == "%":
            literal.append("%")
            i += 2
            continue
        if following == "{":
            name, i = _braced(template, i + 1)
        elif template.startswith("header{", i + 1):
            name, i = _braced(template, i + 7)
            name = "header{" + name
        elif (word := _WORD_BRACE.match(template, i + 1)) is not None:
            raise SpecError(
                f"%{word.group(1)}{{}} is not supported in -w (of %word{{}}, only %header{{NAME}} "
                "is)"
            )
        else:  # "%" before anything else is printed with it, as in curl ("%\\n" is "%\\n")
            literal.append("%" + following)
            i += 2
            continue
        if literal:
            parts.append("".join(literal))
            literal = []
        if name.lower() == ONERROR:
            if before_error is None:
                before_error = parts
                parts = []
            continue
        parts.append(_variable(name, vocabulary))
        names.add(name)
    if literal:
        parts.append("".join(literal))
    if before_error is None:
        return WriteOut(tuple(parts), names=frozenset(names))
    return WriteOut(tuple(before_error), tuple(parts), frozenset(names))


def _braced(template: str, brace: int) -> tuple[str, int]:
    """The name in the braces opening at ``brace``, and the index after the closing one."""
    close = template.find("}", brace)
    if close == -1:
        start = max(template.rfind("%", 0, brace), 0)  # the % of %{ or of %header{
        shown = undecodable_replaced(template[start : brace + 20])
        raise SpecError(f"unclosed {{ in write-out template at {shown!r}")
    return template[brace + 1 : close], close + 1


def _variable(name: str, vocabulary: Vocabulary) -> Callable[[Result], str]:
    byte = undecodable_byte(name)
    if byte is not None:  # of the argument: no variable, and no header name, holds one
        shown = f"%{name}}}" if name.startswith("header{") else f"%{{{name}}}"
        raise SpecError(not_utf8(byte, f"write-out variable {undecodable_replaced(shown)}"))
    if name.startswith("header{"):
        header = name[len("header{") :]
        if not header:
            raise SpecError("empty header name in %header{} (e.g. %header{server})")
        return _header_first(header)
    lower = name.lower()  # curl's own names are matched whatever their case, as curl does
    if lower in _CURL:
        return _text(_CURL[lower][0])
    if lower in _SPECIAL:
        return _SPECIAL[lower]
    field = vocabulary.lookup(name)
    if field is None:
        if lower in _CURL_UNSUPPORTED_VARIABLES or lower.startswith("url."):
            raise SpecError(
                f"curl's %{{{name}}} is not supported by fetchheads' -w; docs/fields.md lists "
                "every variable it has"
            )
        shown = "%{{{}}}"
        near = near_names(name, known_variables(vocabulary), shown) or vocabulary.as_family(
            name, shown
        )
        raise SpecError(
            f"unknown write-out variable %{{{name}}}{near}; docs/fields.md lists every variable"
        )
    return _field(field.get)
