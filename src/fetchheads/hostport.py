"""``host:port`` as every option and target writes it: an IPv6 literal in brackets (``[::1]:80``),
a port from 1 to 65535 in ASCII digits. One home for the spelling that targets, ``--resolve``,
``--connect-to``, ``--dns-servers``, proxies, requests and messages share; each caller words its
own errors. Pure."""

from __future__ import annotations


def port_number(text: str) -> int | None:
    """``text`` as a port, or None when it is not one (ASCII only: ``"²"`` is a digit to
    ``isdigit()`` but not to ``int()``)."""
    if text.isascii() and text.isdigit():
        port = int(text)
        if 0 < port < 65536:
            return port
    return None


def split_bracket(text: str) -> tuple[str, str] | None:
    """``[literal]rest`` -> ``(literal, rest)``; None when the ``[`` is never closed."""
    close = text.find("]")
    if close == -1:
        return None
    return text[1:close], text[close + 1 :]


def bracketed(host: str) -> str:
    """``host`` as a URL or ``host:port`` writes it: an IPv6 literal in brackets."""
    return f"[{host}]" if ":" in host else host


def host_port(host: str, port: int | str) -> str:
    """``127.0.0.1:80``, ``[::1]:80``."""
    return f"{bracketed(host)}:{port}"
