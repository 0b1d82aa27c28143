"""One target, start to end: resolve, connect, TLS, write, read the head, abort; one deadline each.

``fetch_one`` never raises for a target's failure: it returns a ``Result`` with an ``ErrorInfo``.
Low-level exceptions are translated into ``fetchheads.errors`` at the socket edge (here and in
``fetch.connection``, which sets connections up) and nowhere else.

The hot path is an ``asyncio.Protocol`` (``connection.HeadReader``) on a raw
``loop.create_connection`` transport, not streams: bytes go straight from the transport into the
sans-IO parser, with no StreamReader buffer, no reader/writer pair and no extra task per target.
The steps are separate functions so other transports can be built from them (a proxy tunnel
connects to the proxy, then calls ``start_tls`` on the tunnel; ``--connect-to`` connects elsewhere
than the target):

    open_connection(target)  = connect(addresses, port) [+ start_tls(host)]   -> (transport, reader)
    exchange(transport, reader, request bytes)                                 -> ResponseHead

Through a proxy (``open_via_proxy``): connect to the proxy; for https, ``CONNECT`` a tunnel and
``start_tls`` inside it with the origin's name. Every failure before the tunnel is open is the
proxy's, and says so (``proxy 127.0.0.1:3128: ...``), kind ``connect``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from fetchheads.config import Config
from fetchheads.connect_to import connect_address
from fetchheads.errors import (
    CertificateRejected,
    ConnectError,
    ErrorKind,
    FetchError,
    ProxyRefusal,
    TLSError,
)
from fetchheads.fetch.connection import (
    FetchState,
    HeadReader,
    connect,
    connect_failure,
    format_address,
    make_ssl_context,
    start_tls,
)
from fetchheads.fetch.deadline import Deadline, Deadlines
from fetchheads.fetch.redirects import RETRIED
from fetchheads.fetch.resolve import Address, Resolver, literal_family
from fetchheads.http.request import (
    RequestTemplate,
    connect_request,
    proxied_request,
    request_template,
)
from fetchheads.models import (
    ErrorInfo,
    ResponseHead,
    Result,
    Target,
    build_result,
    build_timing,
    utc_now,
)
from fetchheads.proxy import Proxy, tunnel_refusal

__all__ = ["FetchContext", "exchange", "fetch_one", "make_ssl_context", "retry_delay"]

RETRY_BACKOFF = 0.2
"""Seconds before the first retry; doubled for each further one, with jitter, up to RETRY_MAX."""
RETRY_MAX = 5.0


@dataclasses.dataclass(slots=True)
class FetchContext:
    """What every fetch of one run shares; built once in ``cli.main``.

    ``pace`` is awaited before every attempt, outside its deadline (``--rate``); ``None`` means no
    limit.
    TLS targets use ``tls_context()``.

    ``loop`` is the run's event loop, given by a run that builds its context inside it
    (``run.single``): on CPython 3.11 every ``asyncio.get_running_loop()`` is a system call
    (``getpid``, to notice a fork), which a target would otherwise make once or twice. ``None``:
    each attempt asks for the running loop.
    """

    config: Config
    resolver: Resolver
    ssl_context: ssl.SSLContext | None = None
    pace: Callable[[], Awaitable[None]] | None = None
    make_ssl_context: Callable[[], ssl.SSLContext] | None = None
    loop: asyncio.AbstractEventLoop | None = dataclasses.field(default=None, repr=False)
    deadlines: dict[asyncio.AbstractEventLoop, Deadlines] = dataclasses.field(
        default_factory=dict, repr=False
    )
    """The run's deadlines (one timer for them all), by loop; shared by the copies of this
    context that ``-L`` makes for each hop."""
    _request: tuple[Config, RequestTemplate] | None = dataclasses.field(
        default=None, init=False, repr=False
    )
    _look_context: ssl.SSLContext | None = dataclasses.field(default=None, init=False, repr=False)

    def tls_context(self) -> ssl.SSLContext:
        """The run's TLS context, built on the first https target when ``make_ssl_context`` is
        given: loading the system CA store costs ~50-100 ms that a run of http targets need not
        pay. (Pass a ``functools.cache``-d function so copies of the context share one.)"""
        if self.ssl_context is None:
            if self.make_ssl_context is None:
                raise RuntimeError("FetchContext needs ssl_context or make_ssl_context")
            self.ssl_context = self.make_ssl_context()
        return self.ssl_context

    def look_context(self) -> ssl.SSLContext:
        """A context that verifies nothing, for a second look at a certificate that failed
        verification (``fetch._look_anyway``); it loads no CA store."""
        if self._look_context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self._look_context = context
        return self._look_context

    def deadline(
        self, loop: asyncio.AbstractEventLoop, delay: float, deadline: Deadline | None = None
    ) -> Deadline:
        """A deadline for the current task, ``delay`` seconds from now: ``deadline`` (a new
        ``FetchState``) or a new one (see ``fetch.deadline``)."""
        deadlines = self.deadlines.get(loop)
        if deadlines is None:
            deadlines = self.deadlines[loop] = Deadlines(loop)
        return deadlines.start(delay, deadline)

    def fetch(self, target: Target) -> Coroutine[Any, Any, Result]:
        """``fetch_one(target, self)``: a bound method is the run's cheapest fetch function to
        hand the pool (a ``functools.partial`` with ``ctx=`` costs ~120 ns more a call)."""
        if self.config.retries:
            return _retrying(target, self)
        return _attempt(target, self)

    def request(self, target: Target, authority: str | None = None) -> bytes:
        """``http.request.build_request(target, config)``, from a template built once per config;
        ``authority``: ``target.authority``, when the caller has built it already."""
        built = self._request
        if built is None or built[0] is not self.config:
            built = self._request = (self.config, request_template(self.config))
        if authority is None:
            authority = target.authority
        return built[1].render(target.path, authority, target.authorization)


def fetch_one(target: Target, ctx: FetchContext) -> Coroutine[Any, Any, Result]:
    """Fetch one target's response head. Always returns; never raises for the target's failure.

    With ``--retries N`` a connect error or a timeout is tried again, up to N more times, after an
    exponential backoff with jitter; each attempt has its own ``--timeout``. Only failures where
    no answer came are retried (``FetchError.retryable``): a protocol error, an HTTP status or a
    proxy's refusal is an answer, and asking again would only ask to be told again. The record
    of a target that failed after retries says so: ``... (after 3 attempts)``.

    Not a coroutine function itself: it returns the coroutine to await, and without retries
    that is the one attempt's, so a target has one coroutine frame fewer to create and to be
    resumed through each time it waits (with ``_attempt``'s own path: ~7,200 instructions a
    target fewer, by callgrind). The run calls it as ``ctx.fetch``.
    """
    return ctx.fetch(target)


async def _retrying(target: Target, ctx: FetchContext) -> Result:
    retryable = [False]
    result = await _attempt(target, ctx, retryable)
    retries = ctx.config.retries
    attempt = 0
    retried = RETRIED.get()  # in a redirect chain, which charges the retries to its -t
    while attempt < retries and retryable[0]:
        delay = retry_delay(attempt)
        if retried is not None:
            retried.append((result.timing.total or 0.0) + delay)
        await asyncio.sleep(delay)
        attempt += 1
        result = await _attempt(target, ctx, retryable)
    if attempt and result.error is not None:
        error = ErrorInfo(
            result.error.kind, f"{result.error.message} (after {attempt + 1} attempts)"
        )
        result = dataclasses.replace(result, error=error)
    return result


def retry_delay(attempt: int) -> float:
    """Backoff before retry ``attempt + 1``: 0.2 s, 0.4 s, 0.8 s ... (capped), each scaled by a
    random factor in [0.5, 1] so that many targets failing together do not retry together."""
    import random  # --retries only: a run that retries nothing does not load it

    delay: float = min(RETRY_MAX, RETRY_BACKOFF * 2.0**attempt)
    return delay * random.uniform(0.5, 1.0)


def forget_tracebacks(exc: BaseException) -> None:
    """Drop the tracebacks of a failure whose record is made, and of the errors it came from.

    The connection's reader keeps the error it ended with, and that error's traceback holds the
    frames it went through, the reader's own among them: a cycle that reference counting cannot
    free, holding the parser and the up-to-MAX_HEAD bytes a hostile server sent until the cyclic
    collector happens to run. At thousands of refused heads a second, that was gigabytes. Only
    the message goes into the record, so nothing is lost."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        error = stack.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        error.__traceback__ = None
        stack.append(error.__cause__)
        stack.append(error.__context__)


async def _attempt(
    target: Target, ctx: FetchContext, retryable: list[bool] | None = None
) -> Result:
    """One try. ``retryable``, when given, is set to whether its failure may be retried."""
    if ctx.pace is not None:
        # --rate: the wait for a turn comes before the attempt, so it is not charged to -t (which
        # covers DNS, connect, TLS and the head) nor to the timings, and fetched_at is when the
        # attempt really began.
        await ctx.pace()
    loop = ctx.loop
    if loop is None:
        loop = asyncio.get_running_loop()
    fetched_at = datetime.now(UTC)  # utc_now(), without the call
    # Timing fields use perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds.
    state = FetchState(time.perf_counter())  # positional: a keyword costs its matching
    config = ctx.config
    timeout = config.timeout
    head: ResponseHead | None = None
    error: ErrorInfo | None = None
    can_retry = False
    ctx.deadline(loop, timeout, state)  # the state is the deadline: no object of its own
    authority = target.authority  # the Host header's and the record's URL's: built once
    try:
        proxy = config.proxies.proxy_for(target)
        route = None
        if proxy is None and target.scheme == "http" and config.connect_timeout is None:
            route = _one_address(target, ctx, state)
        if route is None:
            head = await _fetch_head(target, authority, proxy, ctx, state, loop)
        else:
            # The common case, spelled out here rather than awaited through ``connect`` and
            # ``exchange`` (which do the same steps): plain http to one address known now. Each
            # coroutine a target goes through is a frame to create and to resume through at
            # every wait; this path has one (with ``fetch_one``'s: ~7,200 instructions fewer).
            ip, port = route
            reader = HeadReader(loop, ctx.request(target, authority))
            state.phase = "connecting"
            state.address = ip
            try:
                transport, _ = await loop.create_connection(reader, ip, port)
            except OSError as exc:
                raise connect_failure(exc, ip, port) from exc
            state.connect = (reader.connected_at or time.perf_counter()) - state.start
            state.phase = "waiting for the response head"
            state.parser = reader.parser
            try:  # the request went out when the connection was made (HeadReader)
                if not reader.done:
                    await reader.waiter()
                head = reader.head()
            finally:
                # Never read the body, never wait for a polite close (once the head is complete
                # the reader has already aborted: a second abort does nothing).
                transport.abort()
                if reader.first_byte_at is not None:
                    state.ttfb = reader.first_byte_at - state.start
    except asyncio.CancelledError:
        if not state.timed_out():
            raise
        if state.failure is not None:  # the verification failed; only the look timed out
            error = ErrorInfo(state.failure.kind, str(state.failure))
        else:
            error = ErrorInfo(
                ErrorKind.TIMEOUT,
                f"no complete response head within {timeout:g}s ({state.phase})",
            )
            can_retry = True
    except FetchError as exc:
        error = ErrorInfo(exc.kind, str(exc))
        can_retry = exc.retryable
        forget_tracebacks(exc)
    finally:
        state.cancel()
    if retryable is not None:
        retryable[0] = can_retry  # every attempt: a success after a failure ends the retries
    if error is not None and state.parser is not None:
        head = state.parser.partial()  # headers received before the failure are kept
    total = time.perf_counter() - state.start
    # Positional, in the order of the fields: matching a dozen keywords to the parameters of
    # the generated __init__s costs ~5,700 instructions a target (callgrind), as much as the
    # rest of building both.
    timing = build_timing(state.dns, state.connect, state.tls_time, state.ttfb, total)
    return build_result(
        target.text,  # target
        target.url_at(authority),  # url
        head,
        error,
        state.address,  # address
        timing,
        state.tls,  # tls
        (),  # redirects
        fetched_at,
    )


def _one_address(target: Target, ctx: FetchContext, state: FetchState) -> tuple[str, int] | None:
    """Where a target connects when that is one address known without a lookup (an IP literal,
    ``--resolve``, the run's cache): ``(ip, port)``; ``None`` when it takes a lookup or happy
    eyeballs over several."""
    host, port = target.host, target.port
    rules = ctx.config.connect_to
    if rules:
        host, port = connect_address(rules, host, port)
    known = ctx.resolver.one_known(host, port)
    if known is None:
        return None
    ip, named = known
    if named:  # a name pinned by --resolve or cached: a lookup of no time (dns stays None for IPs)
        state.dns = time.perf_counter() - state.start
    return ip, port


async def _fetch_head(
    target: Target,
    authority: str,
    proxy: Proxy | None,
    ctx: FetchContext,
    state: FetchState,
    loop: asyncio.AbstractEventLoop,
) -> ResponseHead:
    config = ctx.config
    if proxy is None:
        request = ctx.request(target, authority)
        # Plain http: the request is known before the connection exists, and goes out the moment
        # it is made. https writes it after the handshake (``exchange``).
        early = request if target.scheme == "http" else None
        opening = open_connection(target, ctx, state, loop, early)
    else:
        if target.scheme == "http":
            request = proxied_request(target, config, proxy)
        else:
            request = ctx.request(target, authority)
        opening = open_via_proxy(target, proxy, ctx, state)
    try:
        if config.connect_timeout is None:
            transport, reader = await opening
        else:
            transport, reader = await _within_connect_timeout(opening, ctx, state, loop)
    except CertificateRejected as exc:
        raise await _look_anyway(target, proxy, ctx, state, exc) from exc
    return await exchange(transport, reader, request, state)


def _opening(
    target: Target,
    proxy: Proxy | None,
    ctx: FetchContext,
    state: FetchState,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Opening:
    if proxy is None:
        return open_connection(target, ctx, state, loop)
    return open_via_proxy(target, proxy, ctx, state)


async def _within_connect_timeout(
    opening: Opening, ctx: FetchContext, state: FetchState, loop: asyncio.AbstractEventLoop
) -> tuple[asyncio.Transport, HeadReader]:
    timeout = ctx.config.connect_timeout
    assert timeout is not None
    deadline = ctx.deadline(loop, timeout)
    try:
        return await opening
    except asyncio.CancelledError:
        if not deadline.timed_out():
            raise
        raise ConnectError(
            f"no connection within --connect-timeout {timeout:g}s ({state.phase})"
        ) from None
    finally:
        deadline.cancel()


async def _look_anyway(
    target: Target,
    proxy: Proxy | None,
    ctx: FetchContext,
    state: FetchState,
    rejected: CertificateRejected,
) -> TLSError:
    """After a failed verification: the error to report, worded from the certificate itself.

    Python's ssl hands over no certificate from a handshake that failed verification, and offers
    no verify callback; so the same place (the target, its --connect-to address or its proxy) is
    asked once more, without verification, for the certificates only; then the connection is
    dropped. Verification stays OpenSSL's: the first handshake's verdict is the one reported.
    The second handshake costs a connection on failed verifications only, and runs within the
    target's own deadline (``-t``); if it fails, or the deadline passes, OpenSSL's words stand."""
    state.failure = rejected
    look = FetchState(start=time.perf_counter())
    looking = dataclasses.replace(
        ctx, ssl_context=ctx.look_context(), make_ssl_context=None, pace=None
    )
    try:
        transport, _ = await _opening(target, proxy, looking, look)
    except FetchError:
        return rejected
    transport.abort()
    state.tls = look.tls
    state.failure = None
    if look.tls is None:
        return rejected
    from fetchheads.certificates import explain_rejection  # a failed verification only

    explained = explain_rejection(
        rejected.code, rejected.reason, rejected.host, look.tls, utc_now()
    )
    return TLSError(f"certificate verification failed: {explained}")


async def exchange(
    transport: asyncio.Transport, reader: HeadReader, request: bytes, state: FetchState
) -> ResponseHead:
    """Send ``request``, read the response head, and drop the connection (always)."""
    state.phase = "waiting for the response head"
    state.parser = reader.parser
    try:
        if reader.request is None:  # not already sent when the connection was made
            transport.write(request)
        return await reader.read_head()
    finally:
        # Never read the body and never wait for a polite close: drop the connection now.
        transport.abort()
        if reader.first_byte_at is not None:
            state.ttfb = reader.first_byte_at - state.start


Opening = Coroutine[Any, Any, tuple[asyncio.Transport, HeadReader]]


def open_connection(
    target: Target,
    ctx: FetchContext,
    state: FetchState,
    loop: asyncio.AbstractEventLoop | None = None,
    request: bytes | None = None,
) -> Opening:
    """Resolve, connect (happy eyeballs over the addresses), and TLS for https targets.

    ``--connect-to`` changes where the connection goes, never the name: SNI and the certificate
    check (and the Host header) keep the target's host.

    Not a coroutine itself, nor is ``_open_tcp``: each returns the coroutine that does the work,
    so a plain-http target to an address that needs no lookup awaits ``connection.connect``
    directly, without two more coroutine frames to create and to resume through. A plain-http
    ``request`` given here is written the moment the connection is made (``HeadReader``)."""
    host, port = connect_address(ctx.config.connect_to, target.host, target.port)
    if target.scheme == "https":
        return _open_tls(host, port, target.host, ctx, state)
    return _open_tcp(host, port, ctx, state, loop=loop, request=request)


async def _open_tls(
    host: str, port: int, server_hostname: str, ctx: FetchContext, state: FetchState
) -> tuple[asyncio.Transport, HeadReader]:
    transport, reader = await _open_tcp(host, port, ctx, state, tls=True)
    try:
        transport = await start_tls(transport, reader, server_hostname, ctx.tls_context(), state)
    except BaseException:
        transport.abort()
        raise
    return transport, reader


def _open_tcp(
    host: str,
    port: int,
    ctx: FetchContext,
    state: FetchState,
    *,
    tls: bool = False,
    loop: asyncio.AbstractEventLoop | None = None,
    request: bytes | None = None,
) -> Opening:
    addresses = _known_addresses(host, port, ctx, state)
    if addresses is None:
        return _resolve_and_connect(host, port, ctx, state, tls=tls, request=request)
    if loop is None:
        loop = ctx.loop
    return connect(addresses, port, state, tls=tls, loop=loop, request=request)


def _known_addresses(
    host: str, port: int, ctx: FetchContext, state: FetchState
) -> list[Address] | None:
    """The addresses of ``host`` that need no lookup now (``state.dns`` set as for one that took
    no time), or ``None``: ask the resolver."""
    addresses = ctx.resolver.pinned(host, port)
    if addresses is not None:
        if literal_family(host) is None:  # a name pinned by --resolve: a lookup of no time
            state.dns = time.perf_counter() - state.start
        return addresses
    addresses = ctx.resolver.literal(host)  # an IP literal needs no lookup (dns stays None)
    if addresses is None:
        addresses = ctx.resolver.cached(host)
        if addresses is not None:
            state.dns = time.perf_counter() - state.start
    return addresses


async def _resolve_and_connect(
    host: str,
    port: int,
    ctx: FetchContext,
    state: FetchState,
    *,
    tls: bool,
    request: bytes | None = None,
) -> tuple[asyncio.Transport, HeadReader]:
    addresses = await ctx.resolver.resolve(host, port)
    state.dns = time.perf_counter() - state.start
    return await connect(addresses, port, state, tls=tls, loop=ctx.loop, request=request)


async def open_via_proxy(
    target: Target, proxy: Proxy, ctx: FetchContext, state: FetchState
) -> tuple[asyncio.Transport, HeadReader]:
    """A connection to ``proxy``, ready for a plain-http request in absolute form; for https, a
    ``CONNECT`` tunnel to the origin (or its ``--connect-to`` address) with TLS inside it."""
    https = target.scheme == "https"
    try:
        transport, reader = await _open_tcp(proxy.host, proxy.port, ctx, state)
    except FetchError as exc:  # DNSError or ConnectError: either way the proxy's
        detail = str(exc).removeprefix(f"{format_address(state.address, proxy.port)}: ")
        raise ConnectError(f"proxy {proxy.address}: {detail}") from exc
    if not https:
        return transport, reader
    try:
        host, port = connect_address(ctx.config.connect_to, target.host, target.port)
        state.phase = f"proxy CONNECT to {proxy.address}"
        transport.write(connect_request(host, port, proxy, ctx.config.user_agent))
        try:
            answer = await reader.read_head()
        except FetchError as exc:
            if reader.first_byte_at is None:
                raise ConnectError(f"proxy {proxy.address}: no answer to CONNECT: {exc}") from exc
            message = f"proxy {proxy.address}: not an HTTP answer to CONNECT: {exc}"
            raise ProxyRefusal(message) from exc
        refusal = tunnel_refusal(answer)
        if refusal is not None:
            raise ProxyRefusal(f"proxy {proxy.address}: {refusal}")
        # The proxy's answer is done; the origin's bytes go to a reader of their own.
        tunnel = HeadReader(reader.loop)
        transport = await start_tls(transport, tunnel, target.host, ctx.tls_context(), state)
    except BaseException:
        transport.abort()
        raise
    return transport, tunnel
