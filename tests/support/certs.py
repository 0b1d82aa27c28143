"""Odd certificates for the TLS tests: expired, not yet valid, for another host, self-signed, under
an intermediate that expires first, short-lived. Leaves of the test CA come from trustme; what
trustme cannot make (a self-signed leaf, an intermediate with its own dates) from ``cryptography``.
"""

from __future__ import annotations

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
