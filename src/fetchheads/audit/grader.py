"""Run every test on one exchange, score and grade it: ``grade`` on plain data, ``audit_result``
on a fetch's ``Result``.

The arithmetic is the Observatory's (``src/scanner/index.js``, ``src/grader/grader.js``): start at
100, add every penalty; add the bonuses too only when the score after penalties is still at least
``extra_credit_minimum`` (90); floor at 0; the grade is the table's letter for the score rounded
down to a multiple of 5 (capped at 100). The score itself is kept as computed (every modifier is a
multiple of 5, so it is already round).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from fetchheads.audit.checks import (
    COEP_POLICIES,
    COOP_POLICIES,
    corp_check,
    cors_check,
    hsts_check,
    policy_token_check,
    redirection_check,
    referrer_check,
    xcto_check,
    xfo_check,
)
from fetchheads.audit.cookies import cookies_check
from fetchheads.audit.csp import PASSING as CSP_PASSING
from fetchheads.audit.csp import CspOutcome, check_csp
from fetchheads.audit.findings import findings
from fetchheads.audit.model import Audit, Check, Exchange, HeaderView
from fetchheads.audit.rules import Rules, default_rules
from fetchheads.models import Redirect, Result

PASSING = CSP_PASSING | {
    "csp-implemented-but-duplicate-directives",
    "cookies-not-found",
    "cookies-secure-with-httponly-sessions",
    "cookies-secure-with-httponly-sessions-and-samesite",
    "cross-origin-resource-sharing-not-implemented",
    "cross-origin-resource-sharing-implemented-with-public-access",
    "cross-origin-resource-sharing-implemented-with-restricted-access",
    "redirection-to-https",
    "redirection-not-needed-no-http",
    "redirection-all-redirects-preloaded",
    "referrer-policy-private",
    "referrer-policy-not-implemented",
    "hsts-implemented-max-age-at-least-six-months",
    "hsts-preloaded",
    "x-content-type-options-nosniff",
    "x-frame-options-implemented-via-csp",
    "x-frame-options-sameorigin-or-deny",
    "x-frame-options-allow-from-origin",
    "corp-not-implemented",
    "corp-implemented-with-same-origin",
    "corp-implemented-with-same-site",
    "corp-implemented-with-cross-origin",
}
"""The results each Observatory test counts as passed; every other result fails, except the
``-not-tested`` ones (passed is ``None``) and COOP/COEP, which pass unless invalid."""

NOT_TESTED = frozenset({"redirection-not-tested", "sri-not-tested"})
HSTS_PASSED = "hsts-implemented-max-age-at-least-six-months"


def graded_status(status: int) -> bool:
    """The Observatory grades 2xx, 3xx, 401 and 403 responses, nothing else."""
    return 200 <= status < 400 or status in (401, 403)


def score_of(modifiers: Iterable[int], rules: Rules) -> int:
    """100 plus the penalties, plus the bonuses when the penalties leave at least the minimum."""
    modifiers = list(modifiers)
    penalised = 100 + sum(m for m in modifiers if m < 0)
    score = 100 + sum(modifiers) if penalised >= rules.extra_credit_minimum else penalised
    return max(score, 0)


def grade(
    url: str,
    status: int,
    headers: Iterable[Sequence[str]],
    *,
    tls_verified: bool | None,
    redirects: Iterable[Redirect] = (),
    request_origin: str | None = None,
    rules: Rules | None = None,
) -> Audit:
    """Audit one response from plain data: its final ``url``, ``status``, header pairs in wire
    order (tuples, or the two-item lists JSON gives back), whether the certificate was verified,
    and the redirects followed to it. See ``Exchange`` for each field."""
    exchange = Exchange(
        url=url,
        status=status,
        headers=tuple((str(name), str(value)) for name, value in headers),
        tls_verified=tls_verified,
        redirects=tuple(redirects),
        request_origin=request_origin,
    )
    return audit(exchange, rules)


def audit(exchange: Exchange, rules: Rules | None = None) -> Audit:
    rules = rules or default_rules()
    headers = HeaderView(exchange.headers)
    csp = _cached_csp(
        tuple(headers.all("content-security-policy")),
        bool(headers.all("content-security-policy-report-only")),
        exchange.https,
    )
    found = tuple(findings(exchange, headers, csp.frame_ancestors))
    if not graded_status(exchange.status):
        return Audit(
            graded=False,
            status=exchange.status,
            score=None,
            grade=None,
            rules_version=rules.version,
            findings=found,
            reason=(
                f"status {exchange.status} is not graded: the Observatory grades only 2xx, 3xx,"
                " 401 and 403 responses"
            ),
        )
    verdicts = _verdicts(rules)
    checks = [
        Check(name, result, *verdicts[result], reason)
        for name, (result, reason) in _outcomes(exchange, headers, csp)
    ]
    score = score_of((check.score_modifier for check in checks), rules)
    return Audit(
        graded=True,
        status=exchange.status,
        score=score,
        grade=rules.grade_for(score),
        rules_version=rules.version,
        tests=tuple(checks),
        findings=found,
    )


def _outcomes(
    exchange: Exchange, headers: HeaderView, csp: CspOutcome
) -> list[tuple[str, tuple[str, str]]]:
    hsts = hsts_check(exchange, headers)
    protected = hsts[0] == HSTS_PASSED  # the Observatory's "protected by HSTS" for cookies
    cookies, _ = cookies_check(headers.all("set-cookie"), protected)
    return [
        ("content-security-policy", (csp.result, csp.reason)),
        ("cookies", cookies),
        ("cross-origin-resource-sharing", cors_check(exchange, headers)),
        ("redirection", redirection_check(exchange, headers)),
        ("referrer-policy", referrer_check(headers)),
        ("strict-transport-security", hsts),
        (
            "subresource-integrity",
            ("sri-not-tested", "needs the body: a head-only audit cannot see the scripts"),
        ),
        ("x-content-type-options", xcto_check(headers)),
        ("x-frame-options", xfo_check(headers, csp.frame_ancestors)),
        ("cross-origin-resource-policy", corp_check(headers)),
        (
            "cross-origin-opener-policy",
            policy_token_check(headers, "cross-origin-opener-policy", "coop", COOP_POLICIES),
        ),
        (
            "cross-origin-embedder-policy",
            policy_token_check(headers, "cross-origin-embedder-policy", "coep", COEP_POLICIES),
        ),
    ]


CSP_CACHE_SIZE = 4096
"""Distinct Content-Security-Policy values remembered: parsing a policy is most of the cost of
grading a head, and the hosts of one estate (one run, one database) mostly share a few policies;
bounded, as one run may meet a policy with a nonce per response."""


@functools.lru_cache(maxsize=CSP_CACHE_SIZE)
def _cached_csp(enforced: tuple[str, ...], reporting: bool, https: bool) -> CspOutcome:
    """``check_csp`` by value: its outcome is frozen, and depends on the report-only header only
    through whether there is one."""
    return check_csp(enforced, ("",) if reporting else (), https)


@functools.cache
def _verdicts(rules: Rules) -> dict[str, tuple[bool | None, int]]:
    """Result id -> (passed, score modifier) under ``rules``, worked out once per rules."""
    verdicts: dict[str, tuple[bool | None, int]] = {}
    for result, modifier in rules.modifiers.items():
        if result in NOT_TESTED:
            passed: bool | None = None
        elif result.startswith(("coop-", "coep-")):
            passed = not result.endswith("-header-invalid")
        else:
            passed = result in PASSING
        verdicts[result] = (passed, modifier)
    return verdicts


def audit_result(
    result: Result, *, insecure: bool = False, request_origin: str | None = None
) -> Audit | None:
    """The audit of a fetched target; ``None`` when it has no complete response to grade (an
    error, including a redirect chain that could not be followed to its end).

    ``insecure``: the run used ``-k``, so a certificate was not verified. Without it, an https
    response was received only after its certificate verified.
    """
    if result.head is None or result.error is not None or result.url is None:
        return None
    https = result.url[:8].lower() == "https://"
    verified = (not insecure) if https else None
    return grade(
        result.url,
        result.head.status,
        result.head.headers,
        tls_verified=verified,
        redirects=result.redirects,
        request_origin=request_origin,
    )
