"""Findings: what is worth fixing in a head but is not graded.

- disclosure: a header from the OWASP Secure Headers Project's list of headers to remove
  (``disclosure.json``); ``Server`` only when its value carries a version.
- deprecated: headers browsers no longer act on (reported, never graded).
- duplicate: a security header sent more than once where that makes it invalid or ambiguous.
- malformed: a security header whose value is not what its grammar allows.
- ineffective: a header that is valid but does nothing where it is.
- note: how the grade should be read (a 401/403 page, an unfollowed redirect).
"""

from __future__ import annotations

import functools
import re

from fetchheads.audit.checks import REDIRECT_STATUSES, parse_hsts, structured_token
from fetchheads.audit.csp import DANGEROUSLY_BROAD
from fetchheads.audit.model import Exchange, Finding, HeaderView, quoted
from fetchheads.audit.rules import disclosure_headers

DEPRECATED = {
    "x-xss-protection": "browsers removed the XSS auditor; rely on Content-Security-Policy",
    "expect-ct": "Certificate Transparency is enforced by browsers; the header is obsolete",
    "public-key-pins": "HTTP Public Key Pinning was removed from browsers",
    "public-key-pins-report-only": "HTTP Public Key Pinning was removed from browsers",
    "feature-policy": "replaced by Permissions-Policy",
}

SINGLE = frozenset(
    {
        "strict-transport-security",
        "x-frame-options",
        "x-content-type-options",
        "cross-origin-resource-policy",
        "cross-origin-opener-policy",
        "cross-origin-embedder-policy",
        "access-control-allow-origin",
        "access-control-allow-credentials",
    }
)
"""Security headers that must be sent once: repeated, the values are joined with ", " and the
result is invalid (or, for Access-Control-Allow-Origin, the CORS check fails)."""

_VERSION = re.compile(r"\d+\.\d+|/\s*v?\d")


def findings(
    exchange: Exchange, headers: HeaderView, frame_ancestors: tuple[str, ...] | None = None
) -> list[Finding]:
    """Every finding for one response; ``frame_ancestors`` is the CSP directive as the CSP check
    combined it (``None``: unset), so the policy is not parsed twice. In order: each header's
    (``header_findings``, in the order of first appearance), then the response's
    (``response_findings``)."""
    found: list[Finding] = []
    about = found_in()
    for name in headers.names():
        if name in about:
            found += header_findings(headers.spelled(name), tuple(headers.all(name)))
    return found + response_findings(exchange, headers, frame_ancestors)


@functools.cache
def found_in() -> frozenset[str]:
    """Every (lower-cased) header ``header_findings`` has something to say about."""
    return frozenset(disclosure_headers() | DEPRECATED.keys() | SINGLE)


def header_findings(spelled: str, values: tuple[str, ...]) -> list[Finding]:
    """What one header says by itself: ``spelled`` as the server first spelled it, ``values``
    every line of it. Nothing for a header outside ``found_in()``."""
    name = spelled.lower()
    found: list[Finding] = []
    if name in disclosure_headers() and (
        name != "server" or any(_VERSION.search(v) for v in values)
    ):
        found.append(
            Finding("disclosure", spelled, f"{spelled}: {quoted(values[0])} discloses software")
        )
    if name in DEPRECATED:
        found.append(Finding("deprecated", spelled, f"{spelled} is deprecated: {DEPRECATED[name]}"))
    if name in SINGLE and len(values) > 1:
        found.append(
            Finding("duplicate", spelled, f"{spelled} is sent {len(values)} times: send it once")
        )
    return found


def response_findings(
    exchange: Exchange, headers: HeaderView, frame_ancestors: tuple[str, ...] | None
) -> list[Finding]:
    """What the security headers say together, and the notes on how to read the grade: of the
    headers they read only those ``grader.INPUTS`` names (and the status, and the scheme)."""
    return _malformed(exchange, headers, frame_ancestors) + _notes(exchange, headers)


def _malformed(
    exchange: Exchange, headers: HeaderView, frame_ancestors: tuple[str, ...] | None
) -> list[Finding]:
    found: list[Finding] = []
    for value in headers.all("strict-transport-security"):
        problem = parse_hsts(value).problem
        if problem is not None and "comma" not in problem:
            found.append(_bad(headers, "strict-transport-security", f"is invalid: {problem}"))
    if headers.all("strict-transport-security") and not exchange.https:
        found.append(
            Finding(
                "ineffective",
                headers.spelled("strict-transport-security"),
                "Strict-Transport-Security sent over http is ignored by browsers",
            )
        )
    for value in headers.all("x-frame-options"):
        xfo = value.strip().lower()
        if xfo.startswith("allow-from"):
            found.append(
                Finding(
                    "ineffective",
                    headers.spelled("x-frame-options"),
                    "X-Frame-Options ALLOW-FROM is ignored by browsers: use CSP frame-ancestors",
                )
            )
        elif xfo not in ("deny", "sameorigin"):
            found.append(
                _bad(headers, "x-frame-options", f"{quoted(value)} is not DENY or SAMEORIGIN")
            )
    for value in headers.all("x-content-type-options"):
        if value.strip().lower() != "nosniff":
            found.append(_bad(headers, "x-content-type-options", f"{quoted(value)} is not nosniff"))
    for value in headers.all("cross-origin-resource-policy"):
        if value.strip().lower() not in ("same-origin", "same-site", "cross-origin"):
            found.append(
                _bad(headers, "cross-origin-resource-policy", f"{quoted(value)} is not a policy")
            )
    for name in ("cross-origin-opener-policy", "cross-origin-embedder-policy"):
        for value in headers.all(name):
            if structured_token(value.strip()) is None:
                found.append(_bad(headers, name, f"{quoted(value)} is not a policy token"))
    acao = headers.all("access-control-allow-origin")
    credentials = headers.all("access-control-allow-credentials")
    if acao and acao[0].strip() == "*" and any(c.strip().lower() == "true" for c in credentials):
        found.append(
            Finding(
                "ineffective",
                headers.spelled("access-control-allow-credentials"),
                "Access-Control-Allow-Credentials: true with Access-Control-Allow-Origin: *"
                " is refused by browsers",
            )
        )
    if frame_ancestors is not None and any(s in DANGEROUSLY_BROAD for s in frame_ancestors):
        found.append(
            Finding(
                "ineffective",
                headers.spelled("content-security-policy"),
                "CSP frame-ancestors allows any site, so it does not prevent clickjacking",
            )
        )
    return found


def _bad(headers: HeaderView, name: str, problem: str) -> Finding:
    spelled = headers.spelled(name)
    return Finding("malformed", spelled, f"{spelled} {problem}")


def _notes(exchange: Exchange, headers: HeaderView) -> list[Finding]:
    found: list[Finding] = []
    if exchange.status in (401, 403):
        found.append(
            Finding(
                "note",
                None,
                f"graded on a {exchange.status} answer: it may be a gateway's or WAF's page,"
                " not the site's",
            )
        )
    if exchange.status in REDIRECT_STATUSES and headers.all("location"):
        found.append(
            Finding(
                "note",
                None,
                f"graded on the {exchange.status} redirect itself: run with -L to grade where it"
                " leads",
            )
        )
    return found
