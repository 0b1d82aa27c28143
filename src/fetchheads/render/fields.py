"""One field vocabulary for every columnar format: ``--fields``, ``-w`` and the filters. Pure.

A *field* is a name and a typed accessor of a ``Result``: ``status`` -> ``200``, ``time.total`` ->
``0.0312``, ``header:server`` -> ``"nginx"``. Table, CSV, TSV and write-out all read results
through the same accessors, so they can never disagree about what a field means.

Values are typed: ``int``, ``float`` (seconds), ``str``, ``bool``, a tuple of ``str`` (a list:
``cert.san``, ``header:set-cookie``) or ``None`` (not known for this result: no head, no TLS, an
absent header). Each format turns a value into text with ``value_text``.

Headers (``header:NAME``, the name case-insensitive): the field lines of one name are combined as
RFC 9110 §5.3 combines them, values in wire order joined by ``", "``. ``Set-Cookie`` is the
exception §5.3 itself names (a cookie's ``Expires`` date holds a comma, so a joined value cannot
be split again): it is a list, one item per cookie, which CSV shows one per line in its cell and
the table and TSV separate visibly (see ``value_text``). An absent header is ``None``; a header
sent with an empty value is ``""``.

Extension point: a ``Vocabulary`` is an immutable set of fields and field families (a prefix such
as ``header:`` and a factory for the name after it). ``BUILTIN`` holds fetchheads' own; another
module (the audit, later) adds its fields with ``BUILTIN.extended(...)`` and hands the result to
``compile_fields``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from fetchheads.grades import grade_rank
from fetchheads.models import Result, format_timestamp

Value = int | float | str | bool | tuple[str, ...] | None
Kind = Literal["text", "int", "seconds", "bool", "status", "list"]


class SpecError(ValueError):
    """A ``--fields``, ``-w`` or filter value that cannot be used; ``str()`` is the one-line
    message for the user (the CLI shows it as a usage error, exit status 2)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    """One column: its name as the user writes it, its kind, and its accessor."""

    name: str
    kind: Kind
    get: Callable[[Result], Value]
    width: int | None = None
    """Table columns: a fixed width in cells (the widest value the field can have), or ``None``
    for text that shares what the fixed columns leave."""
    help: str = ""
    order: Callable[[Value], Value] | None = None
    """``--sort``: the value a known value sorts as, when not as itself (``audit.grade`` by the
    Observatory's order, not by its letters); ``None``: the value itself."""


@dataclasses.dataclass(frozen=True, slots=True)
class Family:
    """Fields named ``PREFIX<name>`` (``header:server``): ``make(name)`` builds the one for a
    name, or raises ``SpecError`` when the name is not valid."""

    prefix: str
    make: Callable[[str], Field]
    help: str = ""


class Vocabulary:
    """An immutable set of fields and families; ``extended`` returns a larger one."""

    def __init__(self, fields: Iterable[Field] = (), families: Iterable[Family] = ()) -> None:
        self._fields: Mapping[str, Field] = {field.name: field for field in fields}
        self._families: tuple[Family, ...] = tuple(families)

    def extended(self, fields: Iterable[Field] = (), families: Iterable[Family] = ()) -> Vocabulary:
        fields = tuple(fields)
        families = tuple(families)
        clash = [f.name for f in fields if f.name in self._fields]
        clash += [f.prefix for f in families if f.prefix in self.family_prefixes()]
        if clash:
            raise ValueError(f"fields already defined: {', '.join(clash)}")
        return Vocabulary((*self._fields.values(), *fields), (*self._families, *families))

    def names(self) -> list[str]:
        """Every name a user can write, families as ``PREFIX NAME`` (``header:NAME``)."""
        return [*self._fields, *(f"{family.prefix}NAME" for family in self._families)]

    def family_prefixes(self) -> tuple[str, ...]:
        return tuple(family.prefix for family in self._families)

    def describe(self) -> list[tuple[str, str]]:
        """``(name, help)`` of every field and family, for docs and ``--help``."""
        return [(f.name, f.help) for f in self._fields.values()] + [
            (f"{family.prefix}NAME", family.help) for family in self._families
        ]

    def lookup(self, name: str) -> Field | None:
        """The field called ``name`` (families included), ``None`` if there is none."""
        field = self._fields.get(name)
        if field is not None:
            return field
        for family in self._families:
            if name.startswith(family.prefix):
                return family.make(name[len(family.prefix) :])
        return None

    def field(self, name: str) -> Field:
        """``lookup``, raising ``SpecError`` (naming the nearest known names) for an unknown one."""
        field = self.lookup(name)
        if field is None:
            hint = near_names(name, self.names()) or self.as_family(name)
            raise SpecError(f"unknown field {name!r}{hint}; docs/fields.md lists every field")
        return field

    def as_family(self, name: str, shown: str = "{}") -> str:
        """`` (a header is header:NAME)`` when ``name`` is valid as a family's name, the field
        written as ``shown`` writes it (``%{{{}}}`` for -w); not for a dotted name, which reads as
        a field (``time.x``), not as a header."""
        if "." in name:
            return ""
        for family in self._families:
            try:
                family.make(name)
            except SpecError:
                continue
            return f" (a {family.prefix.strip(':')} is {shown.format(family.prefix + name)})"
        return ""


def near_names(name: str, known: Iterable[str], shown: str = "{}") -> str:
    """`` (did you mean status?)``: the known names closest to a mistyped one (difflib), each
    written as ``shown`` writes it (``%{{{}}}`` for -w); empty when none is close."""
    close = [shown.format(match) for match in difflib.get_close_matches(name, list(known), n=3)]
    if not close:
        return ""
    listed = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return f" (did you mean {listed}?)"


def compile_fields(spec: str, vocabulary: Vocabulary) -> tuple[Field, ...]:
    """``"status,header:server,time.total"`` -> the fields, looked up once for the whole run.

    Names are separated by commas, with optional spaces around them. A name given twice is kept
    twice (the user asked for two columns). Raises ``SpecError`` on an empty list, an empty item
    or an unknown name.
    """
    names = [name.strip() for name in spec.split(",")]
    if not any(names):
        raise SpecError("no fields given (e.g. --fields status,header:server,time.total)")
    if not all(names):
        raise SpecError(f"empty field name in {spec!r} (fields are separated by single commas)")
    return tuple(vocabulary.field(name) for name in names)


# --- values as text ------------------------------------------------------------------------------

SECONDS_DIGITS = 6
"""Seconds in text keep microseconds, as curl's ``-w`` and the JSON record do."""


def value_text(value: Value, *, none: str = "", list_separator: str = "\n") -> str:
    """``value`` as a format shows it: ``None`` as ``none`` (``""`` in CSV, TSV and ``-w``; ``-``
    in the table), a float as seconds with six decimals, a bool as ``true``/``false``, a list
    joined by ``list_separator``. Server text is returned as it is: sanitising is the format's."""
    if value is None:
        return none
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.{SECONDS_DIGITS}f}"
    if isinstance(value, tuple):
        return list_separator.join(value)
    return str(value)


# --- the built-in fields -------------------------------------------------------------------------


def _first_url(result: Result) -> str | None:
    """The URL asked for: with ``-L`` the record's ``url`` is the final one, the first hop's is
    the one the target named."""
    return result.redirects[0].url if result.redirects else result.url


def _status(result: Result) -> int | None:
    head = result.head
    return head.status if head is not None else None


def _header(name: str) -> Field:
    if not name or not _TOKEN.fullmatch(name):
        raise SpecError(f"invalid header name {name!r} in header:{name} (e.g. header:server)")
    folded = name.lower()
    if folded == "set-cookie":

        def get_cookies(result: Result) -> Value:
            head = result.head
            if head is None:
                return None
            values = tuple(v for n, v in head.headers if n.lower() == "set-cookie")
            return values or None

        return Field(f"header:{name}", "list", get_cookies, help="every Set-Cookie, one a line")

    def get(result: Result) -> Value:
        head = result.head
        if head is None:
            return None
        values = [v for n, v in head.headers if n.lower() == folded]
        if not values:
            return None
        return values[0] if len(values) == 1 else ", ".join(values)

    return Field(f"header:{name}", "text", get, help="")


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.1 field-name = token


def _tls(attribute: str) -> Callable[[Result], Value]:
    def get(result: Result) -> Value:
        tls = result.tls
        if tls is None:
            return None
        value: Value = getattr(tls, attribute)
        return value if value != () else None  # no names (-k) is "not known", as elsewhere

    return get


def _timing(attribute: str) -> Callable[[Result], Value]:
    def get(result: Result) -> Value:
        value: float | None = getattr(result.timing, attribute)
        return value

    return get


def _error_kind(result: Result) -> Value:
    return str(result.error.kind) if result.error is not None else None


def _error_message(result: Result) -> Value:
    return result.error.message if result.error is not None else None


def _audit_score(result: Result) -> Value:
    audit = result.audit
    return audit.score if audit is not None else None


def _audit_grade(result: Result) -> Value:
    audit = result.audit
    return audit.grade if audit is not None else None


def _grade_order(grade: Value) -> Value:
    return grade_rank(grade) if isinstance(grade, str) else grade


def _header_count(result: Result) -> Value:
    return len(result.head.headers) if result.head is not None else None


def _warnings(result: Result) -> Value:
    warnings = result.warnings
    return tuple(warning.message for warning in warnings) if warnings else None


TIME_WIDTH = 7  # "999.999": seconds with milliseconds, as the table shows them

BUILTIN = Vocabulary(
    fields=(
        Field("target", "text", lambda r: r.target, help="the target as written"),
        Field("url", "text", _first_url, help="the URL asked for"),
        Field("final_url", "text", lambda r: r.url, help="the URL that answered (-L)"),
        Field("status", "status", _status, width=3, help="the status code"),
        Field(
            "reason",
            "text",
            lambda r: r.head.reason if r.head is not None else None,
            help="the reason phrase",
        ),
        Field(
            "http_version",
            "text",
            lambda r: r.head.http_version if r.head is not None else None,
            width=8,
            help="e.g. HTTP/1.1",
        ),
        Field("address", "text", lambda r: r.address, width=15, help="the IP address connected"),
        Field("ok", "bool", lambda r: r.ok, width=5, help="true when a head came back"),
        Field("error.kind", "text", _error_kind, width=8, help="dns, connect, tls, timeout ..."),
        Field("error.message", "text", _error_message, help="what went wrong"),
        *(
            Field(
                f"time.{phase}",
                "seconds",
                _timing(phase),
                width=TIME_WIDTH,
                help=f"seconds from the start to the end of {what}",
            )
            for phase, what in (
                ("dns", "name resolution"),
                ("connect", "the TCP connect"),
                ("tls", "the TLS handshake"),
                ("ttfb", "the first response byte"),
                ("total", "the head"),
            )
        ),
        Field(
            "redirects",
            "int",
            lambda r: len(r.redirects),
            width=2,
            help="redirects followed (-L)",
        ),
        Field("tls.version", "text", _tls("version"), width=7, help="e.g. TLSv1.3"),
        Field("tls.cipher", "text", _tls("cipher"), help="the cipher suite"),
        Field("cert.days_left", "int", _tls("days_left"), width=5, help="days to expiry"),
        Field("cert.not_after", "text", _tls("not_after"), width=20, help="expiry, ISO 8601 UTC"),
        Field("cert.issuer", "text", _tls("issuer"), help="the issuer's name"),
        Field("cert.subject", "text", _tls("subject"), help="the subject's name"),
        Field("cert.san", "list", _tls("san"), help="the names the certificate covers"),
        Field("cert.not_before", "text", _tls("not_before"), width=20, help="start of validity"),
        Field("cert.key", "text", _tls("key"), width=10, help="e.g. EC P-256, RSA 2048"),
        Field(
            "cert.fingerprint_sha256",
            "text",
            _tls("fingerprint_sha256"),
            help="SHA-256 of the certificate, hex",
        ),
        Field(
            "cert.lifetime_days",
            "seconds",
            _tls("lifetime_days"),
            width=7,
            help="days from not_before to not_after",
        ),
        Field(
            "cert.life_left",
            "seconds",
            _tls("life_left"),
            width=5,
            help="fraction of the lifetime still ahead, 0..1",
        ),
        Field(
            "cert.chain_earliest_expiry",
            "text",
            _tls("chain_earliest_expiry"),
            width=20,
            help="the earliest expiry in the chain after the leaf",
        ),
        Field(
            "warnings",
            "list",
            _warnings,
            help="certificate warnings (--warn-days, --warn-fraction)",
        ),
        Field("header_count", "int", _header_count, width=3, help="header lines in the head"),
        Field(
            "audit.grade",
            "text",
            _audit_grade,
            width=5,
            help="the security header grade (--audit)",
            order=_grade_order,
        ),
        Field(
            "audit.score", "int", _audit_score, width=5, help="the security header score (--audit)"
        ),
        Field(
            "fetched_at",
            "text",
            lambda r: format_timestamp(r.fetched_at),
            width=24,
            help="when the fetch began, UTC",
        ),
    ),
    families=(Family("header:", _header, help="a response header, case-insensitive"),),
)
