"""Frozen result types, and their one translation to a JSON/SQLite record (``to_record``).

Pure: no I/O, no asyncio. Header names and values are ``str`` decoded by the parser (UTF-8 where the
bytes are valid UTF-8, else Latin-1), kept in wire order with their case and duplicates.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

from fetchheads.errors import ErrorKind
from fetchheads.hostport import bracketed

Headers = tuple[tuple[str, str], ...]

DEFAULT_PORTS = {"http": 80, "https": 443}

_Params = ParamSpec("_Params")
_Frozen = TypeVar("_Frozen")


def builder(cls: Callable[_Params, _Frozen]) -> Callable[_Params, _Frozen]:
    """A constructor of the frozen, slotted dataclass ``cls`` at the cost of a mutable one's.

    The ``__init__`` that ``dataclass(frozen=True)`` writes stores every field through
    ``object.__setattr__`` (a call that packs its arguments in a tuple), the class's own
    ``__setattr__`` being the one that refuses: about 1,700 machine instructions a field in
    Python 3.11, against ~400 for a plain store. The types built once per target (``Target``,
    ``ResponseHead``, ``Timing``, ``Result``: 28 fields) spent ~9% of a plain-http target's
    instructions there. This returns a mutable twin of ``cls``, made by ``dataclasses`` from the
    same fields (so the same signature, defaults, factories and ``TypeError``s), whose
    ``__init__`` stores plainly and then turns the instance into a ``cls`` (the two have the same
    slots, so Python lets ``__class__`` be assigned). What it returns is a ``cls`` like any other:
    frozen, equal to ``cls(...)`` with the same arguments, with every method the dataclass's.
    Refuses a class it could get wrong (one with ``__post_init__`` or ``init=False`` fields)."""
    assert isinstance(cls, type)
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in vars(cls):
        raise TypeError(f"builder takes a frozen, slotted dataclass, not {cls.__name__}")
    fields = dataclasses.fields(cls)
    if hasattr(cls, "__post_init__") or any(not field.init for field in fields):
        raise TypeError(f"builder handles plain fields only, not those of {cls.__name__}")

    def __post_init__(self: object) -> None:
        self.__class__ = cls

    twin = dataclasses.make_dataclass(
        cls.__name__,
        [
            (
                field.name,
                field.type,
                dataclasses.field(
                    default=field.default,
                    default_factory=field.default_factory,
                    kw_only=field.kw_only,
                ),
            )
            for field in fields
        ],
        namespace={"__post_init__": __post_init__},
        repr=False,
        eq=False,
        slots=True,
    )
    if vars(twin)["__slots__"] != vars(cls)["__slots__"]:
        raise TypeError(f"builder cannot match the slots of {cls.__name__}")
    built: Callable[_Params, _Frozen] = twin
    return built


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """One validated target. ``host`` is ASCII: IDNA-encoded name, IPv4 or bare IPv6 literal."""

    text: str  # what the user wrote, as shown in output and stored as ``target``
    scheme: str  # "http" | "https"
    host: str
    port: int
    path: str = "/"  # origin-form: path and query, always starts with "/"
    # ``Basic ...`` from the user:password@ of the target, sent as Authorization; ``text`` shows
    # the password as ``***`` (credentials.py), and ``url`` never holds user information.
    authorization: str | None = dataclasses.field(default=None, repr=False)

    @property
    def authority(self) -> str:
        """``host[:port]`` as the Host header and URLs want it (port omitted when default)."""
        host = bracketed(self.host)
        if DEFAULT_PORTS.get(self.scheme) == self.port:
            return host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return self.url_at(self.authority)

    def url_at(self, authority: str) -> str:
        """``url``, given the ``authority`` already built (a fetch needs both, once a target)."""
        return f"{self.scheme}://{authority}{self.path}"


@dataclasses.dataclass(frozen=True, slots=True)
class ResponseHead:
    """A parsed response head. ``interim`` holds the 1xx heads that came before the final one."""

    http_version: str  # e.g. "HTTP/1.1"
    status: int
    reason: str
    headers: Headers = ()
    interim: tuple[ResponseHead, ...] = ()

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in wire order."""
        folded = name.lower()
        return [v for n, v in self.headers if n.lower() == folded]

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None

    @property
    def status_line(self) -> str:
        return f"{self.http_version} {self.status} {self.reason}".rstrip(" ")


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorInfo:
    kind: ErrorKind
    message: str

    def to_record(self) -> dict[str, str]:
        return {"kind": str(self.kind), "message": self.message}


@dataclasses.dataclass(frozen=True, slots=True)
class Timing:
    """Seconds from the start of the target; ``None`` for a phase that did not happen."""

    dns: float | None = None
    connect: float | None = None
    tls: float | None = None
    ttfb: float | None = None
    total: float | None = None

    def to_record(self) -> dict[str, float | None]:
        # Spelled out, not dataclasses.asdict: this runs once per target and asdict deep-copies.
        return {
            "dns": seconds(self.dns),
            "connect": seconds(self.connect),
            "tls": seconds(self.tls),
            "ttfb": seconds(self.ttfb),
            "total": seconds(self.total),
        }


TIMING_DIGITS = 6
"""Timings in records are seconds rounded to the microsecond (render.jsonl rounds the same)."""


def seconds(value: float | None) -> float | None:
    """A timing as records hold it: seconds, rounded to ``TIMING_DIGITS``."""
    return None if value is None else round(value, TIMING_DIGITS)


@dataclasses.dataclass(frozen=True, slots=True)
class ChainCert:
    """One certificate of the chain a server presented: who it is, who issued it, when it ends."""

    subject: str | None
    issuer: str | None
    not_after: str | None  # ISO 8601, UTC

    def to_record(self) -> dict[str, str | None]:
        return {"subject": self.subject, "issuer": self.issuer, "not_after": self.not_after}


@dataclasses.dataclass(frozen=True, slots=True)
class TLSInfo:
    """The TLS facts of one https target, verified or not (``-k``, a failed verification).

    The first seven fields are the record's original keys and keep their meaning; the rest were
    added with certificate decoding (``certificates.py``) and default to "not known"."""

    version: str | None
    cipher: str | None
    subject: str | None
    issuer: str | None
    not_after: str | None  # ISO 8601, UTC
    days_left: int | None
    san: tuple[str, ...] = ()
    not_before: str | None = None  # ISO 8601, UTC
    serial: str | None = None  # lower-case hex
    fingerprint_sha256: str | None = None  # lower-case hex, of the certificate's DER bytes
    spki_sha256: str | None = None  # lower-case hex, of its DER SubjectPublicKeyInfo
    key: str | None = None  # "EC P-256", "RSA 2048", "Ed25519"
    signature_algorithm: str | None = None  # "sha256WithRSAEncryption", "ecdsa-with-SHA256"
    lifetime_days: float | None = None  # not_after - not_before, in days (2 decimals)
    life_left: float | None = None  # the fraction of that lifetime still ahead, 0..1 (3 decimals)
    verified: bool = False  # OpenSSL verified the chain and the name (never under -k)
    self_signed: bool = False
    chain: tuple[ChainCert, ...] | None = None  # as presented, leaf first; None: not knowable
    chain_earliest_expiry: str | None = None  # the earliest not_after after the leaf

    def to_record(self) -> dict[str, Any]:
        # Spelled out, not dataclasses.asdict: once per https target, and asdict deep-copies.
        chain = self.chain
        return {
            "version": self.version,
            "cipher": self.cipher,
            "subject": self.subject,
            "issuer": self.issuer,
            "not_after": self.not_after,
            "days_left": self.days_left,
            "san": list(self.san),
            "not_before": self.not_before,
            "serial": self.serial,
            "fingerprint_sha256": self.fingerprint_sha256,
            "spki_sha256": self.spki_sha256,
            "key": self.key,
            "signature_algorithm": self.signature_algorithm,
            "lifetime_days": self.lifetime_days,
            "life_left": self.life_left,
            "verified": self.verified,
            "self_signed": self.self_signed,
            "chain": None if chain is None else [cert.to_record() for cert in chain],
            "chain_earliest_expiry": self.chain_earliest_expiry,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Redirect:
    url: str
    status: int
    location: str
    timing: Timing | None = dataclasses.field(default=None, compare=False)
    """The timing of the hop that answered with this redirect (its last attempt), for the formats
    that add up a chain's hops as curl's ``-w`` and blackbox do; not in the record: ``None`` for
    a hop read back from a snapshot, and for the hop that closed a loop (its response is the
    chain's result, whose timing those formats add already)."""
    head: ResponseHead | None = dataclasses.field(default=None, compare=False, repr=False)
    """The redirect response itself, for ``-w`` when a later hop got no answer: curl prints the
    last answer's status, version and header count then; not in the record either."""

    def to_record(self) -> dict[str, Any]:
        return {"url": self.url, "status": self.status, "location": self.location}


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """One difference between two snapshots of a target (``--changes``). ``before``/``after``
    hold the values in wire order; an absent header is ``()``. Pseudo-names: ``:status`` (the
    status code), ``:error`` (``kind: message``) and ``:certificate`` (the fingerprints, with
    ``kind`` and a one-line ``summary``: ``snapshots.renewals``)."""

    name: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    kind: str | None = None
    summary: str | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "name": self.name,
            "before": list(self.before),
            "after": list(self.after),
        }
        if self.kind is not None:
            record["kind"] = self.kind
            record["summary"] = self.summary
        return record


@dataclasses.dataclass(frozen=True, slots=True)
class Alert:
    """Something about a successful target a person should act on (``--warn-days``)."""

    kind: str  # "certificate"
    message: str

    def to_record(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


class Graded(Protocol):
    """What a result carries under ``--audit`` (an ``audit.Audit``; named here as a protocol
    because the audit package sits above this floor): a grade, and its JSON record."""

    @property
    def graded(self) -> bool: ...

    @property
    def score(self) -> int | None: ...

    @property
    def grade(self) -> str | None: ...

    @property
    def rules_version(self) -> str: ...

    def to_record(self) -> dict[str, Any]: ...


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MILLISECONDS = tuple(f".{millisecond:03d}Z" for millisecond in range(1000))
"""``.000Z`` to ``.999Z``: a timestamp's end, looked up instead of formatted (half its cost)."""


_SECOND = dt.timedelta(seconds=1)
_LAST_START = dt.datetime.max.replace(microsecond=0, tzinfo=dt.UTC)
"""The start of the last second a datetime has: the one whose end cannot be written."""
_last_second = (_EPOCH, _EPOCH, "1970-01-01T00:00:00")
"""The second of the last timestamp written: its start, its end and its text (one tuple, replaced
whole, so a reader on another thread never sees the parts of two different seconds)."""


def format_timestamp(moment: dt.datetime) -> str:
    """``2026-11-25T19:12:17.123Z``: UTC, milliseconds (truncated), sortable as text. A naive
    ``moment`` is local time, as ``astimezone`` takes it."""
    global _last_second
    if moment.tzinfo is not dt.UTC:
        moment = moment.astimezone(dt.UTC)
    # This runs once per target, and a run's targets share a few seconds: the whole seconds are
    # formatted once each (isoformat alone costs ~1.5 µs), the milliseconds looked up and added
    # to them. Most timestamps fall in the second of the one before, which two comparisons find.
    start, end, text = _last_second
    if not start <= moment < end:
        start = moment.replace(microsecond=0)
        text = _utc_second(start)
        if start < _LAST_START:
            _last_second = (start, start + _SECOND, text)
    return text + _MILLISECONDS[moment.microsecond // 1000]


@functools.lru_cache(maxsize=64)
def _utc_second(start: dt.datetime) -> str:
    """``2026-11-25T19:12:17``: the UTC second that starts at ``start``. Cached: at a second's
    turn the results of the one before and the one after come in mixed order."""
    return start.isoformat()[:19]


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """Exactly one per target: a head, an error, or (protocol errors) the part of a head received.

    ``target`` is the text the user gave; ``url`` is ``None`` only for input errors. A byte of it
    that was not UTF-8 is shown as U+FFFD there; ``given`` then keeps it as Python keeps such a
    byte (a surrogate escape), for a format that must tell two such targets apart (Prometheus).
    """

    target: str
    url: str | None
    head: ResponseHead | None = None
    error: ErrorInfo | None = None
    address: str | None = None
    timing: Timing = Timing()
    tls: TLSInfo | None = None
    redirects: tuple[Redirect, ...] = ()
    fetched_at: dt.datetime = dataclasses.field(default_factory=utc_now)
    changes: tuple[Change, ...] | None = None  # set under --changes only
    warnings: tuple[Alert, ...] | None = None  # set under --warn-days only
    audit: Graded | None = None  # set under --audit only, for a result with a head to grade
    given: str | None = dataclasses.field(default=None, repr=False)  # see the docstring

    @property
    def ok(self) -> bool:
        return self.error is None and self.head is not None

    @property
    def chain_timings(self) -> list[Timing]:
        """Under ``-L``, the timing of each redirect hop that has its own, then the result's: what
        curl's ``-w`` times and blackbox's probe add up. Without redirects, the result's alone."""
        hops = [hop.timing for hop in self.redirects if hop.timing is not None]
        hops.append(self.timing)
        return hops

    def to_record(self) -> dict[str, Any]:
        """The JSON Lines object of docs/output.md; every key is always present."""
        head = self.head
        record: dict[str, Any] = {
            "target": self.target,
            "url": self.url,
            "ok": self.ok,
            "status": head.status if head else None,
            "reason": head.reason if head else None,
            "http_version": head.http_version if head else None,
            "headers": [[n, v] for n, v in head.headers] if head else [],
            "error": self.error.to_record() if self.error else None,
            "address": self.address,
            "timing": self.timing.to_record(),
            "tls": self.tls.to_record() if self.tls else None,
            "redirects": [r.to_record() for r in self.redirects],
            "fetched_at": format_timestamp(self.fetched_at),
        }
        # Present only when asked for: a plain run's record stays as docs/output.md shows it.
        if self.changes is not None:
            record["changes"] = [change.to_record() for change in self.changes]
        if self.warnings is not None:
            record["warnings"] = [warning.to_record() for warning in self.warnings]
        if self.audit is not None:
            record["audit"] = self.audit.to_record()
        return record


# The constructors of the per-target path (``builder``): a target read, a head parsed, its timings
# and its result, built thousands of times a second.
build_target = builder(Target)
build_head = builder(ResponseHead)
build_timing = builder(Timing)
build_result = builder(Result)
