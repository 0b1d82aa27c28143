"""Connection set-up, the socket edge below ``fetch``: TCP connect (happy eyeballs over several
addresses), the TLS handshake and its facts, the ``HeadReader`` protocol that feeds the parser, and
the wording of low-level errors. Each failure is translated here, once, into
``fetchheads.errors`` (kind ``connect`` or ``tls``); ``fetch`` adds the deadline and the exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import re
import socket
import ssl
import time
from collections.abc import Sequence
from typing import Any

from fetchheads.config import Config
from fetchheads.errors import (
    AFTER_HANDSHAKE,
    CertificateRejected,
    ConnectError,
    FetchError,
    ParseError,
    ProtocolError,
    TLSError,
)
from fetchheads.fetch.deadline import Deadline
from fetchheads.fetch.resolve import Address
from fetchheads.hostport import host_port
from fetchheads.http.parse import HeadParser, preview_bytes
from fetchheads.models import ResponseHead, TLSInfo, utc_now

READ_CHUNK = 256 * 1024
"""The most bytes one ``data_received`` call delivers (the read size of both asyncio's selector
transports and uvloop's): the parser stops at its limits, so one chunk past them at most is read."""
HAPPY_EYEBALLS_DELAY = 0.25
"""Seconds before the next address of a name is tried while the previous is still connecting
(RFC 8305 recommends 250 ms)."""


def make_ssl_context(config: Config) -> ssl.SSLContext:
    """Verification on by default (system store, or ``--cacert``); ``-k`` turns it off.

    The checks are curl's, on every Python: Python 3.13's default context adds OpenSSL's strict
    X.509 checks (``VERIFY_X509_STRICT``), which refuse certificates that browsers, curl and
    Python 3.11 and 3.12 accept (one without an Authority Key Identifier, say), so they are
    turned off; and it trusts any certificate of the store as an anchor, an intermediate or the
    server's own (``VERIFY_X509_PARTIAL_CHAIN``, curl's default since 7.68), which 3.11 and 3.12
    do not, so that is turned on. Otherwise the same site would verify or fail by the Python
    running fetchheads."""
    context = ssl.create_default_context(cafile=config.cacert)
    flags = context.verify_flags & ~ssl.VERIFY_X509_STRICT
    context.verify_flags = flags | ssl.VERIFY_X509_PARTIAL_CHAIN
    if config.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@dataclasses.dataclass(slots=True)
class FetchState(Deadline):
    """Mutable facts about one fetch, filled in as it goes, read when it ends (even by failure).
    Not the progress line (``render.output.ProgressLine``): one target's, not the run's. It is
    the attempt's deadline too (``Deadlines.start(timeout, state)``): one object fewer a target."""

    start: float
    phase: str = "resolving"
    dns: float | None = None
    connect: float | None = None
    tls_time: float | None = None
    ttfb: float | None = None
    address: str | None = None
    tls: TLSInfo | None = None
    parser: HeadParser | None = None
    failure: FetchError | None = None
    """An error already settled that stands if the deadline passes meanwhile (the second look
    after a failed verification)."""


class HeadReader(asyncio.Protocol):
    """The protocol of one connection: feeds every chunk to a ``HeadParser`` as it arrives and
    wakes ``read_head`` once the head is complete or the connection failed. Bytes after the head
    (the body) are ignored; the caller aborts the transport.

    A reader that wrote the ``request`` itself (plain http straight to the target: nothing more
    is read on that connection) aborts the transport in the callback that completed the head, or
    found it malformed. uvloop's abort stops reading at once and closes the socket in the next
    pass over its ready callbacks: from here that is before the loop polls again. From the woken
    caller, a turn later, the loop first polls, sees the server's FIN on a socket it no longer
    watches and takes it out of epoll, then takes it out again (ENOENT) on closing it: one
    system call a target more. The caller's abort stays, for every other way a fetch ends."""

    __slots__ = (
        "_done",
        "_error",
        "_head",
        "_transport",
        "_waiter",
        "connected_at",
        "early",
        "first_byte_at",
        "loop",
        "parser",
        "request",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, request: bytes | None = None) -> None:
        self.loop = loop
        # Written the moment the connection is made, in the loop's callback, rather than after
        # the connecting task has been woken and resumed: one turn of a busy loop sooner at the
        # server (``exchange`` then writes nothing more). ``None``: ``exchange`` writes it.
        self.request = request
        self.parser = HeadParser()
        self.first_byte_at: float | None = None
        # When the connection was made, taken in the callback: the answer to a request written
        # there can arrive before the connecting task resumes, and connect must not follow ttfb.
        self.connected_at: float | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._head: ResponseHead | None = None
        self._error: FetchError | None = None
        self._done = False
        # The transport this reader aborts once the head is complete (a reader with a request).
        self._transport: asyncio.BaseTransport | None = None
        # Before a TLS handshake, bytes from the server are kept here instead of parsed (see
        # start_tls); ``None`` once the connection carries HTTP.
        self.early: bytes | None = None

    def __call__(self) -> HeadReader:
        """The protocol factory of its own connection (``loop.create_connection(reader, ...)``):
        cheaper than a closure made for every target to hand it over."""
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connected_at = time.perf_counter()
        if self.request is not None:
            self._transport = transport
            transport.write(self.request)  # type: ignore[attr-defined]  # a stream transport

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        if self.early is not None:
            self.early = (self.early + data)[:64]
            return
        if self.first_byte_at is None:
            self.first_byte_at = time.perf_counter()
        try:
            head = self.parser.feed(data)
        except ParseError as exc:
            self._finish(None, exc)
            self._drop()
            return
        if head is not None:
            self._finish(head, None)
            self._drop()

    def _drop(self) -> None:
        """Abort the connection now that its head is read, where this reader owns it."""
        transport = self._transport
        if transport is not None:
            self._transport = None
            transport.abort()  # type: ignore[attr-defined]  # a stream transport

    def eof_received(self) -> None:
        self._eof()  # returning None lets the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self._done:
            return
        if exc is None:
            self._eof()
            return
        error: FetchError
        if isinstance(exc, ssl.SSLError):
            # TLS failed after the handshake (a TLS 1.3 server's certificate_required alert, a
            # bad record): the server's TLS refused the exchange, which asking again repeats.
            where = "" if self.first_byte_at is None else ", in the middle of the head"
            error = TLSError(f"{AFTER_HANDSHAKE}{where}: {describe_tls_alert(exc)}")
            error.__cause__ = exc
            self._finish(None, error)
            return
        reason = describe_oserror(exc) if isinstance(exc, OSError) else str(exc)
        if self.first_byte_at is None:
            error = ConnectError(f"{reason} before any response byte")
        else:
            error = ProtocolError(f"{reason} in the middle of the head")
        error.__cause__ = exc
        self._finish(None, error)

    def _eof(self) -> None:
        if self._done:
            return
        try:
            self.parser.feed(b"")  # EOF before the blank line: always a ParseError
        except ParseError as exc:
            self._finish(None, exc)
        else:
            self._finish(None, ProtocolError("closed before the end of the head"))

    def _finish(self, head: ResponseHead | None, error: FetchError | None) -> None:
        if error is not None:
            # Its traceback holds this reader's frame: kept, it would be a cycle holding the
            # parser's bytes (up to MAX_HEAD) until the cyclic collector runs. The message is
            # all the record takes.
            error.__traceback__ = None
        self._done = True
        self._head = head
        self._error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def done(self) -> bool:
        """Whether the head is complete or the connection has ended (failed or closed)."""
        return self._done

    async def read_head(self) -> ResponseHead:
        """The complete head; raises ``ProtocolError``/``ConnectError`` as the connection failed."""
        if not self._done:
            await self.waiter()
        return self.head()

    def waiter(self) -> asyncio.Future[None]:
        """A future done once the head is complete or the connection has ended (``done``), for a
        caller that awaits it in its own frame rather than through ``read_head``."""
        self._waiter = self.loop.create_future()
        return self._waiter

    def head(self) -> ResponseHead:
        """Once ``done``: the complete head, or the error the connection ended with, raised."""
        if self._error is not None:
            raise self._error
        assert self._head is not None
        return self._head


async def connect(
    addresses: Sequence[Address],
    port: int,
    state: FetchState,
    *,
    tls: bool = False,
    loop: asyncio.AbstractEventLoop | None = None,
    request: bytes | None = None,
) -> tuple[asyncio.Transport, HeadReader]:
    """A TCP connection to the first of ``addresses`` that answers, and its ``HeadReader``.

    One address: a plain connect. Several (a dual-stack or multi-homed name): happy eyeballs,
    RFC 8305 style — the next address is tried when the previous one failed or has not connected
    within ``HAPPY_EYEBALLS_DELAY``, and the first to connect wins. With ``tls`` the reader holds
    back what the server sends until ``start_tls``. ``loop`` is the running loop, when the
    caller has it at hand (asking for it is a system call, ``getpid``, every time). ``request``,
    for a plain-http exchange, is sent as soon as the connection is made (``HeadReader``).
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    state.phase = "connecting"
    reader = HeadReader(loop, request)
    if tls:
        reader.early = b""
    if len(addresses) == 1:
        _family, ip = addresses[0]
        state.address = ip
        try:
            transport, _ = await loop.create_connection(lambda: reader, ip, port)
        except OSError as exc:
            raise connect_failure(exc, ip, port) from exc
    else:
        sock, ip = await _happy_eyeballs(loop, addresses, port, state)
        state.address = ip
        try:
            transport, _ = await loop.create_connection(lambda: reader, sock=sock)
        except BaseException:
            sock.close()
            raise
    state.connect = (reader.connected_at or time.perf_counter()) - state.start
    return transport, reader


def connect_failure(exc: OSError, ip: str, port: int) -> ConnectError:
    """A failed connect to ``ip``, in words: our shortage (``local: ...``) or the host's answer."""
    if exc.errno in LOCAL_ERRNOS:  # our shortage, not the host's
        return ConnectError(describe_local_error(exc))
    return ConnectError(f"{format_address(ip, port)}: {describe_oserror(exc)}")


async def _connect_socket(
    loop: asyncio.AbstractEventLoop, address: Address, port: int
) -> socket.socket:
    family, ip = address
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, (ip, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def _happy_eyeballs(
    loop: asyncio.AbstractEventLoop, addresses: Sequence[Address], port: int, state: FetchState
) -> tuple[socket.socket, str]:
    pending: dict[asyncio.Task[socket.socket], str] = {}
    last_error: tuple[str, OSError] | None = None
    winner: tuple[socket.socket, str] | None = None
    remaining = list(addresses)
    try:
        while remaining or pending:
            if remaining:
                address = remaining.pop(0)
                state.address = address[1]
                pending[loop.create_task(_connect_socket(loop, address, port))] = address[1]
            # Wait for a result, but no longer than the stagger delay while addresses remain.
            done, _ = await asyncio.wait(
                pending,
                timeout=HAPPY_EYEBALLS_DELAY if remaining else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in done:
                ip = pending.pop(task)
                exc = task.exception()
                if exc is None:
                    if winner is None:
                        winner = (task.result(), ip)
                    else:
                        task.result().close()
                elif isinstance(exc, OSError):
                    if exc.errno in LOCAL_ERRNOS:  # no other address helps
                        raise ConnectError(describe_local_error(exc)) from exc
                    last_error = (ip, exc)
                else:
                    raise exc
            if winner is not None:
                return winner
    finally:
        for task in pending:
            task.cancel()
        if pending:
            results = await asyncio.gather(*pending, return_exceptions=True)
            for item in results:
                if isinstance(item, socket.socket):
                    item.close()
    assert last_error is not None
    ip, error = last_error
    raise ConnectError(f"{format_address(ip, port)}: {describe_oserror(error)}") from error


async def start_tls(
    transport: asyncio.Transport,
    reader: HeadReader,
    server_hostname: str,
    ssl_context: ssl.SSLContext,
    state: FetchState,
) -> asyncio.Transport:
    """The TLS handshake on an open transport; returns the TLS transport (``reader`` stays its
    protocol). The caller aborts ``transport`` if this raises."""
    loop = reader.loop  # the running loop, known without asking (a system call on 3.11)
    state.phase = "TLS handshake"
    # A server that speaks first (an SSH banner, plain HTTP) is not speaking TLS; without this
    # check the handshake would wait for its reply until the deadline.
    if reader.early:
        raise TLSError(
            f"handshake failed: the server spoke first, not TLS: {preview_bytes(reader.early)} "
            "(plain HTTP on this port? try http://)"
        )
    reader.early = None
    if reader.done:
        # Closed before the handshake began (a server that accepts, then closes at once, seen
        # by the plain reader first): uvloop's start_tls on such a transport logs a traceback
        # from inside the loop and hands back a dead transport.
        raise _dropped(
            TLSError("handshake failed: the server closed the connection before the handshake")
        )
    try:
        tls_transport = await loop.start_tls(
            transport, reader, ssl_context, server_hostname=server_hostname
        )
    except ssl.SSLCertVerificationError as exc:
        raise certificate_rejected(exc, server_hostname) from exc
    except ssl.SSLError as exc:
        raise TLSError(f"handshake failed: {_describe_ssl_error(exc)}") from exc
    except OSError as exc:
        if isinstance(exc, ConnectionResetError) and exc.errno is None:
            # asyncio's (and uvloop's) word for an end of stream amid the handshake: the server
            # closed the connection, which a reset (ECONNRESET) is not
            error = TLSError("handshake failed: the server closed the connection midway")
        else:
            error = TLSError(f"handshake failed: {describe_oserror(exc)}")
        raise (_dropped(error) if isinstance(exc, ConnectionError) else error) from exc
    if tls_transport is None:
        raise _dropped(TLSError("handshake failed: the connection closed"))
    state.tls_time = time.perf_counter() - state.start
    ssl_object = tls_transport.get_extra_info("ssl_object")
    if ssl_object is not None:
        state.tls = tls_info(ssl_object)
    return tls_transport


def _dropped(error: TLSError) -> TLSError:
    """A handshake the server cut off (reset or closed) without a word of TLS: no answer came,
    so, as a connection reset before any byte, it is worth a retry (``--retries``)."""
    error.retryable = True
    return error


def tls_info(ssl_object: ssl.SSLObject) -> TLSInfo:
    """The TLS facts of a record, from the certificates as the server sent them (DER, which
    Python gives verified or not; ``certificates`` decodes each distinct one once)."""
    from fetchheads.certificates import tls_facts  # https only: a plain-http run never needs it

    cipher = ssl_object.cipher()
    verified = ssl_object.context.check_hostname
    facts = tls_facts(
        ssl_object.version(),
        cipher[0] if cipher else None,
        ssl_object.getpeercert(binary_form=True),
        presented_chain(ssl_object),
        # The run's contexts verify the name exactly when they verify the chain (-k turns both
        # off); check_hostname is a plain bool, verify_mode an enum built anew on every read.
        verified=verified,
        now=time.time(),
    )
    if verified and not facts.san:
        # A verified certificate has names (OpenSSL checked one), but ``cryptography`` reads the
        # extensions all or none: one malformed extension of another kind hides them. OpenSSL's
        # own reading, which Python gives for a verified peer, fills them in.
        names = _openssl_names(ssl_object.getpeercert())
        if names:
            facts = dataclasses.replace(facts, san=names)
    return facts


_NAME_KINDS = {"DNS", "IP Address", "email", "URI"}


def _openssl_names(peer: dict[str, Any] | None) -> tuple[str, ...]:
    """The subjectAltName entries of ``getpeercert()``, as ``certificates`` words them (an IPv6
    address compressed)."""
    import ipaddress

    names: list[str] = []
    for kind, value in (peer or {}).get("subjectAltName", ()):
        if kind == "IP Address":
            with contextlib.suppress(ValueError):  # OpenSSL's text is an address; kept if not
                value = str(ipaddress.ip_address(value.strip()))
        if kind in _NAME_KINDS:
            names.append(value)
    return tuple(names)


def presented_chain(ssl_object: ssl.SSLObject) -> list[bytes] | None:
    """The certificates the server sent, leaf first, as DER; ``None`` where this Python cannot
    tell. Python 3.13 has ``SSLObject.get_unverified_chain()``; CPython 3.10 to 3.12 have the same
    C function, not yet public, on the object underneath (``_sslobj``); other interpreters may
    have neither."""
    public = getattr(ssl_object, "get_unverified_chain", None)
    if public is not None:
        return list(public())
    private = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if private is None:
        return None
    certificates = private() or ()
    return [certificate.public_bytes(_ENCODING_DER) for certificate in certificates]


_ENCODING_DER = 2
"""``_ssl.ENCODING_DER``: what ``public_bytes`` of a certificate in that chain takes for DER."""


def certificate_rejected(exc: ssl.SSLCertVerificationError, host: str) -> CertificateRejected:
    """A failed verification in OpenSSL's words, with the way out where there is one; ``fetch``
    words it again once it has seen the certificate."""
    code = exc.verify_code or 0
    reason = exc.verify_message or exc.reason or str(exc)
    from fetchheads.certificates import explain_rejection

    message = explain_rejection(code, reason, host, None, utc_now())
    return CertificateRejected(f"certificate verification failed: {message}", code, reason, host)


def format_address(ip: str | None, port: int) -> str:
    if ip is None:
        return f"port {port}"
    return host_port(ip, port)


LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""Connect failures that are this machine's shortage, reported as kind ``connect`` with a message
starting ``local:`` so that nobody blames the host (docs/limits.md)."""


def describe_local_error(exc: OSError) -> str:
    if exc.errno == errno.EMFILE:
        return "local: out of file descriptors (EMFILE): lower -c or raise 'ulimit -n'"
    if exc.errno == errno.ENFILE:
        return "local: the system is out of file descriptors (ENFILE): lower -c"
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return f"local: no memory for another socket ({name}): lower -c"


_SSL_NOISE = re.compile(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$")
"""Python's decoration of an OpenSSL error: ``[SSL: REASON_CODE] `` before and
``(_ssl.c:2580)`` after OpenSSL's own words."""


def describe_tls_alert(exc: ssl.SSLError) -> str:
    """A TLS failure after the handshake in plain words: what to do about a client certificate
    the server requires, otherwise OpenSSL's reason as words without Python's decoration."""
    reason = exc.reason or ""
    if reason.endswith("CERTIFICATE_REQUIRED"):  # TLSV13_ALERT_CERTIFICATE_REQUIRED
        return "the server requires a client certificate"
    text = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else str(exc)
    words = _SSL_NOISE.sub("", text).strip()
    return words or reason.replace("_", " ").lower() or type(exc).__name__


_NO_VERSION_IN_COMMON = (
    "no TLS version in common: the server may speak only TLS 1.0 or 1.1, which fetchheads does"
    " not offer"
)
_HANDSHAKE_WORDS = {
    # the reply to our ClientHello was not TLS at all
    "WRONG_VERSION_NUMBER": "the server did not answer in TLS (plain HTTP on this port? try http://)",
    # the server (alert) or this client (UNSUPPORTED_PROTOCOL) found no version both speak
    "TLSV1_ALERT_PROTOCOL_VERSION": _NO_VERSION_IN_COMMON,
    "UNSUPPORTED_PROTOCOL": _NO_VERSION_IN_COMMON,
    # TLS 1.2's answer to an empty client certificate, or to no cipher in common
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the server refused the handshake: it may require a client"
    " certificate (fetchheads sends none) or share no cipher with fetchheads",
}
"""What a handshake failure means, after OpenSSL's reason, where its reason alone says little."""


def _describe_ssl_error(exc: ssl.SSLError) -> str:
    reason = exc.reason or str(exc)
    words = _HANDSHAKE_WORDS.get(reason)
    return reason if words is None else f"{reason}: {words}"


def describe_oserror(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "network unreachable" if exc.errno == errno.ENETUNREACH else "host unreachable"
    return exc.strerror or str(exc) or type(exc).__name__
