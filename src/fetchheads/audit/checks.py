"""The Observatory's tests other than CSP and cookies, one function each, on one response head.

Each returns ``(result id, reason)``; ``grader`` adds the modifier and pass. The logic follows
``src/analyzer/tests/<name>.js`` of the MDN HTTP Observatory; a repeated header is read as the
Observatory's HTTP client reads it, the values joined with ``", "`` (``HeaderView.joined``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from urllib.parse import urlsplit

from fetchheads.audit.model import Exchange, HeaderView, quoted

Outcome = tuple[str, str]

SIX_MONTHS = 15_552_000
"""The Observatory's six months: 15768000 is six months, but so many sites send 15552000 (180
days) that it accepts that (its own comment: "a white lie is in order")."""

REFERRER_PRIVATE = (
    "no-referrer",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
)
REFERRER_UNSAFE = ("origin", "origin-when-cross-origin", "unsafe-url", "no-referrer-when-downgrade")
REFERRER_VALID = frozenset(REFERRER_PRIVATE + REFERRER_UNSAFE)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


MAX_AGE_SHOWN = 20
"""Digits of a max-age a reason shows: a server may send hundreds."""

_ONCE = {"max-age": "max-age", "includesubdomains": "includeSubDomains"}
"""The directives Chromium and Firefox count: a header that repeats one of them is dropped."""


@dataclasses.dataclass(frozen=True, slots=True)
class Hsts:
    max_age: int | None
    include_subdomains: bool
    preload: bool
    problem: str | None  # why the header is invalid, None when it is not


def parse_hsts(value: str) -> Hsts:
    """RFC 6797 §6.1, as strict as the Observatory: a comma (the header sent twice) or a missing
    or non-numeric ``max-age`` make the header invalid. Unlike the Observatory, the header is
    also invalid where browsers ignore it: ``max-age=abc`` (JavaScript's ``parseInt`` gives NaN,
    which the Observatory then passes) and ``max-age`` or ``includeSubDomains`` given twice
    (Chromium and Firefox drop the header; the Observatory reads the last ``max-age``). The quoted
    form RFC 6797 allows (``max-age="31536000"``) is read, and so is a max-age of any length
    (browsers cap it; it is at least six months)."""
    value = value[:1024]
    if "," in value:
        return Hsts(None, False, False, "it holds a comma: the header is sent more than once")
    max_age: int | None = None
    include = preload = False
    problem: str | None = None
    seen: set[str] = set()
    for directive in value.split(";"):
        name, _, argument = directive.partition("=")
        name = name.strip().lower()
        if name in seen and name in _ONCE:
            problem = problem or f"{_ONCE[name]} is given more than once: browsers ignore it"
        seen.add(name)
        if name == "max-age":
            argument = argument.strip()
            if len(argument) > 1 and argument[0] == argument[-1] == '"':  # a quoted-string
                argument = argument[1:-1]
            if argument.isascii() and argument.isdigit():
                max_age = int(argument)
            else:
                problem = f"max-age {quoted(argument)} is not a number of seconds"
        elif name == "includesubdomains":
            include = True
        elif name == "preload":
            preload = True
    if max_age is None and problem is None:
        problem = "it has no max-age"
    return Hsts(max_age, include, preload, problem)


def hsts_check(exchange: Exchange, headers: HeaderView) -> Outcome:
    """``src/analyzer/tests/strict-transport-security.js``. Preloading needs Chromium's preload
    list, which a head-only audit does not have: nothing is graded as preloaded."""
    if not exchange.https:
        return "hsts-not-implemented-no-https", "the response came over http: HSTS needs https"
    if exchange.tls_verified is not True:
        why = "failed verification" if exchange.tls_verified is False else "was not verified (-k)"
        return "hsts-invalid-cert", f"the certificate {why}: HSTS needs a valid certificate"
    value = headers.joined("strict-transport-security")
    if value is None:
        return "hsts-not-implemented", "no Strict-Transport-Security header"
    hsts = parse_hsts(value)
    if hsts.problem is not None or hsts.max_age is None:
        return "hsts-header-invalid", f"Strict-Transport-Security is invalid: {hsts.problem}"
    extras = "".join(
        f", {name}"
        for name, on in (("includeSubDomains", hsts.include_subdomains), ("preload", hsts.preload))
        if on
    )
    seconds = str(hsts.max_age)
    if len(seconds) > MAX_AGE_SHOWN:
        seconds = seconds[:MAX_AGE_SHOWN] + "…"
    said = f"max-age={seconds}{extras}"
    if hsts.max_age < SIX_MONTHS:
        return "hsts-implemented-max-age-less-than-six-months", f"{said}: less than six months"
    note = " (preload list not consulted: not graded as preloaded)" if hsts.preload else ""
    return "hsts-implemented-max-age-at-least-six-months", f"{said}: at least six months{note}"


def redirection_check(exchange: Exchange, headers: HeaderView) -> Outcome:
    """``src/analyzer/tests/redirection.js``. The Observatory always fetches ``http://HOST/`` and
    follows it; fetchheads grades the chain it was given: the target must be an http URL and its
    redirects followed (``-L``). Nothing is graded as preloaded (no preload list offline)."""
    route = [hop.url for hop in exchange.redirects] + [exchange.url]
    if route[0][:7].lower() != "http://":
        return "redirection-not-tested", (
            "the target is https: audit its http:// URL with -L to grade the redirect to https"
        )
    if len(route) == 1:
        if exchange.status in REDIRECT_STATUSES and headers.all("location"):
            return "redirection-not-tested", (
                f"the http target answered {exchange.status} and the redirect was not followed:"
                " run with -L to grade where it leads"
            )
        return "redirection-missing", "the http target does not redirect to https"
    first, last = urlsplit(route[0]), urlsplit(route[-1])
    if last.scheme == "https" and exchange.tls_verified is not True:
        why = "failed verification" if exchange.tls_verified is False else "was not verified (-k)"
        return "redirection-invalid-cert", f"the certificate of {route[-1]} {why}"
    if last.scheme != "https":
        return "redirection-not-to-https", f"the redirects end on {route[-1]}, not https"
    second = last if len(route) == 2 else urlsplit(route[1])
    if second.scheme == "http":
        return "redirection-not-to-https-on-initial-redirection", (
            f"the first redirect goes to {route[1]}, still http"
        )
    first_host, second_host = first.hostname, second.hostname
    if first_host != second_host:
        return "redirection-off-host-from-http", (
            f"the first redirect leaves {first_host} for {second_host}:"
            " HSTS set there does not cover the host typed"
        )
    return "redirection-to-https", f"redirects to https on the same host, ends on {route[-1]}"


def referrer_check(headers: HeaderView) -> Outcome:
    """``src/analyzer/tests/referrer-policy.js``: the last valid policy in the list wins."""
    value = headers.joined("referrer-policy")
    if value is None:
        return "referrer-policy-not-implemented", "no Referrer-Policy header"
    valid = [p for p in (part.strip().lower() for part in value.split(",")) if p in REFERRER_VALID]
    if not valid:
        return "referrer-policy-header-invalid", "Referrer-Policy names no known policy"
    policy = valid[-1]
    if policy in REFERRER_PRIVATE:
        return "referrer-policy-private", f"Referrer-Policy is {policy}"
    return "referrer-policy-unsafe", f"Referrer-Policy {policy} leaks the URL to other sites"


def xcto_check(headers: HeaderView) -> Outcome:
    """``src/analyzer/tests/x-content-type-options.js``."""
    value = headers.joined("x-content-type-options")
    if value is None:
        return "x-content-type-options-not-implemented", "no X-Content-Type-Options header"
    if value[:256].strip().lower() == "nosniff":
        return "x-content-type-options-nosniff", "X-Content-Type-Options is nosniff"
    return "x-content-type-options-header-invalid", (
        f"X-Content-Type-Options is {quoted(value)}, not nosniff"
    )


def xfo_check(headers: HeaderView, frame_ancestors: tuple[str, ...] | None) -> Outcome:
    """``src/analyzer/tests/x-frame-options.js``: a CSP ``frame-ancestors`` supersedes the header
    (browsers ignore X-Frame-Options when it is there), whatever X-Frame-Options says."""
    if frame_ancestors is not None:
        return "x-frame-options-implemented-via-csp", (
            f"CSP frame-ancestors {' '.join(frame_ancestors)} controls framing"
        )
    value = headers.joined("x-frame-options")
    if value is None:
        return "x-frame-options-not-implemented", "neither X-Frame-Options nor CSP frame-ancestors"
    xfo = value[:1024].strip().lower()
    if xfo in ("deny", "sameorigin"):
        return "x-frame-options-sameorigin-or-deny", f"X-Frame-Options is {xfo.upper()}"
    if xfo.startswith("allow-from"):
        return "x-frame-options-allow-from-origin", "X-Frame-Options uses ALLOW-FROM"
    return (
        "x-frame-options-header-invalid",
        f"X-Frame-Options {quoted(value)} is not DENY or SAMEORIGIN",
    )


def cors_check(exchange: Exchange, headers: HeaderView) -> Outcome:
    """``src/analyzer/tests/cors.js``. Universal access is an ``Access-Control-Allow-Origin``
    that echoes the request's ``Origin`` with credentials allowed; fetchheads sends no ``Origin``
    unless ``-H`` adds one, so without one an echo cannot be seen and is not assumed."""
    acao = headers.all("access-control-allow-origin")
    if not acao:
        return "cross-origin-resource-sharing-not-implemented", "no Access-Control-Allow-Origin"
    value = acao[0][:256].strip().lower()
    if value == "*":
        return "cross-origin-resource-sharing-implemented-with-public-access", (
            "Access-Control-Allow-Origin is * (public, never with credentials)"
        )
    credentials = (headers.all("access-control-allow-credentials") or [""])[0]
    origin = exchange.request_origin
    if origin is not None and acao[0] == origin and credentials.strip().lower() == "true":
        return "cross-origin-resource-sharing-implemented-with-universal-access", (
            f"the request's Origin {origin} is echoed with credentials allowed"
        )
    if origin is None:
        return "cross-origin-resource-sharing-implemented-with-restricted-access", (
            "restricted to named origins; no Origin was sent, so an echo of any origin is not"
            " tested (add -H 'Origin: https://example.org')"
        )
    return "cross-origin-resource-sharing-implemented-with-restricted-access", (
        f"restricted to named origins; the Origin {origin} sent is not echoed with credentials"
    )


def corp_check(headers: HeaderView) -> Outcome:
    """``src/analyzer/tests/cross-origin-resource-policy.js``."""
    value = headers.joined("cross-origin-resource-policy")
    if value is None:
        return "corp-not-implemented", "no Cross-Origin-Resource-Policy (cross-origin by default)"
    policy = value[:256].strip().lower()
    if policy in ("same-origin", "same-site", "cross-origin"):
        return f"corp-implemented-with-{policy}", f"Cross-Origin-Resource-Policy is {policy}"
    return "corp-header-invalid", f"Cross-Origin-Resource-Policy {quoted(value)} is not a policy"


COOP_POLICIES = ("same-origin", "same-origin-allow-popups", "noopener-allow-popups", "unsafe-none")
COEP_POLICIES = ("require-corp", "credentialless", "unsafe-none")


def policy_token_check(
    headers: HeaderView, name: str, prefix: str, policies: tuple[str, ...]
) -> Outcome:
    """``cross-origin-opener-policy.js`` / ``cross-origin-embedder-policy.js``: the value is an
    RFC 8941 item whose bare item is a token naming a policy; more than one line is invalid."""
    values = headers.all(name)
    title = _title(name)
    if not values:
        return f"{prefix}-not-implemented", f"no {title}"
    if len(values) > 1:
        return f"{prefix}-header-invalid", f"{title} is sent {len(values)} times"
    token = structured_token(values[0][:1024].strip())
    if token in policies:
        return f"{prefix}-implemented-with-{token}", f"{title} is {token}"
    return f"{prefix}-header-invalid", f"{title} {quoted(values[0])} is not a policy token"


@functools.cache
def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_BARE_ITEM = re.compile(
    r'-?\d{1,15}(?:\.\d{1,3})?|"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"'
    r"|[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*|:[A-Za-z0-9+/=]*:|\?[01]"
)


def structured_token(value: str) -> str | None:
    """The bare item of an RFC 8941 §4.2.3 item when it is a token, else ``None`` (also when the
    value is not a valid item: browsers then ignore the header as a whole)."""
    match = _TOKEN.match(value)
    if match is None:
        return None
    position = match.end()
    while position < len(value):
        if value[position] != ";":
            return None
        position += 1
        while position < len(value) and value[position] == " ":
            position += 1
        key = _KEY.match(value, position)
        if key is None:
            return None
        position = key.end()
        if position < len(value) and value[position] == "=":
            item = _BARE_ITEM.match(value, position + 1)
            if item is None:
                return None
            position = item.end()
    return match.group()
