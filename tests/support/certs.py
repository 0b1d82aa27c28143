"""Odd certificates for the TLS tests: expired, not yet valid, for another host, self-signed, under
an intermediate that expires first, short-lived. Leaves of the test CA come from trustme; what
trustme cannot make (a self-signed leaf, an intermediate with its own dates) from ``cryptography``.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def days(n: float) -> dt.timedelta:
    return dt.timedelta(days=n)


def leaf_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    """A server context presenting a trustme leaf (and its chain)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


def _name(common_name: str, organization: str = "fetchheads tests") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _alt_names(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


def _build(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    signer: PrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    *,
    ca: bool,
    hosts: tuple[str, ...] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    if hosts:
        builder = builder.add_extension(_alt_names(hosts), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def _context(
    key: PrivateKey,
    certs: tuple[x509.Certificate, ...],
    tmp: Path,
    context: ssl.SSLContext | None = None,
) -> ssl.SSLContext:
    """A server context presenting ``certs`` (leaf first) with ``key``; given ``context``, that
    one, whose next handshakes present them instead of what it had."""
    chain, key_file = tmp / "chain.pem", tmp / "key.pem"
    chain.write_bytes(_pem(*certs))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = context or ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, key_file)
    return context


def self_signed(tmp: Path, *hosts: str, common_name: str = "self.test") -> ssl.SSLContext:
    """A server context presenting a self-signed RSA 2048 leaf for ``hosts``; its PEM is written
    to ``tmp / "self.pem"`` (a ``--cacert`` that trusts it)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name(common_name)
    cert = _build(
        name, name, key.public_key(), key, now() - days(1), now() + days(30), ca=False, hosts=hosts
    )
    (tmp / "self.pem").write_bytes(_pem(cert))
    return _context(key, (cert,), tmp)


def under_short_intermediate(
    ca: trustme.CA, tmp: Path, *hosts: str, intermediate_days: float, leaf_days: float
) -> ssl.SSLContext:
    """A server context presenting a leaf for ``hosts`` (``leaf_days`` left) and the intermediate
    that signed it (``intermediate_days`` left), the intermediate signed by ``ca``."""
    root, root_key = _root(ca)
    middle_key = ec.generate_private_key(ec.SECP256R1())
    middle = _build(
        _name("Short Intermediate"),
        root.subject,
        middle_key.public_key(),
        root_key,
        now() - days(10),
        now() + days(intermediate_days),
        ca=True,
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _leaf(hosts, middle.subject, middle_key, leaf_key, now() + days(leaf_days))
    return _context(leaf_key, (leaf, middle), tmp)


def present_leaf(
    context: ssl.SSLContext,
    ca: trustme.CA,
    key: PrivateKey,
    tmp: Path,
    *hosts: str,
    not_after: dt.datetime,
) -> None:
    """Make ``context`` present a new leaf for ``hosts``, issued by ``ca`` for ``key`` (keep the
    key for a renewal with the same key, pass a new one for a new key) and valid until
    ``not_after``: a certificate swapped under a running server, as a renewal does."""
    root, root_key = _root(ca)
    _context(key, (_leaf(hosts, root.subject, root_key, key, not_after),), tmp, context)


def _root(ca: trustme.CA) -> tuple[x509.Certificate, PrivateKey]:
    """A trustme CA's certificate and key, to sign with."""
    root = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    root_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    assert isinstance(root_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    return root, root_key


def _leaf(
    hosts: tuple[str, ...],
    issuer: x509.Name,
    signer: PrivateKey,
    key: PrivateKey,
    not_after: dt.datetime,
) -> x509.Certificate:
    """A leaf for ``hosts`` (named for the first), valid from yesterday until ``not_after``."""
    public = key.public_key()
    return _build(
        _name(hosts[0]), issuer, public, signer, now() - days(1), not_after, ca=False, hosts=hosts
    )


# --- certificates OpenSSL takes and ``cryptography`` will not read ------------------------------

_SAN_OID = b"\x06\x03\x55\x1d\x11"  # 2.5.29.17, subjectAltName
_STAND_IN_OID = b"\x06\x03\x55\x1d\x63"  # 2.5.29.99: as long, so the DER keeps its lengths
_SCT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")  # RFC 6962 §3.3, in the certificate
_VERSION_3 = b"\xa0\x03\x02\x01\x02"  # [0] INTEGER 2: an X.509 v3 certificate


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def _resigned(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, tbs: bytes) -> bytes:
    """``cert`` (signed by ``key``, ECDSA with SHA-256) with its to-be-signed part replaced by
    ``tbs`` and signed again: DER."""
    der = cert.public_bytes(serialization.Encoding.DER)
    old_tbs = cert.tbs_certificate_bytes
    start = der.index(old_tbs) + len(old_tbs)
    algorithm = der[start : start + 2 + der[start + 1]]  # a short AlgorithmIdentifier
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\x00" + signature))


def unreadable(kind: str, host: str = "127.0.0.1") -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A self-signed certificate for ``host`` (DER, and its key) that OpenSSL accepts in a handshake and
    ``cryptography`` refuses a part of, or all: ``duplicate-san`` (two subjectAltName extensions:
    ``DuplicateExtension``), ``x400-san`` (an x400Address among the names:
    ``UnsupportedGeneralNameType``), ``version-4`` (version field 3: ``InvalidVersion`` on
    loading)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(host)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now() - days(1))
        .not_valid_after(now() + days(30))
        .add_extension(_alt_names((host,)), critical=False)
    )
    if kind == "duplicate-san":
        stand_in = x509.UnrecognizedExtension(
            x509.ObjectIdentifier("2.5.29.99"), _alt_names(("other.test",)).public_bytes()
        )
        builder = builder.add_extension(stand_in, critical=False)
    elif kind == "bad-sct":
        # An SCT list whose content is not one: OpenSSL looks at it only for Certificate
        # Transparency, cryptography refuses every extension once it meets it.
        builder = builder.add_extension(
            x509.UnrecognizedExtension(_SCT_OID, _tlv(0x04, b"\x00\x01\x02")), critical=False
        )
    elif kind == "x400-san":
        # dNSName "host", then an empty x400Address ([3] constructed), in a second SAN-shaped
        # extension that then takes the first one's place.
        names = _tlv(0x82, host.encode()) + _tlv(0xA3, _tlv(0x30, b""))
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.99"), _tlv(0x30, names)),
            critical=False,
        )
    cert = builder.sign(key, hashes.SHA256())
    tbs = cert.tbs_certificate_bytes
    if kind == "duplicate-san":
        tbs = tbs.replace(_STAND_IN_OID, _SAN_OID)
    elif kind == "x400-san":
        # Only the x400 one stays a subjectAltName: the builder's own becomes the stand-in.
        tbs = tbs.replace(_SAN_OID, b"\x06\x03\x55\x1d\x62").replace(_STAND_IN_OID, _SAN_OID)
    elif kind == "bad-sct":
        return cert.public_bytes(serialization.Encoding.DER), key
    elif kind == "version-4":
        assert _VERSION_3 in tbs
        tbs = tbs.replace(_VERSION_3, b"\xa0\x03\x02\x01\x03", 1)
    else:
        raise ValueError(kind)
    return _resigned(cert, key, tbs), key


def presenting_unreadable(tmp: Path, kind: str, *, in_chain: bool = False) -> ssl.SSLContext:
    """A server context presenting an ``unreadable(kind)`` certificate for 127.0.0.1: as its
    own, or (``in_chain``) after a good self-signed leaf, as if an intermediate."""
    der, key = unreadable(kind)
    pem = b"-----BEGIN CERTIFICATE-----\n%s-----END CERTIFICATE-----\n" % (base64.encodebytes(der))
    if in_chain:
        context = self_signed(tmp, "127.0.0.1")
        chain = tmp / "chain.pem"
        chain.write_bytes(chain.read_bytes() + pem)
        context.load_cert_chain(chain, tmp / "key.pem")
        return context
    (tmp / "chain.pem").write_bytes(pem)
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "chain.pem", tmp / "key.pem")
    return context


def _until_year_999(cert: x509.Certificate, signer: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """``cert``, valid until 2999-12-31, made valid until 0999-12-31 instead and signed again
    (``cryptography`` builds nothing before 1950)."""
    tbs = cert.tbs_certificate_bytes
    assert tbs.count(b"\x18\x0f2999") == 1  # GeneralizedTime, 15 characters
    return x509.load_der_x509_certificate(
        _resigned(cert, signer, tbs.replace(b"\x18\x0f2999", b"\x18\x0f0999"))
    )


YEAR_2999 = dt.datetime(2999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


def self_signed_until_year_999(tmp: Path) -> ssl.SSLContext:
    """A server context presenting a self-signed leaf for 127.0.0.1 that expired at the end of
    the year 999; its PEM is written to ``tmp / "self.pem"``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("127.0.0.1")
    start = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    cert = _build(
        name, name, key.public_key(), key, start, YEAR_2999, ca=False, hosts=("127.0.0.1",)
    )
    cert = _until_year_999(cert, key)
    (tmp / "self.pem").write_bytes(_pem(cert))
    return _context(key, (cert,), tmp)


def under_intermediate_until_year_999(tmp: Path) -> ssl.SSLContext:
    """A server context presenting a leaf for 127.0.0.1 valid 60 more days and the intermediate
    that signed it, which expired at the end of the year 999."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name("Old Root")
    middle_key = ec.generate_private_key(ec.SECP256R1())
    middle = _build(
        _name("Old Intermediate"),
        root_name,
        middle_key.public_key(),
        root_key,
        now() - days(10),
        YEAR_2999,
        ca=True,
    )
    middle = _until_year_999(middle, root_key)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _leaf(("127.0.0.1",), middle.subject, middle_key, leaf_key, now() + days(60.5))
    return _context(leaf_key, (leaf, middle), tmp)
