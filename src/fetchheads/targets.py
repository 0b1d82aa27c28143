"""Raw text -> ``Target``: schemes, ports, IDNA, IPv6 literals, validation. Pure.

Accepted forms (docs/usage.md "Targets")::

    host   host:port   [v6addr]   [v6addr]:port   http://host[:port][/path]   https://...

A bare target takes ``default_scheme``; a bare ``host:443`` means https. Hosts are IDNA-encoded
as curl (libidn2) and browsers encode them (``idna_name``): IDNA 2008 with the UTS #46 mapping,
non-transitional (``faß.de`` is ``xn--fa-hia.de``, not ``fass.de``, a different domain), and
IDNA 2003 for a name IDNA 2008 refuses (``☃.net``), as curl falls back. Nothing that is not a
valid host, port or path can leave this module, so no CR, LF, space or control byte ever reaches
the request line or the Host header.
"""

from __future__ import annotations

import dataclasses
import re

from fetchheads.credentials import (
    UNENCODED_PASSWORD,
    basic_authorization,
    has_unencoded_password,
    redact_url,
)
from fetchheads.errors import InputError
from fetchheads.hostport import port_number, split_bracket
from fetchheads.models import DEFAULT_PORTS, Target, build_target

MAX_LINE_CHARS = 4096
"""Longest input line taken as a target. URLs in the wild stay under 2 KiB; browsers cap near 2 MB,
but a longer line in a host list is a mistake, and bounding it bounds memory."""
MAX_HOST_CHARS = 253  # RFC 1035 §2.3.4, as dotted text
MAX_LABEL_CHARS = 63  # RFC 1035 §2.3.4

SCHEMES = ("http", "https")

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Path characters allowed on the request line: RFC 3986 pchar, "/", "?" and "%" (escapes are
# passed through as written). Anything else is percent-encoded rather than refused, except
# controls and whitespace, which are refused because they could split our own request.
_PATH_SAFE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
"""An IPv4 address already in its canonical spelling (no leading zeros, no hex, four parts): the
common case, which ``_ipv4_host`` returns as it is without taking the parts apart."""
_LABEL_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029]")
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zs", "Zl", "Zp"})
# The common spellings, in one match: a lower-case ASCII name or IPv4 address whose labels are
# valid as they stand, an optional port and a path of request-line-safe characters. Whatever this
# accepts, the full validator accepts and normalises to the same Target (tests/test_targets_fast.py
# holds them to it); anything else takes the full path, which also words every error.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_SIMPLE = re.compile(
    rf"(?:(https?)://)?({_LABEL}(?:\.{_LABEL})*)(?::([0-9]{{1,5}}))?"
    r"([/?][A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*)?"
)


def parse_target(text: str, *, default_scheme: str = "http") -> Target:
    """Validate one target. Raises ``InputError`` with a message a user can act on."""
    match = _SIMPLE.fullmatch(text) if len(text) <= MAX_HOST_CHARS else None
    if match is not None:
        scheme, host, port_text, path = match.groups()
        port = int(port_text) if port_text else None
        if port is None or 0 < port < 65536:
            if scheme is None:
                scheme = default_scheme
                if port == 443:
                    scheme = "https"
            if port is None:
                port = DEFAULT_PORTS[scheme]
            if path is None:
                path = "/"
            elif path[0] == "?":
                path = "/" + path
            if host[-1].isdigit() or "0x" in host:  # may be IPv4 in another spelling: 127.1
                host = _ipv4_host(host) or host
            # Positional, in the order of the fields: keywords cost ~2,400 instructions more.
            return build_target(text, scheme, host, port, path)
    return parse_target_full(text, default_scheme=default_scheme)


def check_target(text: str, *, default_scheme: str = "http") -> str:
    """``text``, stripped, when ``parse_target`` takes it, without building the ``Target``: how
    the supervisor of ``--workers`` checks each line that a worker then parses. The same
    decisions as ``parse_target`` (the same match decides its common spellings, the full
    validator the rest), and the same ``InputError`` for a line that is no target."""
    match = _SIMPLE.fullmatch(text) if len(text) <= MAX_HOST_CHARS else None
    if match is not None:
        _scheme, host, port_text, _path = match.groups()
        if not port_text or 0 < int(port_text) < 65536:
            if host[-1].isdigit() or "0x" in host:
                _ipv4_host(host)  # raises for an address that is not one: 1.2.3.999
            return text
    parse_target_full(text, default_scheme=default_scheme)
    return text.strip()  # as the full validator reads it: an argument may have spaces around


def parse_target_full(text: str, *, default_scheme: str = "http") -> Target:
    """``parse_target`` for every form: strips, validates, normalises and words each error."""
    raw = text.strip()
    if not raw:
        raise InputError("empty target")
    bad = _FORBIDDEN_CHARS.search(raw)
    if bad:
        raise InputError(f"control or space character {bad.group()!r} in target")
    if not raw.isascii():
        _check_characters(raw)  # no byte that is not UTF-8 is left, no surrogate
    # In UTF-8 bytes, as a line of a file is measured (LineSplitter): an argument that a
    # supervisor of --workers hands on as a line must be one a worker takes.
    if len(raw.encode()) > MAX_LINE_CHARS:
        raise InputError(f"target longer than {MAX_LINE_CHARS} bytes")

    match = _SCHEME_RE.match(raw)
    if match:
        scheme = match.group(1).lower()
        if scheme not in SCHEMES:
            raise InputError(f"unsupported scheme {scheme!r} (use http or https)")
        rest = raw[match.end() :]
        explicit_scheme = True
    else:
        scheme = default_scheme
        rest = raw
        explicit_scheme = False

    authority, path = _split_path(rest)
    authorization = None
    if "@" not in authority and has_unencoded_password(raw):
        raise InputError(UNENCODED_PASSWORD)
    if "@" in authority:  # user:password@host, sent as Basic credentials (as curl does)
        userinfo, _at, authority = authority.rpartition("@")
        authorization = basic_authorization(userinfo)
        raw = redact_url(raw)
    host, port = _split_host_port(authority)
    if port is None:
        port = DEFAULT_PORTS[scheme]
    elif not explicit_scheme and port == 443:
        scheme = "https"
    return Target(raw, scheme, host, port, path, authorization)


def undecodable_byte(text: str) -> int | None:
    """The first byte of ``text`` that was not UTF-8 (an argument, a variable or a line keeps
    one as a surrogate escape, U+DC80-U+DCFF), or None: such text cannot be sent or encoded."""
    for char in text:
        if "\udc80" <= char <= "\udcff":
            return ord(char) - 0xDC00
    return None


_UNDECODABLE = re.compile("[\ud800-\udfff]")


def undecodable_replaced(text: str) -> str:
    """``text`` with each byte that was not UTF-8 (kept by Python as a lone surrogate, in an
    argument, a file name or a line read) shown as U+FFFD, so that it can be written as UTF-8."""
    return _UNDECODABLE.sub("\ufffd", text)


def undecodable_escaped(text: str) -> str:
    """``text`` with each byte that was not UTF-8 written ``\\xE9``: where U+FFFD would make two
    texts that differ by such a byte look the same."""
    return _UNDECODABLE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02X}" if 0xDC80 <= code <= 0xDCFF else "\ufffd"


def not_utf8(byte: int, where: str = "it") -> str:
    """How a message names such a byte: ``byte 0xE9 in it is not UTF-8``."""
    return f"byte 0x{byte:02X} in {where} is not UTF-8"


def _check_characters(raw: str) -> None:
    """Refuse bytes that were not UTF-8 (an argument or a line holds them as surrogate escapes)
    and invisible characters (Unicode ``Cf``: zero-width spaces, bidi controls, a stray BOM):
    IDNA would silently drop some of them, so the host reached is not the one shown."""
    import unicodedata  # only non-ASCII targets pay for the import

    for char in raw:
        category = unicodedata.category(char)
        if category == "Cs":
            code = ord(char)
            if 0xDC80 <= code <= 0xDCFF:  # how Python keeps a byte that is not UTF-8
                raise InputError(not_utf8(code - 0xDC00, "target"))
            raise InputError(f"lone surrogate U+{code:04X} in target")
        if category in _INVISIBLE_CATEGORIES:
            raise InputError(f"invisible character U+{ord(char):04X} in target")


def _split_path(rest: str) -> tuple[str, str]:
    cut = len(rest)
    for sep in "/?#":
        index = rest.find(sep)
        if index != -1:
            cut = min(cut, index)
    authority, path = rest[:cut], rest[cut:]
    path = path.split("#", 1)[0]  # a fragment is never sent
    if not path:
        path = "/"
    elif path.startswith("?"):
        path = "/" + path
    if not _PATH_SAFE.fullmatch(path):
        path = _quote_path(path)
    return authority, path


def _quote_path(path: str) -> str:
    out = []
    for char in path:
        if _PATH_SAFE.fullmatch(char):
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


def _split_host_port(authority: str) -> tuple[str, int | None]:
    import ipaddress  # here, not at the top: the common spellings never get this far

    if not authority:
        raise InputError("no host in target")
    if authority.startswith("["):
        split = split_bracket(authority)
        if split is None:
            raise InputError("unclosed '[' in IPv6 address")
        literal, after = split
        if after and not after.startswith(":"):
            raise InputError(f"unexpected {after!r} after IPv6 address")
        try:
            address = ipaddress.IPv6Address(literal.split("%", 1)[0])
        except ValueError:
            raise InputError(f"invalid IPv6 address {literal!r}") from None
        if "%" in literal:
            raise InputError("IPv6 zone identifiers are not supported")
        return address.compressed, _parse_port(after[1:]) if after else None
    if authority.count(":") > 1:
        try:  # a bare IPv6 literal is unambiguous when it parses whole
            return ipaddress.IPv6Address(authority).compressed, None
        except ValueError:
            raise InputError("IPv6 addresses must be in brackets, e.g. [::1]:8080") from None
    host, colon, port_text = authority.partition(":")
    port = _parse_port(port_text) if colon else None
    return _normalise_host(host), port


def _parse_port(text: str) -> int:
    port = port_number(text)
    if port is not None:
        return port
    if text.isascii() and text.isdigit():
        raise InputError(f"port {int(text)} out of range (1-65535)")
    raise InputError(f"invalid port {text!r}")


def _normalise_host(host: str) -> str:
    if not host:
        raise InputError("no host in target")
    name = host.rstrip(".") if host != "." else ""
    if not name:
        raise InputError(f"invalid host {host!r}")
    try:
        name = folded_name(name)
    except UnicodeError as exc:
        raise InputError(f"invalid international host name {host!r}: {exc}") from None
    address = _ipv4_host(name)
    if address is not None:
        return address
    labels = name.split(".")
    # The most specific complaint first: one overlong label is what a user has to fix.
    if any(len(label) > MAX_LABEL_CHARS for label in labels):
        raise InputError(f"host label longer than {MAX_LABEL_CHARS} characters")
    if len(name) > MAX_HOST_CHARS:
        raise InputError(f"host name longer than {MAX_HOST_CHARS} characters")
    if not all(_LABEL_RE.match(label) for label in labels):
        raise InputError(f"invalid host name {host!r}")
    return name


def folded_name(name: str) -> str:
    """A host name as targets, ``--resolve`` and the cache compare it: ASCII in lower case, any
    other IDNA-encoded (``idna_name``), whose UTS #46 mapping folds the case itself: lowering it
    first would turn a final Σ into ς. Raises ``UnicodeError``."""
    return name.lower() if name.isascii() else idna_name(name)


def idna_name(name: str) -> str:
    """A host name that is not ASCII as it is looked up and sent (``Host``, SNI): what curl's
    libidn2 makes of it. IDNA 2008 with the UTS #46 mapping, non-transitional (``ß`` stays a
    letter of its own), and where IDNA 2008 refuses a code point (a symbol: ``☃``), IDNA 2003,
    as curl retries. Raises ``UnicodeError`` when neither can encode it."""
    import idna  # only names that are not ASCII pay for the import

    try:
        return idna.encode(name, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError:
        return name.encode("idna").decode("ascii")


def _ipv4_host(host: str) -> str | None:
    """The dotted-quad form of a host that ends in a number, as the WHATWG URL standard's IPv4
    parser (and curl, and browsers) read it: ``127.1``, ``0x7f.1``, ``2130706433`` and
    ``0177.0.0.1`` are all ``127.0.0.1``. Parts are decimal, ``0x`` hex or ``0``-led octal; the
    last part fills the bytes the others leave. ``None`` for a host name. A host that ends in a
    number but is no IPv4 address (``256.1.1.1``, ``1.2.3.4.5``, ``example.123``) is refused,
    as WHATWG does: a name with a numeric top-level label cannot exist, so it is a typo."""
    if _DOTTED_QUAD.fullmatch(host):
        return host
    parts = host.split(".")
    if len(parts) > 1 and not parts[-1]:
        parts.pop()  # one trailing dot: 127.0.0.1.
    last = parts[-1]
    if not (last.isascii() and last.isdigit()) and _ipv4_number(last) is None:
        return None  # does not end in a number: a name
    numbers = []
    for part in parts:
        number = _ipv4_number(part)
        if number is None:
            raise InputError(f"invalid IPv4 address {host!r}")
        numbers.append(number)
    *leading, final = numbers
    if len(numbers) > 4 or any(n > 255 for n in leading) or final >= 256 ** (5 - len(numbers)):
        raise InputError(f"invalid IPv4 address {host!r}")
    value = final + sum(number << 8 * (3 - index) for index, number in enumerate(leading))
    return ".".join(str(value >> shift & 0xFF) for shift in (24, 16, 8, 0))


def _ipv4_number(part: str) -> int | None:
    """One part of a numeric host, or ``None`` when it is not a number."""
    if not part.isascii():
        return None
    digits, base = part, 10
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:] or "0", 16
    elif len(part) > 1 and part[0] == "0":
        digits, base = part[1:], 8
    if not digits or not digits.isalnum():
        return None  # int() would take "+1", " 1" and "1_0"
    try:
        return int(digits, base)
    except ValueError:
        return None


# --- identity: --unique and --shard --------------------------------------------------------------


def canonical_key(text: str, *, default_scheme: str = "http") -> str:
    """The identity of a target: its URL as fetchheads sends it (scheme, IDNA host in lower case,
    port only when not the scheme's default, path), the key ``--shard`` hashes; so
    ``HTTP://Example.COM:80``, ``example.com.`` and ``http://example.com/`` are one target. The
    path keeps its case and query (a server may tell them apart). Text that is not a valid target
    is its own key, stripped: its error record is reported once too.
    """
    try:
        return parse_target(text.strip(), default_scheme=default_scheme).url
    except InputError:
        return text.strip()


class FirstSeen:
    """``first_seen(key)`` is True the first time a key is given, False every time after (for
    ``--unique``). Memory is bounded per key whatever its length: a 64-bit BLAKE2b digest is kept,
    not the key; the chance that two of ten million distinct targets collide is about 3 in a
    million, and a collision only drops a target as a repeat."""

    def __init__(self) -> None:
        import hashlib  # only --unique pays for the import

        self._seen: set[int] = set()
        self._blake2b = hashlib.blake2b

    def __len__(self) -> int:
        return len(self._seen)

    def __call__(self, key: str) -> bool:
        digest = self._blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
        number = int.from_bytes(digest, "big")
        if number in self._seen:
            return False
        self._seen.add(number)
        return True


# --- input lines ---------------------------------------------------------------------------------


def without_comment(text: str) -> str:
    """``text`` (stripped) up to a ``#`` that follows whitespace: ``host:8080  # staging`` is
    ``host:8080``, as in /etc/hosts. A ``#`` right after other text is a URL's fragment and stays:
    no valid target holds whitespace, so nothing a target could be is cut."""
    if "#" not in text:
        return text
    match = _INLINE_COMMENT.search(text)
    return text if match is None else text[: match.start()].rstrip()


_INLINE_COMMENT = re.compile(r"\s#")


OVERLONG_SHOWN = 60
"""Bytes of an overlong line kept, so that its record shows which line it was."""
_RAW_LINE_LIMIT = MAX_LINE_CHARS + 4
"""Bytes a line may take before it is known to be overlong: a BOM (3) and a CR (1) are not
counted against ``MAX_LINE_CHARS``; ``_emit`` measures the line without them."""


@dataclasses.dataclass(frozen=True, slots=True)
class OverlongLine:
    """An input line longer than ``MAX_LINE_CHARS``: only its start is kept."""

    start: str


class LineSplitter:
    """Bytes -> numbered text lines, incrementally, with each line bounded in memory.

    A line longer than ``MAX_LINE_CHARS`` bytes (a CR ending it and a UTF-8 BOM starting the
    first not counted) is not kept: it comes out as an ``OverlongLine`` holding its first
    ``OVERLONG_SHOWN`` bytes (the rest is dropped as it streams past), so a 1 GB line costs
    nothing but the time to skip it. Bytes that are not UTF-8 are kept as surrogate escapes, as
    Python keeps them in arguments: ``parse_target`` refuses them, naming the byte, so a binary
    line becomes a target that fails validation, never a crash nor a different URL.
    """

    __slots__ = ("_number", "_overlong", "_overlong_start", "_pending")

    def __init__(self) -> None:
        self._pending = bytearray()
        self._number = 0
        self._overlong = False
        self._overlong_start = b""

    def feed(self, data: bytes) -> list[tuple[int, str | OverlongLine]]:
        """Complete lines in ``data``; ``feed(b"")`` flushes the last, unterminated line."""
        out: list[tuple[int, str | OverlongLine]] = []
        if not data:
            if self._pending or self._overlong:
                out.append(self._emit(bytes(self._pending)))
                self._pending.clear()
            return out
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline == -1:
                self._hold(data[start:])
                return out
            if self._pending:
                self._hold(data[start:newline])
                out.append(self._emit(bytes(self._pending)))
                self._pending.clear()
            elif self._overlong:
                out.append(self._emit(b""))
            else:
                piece = data[start:newline]
                if len(piece) <= MAX_LINE_CHARS and self._number:
                    # _emit's common case, spelled out (a call fewer a line): not the first
                    # line (no BOM to drop), and short enough whatever it ends with.
                    self._number += 1
                    text = piece.decode("utf-8", "surrogateescape").strip()
                    out.append((self._number, without_comment(text) if "#" in text else text))
                else:
                    if len(piece) > _RAW_LINE_LIMIT:
                        self._overlong = True
                        self._overlong_start = piece[:OVERLONG_SHOWN]
                    out.append(self._emit(piece))
            start = newline + 1

    def _hold(self, piece: bytes) -> None:
        if self._overlong:
            return
        if len(self._pending) + len(piece) > _RAW_LINE_LIMIT:
            self._overlong = True
            self._overlong_start = bytes(self._pending[:OVERLONG_SHOWN])
            self._overlong_start += piece[: OVERLONG_SHOWN - len(self._overlong_start)]
            self._pending.clear()
            return
        self._pending += piece

    def _emit(self, raw: bytes) -> tuple[int, str | OverlongLine]:
        self._number += 1
        overlong = self._overlong
        if overlong:
            self._overlong = False
            raw, self._overlong_start = self._overlong_start, b""
        if self._number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not overlong and len(raw) - raw.endswith(b"\r") > MAX_LINE_CHARS:
            overlong = True
            raw = raw[:OVERLONG_SHOWN]
        text = raw.decode("utf-8", "surrogateescape").strip()
        return self._number, OverlongLine(text) if overlong else without_comment(text)
