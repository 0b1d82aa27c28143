"""The only socket code: resolve, connect, TLS, write, read the head, abort; one deadline each.

``fetch_one`` never raises for a target's failure: it returns a ``Result`` with an ``ErrorInfo``.
Low-level exceptions are translated into ``fetchheads.errors`` here, at the edge, and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import errno
import functools
import ipaddress
import socket
import ssl
from collections import OrderedDict

from fetchheads.config import Config
from fetchheads.errors import (
    ConnectError,
    DNSError,
    ErrorKind,
    FetchError,
    ProtocolError,
    TLSError,
)
from fetchheads.models import (
    ErrorInfo,
    ResponseHead,
    Result,
    Target,
    Timing,
    TLSInfo,
    utc_now,
)
from fetchheads.parse import HeadParser, preview_bytes
from fetchheads.request import build_request

READ_CHUNK = 64 * 1024
DNS_CACHE_SIZE = 4096
"""Names remembered per run: enough for lists that repeat hosts, bounded for lists that do not."""

Address = tuple[int, tuple[str, int]]  # (family, (ip, port))


def make_ssl_context(config: Config) -> ssl.SSLContext:
    """Verification on by default (system store, or ``--cacert``); ``-k`` turns it off."""
    context = ssl.create_default_context(cafile=config.cacert)
    if config.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Resolver:
    """The system resolver with a per-run cache; concurrent lookups of one name share one query."""

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[str, int], asyncio.Future[list[Address]]] = OrderedDict()

    async def resolve(self, host: str, port: int) -> list[Address]:
        key = (host, port)
        future = self._cache.get(key)
        if future is None:
            future = asyncio.ensure_future(self._lookup(host, port))
            future.add_done_callback(functools.partial(self._settled, key))
            self._cache[key] = future
            if len(self._cache) > DNS_CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        # shield: one waiter's deadline must not cancel a lookup that others share.
        return await asyncio.shield(future)

    def _settled(self, key: tuple[str, int], future: asyncio.Future[list[Address]]) -> None:
        # Failures are not remembered; retrieving the exception also keeps asyncio from logging
        # it when every waiter has already given up.
        failed = future.cancelled() or future.exception() is not None
        if failed and self._cache.get(key) is future:
            del self._cache[key]

    async def _lookup(self, host: str, port: int) -> list[Address]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise DNSError(f"cannot resolve {host}: {exc.strerror}") from exc
        except UnicodeError as exc:
            raise DNSError(f"cannot resolve {host}: {exc}") from exc
        addresses: list[Address] = [
            (family, (str(sockaddr[0]), int(sockaddr[1]))) for family, _, _, _, sockaddr in infos
        ]
        if not addresses:
            raise DNSError(f"cannot resolve {host}: no addresses")
        return addresses


@dataclasses.dataclass(slots=True)
class FetchContext:
    """What every fetch of one run shares; built once in ``cli.main``."""

    config: Config
    ssl_context: ssl.SSLContext
    resolver: Resolver


@dataclasses.dataclass(slots=True)
class _Progress:
    """Mutable facts about one fetch, filled in as it goes, read when it ends (even by failure)."""

    start: float
    phase: str = "resolving"
    dns: float | None = None
    connect: float | None = None
    tls_time: float | None = None
    ttfb: float | None = None
    address: str | None = None
    tls: TLSInfo | None = None
    parser: HeadParser | None = None


async def fetch_one(target: Target, ctx: FetchContext) -> Result:
    """Fetch one target's response head. Always returns; never raises for the target's failure."""
    loop = asyncio.get_running_loop()
    fetched_at = utc_now()
    progress = _Progress(start=loop.time())
    timeout = ctx.config.timeout
    head: ResponseHead | None = None
    error: ErrorInfo | None = None
    try:
        async with asyncio.timeout(timeout):
            head = await _exchange(target, ctx, progress)
    except TimeoutError:
        error = ErrorInfo(
            ErrorKind.TIMEOUT, f"no complete response head within {timeout:g}s ({progress.phase})"
        )
    except FetchError as exc:
        error = ErrorInfo(exc.kind, str(exc))
    if error is not None and progress.parser is not None:
        head = progress.parser.partial()  # headers received before the failure are kept
    total = loop.time() - progress.start
    return Result(
        target=target.text,
        url=target.url,
        head=head,
        error=error,
        address=progress.address,
        timing=Timing(
            dns=progress.dns,
            connect=progress.connect,
            tls=progress.tls_time,
            ttfb=progress.ttfb,
            total=total,
        ),
        tls=progress.tls,
        fetched_at=fetched_at,
        line=target.line,
    )


async def _exchange(target: Target, ctx: FetchContext, progress: _Progress) -> ResponseHead:
    loop = asyncio.get_running_loop()
    config = ctx.config
    connect_timeout = config.connect_timeout or config.timeout
    try:
        async with asyncio.timeout(connect_timeout):
            reader, writer = await _connect(target, ctx, progress)
    except TimeoutError:
        if config.connect_timeout is None:
            raise
        raise ConnectError(
            f"no connection within --connect-timeout {connect_timeout:g}s ({progress.phase})"
        ) from None
    try:
        progress.phase = "waiting for the response head"
        writer.write(build_request(target, config))
        parser = progress.parser = HeadParser()
        while True:
            try:
                chunk = await reader.read(READ_CHUNK)
            except OSError as exc:
                if progress.ttfb is None:
                    raise ConnectError(
                        f"{_describe_oserror(exc)} before any response byte"
                    ) from exc
                raise ProtocolError(f"{_describe_oserror(exc)} in the middle of the head") from exc
            if progress.ttfb is None and chunk:
                progress.ttfb = loop.time() - progress.start
            head = parser.feed(chunk)
            if head is not None:
                return head
    finally:
        # Never read the body and never wait for a polite close: drop the connection now.
        writer.transport.abort()


async def _connect(
    target: Target, ctx: FetchContext, progress: _Progress
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    addresses = await _resolve(target, ctx, progress)
    progress.phase = "connecting"
    last_error: OSError | None = None
    for _family, (ip, port) in addresses:
        progress.address = ip
        try:
            reader, writer = await asyncio.open_connection(ip, port, limit=READ_CHUNK)
        except OSError as exc:
            if exc.errno in LOCAL_ERRNOS:  # our shortage, not the host's: no other address helps
                raise ConnectError(describe_local_error(exc)) from exc
            last_error = exc
            continue
        break
    else:
        assert last_error is not None
        raise ConnectError(
            f"{_format_address(progress.address, target.port)}: {_describe_oserror(last_error)}"
        ) from last_error
    progress.connect = loop.time() - progress.start
    if target.scheme == "https":
        progress.phase = "TLS handshake"
        # Bytes that arrived before start_tls sit in the plain reader, where TLS never sees them:
        # a server that speaks first (an SSH banner, plain HTTP) is not speaking TLS. Without this
        # check the handshake would wait for them until the deadline.
        early = bytes(getattr(reader, "_buffer", b""))
        if early:
            writer.transport.abort()
            raise TLSError(
                f"handshake failed: the server spoke first, not TLS: {preview_bytes(early)} "
                "(plain HTTP on this port? try http://)"
            )
        try:
            await writer.start_tls(ctx.ssl_context, server_hostname=target.host)
        except ssl.SSLCertVerificationError as exc:
            writer.transport.abort()
            raise TLSError(f"certificate verification failed: {exc.verify_message}") from exc
        except ssl.SSLError as exc:
            writer.transport.abort()
            raise TLSError(f"handshake failed: {_describe_ssl_error(exc)}") from exc
        except OSError as exc:
            writer.transport.abort()
            raise TLSError(f"handshake failed: {_describe_oserror(exc)}") from exc
        except BaseException:
            writer.transport.abort()
            raise
        progress.tls_time = loop.time() - progress.start
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            progress.tls = tls_info(ssl_object)
    return reader, writer


async def _resolve(target: Target, ctx: FetchContext, progress: _Progress) -> list[Address]:
    loop = asyncio.get_running_loop()
    family = _literal_family(target.host)
    if family is not None:
        return [(family, (target.host, target.port))]
    addresses = await ctx.resolver.resolve(target.host, target.port)
    progress.dns = loop.time() - progress.start
    return addresses


def _literal_family(host: str) -> int | None:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


def tls_info(ssl_object: ssl.SSLObject) -> TLSInfo:
    """The TLS facts of a record. Without verification (``-k``) the peer certificate is not
    decoded by Python, so subject, issuer, dates and names are then ``None``."""
    cipher = ssl_object.cipher()
    cert = ssl_object.getpeercert() or {}
    not_after: str | None = None
    days_left: int | None = None
    raw_not_after = cert.get("notAfter")
    if isinstance(raw_not_after, str):
        expires = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(raw_not_after), dt.UTC)
        not_after = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
        days_left = (expires - utc_now()).days
    san = tuple(
        _san_value(str(entry[0]), str(entry[1]))
        for entry in cert.get("subjectAltName", ())
        if len(entry) == 2
    )
    return TLSInfo(
        version=ssl_object.version(),
        cipher=cipher[0] if cipher else None,
        subject=_format_name(cert.get("subject")),
        issuer=_format_name(cert.get("issuer")),
        not_after=not_after,
        days_left=days_left,
        san=san,
    )


def _san_value(kind: str, value: str) -> str:
    """Python spells IPv6 SAN entries in full (``0:0:0:0:0:0:0:1``, with a trailing newline on
    some versions); records show them as every other IPv6 address is shown, compressed."""
    if kind == "IP Address":
        with contextlib.suppress(ValueError):
            return ipaddress.ip_address(value.strip()).compressed
    return value


def _format_name(name: object) -> str | None:
    """``((('commonName', 'x'),), ...)`` -> ``CN=x, O=...``."""
    if not isinstance(name, tuple):
        return None
    short = {
        "commonName": "CN",
        "organizationName": "O",
        "countryName": "C",
        "organizationalUnitName": "OU",
        "localityName": "L",
        "stateOrProvinceName": "ST",
    }
    parts = [f"{short.get(key, key)}={value}" for rdn in name for key, value in rdn]
    return ", ".join(parts) or None


def _format_address(ip: str | None, port: int) -> str:
    if ip is None:
        return f"port {port}"
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""Connect failures that are this machine's shortage, reported as kind ``connect`` with a message
starting ``local:`` so that nobody blames the host (README "Limits")."""


def describe_local_error(exc: OSError) -> str:
    if exc.errno == errno.EMFILE:
        return "local: out of file descriptors (EMFILE): lower -c or raise 'ulimit -n'"
    if exc.errno == errno.ENFILE:
        return "local: the system is out of file descriptors (ENFILE): lower -c"
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return f"local: no memory for another socket ({name}): lower -c"


def _describe_ssl_error(exc: ssl.SSLError) -> str:
    reason = exc.reason or str(exc)
    if reason == "WRONG_VERSION_NUMBER":  # the reply to our ClientHello was not TLS at all
        return f"{reason}: the server did not answer in TLS (plain HTTP on this port? try http://)"
    return reason


def _describe_oserror(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "network unreachable" if exc.errno == errno.ENETUNREACH else "host unreachable"
    return exc.strerror or str(exc) or type(exc).__name__
