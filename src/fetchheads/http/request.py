"""Target + Config -> the bytes of an HTTP/1.0 request. Pure.

HTTP/1.0 because it is what the seed sent and what we need: servers answer with a head and then
close, no chunked framing to consider, no keep-alive to negotiate. ``Connection: close`` is sent
anyway for HTTP/1.1 servers that ignore the version.
"""

from __future__ import annotations

import dataclasses
import re

from fetchheads.config import Config
from fetchheads.credentials import redact_header
from fetchheads.errors import InputError
from fetchheads.hostport import host_port
from fetchheads.models import Target
from fetchheads.proxy import Proxy
from fetchheads.targets import undecodable_byte, undecodable_replaced

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A field value may hold visible ASCII, SP, HT and obs-text; never CR, LF or NUL.
_VALUE_RE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def parse_header_option(text: str) -> tuple[str, str]:
    """``'Name: value'`` -> ``("Name", "value")``; raises ``InputError`` for anything unsafe."""
    name, colon, value = text.partition(":")
    name = name.strip()
    byte = undecodable_byte(name)
    if colon and byte is not None:  # an argument's byte that was not UTF-8: named as one
        raise InputError(
            f"header {undecodable_replaced(name)!r} has byte 0x{byte:02X} in its name, "
            "which is not UTF-8"
        )
    if not colon or not _TOKEN_RE.fullmatch(name):
        shown = undecodable_replaced(redact_header(text))
        if colon and name:
            raise InputError(
                f"header {shown!r} has an invalid name: before the ':' goes one word of letters, "
                "digits and !#$%&'*+-.^_`|~"
            )
        raise InputError(f"header must be 'Name: value', got {shown!r}")
    value = value.strip(" \t")
    check_header_value(name, value)
    return name, value


def check_header_value(name: str, value: str) -> None:
    if not _VALUE_RE.fullmatch(value):
        byte = undecodable_byte(value)
        if byte is not None:  # an argument's byte that was not UTF-8, not a character
            raise InputError(
                f"header {name!r} has byte 0x{byte:02X} in its value, which is not UTF-8"
            )
        raise InputError(
            f"header {name!r} has a control character or non-Latin-1 text in its value"
        )


def build_request(target: Target, config: Config, *, absolute_form: bool = False) -> bytes:
    """The request bytes for ``target``. ``absolute_form`` is for plain-http proxies."""
    request_target = target.url if absolute_form else target.path
    return request_template(config).render(request_target, target.authority, target.authorization)


@dataclasses.dataclass(frozen=True, slots=True)
class RequestTemplate:
    """The request of one configuration with the parts that vary by target left open: the request
    target and the Host header's value. A run builds it once (``fetch.one.FetchContext``), not the
    header lines of every target again."""

    method: str
    target_host: bool  # a Host header with the target's authority (no -H 'Host: ...' replaced it)
    tail: bytes  # the header lines after the request line and Host, then the blank line
    # The target's user:password@ is sent as Authorization unless -H gave one (as in curl).
    target_authorization: bool = True

    def render(
        self, request_target: str, authority: str, authorization: str | None = None
    ) -> bytes:
        if self.target_host:
            start = f"{self.method} {request_target} HTTP/1.0\r\nHost: {authority}\r\n"
        else:
            start = f"{self.method} {request_target} HTTP/1.0\r\n"
        if authorization is not None and self.target_authorization:
            start += f"Authorization: {authorization}\r\n"
        return start.encode("latin-1") + self.tail


def request_template(config: Config) -> RequestTemplate:
    """The default headers (Host first) with ``-H`` replacing or, given empty, removing them,
    then the other ``-H`` headers in the order given."""
    overrides = {name.lower(): (name, value) for name, value in config.headers}
    lines = []
    host = overrides.pop("host", None)
    if host is not None and host[1]:
        lines.append(f"{host[0]}: {host[1]}")
    defaults = {
        "user-agent": ("User-Agent", config.user_agent),
        "accept": ("Accept", "*/*"),
        "connection": ("Connection", "close"),
    }
    for key, (name, value) in defaults.items():
        name, value = overrides.pop(key, (name, value))
        if value:
            lines.append(f"{name}: {value}")
    seen = {"host", *defaults}
    for name, value in config.headers:
        key = name.lower()
        if key in seen:
            continue
        if value:
            lines.append(f"{name}: {value}")
    tail = "".join(f"{line}\r\n" for line in lines) + "\r\n"
    given_authorization = any(name.lower() == "authorization" for name, _ in config.headers)
    return RequestTemplate(
        config.method, host is None, tail.encode("latin-1"), not given_authorization
    )


def proxied_request(target: Target, config: Config, proxy: Proxy) -> bytes:
    """The request for a plain-http ``target`` sent through ``proxy``: absolute form, and the
    proxy's credentials unless ``-H`` gave a ``Proxy-Authorization`` of its own."""
    headers = config.headers
    given = any(name.lower() == "proxy-authorization" for name, _ in headers)
    if proxy.authorization and not given:
        headers = (*headers, ("Proxy-Authorization", proxy.authorization))
    return build_request(target, dataclasses.replace(config, headers=headers), absolute_form=True)


def connect_request(host: str, port: int, proxy: Proxy, user_agent: str) -> bytes:
    """``CONNECT host:port`` (RFC 9110 §9.3.6): the request for a tunnel to the origin."""
    authority = host_port(host, port)
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if user_agent:
        lines.append(f"User-Agent: {user_agent}")
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
