"""``--connect-to HOST:PORT:CONNECT_HOST:CONNECT_PORT``: connect elsewhere, ask for the same name.

curl's meaning: a request for ``HOST:PORT`` opens its connection to ``CONNECT_HOST:CONNECT_PORT``
instead, while the Host header, the TLS SNI and certificate check still use the URL's host. That is
how one checks one origin behind a CDN, or a new server before DNS points at it. An empty ``HOST``
or ``PORT`` matches any; an empty ``CONNECT_HOST`` or ``CONNECT_PORT`` keeps the original. IPv6
addresses go in brackets. The first rule that matches wins; hosts compare case-insensitively (IDNA
names in their ASCII form). Pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from fetchheads.errors import InputError
from fetchheads.hostport import port_number, split_bracket
from fetchheads.targets import parse_target


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectTo:
    host: str | None  # None: any host
    port: int | None  # None: any port
    connect_host: str | None  # None: the request's own host
    connect_port: int | None  # None: the request's own port

    def matches(self, host: str, port: int) -> bool:
        return (self.host is None or self.host == host) and (self.port is None or self.port == port)


def parse_connect_to(text: str) -> ConnectTo:
    """``HOST:PORT:CONNECT_HOST:CONNECT_PORT`` -> ``ConnectTo``; raises ``InputError``."""
    fields: list[str] = []
    rest = text.strip()
    while True:
        if rest.startswith("["):
            split = split_bracket(rest)
            if split is None:
                raise InputError(f"unclosed '[' in --connect-to {text!r}")
            field, rest = f"[{split[0]}]", split[1]
            if rest and not rest.startswith(":"):
                raise InputError(f"expected ':' after {field!r} in --connect-to {text!r}")
        else:
            field, colon, after = rest.partition(":")
            rest = colon + after
        fields.append(field)
        if not rest:
            break
        rest = rest[1:]  # the ':' separator
    if len(fields) != 4:
        raise InputError(
            f"--connect-to takes HOST:PORT:CONNECT_HOST:CONNECT_PORT (empty fields allowed), "
            f"got {text!r}"
        )
    host, port, connect_host, connect_port = fields
    return ConnectTo(
        host=_host(host, text),
        port=_port(port, text),
        connect_host=_host(connect_host, text),
        connect_port=_port(connect_port, text),
    )


def _host(field: str, text: str) -> str | None:
    if not field:
        return None
    try:
        return parse_target(f"http://{field}/").host
    except InputError as exc:
        raise InputError(f"bad host {field!r} in --connect-to {text!r}: {exc}") from None


def _port(field: str, text: str) -> int | None:
    if not field:
        return None
    port = port_number(field)
    if port is None:
        raise InputError(f"bad port {field!r} in --connect-to {text!r}")
    return port


def connect_address(rules: Sequence[ConnectTo], host: str, port: int) -> tuple[str, int]:
    """Where to open the connection for ``host:port``: the first matching rule's, else itself."""
    for rule in rules:
        if rule.matches(host, port):
            return (rule.connect_host or host, rule.connect_port or port)
    return (host, port)
