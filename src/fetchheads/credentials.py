"""Credentials: the ``Basic`` value sent for ``user:password@``, and keeping every secret out of
what fetchheads shows and stores. Pure.

Passwords reach fetchheads in three places, and each is shown as ``***`` wherever it would
otherwise appear (messages, every output format, the summary, the ``--db`` database):

* the user information of a URL (a target, ``--proxy``, ``http_proxy`` and the other proxy
  variables): ``http://user:pass@host`` is shown ``http://user:***@host``. A user name alone
  (``http://token@host``) is shown ``http://***@host``: it is often a token;
* the value of a ``-H`` header whose name says it carries credentials (``is_secret_header``):
  ``Authorization: Basic dXNlcjpwYXNz`` is shown ``Authorization: ***``;
* ``-H`` text that is not ``Name: value`` at all: at most its first word is shown.

Only what is shown changes: the request still sends the credentials.
"""

from __future__ import annotations

import base64
import re

MASK = "***"
UNENCODED_PASSWORD = "a password with '/', '?' or '#' in it must be percent-encoded (%2F, %3F, %23)"
"""Why ``user:pa/ss@host`` is refused: its host would be ``user`` and its port part of the
password, which no message may show."""

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_SECRET_NAME = re.compile(r"auth|cookie|token|secret|passw|key|session|credential|signature", re.I)
"""A header is secret when its name holds one of these: ``Authorization``,
``Proxy-Authorization``, ``Cookie``, ``X-Auth-Token``, ``X-API-Key``, ``X-Session-Id``,
``X-Amz-Signature`` ... A false positive costs a hidden value in a message; a false negative, a
leaked credential."""


def redact_url(text: str) -> str:
    """``text`` (a URL, or a bare ``[user[:password]@]host[:port][/path]``) with the user
    information's secret part replaced by ``***``; text without user information is returned
    as it is. The authority ends at the first ``/``, ``?`` or ``#``, as RFC 3986 reads it, so an
    ``@`` in a path (``https://example.social/@name``) is left alone; but when what stands before
    it is ``user:word`` (no port), a password typed with ``/``, ``?`` or ``#`` in it is hidden
    up to its ``@`` all the same."""
    if "@" not in text:
        return text  # the common case: nothing to look for
    start = _authority_start(text)
    end = len(text)
    for separator in "/?#":
        index = text.find(separator, start)
        if index != -1:
            end = min(end, index)
    at = text.rfind("@", start, end)
    if at == -1:
        _host, colon, port = text[start:end].partition(":")
        if not colon or port.isdigit() or text.startswith("[", start):
            return text  # an ``@`` in the path, after a real host[:port]
        # ``user:pa/ss@host``: an unencoded ``/``, ``?`` or ``#`` in a password ends the authority
        # early, and what stands for a port is its first part; the secret runs on to an ``@``.
        at = text.find("@", end)
        found = (text.find(separator, at) for separator in "/?#")
        end = min((index for index in found if index != -1), default=len(text))
        at = text.rfind("@", start, end)
    if at == start:
        return text  # ``@host``: no user information to hide
    user, colon, _password = text[start:at].partition(":")
    shown = f"{user}:{MASK}" if colon else MASK
    return text[:start] + shown + text[at:]


def redact_cut_url(text: str) -> str:
    """``redact_url`` of the start of a URL whose rest is cut off (the record of an overlong
    line). Where the start ends inside the authority (no ``/``, ``?`` or ``#`` in it yet), the
    authority's ``@`` may lie beyond the cut, and all of what is shown of it may be user
    information: it is masked, but for a user name before a ``:`` (``http://user:secr`` ->
    ``http://user:***``, ``github_pat_11AB`` -> ``***``, ``http://u:P@ssw0rd-`` -> ``http://u:***``).
    A start whose authority has ended (``http://host/pa``) is ``redact_url``'s."""
    start = _authority_start(text)
    if _IPV6_AUTHORITY.fullmatch(text, start) and _is_ipv6(text[start + 1 : text.index("]")]):
        return text  # [::1] or [::1]:8080 whole: an address, no user information
    if any(separator in text[start:] for separator in "/?#"):
        return redact_url(text + "@")[:-1]  # also a password with an unencoded / ? or # cut
    user, colon, _rest = text[start:].partition(":")
    shown = f"{user}:{MASK}" if colon and "@" not in user else MASK
    return text[:start] + shown if text[start:] else text


_IPV6_AUTHORITY = re.compile(r"\[[0-9A-Fa-f:.]+\](?::[0-9]*)?")
"""A bracketed IPv6 literal and its port, all of a cut start's authority: a user name may also
begin with ``[`` (``http://[admin:password@host``), which this does not match."""


def _is_ipv6(text: str) -> bool:
    import ipaddress  # only the record of an overlong line pays for the import

    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _authority_start(text: str) -> int:
    """Where the authority of ``text`` (a URL, or a bare ``[userinfo@]host...``) begins: after
    the scheme, and after any slashes too many (``http:///user:pw@host``, ``//user:pw@host``)."""
    scheme = _SCHEME.match(text)
    start = scheme.end() if scheme else 0
    while text.startswith("/", start):
        start += 1
    return start


def has_unencoded_password(text: str) -> bool:
    """Whether ``text`` hides a password that its authority does not hold (``user:pa/ss@host``)."""
    if "@" not in text:
        return False
    start = _authority_start(text)
    authority = re.split(r"[/?#]", text[start:], maxsplit=1)[0]
    return "@" not in authority and redact_url(text) != text


def basic_authorization(userinfo: str) -> str:
    """The ``Basic`` credentials (RFC 7617) for the user information of a URL, ``user:password``
    percent-encoded as written there; a user without a password has an empty one, as in curl."""
    from urllib.parse import unquote  # only URLs with credentials pay for the import

    user, _colon, password = userinfo.partition(":")
    credentials = f"{unquote(user)}:{unquote(password)}"
    return "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")


def is_secret_header(name: str) -> bool:
    """Whether the value of request header ``name`` is kept out of every message."""
    return _SECRET_NAME.search(name) is not None


def redact_header(text: str) -> str:
    """``-H`` text as a message may show it: ``Name: ***`` for a secret header, the text unchanged
    for another header. Text that is not ``Name: value`` shows only its first word when it has
    several (``Authorization ***``), else nothing: where a secret starts in it is unknown."""
    name, colon, _value = text.partition(":")
    if colon and len(name.split()) == 1:
        return f"{name}: {MASK}" if is_secret_header(name) else text
    words = text.split(None, 1)
    return f"{words[0]} {MASK}" if len(words) == 2 else MASK
