"""The one exception tree of fetchheads, and the error kinds records carry.

::

    FetchheadsError                 anything fetchheads raises on purpose
     ├── InputError                 a target line that cannot become a request      kind "input"
     ├── FetchError                 one target failed; always has a ``kind``
     │    ├── DNSError              the name did not resolve                         kind "dns"
     │    ├── ConnectError          refused, unreachable, reset before any byte      kind "connect"
     │    │    └── ProxyRefusal     the proxy answered CONNECT with a refusal        kind "connect"
     │    ├── TLSError              handshake, verification, expiry, wrong host      kind "tls"
     │    │    └── CertificateRejected  verification failed: OpenSSL's code and reason
     │    └── ProtocolError         not HTTP, empty reply, head too large, ...       kind "protocol"
     │         └── ParseError       raised by the sans-IO parser itself
     └── StoreError                 the snapshot database cannot be used now (locked, full, I/O)
          └── StoreRefused          the path can never hold one: not a fetchheads database,
                                    a newer schema, a FIFO or device, a missing directory,
                                    a file that cannot be created

A failed target is data, not an exception: ``fetch.one.fetch_one`` catches ``FetchError`` and
returns a ``Result`` carrying ``ErrorInfo(kind, message)``. Low-level exceptions (``OSError``,
``socket.gaierror``, ``ssl.SSLError``, ``TimeoutError``) are translated into this tree once, at the
socket edge, with ``raise ... from``. The kinds "timeout" and "redirect" need no exception: the
deadline (``fetch.one``) and the hop count (``fetch.redirects``) are checked where the record is
made.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.StrEnum):
    """The ``error.kind`` values of a record (part of the public contract, docs/errors.md)."""

    INPUT = "input"
    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    TIMEOUT = "timeout"
    PROTOCOL = "protocol"
    REDIRECT = "redirect"


class FetchheadsError(Exception):
    """Base of every error fetchheads raises on purpose."""


class InputError(FetchheadsError):
    """A target that cannot be turned into a request (bad host, port, scheme or bytes)."""

    kind = ErrorKind.INPUT


class FetchError(FetchheadsError):
    """One target failed. Subclasses fix the ``kind``. ``retryable``: no answer came, so
    ``--retries`` may ask again (an answer, even a refusal, would only be given again)."""

    kind: ErrorKind = ErrorKind.CONNECT
    retryable = False


class DNSError(FetchError):
    kind = ErrorKind.DNS


class ConnectError(FetchError):
    kind = ErrorKind.CONNECT
    retryable = True


class ProxyRefusal(ConnectError):
    """The proxy answered (403, 407, 502 ... to CONNECT, or not in HTTP): kind ``connect`` like
    every failure before the tunnel is open, but an answer, so never retried."""

    retryable = False


class TLSError(FetchError):
    kind = ErrorKind.TLS


AFTER_HANDSHAKE = "after the handshake"
"""How the message of a TLS failure on an established connection begins (a client certificate
the server requires, a record that does not decrypt): ``-w %{exitcode}`` gives curl's 56, a
receive error, for it rather than 35 for a failed handshake."""


class CertificateRejected(TLSError):
    """OpenSSL refused the certificate. ``code`` and ``reason`` are its ``X509_V_ERR_*`` code and
    words, ``host`` the name checked: ``fetch`` looks again without verification and explains."""

    def __init__(self, message: str, code: int, reason: str, host: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.host = host


class ProtocolError(FetchError):
    kind = ErrorKind.PROTOCOL


class ParseError(ProtocolError):
    """Raised by :mod:`fetchheads.http.parse` on bytes that are not an acceptable response head."""


class StoreError(FetchheadsError):
    """The snapshot database cannot be opened, migrated or written. ``reason`` is the cause
    alone (``database is locked``), the message names the file as well."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class StoreRefused(StoreError):
    """``--db`` names something that is not, and cannot become, a fetchheads database: a usage
    error (exit 2), decided before anything is fetched or written."""
