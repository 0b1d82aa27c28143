"""Which proxy a target goes through, decided the way curl decides it. Pure.

curl's order (``lib/url.c``, ``lib/noproxy.c``), followed here step by step:

1. The no-proxy list is ``--noproxy LIST`` when given (even empty), else ``no_proxy``, else
   ``NO_PROXY``. A host it matches goes direct, even when ``--proxy`` names a proxy.
2. ``--proxy URL`` when given; ``--proxy ''`` means no proxy, whatever the environment says.
3. ``<scheme>_proxy`` in lower case, then in upper case: ``https_proxy`` then ``HTTPS_PROXY`` for
   https targets, but only ``http_proxy`` for http ones. ``HTTP_PROXY`` is never read: in a CGI
   program the client's ``Proxy:`` request header arrives as ``HTTP_PROXY`` ("httpoxy"), so curl
   refuses to trust it and so do we.
4. ``all_proxy``, then ``ALL_PROXY``.

A variable that is set but empty counts as set (it hides the ones after it) and means no proxy.

The no-proxy list: ``*`` alone matches every host. Otherwise comma-separated entries (blanks around
them ignored). A host name matches an entry equal to it or a parent domain of it (``example.com``
and ``.example.com`` both match ``www.example.com``, neither matches ``notexample.com``), case
insensitively, trailing dots ignored. An IP address matches only IP entries, exactly or by CIDR
(``10.0.0.0/8``, ``fe80::/10``): ``localhost`` does not match ``127.0.0.1``. Ports are not compared.

Talking to the proxy (the bytes are ``http.request``'s, the sockets ``fetch``'s): plain http is
sent to the proxy in absolute form (``GET http://host/path HTTP/1.0``); https asks for a tunnel with
``CONNECT host:port HTTP/1.1``, and on a 2xx answer TLS starts inside it with the origin's name as
SNI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

from fetchheads.credentials import (
    UNENCODED_PASSWORD,
    basic_authorization,
    has_unencoded_password,
    redact_url,
)
from fetchheads.errors import InputError
from fetchheads.hostport import bracketed, host_port
from fetchheads.models import ResponseHead, Target
from fetchheads.targets import not_utf8, parse_target, undecodable_byte, undecodable_replaced

if TYPE_CHECKING:
    import ipaddress

DEFAULT_PROXY_PORT = 1080  # curl's, for a proxy URL without a port


@dataclasses.dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP proxy. ``authorization`` is the ``Proxy-Authorization`` value, from user:password."""

    host: str  # ASCII: IDNA name, IPv4, or bare IPv6 literal
    port: int
    authorization: str | None = dataclasses.field(default=None, repr=False)

    @property
    def address(self) -> str:
        """``host:port`` as messages show it: ``proxy 127.0.0.1:8888: connection refused``."""
        return host_port(self.host, self.port)


def parse_proxy(text: str) -> Proxy:
    """``[http://][user:password@]host[:port][/]`` -> ``Proxy``; raises ``InputError``, whose
    message shows the password as ``***``."""
    from urllib.parse import urlsplit  # only runs with a proxy pay for the import

    raw = text.strip()
    shown = redact_url(raw)
    byte = undecodable_byte(raw)
    if byte is not None:  # a password with it could not be sent: say so before it is used
        shown = undecodable_replaced(shown)
        raise InputError(f"invalid proxy {shown!r}: {not_utf8(byte)}")
    if has_unencoded_password(raw):
        raise InputError(f"invalid proxy {shown!r}: {UNENCODED_PASSWORD}")
    if "://" not in raw:
        raw = "http://" + raw  # curl's default proxy scheme
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        # urllib's words quote the host part, user information and password with it: they are
        # used only where there is no '@' at all.
        detail = "its host part or port cannot be read" if "@" in raw else str(exc)
        raise InputError(f"invalid proxy {shown!r}: {detail}") from None
    scheme = parts.scheme.lower()
    if scheme != "http":
        raise InputError(
            f"unsupported proxy scheme {scheme!r} in {shown!r}: only http:// proxies are supported"
        )
    if not parts.hostname:
        raise InputError(f"no host in proxy {shown!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InputError(f"a proxy is host[:port], not a URL with a path: {shown!r}")
    host = bracketed(parts.hostname)
    try:
        checked = parse_target(f"http://{host}/")
    except InputError as exc:
        raise InputError(f"invalid proxy {shown!r}: {exc}") from None
    authorization = None
    if parts.username is not None:
        authorization = basic_authorization(parts.netloc.rpartition("@")[0])
    return Proxy(checked.host, DEFAULT_PROXY_PORT if port is None else port, authorization)


def bypasses_proxy(host: str, no_proxy: str) -> bool:
    """Whether ``host`` (as in a ``Target``) matches the no-proxy list (see the module doc)."""
    if not host or not no_proxy:
        return False
    if no_proxy.strip() == "*":
        return True
    import ipaddress  # only runs with a no-proxy list pay for it

    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    name = host.rstrip(".").lower()
    for entry in no_proxy.split(","):
        entry = entry.strip()
        if not entry:
            continue
        if address is not None:
            if _address_matches(address, entry):
                return True
            continue
        domain = entry.rstrip(".").removeprefix(".").lower()
        if domain and (name == domain or name.endswith("." + domain)):
            return True
    return False


def _address_matches(address: ipaddress.IPv4Address | ipaddress.IPv6Address, entry: str) -> bool:
    import ipaddress

    try:
        network = ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        return False  # a name never matches an address
    return address in network


@dataclasses.dataclass(frozen=True, slots=True)
class ProxyRules:
    """The proxy decision of one run, read once from the options and the environment."""

    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: str = ""

    def proxy_for(self, target: Target) -> Proxy | None:
        proxy = self.https if target.scheme == "https" else self.http
        # The proxy first: a no_proxy list is often set where no proxy is (no_proxy=localhost,...),
        # and matching it costs an IP address parse per target.
        if proxy is None or bypasses_proxy(target.host, self.no_proxy):
            return None
        return proxy


NO_PROXY_RULES = ProxyRules()


def proxy_rules(
    environ: Mapping[str, str],
    *,
    proxy: str | None = None,
    noproxy: str | None = None,
    option: str = "--proxy",
) -> ProxyRules:
    """The rules for a run from ``--proxy``, ``--noproxy`` and ``environ`` (curl's order, see the
    module doc). Raises ``InputError`` naming the option (as ``option``) or variable that holds a
    bad proxy, its password shown as ``***``."""
    no_proxy = noproxy if noproxy is not None else _first_set(environ, "no_proxy", "NO_PROXY")[1]
    if proxy is not None:
        chosen = _parse_named(option, proxy)
        return ProxyRules(http=chosen, https=chosen, no_proxy=no_proxy)
    return ProxyRules(
        http=_parse_named(*_first_set(environ, "http_proxy", "all_proxy", "ALL_PROXY")),
        https=_parse_named(
            *_first_set(environ, "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
        ),
        no_proxy=no_proxy,
    )


def _first_set(environ: Mapping[str, str], *names: str) -> tuple[str, str]:
    for name in names:
        if name in environ:
            return name, environ[name]
    return "", ""


def _parse_named(name: str, value: str) -> Proxy | None:
    if not value.strip():
        return None
    try:
        return parse_proxy(value)
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None


def tunnel_refusal(head: ResponseHead) -> str | None:
    """Why the proxy did not open the tunnel (``None``: it did, any 2xx)."""
    if 200 <= head.status < 300:
        return None
    return f"CONNECT answered {head.status} {head.reason}".rstrip()
