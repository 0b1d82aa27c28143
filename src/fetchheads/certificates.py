"""What a certificate says, decoded once per certificate seen; what a failed verification means;
which certificates need attention (``--warn-days``, ``--warn-fraction``). Pure: no I/O.

The certificates a server presented are decoded from their DER bytes with ``cryptography``,
verified or not (``-k``, a failed verification), never from ``getpeercert()``'s dictionary, which
Python fills only after a successful verification (and whose dates cost a ``strptime`` each). A
decode costs ~100 µs, but a run meets the same certificates again and again (one site's many
paths, a CDN's shared certificate, a handful of intermediates), so ``decode`` keeps the last
``CACHE_SIZE`` by their bytes and a target pays only for the look-up. ``cryptography`` is imported
on the first decode: a run of http targets never loads it (~90 ms).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from fetchheads.errors import ErrorKind
from fetchheads.models import Alert, ChainCert, Result, TLSInfo
from fetchheads.wording import days_left_words, lifetime_words

if TYPE_CHECKING:
    from cryptography import x509

CACHE_SIZE = 1024
"""Distinct certificates kept decoded (~3 KiB each, their bytes as the key): a list's shared
certificates and intermediates stay, a million distinct ones pass through in bounded memory."""
DAY = 86400.0
MAX_NAMES_SHOWN = 6
"""Names listed in a wrong-host message before ``+N more`` (CDN certificates carry hundreds)."""
LOOK_ANYWAY = "give --cacert FILE, or -k to look anyway"

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class Decoded:
    """The facts of one certificate that do not change with time (``days_left`` does)."""

    subject: str | None
    issuer: str | None
    not_before: str | None  # ISO 8601, UTC
    not_after: str | None
    not_before_ts: float | None  # seconds since the epoch, for the per-target arithmetic
    not_after_ts: float | None
    san: tuple[str, ...]
    serial: str | None
    fingerprint_sha256: str
    spki_sha256: str | None
    key: str | None
    signature_algorithm: str | None
    self_signed: bool
    as_chain: ChainCert

    @property
    def lifetime(self) -> float | None:
        """Seconds from not_before to not_after."""
        if self.not_before_ts is None or self.not_after_ts is None:
            return None
        return self.not_after_ts - self.not_before_ts


@functools.lru_cache(maxsize=CACHE_SIZE)
def decode(der: bytes) -> Decoded:
    """The facts of the DER certificate ``der``. Never raises: what cannot be read (a broken or
    hostile certificate that OpenSSL accepted) is ``None``, and the rest is still told."""
    import hashlib

    from cryptography import x509

    def guard(read: Callable[[], _T]) -> _T | None:
        # cryptography parses fields when asked, and raises for a malformed one: ValueError,
        # TypeError, UnsupportedAlgorithm, DuplicateExtension, UnsupportedGeneralNameType,
        # InvalidSignature, and whatever a later version adds. None of them may end a run.
        try:
            return read()
        except Exception:
            return None

    fingerprint = hashlib.sha256(der).hexdigest()
    cert = guard(lambda: x509.load_der_x509_certificate(der))  # InvalidVersion, ValueError
    if cert is None:
        return Decoded(
            None, None, None, None, None, None, (), None, fingerprint, None, None, None, False,
            ChainCert(None, None, None),
        )  # fmt: skip
    not_before = guard(lambda: cert.not_valid_before_utc)
    not_after = guard(lambda: cert.not_valid_after_utc)
    subject = guard(lambda: _format_name(cert.subject))
    issuer = guard(lambda: _format_name(cert.issuer))
    public_key = guard(cert.public_key)
    self_signed = False
    # The names as parsed, not as shown: an empty subject (shown as none) can sign itself too.
    if guard(lambda: cert.subject == cert.issuer):
        try:
            cert.verify_directly_issued_by(cert)
            self_signed = True
        except Exception:  # InvalidSignature, or a key or signature it cannot read
            pass
    return Decoded(
        subject=subject,
        issuer=issuer,
        not_before=_iso(not_before),
        not_after=_iso(not_after),
        not_before_ts=None if not_before is None else not_before.timestamp(),
        not_after_ts=None if not_after is None else not_after.timestamp(),
        san=guard(lambda: _names(cert)) or (),
        serial=guard(lambda: format(cert.serial_number, "x")),
        fingerprint_sha256=fingerprint,
        spki_sha256=guard(lambda: hashlib.sha256(_spki(public_key)).hexdigest()),
        key=guard(lambda: _describe_key(public_key)),
        signature_algorithm=guard(lambda: _oid_name(cert.signature_algorithm_oid)),
        self_signed=self_signed,
        as_chain=ChainCert(subject, issuer, _iso(not_after)),
    )


def _iso(moment: dt.datetime | None) -> str | None:
    """``2027-03-15T00:00:00Z``; four digits in every year (``strftime`` writes the year 999 as
    ``999``), so the text reads back and sorts as the moments do."""
    if moment is None:
        return None
    return f"{_day(moment)}T{moment:%H:%M:%S}Z"


def _day(moment: dt.datetime) -> str:
    """``2027-03-15``, the year in four digits."""
    return f"{moment.year:04d}-{moment:%m-%d}"


def _format_name(name: x509.Name) -> str | None:
    """``CN=x, O=y`` in the certificate's own order, as ``getpeercert`` and OpenSSL list them
    (RFC 4514's string is reversed and escaped)."""
    parts = []
    for attribute in name:
        label = attribute.rfc4514_attribute_name
        if label[:1].isdigit():  # no short name: OpenSSL's long one ("emailAddress")
            label = _oid_name(attribute.oid)
        value = attribute.value
        parts.append(f"{label}={value if isinstance(value, str) else value.hex()}")
    return ", ".join(parts) or None


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = oid._name
    return oid.dotted_string if name == "Unknown OID" else name


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    """The subjectAltName entries in their order: DNS names, IP addresses (IPv6 compressed),
    e-mail addresses, URIs and directory names; other kinds have no text form and are left out."""
    from cryptography import x509

    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    names: list[str] = []
    for entry in extension.value:
        if isinstance(entry, x509.IPAddress):
            names.append(str(entry.value))  # ipaddress objects print compressed
        elif isinstance(entry, x509.DNSName | x509.RFC822Name | x509.UniformResourceIdentifier):
            names.append(entry.value)
        elif isinstance(entry, x509.DirectoryName):
            names.append(_format_name(entry.value) or "")
    return tuple(names)


_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _describe_key(key: object) -> str | None:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {_CURVES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return None


def _spki(key: object) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:
        raise ValueError("no public key")
    spki: bytes = public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return spki


@functools.lru_cache(maxsize=CACHE_SIZE)
def _chain(ders: tuple[bytes, ...]) -> tuple[tuple[ChainCert, ...], str | None]:
    """The presented chain's entries, and the earliest expiry after the leaf."""
    decoded = [decode(der) for der in ders]
    later = [cert.not_after for cert in decoded[1:] if cert.not_after is not None]
    return tuple(cert.as_chain for cert in decoded), min(later, default=None)


def tls_facts(
    version: str | None,
    cipher: str | None,
    leaf: bytes | None,
    chain: Sequence[bytes] | None,
    *,
    verified: bool,
    now: float,
) -> TLSInfo:
    """A record's ``tls``: the session's protocol and cipher, and the facts of the presented
    certificate ``leaf`` (DER) and ``chain`` (DER, leaf first; ``None`` where this Python cannot
    give it) as of ``now`` (seconds since the epoch)."""
    if leaf is None:  # no certificate at all (an anonymous or PSK session)
        return TLSInfo(version, cipher, None, None, None, None, verified=verified)
    cert = decode(leaf)
    days_left = life_left = lifetime_days = None
    expires = cert.not_after_ts
    if expires is not None:
        days_left = int((expires - now) // DAY)  # whole days, rounded down, as timedelta.days
        lifetime = cert.lifetime
        if lifetime is not None and lifetime > 0:
            lifetime_days = round(lifetime / DAY, 2)
            life_left = round(min(1.0, max(0.0, (expires - now) / lifetime)), 3)
    entries: tuple[ChainCert, ...] | None = None
    earliest = None
    if chain is not None:
        entries, earliest = _chain(tuple(chain))
    return TLSInfo(
        version,
        cipher,
        cert.subject,
        cert.issuer,
        cert.not_after,
        days_left,
        cert.san,
        cert.not_before,
        cert.serial,
        cert.fingerprint_sha256,
        cert.spki_sha256,
        cert.key,
        cert.signature_algorithm,
        lifetime_days,
        life_left,
        verified,
        cert.self_signed,
        entries,
        earliest,
    )


# OpenSSL's X509_V_ERR_* codes that a person can be told more about.
_UNABLE_TO_GET_ISSUER_CERT = 2
_CERT_NOT_YET_VALID = 9
_CERT_HAS_EXPIRED = 10
_DEPTH_ZERO_SELF_SIGNED_CERT = 18
_SELF_SIGNED_CERT_IN_CHAIN = 19
_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
_UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
_HOSTNAME_MISMATCH = 62
_IP_ADDRESS_MISMATCH = 64
_UNTRUSTED_ISSUER = frozenset(
    {
        _UNABLE_TO_GET_ISSUER_CERT,
        _UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
        _UNABLE_TO_VERIFY_LEAF_SIGNATURE,
        _SELF_SIGNED_CERT_IN_CHAIN,
    }
)


def explain_rejection(
    code: int, reason: str, host: str, tls: TLSInfo | None, now: dt.datetime
) -> str:
    """Why verification failed, for a person: ``certificate expired on 2025-01-01 (337 days
    ago)``, ``certificate is for a, b — not HOST``, what to do about an untrusted issuer. ``code``
    and ``reason`` are OpenSSL's; ``tls`` the facts of the presented certificate when a second
    look could get them (``None``: only OpenSSL's words, and the way out)."""
    if tls is not None and tls.not_after is not None:
        if code == _CERT_HAS_EXPIRED:
            return _expired(tls, now) or (
                "a CA certificate above those the server sent has expired (the server's own is "
                f"valid until {_day(_moment(tls.not_after))}): check --cacert or this "
                "machine's CA store"
            )
        if code == _CERT_NOT_YET_VALID and tls.not_before is not None:
            start = _moment(tls.not_before)
            end = _moment(tls.not_after)
            if end < start:  # no clock helps
                return (
                    f"certificate is never valid: its dates are reversed (from {_day(start)}, "
                    f"until {_day(end)}): the server needs a new one"
                )
            if start > now:
                return (
                    f"certificate is not valid until {_day(start)} "
                    f"(in {_days(start - now)}): is this machine's clock right?"
                )
            # The server's own is valid: OpenSSL found another in its chain not valid yet.
            return (
                "a certificate in the chain above the server's own is not valid yet (the "
                f"server's is valid since {_day(start)}): is this machine's clock right?"
            )
        if code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH):
            names = list(tls.san) or [_common_name(tls.subject) or "no name"]
            shown = ", ".join(names[:MAX_NAMES_SHOWN])
            if len(names) > MAX_NAMES_SHOWN:
                shown += f" +{len(names) - MAX_NAMES_SHOWN} more"
            return f"certificate is for {shown} — not {host}"
    if code == _DEPTH_ZERO_SELF_SIGNED_CERT:
        who = f" ({tls.subject})" if tls is not None and tls.subject else ""
        return f"self-signed certificate{who}, which is not trusted: {LOOK_ANYWAY}"
    if code in _UNTRUSTED_ISSUER:
        issuer = _untrusted_issuer(tls)
        if issuer is not None:
            return f"issued by {issuer}, which is not trusted: {LOOK_ANYWAY}"
        return f"{reason}: {LOOK_ANYWAY}"
    return reason


def _expired(tls: TLSInfo, now: dt.datetime) -> str | None:
    """The leaf's expiry, or else the chain certificate's that OpenSSL found expired."""
    assert tls.not_after is not None
    end = _moment(tls.not_after)
    if end <= now:
        return f"certificate expired on {_day(end)} ({_ago(now - end)})"
    for cert in (tls.chain or ())[1:]:
        if cert.not_after is not None and _moment(cert.not_after) <= now:
            end = _moment(cert.not_after)
            return f"{cert.subject} in the chain expired on {_day(end)} ({_ago(now - end)})"
    return None


def _untrusted_issuer(tls: TLSInfo | None) -> str | None:
    """The name at the top of what the server sent: the issuer nobody here trusts."""
    if tls is None:
        return None
    top = tls.chain[-1] if tls.chain else None
    if top is not None and top.subject is not None and top.subject == top.issuer:
        return top.subject  # a self-signed root the server sent along
    if top is not None and top.issuer is not None:
        return top.issuer
    return tls.issuer


def _moment(iso: str) -> dt.datetime:
    return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _days(delta: dt.timedelta) -> str:
    days = delta.days
    return "less than a day" if days == 0 else f"{days} day{'' if days == 1 else 's'}"


def _ago(delta: dt.timedelta) -> str:
    return "today" if delta.days == 0 else f"{_days(delta)} ago"


def expired_ago(not_after: str, now: dt.datetime) -> str:
    """How long ago a certificate that ended at ``not_after`` did, as the error says it:
    ``today``, ``37 days ago`` (whole days elapsed; ``days_left`` rounds the other way)."""
    return _ago(now - _moment(not_after))


def _common_name(subject: str | None) -> str | None:
    for part in (subject or "").split(", "):
        if part.startswith("CN="):
            return part[3:]
    return None


def certificate_alerts(
    result: Result, warn_days: int | None, warn_fraction: float | None = None
) -> tuple[Alert, ...] | None:
    """The certificate warnings of one result; ``None`` when neither option is given.

    ``--warn-days N``: fewer than N whole days left (``--warn-days 30`` flags 29, not 30).
    ``--warn-fraction F``: less than F of the certificate's lifetime left. Either one also flags
    an intermediate the server sends that expires before the certificate: the chain breaks then.
    A failed verification says what is wrong in its error already, and is not warned about."""
    if warn_days is None and warn_fraction is None:
        return None
    tls = result.tls
    if tls is None or tls.days_left is None:
        return ()
    if result.error is not None and result.error.kind == ErrorKind.TLS:
        return ()
    alerts: list[Alert] = []
    days = tls.days_left
    by_days = warn_days is not None and days < warn_days
    life_left = tls.life_left
    by_fraction = warn_fraction is not None and life_left is not None and life_left < warn_fraction
    if by_days or by_fraction:
        when = "expired" if days < 0 else f"expires in {days_left_words(days)}"
        message = f"certificate {when} ({tls.not_after})"
        if by_fraction and days >= 0 and tls.lifetime_days is not None:
            lifetime = lifetime_words(tls.lifetime_days, tls.not_before, tls.not_after)
            message += f", {life_left:.0%} of its {lifetime} lifetime left"
        alerts.append(Alert("certificate", message))
    leaf_end = tls.not_after
    for cert in (tls.chain or ())[1:]:
        if cert.subject == cert.issuer or cert.not_after is None or leaf_end is None:
            continue  # a root sent along: clients use their own copy
        if cert.not_after < leaf_end:  # same ISO 8601 form, 4-digit years: text order is time order
            alerts.append(
                Alert(
                    "certificate",
                    f"intermediate {cert.subject} expires {cert.not_after}, before the "
                    f"certificate ({leaf_end}): the chain breaks then unless the server sends a "
                    "renewed one",
                )
            )
    return tuple(alerts)
