"""Names -> addresses, fast enough that DNS is never what a run waits for.

asyncio's own ``getaddrinfo`` runs on the loop's default executor (min(32, cores + 4) threads; 4
in uvloop's libuv pool), so at 100 ms per lookup a thousand names take ~17 s whatever ``-c`` says.
Here lookups run as concurrently as the targets do:

* the system resolver on a dedicated thread pool sized to the concurrency (``getaddrinfo`` blocks
  one thread per lookup; that is the only way to run many at once and still honour
  /etc/nsswitch.conf, /etc/hosts and the search domains);
* or, with ``--dns-servers``, c-ares through aiodns: every query in flight on the event loop, no
  threads at all;
* ``--resolve HOST:PORT:ADDR[,ADDR]`` pins addresses without asking anyone (curl's meaning);
* ``-4`` / ``-6`` keep one family;
* a per-run cache: many URLs on one host cost one lookup, and concurrent lookups of one name
  share one query. It is bounded, so a list of a million distinct hosts does not grow it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import socket
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fetchheads.errors import DNSError, InputError
from fetchheads.hostport import host_port, port_number, split_bracket
from fetchheads.targets import folded_name, not_utf8, undecodable_byte

DNS_CACHE_SIZE = 4096
"""Names remembered per run: enough for lists that repeat hosts, bounded for lists that do not."""
MAX_RESOLVER_THREADS = 512
"""Ceiling on system-resolver threads however high ``-c`` goes: each thread is a kernel task with
its own stack, and resolvers (nscd, systemd-resolved, a router) do not answer 10,000 at once."""

CARES_RECEIVE_BUFFER = 4 * 1024 * 1024
"""Bytes of UDP receive buffer for c-ares (the kernel caps it at net.core.rmem_max)."""
CARES_TIMEOUT = 12  # ARES_ETIMEOUT
CARES_CONNECTION_REFUSED = 11  # ARES_ECONNREFUSED
CARES_MAX_TIMEOUT = 86_400.0
"""The most seconds of timeout c-ares is given for one try (a day): it counts milliseconds in a C
``int``, which a larger ``-t`` or ``--connect-timeout`` would overflow. The target's own deadline
still bounds the lookup."""

Address = tuple[int, str]
"""(family, ip) — ``socket.AF_INET`` or ``socket.AF_INET6`` and the address as text."""

FAMILIES = {"any": socket.AF_UNSPEC, "4": socket.AF_INET, "6": socket.AF_INET6}


def literal_family(host: str) -> int | None:
    """The family of an IP literal (targets hold IPv6 without brackets), or ``None`` for a name."""
    if ":" in host:
        return socket.AF_INET6
    if host[-1:].isdigit():
        try:
            socket.inet_pton(socket.AF_INET, host)
        except OSError:
            return None
        return socket.AF_INET
    return None


def parse_resolve(text: str) -> tuple[tuple[str, int], tuple[Address, ...]]:
    """``HOST:PORT:ADDR[,ADDR]...`` (curl's ``--resolve``) -> ((host, port), addresses).

    IPv6 addresses may be bracketed (``[::1]``) as curl writes them. ``HOST`` is compared the way
    targets are normalised: lower case, no trailing dot. Raises ``InputError``.
    """
    byte = undecodable_byte(text)
    if byte is not None:
        raise InputError(not_utf8(byte))
    if text.startswith("["):
        raise InputError(
            f"HOST is a name to pin, not an address (in {text!r}): an address needs no lookup; "
            "--connect-to sends one elsewhere"
        )
    host, sep1, rest = text.partition(":")
    port_text, sep2, addr_text = rest.partition(":")
    if not (sep1 and sep2 and host and addr_text):
        raise InputError(f"expected HOST:PORT:ADDR, got {text!r}")
    port = port_number(port_text)
    if port is None:
        raise InputError(f"invalid port {port_text!r} in {text!r}")
    import ipaddress  # only --resolve pays for it

    addresses: list[Address] = []
    for raw in addr_text.split(","):
        literal = raw.strip().removeprefix("[").removesuffix("]")
        try:
            ip = ipaddress.ip_address(literal)
        except ValueError:
            raise InputError(f"{raw!r} is not an IP address (in {text!r})") from None
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        addresses.append((family, ip.compressed))
    try:
        name = folded_name(host.rstrip("."))
    except UnicodeError as exc:
        raise InputError(f"invalid host name {host!r}: {exc}") from None
    return (name, port), tuple(addresses)


def parse_dns_server(text: str) -> str:
    """``ip`` or ``ip:port`` (``[v6]:port``) -> the form c-ares takes. Raises ``InputError``."""
    raw = text.strip()
    port: str | None = None
    if raw.startswith("["):
        literal, after = split_bracket(raw) or (raw[1:], "")
        if after:
            if not after.startswith(":"):
                raise InputError(f"invalid DNS server {text!r}")
            port = after[1:]
    elif raw.count(":") == 1:
        literal, _, port = raw.partition(":")
    else:
        literal = raw
    import ipaddress  # only --dns-servers pays for it

    try:
        ip = ipaddress.ip_address(literal)
    except ValueError:
        raise InputError(f"invalid DNS server {text!r}: give an IP address[:port]") from None
    if port is None:
        return ip.compressed
    if port_number(port) is None:
        raise InputError(f"invalid port in DNS server {text!r}")
    return host_port(ip.compressed, port)


def order_for_happy_eyeballs(addresses: Sequence[Address]) -> list[Address]:
    """Interleave the families, keeping the resolver's preference for the first (RFC 8305 §4)."""
    if len(addresses) < 2:
        return list(addresses)
    first = addresses[0][0]
    preferred = [a for a in addresses if a[0] == first]
    other = [a for a in addresses if a[0] != first]
    out: list[Address] = []
    for index in range(max(len(preferred), len(other))):
        out.extend(group[index] for group in (preferred, other) if index < len(group))
    return out


class Resolver:
    """Per-run resolution with a bounded cache. Use it inside the running loop; ``aclose()``."""

    def __init__(
        self,
        *,
        concurrency: int = 100,
        family: int = socket.AF_UNSPEC,
        pinned: Mapping[tuple[str, int], Sequence[Address]] | None = None,
        servers: Sequence[str] = (),
        timeout: float = 5.0,
        getaddrinfo: Callable[..., list[Any]] = socket.getaddrinfo,
    ) -> None:
        self._family = family
        self._pinned = dict(pinned or {})
        self._cache: OrderedDict[str, asyncio.Future[list[Address]]] = OrderedDict()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._threads = max(1, min(concurrency, MAX_RESOLVER_THREADS))
        self._servers = tuple(servers)
        self._timeout = timeout
        self._cares: Any = None  # aiodns.DNSResolver, made on first use inside the loop
        self._getaddrinfo = getaddrinfo  # the system resolver (tests pass a slow one)

    async def aclose(self) -> None:
        if self._pool is not None:
            # Lookups still blocked in getaddrinfo cannot be interrupted; do not wait for them.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._cares is not None:
            await self._cares.close()
            self._cares = None

    async def resolve(self, host: str, port: int) -> list[Address]:
        """Addresses for ``host`` (an IP literal is its own answer), in the order to try them.

        Raises ``DNSError``.
        """
        known = self.known(host, port)
        if known is not None:
            return known
        future = self._cache.get(host)
        if future is None or future.cancelled():
            future = asyncio.ensure_future(self._lookup(host))
            future.add_done_callback(functools.partial(self._settled, host))
            self._cache[host] = future
            if len(self._cache) > DNS_CACHE_SIZE:
                self._cache.popitem(last=False)
        elif not future.done():
            self._cache.move_to_end(host)
        else:
            self._cache.move_to_end(host)
            return future.result()  # raises the cached DNSError, as the first lookup did
        # shield: one waiter's deadline must not cancel a lookup that others share.
        return await asyncio.shield(future)

    def _settled(self, host: str, future: asyncio.Future[list[Address]]) -> None:
        """A lookup ended. Its exception is retrieved, which keeps asyncio from logging it when
        every waiter has given up; and a lookup that got no answer (a DNS server timed out or
        could not be reached) is not remembered: a retry (``--retries``) asks again instead of
        getting the same failure."""
        if future.cancelled():
            return
        error = future.exception()
        if getattr(error, "retryable", False) and self._cache.get(host) is future:
            del self._cache[host]

    def cached(self, host: str) -> list[Address] | None:
        """The answer of an earlier lookup of ``host`` that succeeded, without a coroutine (a list
        that repeats its hosts mostly asks for those); ``None``: call ``resolve``, which also
        raises a cached failure."""
        future = self._cache.get(host)
        if future is None or not future.done() or future.cancelled() or future.exception():
            return None
        self._cache.move_to_end(host)
        return future.result()

    def known(self, host: str, port: int) -> list[Address] | None:
        """The addresses that need no lookup (pinned by ``--resolve``, or an IP literal), without
        a coroutine: most targets of a big list are one of those. ``None``: call ``resolve``."""
        pinned = self.pinned(host, port)
        return self.literal(host) if pinned is None else pinned

    def one_known(self, host: str, port: int) -> tuple[str, bool] | None:
        """``(ip, named)`` when ``host:port`` has exactly one address that needs no lookup now,
        as ``known`` and then ``cached`` find them (``named``: pinned or cached for a name, not
        an IP literal); ``None`` otherwise. The fetch's fast path: one call, no lists kept."""
        if self._pinned:
            addresses = self.pinned(host, port)
            if addresses is not None:
                if len(addresses) != 1:
                    return None
                return addresses[0][1], literal_family(host) is None
        family = literal_family(host)
        if family is not None:
            if self._family != socket.AF_UNSPEC:  # -4/-6: raises DNSError for the other family
                self._filter(host, [(family, host)])
            return host, False
        addresses = self.cached(host)
        if addresses is None or len(addresses) != 1:
            return None
        return addresses[0][1], True

    def pinned(self, host: str, port: int) -> list[Address] | None:
        """The addresses ``--resolve`` gave for ``host:port``, if it gave any."""
        if not self._pinned:
            return None
        pinned = self._pinned.get((host, port))
        return None if pinned is None else self._filter(host, list(pinned))

    def literal(self, host: str) -> list[Address] | None:
        """``host`` itself when it is an IP literal; ``None`` for a name."""
        family = literal_family(host)
        if family is None:
            return None
        if self._family == socket.AF_UNSPEC:  # the common case: no -4/-6 to filter by
            return [(family, host)]
        return self._filter(host, [(family, host)])

    def _filter(self, host: str, addresses: list[Address]) -> list[Address]:
        if self._family != socket.AF_UNSPEC:
            addresses = [a for a in addresses if a[0] == self._family]
            if not addresses:
                wanted = "IPv4" if self._family == socket.AF_INET else "IPv6"
                raise DNSError(f"{host} has no {wanted} address")
        return addresses

    async def _lookup(self, host: str) -> list[Address]:
        if self._servers:
            addresses = await self._lookup_cares(host)
        else:
            addresses = await self._lookup_system(host)
        if not addresses:
            raise DNSError(f"cannot resolve {host}: no addresses")
        return order_for_happy_eyeballs(_unique(addresses))

    async def _lookup_system(self, host: str) -> list[Address]:
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self._threads, thread_name_prefix="fetchheads-dns"
            )
        call = functools.partial(
            self._getaddrinfo, host, None, family=self._family, type=socket.SOCK_STREAM
        )
        try:
            infos = await loop.run_in_executor(self._pool, call)
        except socket.gaierror as exc:
            error = DNSError(f"cannot resolve {host}: {exc.strerror}")
            error.retryable = exc.errno == socket.EAI_AGAIN  # no answer, not "no such name"
            raise error from exc
        except UnicodeError as exc:
            raise DNSError(f"cannot resolve {host}: {exc}") from exc
        return [(int(family), str(sockaddr[0])) for family, _, _, _, sockaddr in infos]

    async def _lookup_cares(self, host: str) -> list[Address]:
        import aiodns  # only runs that ask for --dns-servers pay for importing c-ares

        if self._cares is None:
            self._cares = aiodns.DNSResolver(
                nameservers=list(self._servers),
                # c-ares takes whole milliseconds in a C int: -t 2147484 would not fit.
                timeout=min(self._timeout, CARES_MAX_TIMEOUT),
                tries=2,
                # Replies to -c queries at once must not overflow the default ~200 KiB buffer.
                socket_receive_buffer_size=CARES_RECEIVE_BUFFER,
            )
        try:
            result = await self._cares.getaddrinfo(
                host, family=self._family, type=socket.SOCK_STREAM
            )
        except aiodns.error.DNSError as exc:
            message = exc.args[1] if len(exc.args) > 1 else str(exc)
            error = DNSError(f"cannot resolve {host}: {message}")
            # No answer (the servers timed out, or refused the query's connection): worth a retry
            error.retryable = exc.args[:1] in ((CARES_TIMEOUT,), (CARES_CONNECTION_REFUSED,))
            raise error from exc
        return [(int(node.family), str(node.addr[0], "ascii")) for node in result.nodes]


def _unique(addresses: list[Address]) -> list[Address]:
    return list(dict.fromkeys(addresses))
