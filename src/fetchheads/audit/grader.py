"""Run every test on one exchange, score and grade it: ``grade`` on plain data, ``audit_result``
on a fetch's ``Result``.

The arithmetic is the Observatory's (``src/scanner/index.js``, ``src/grader/grader.js``): start at
100, add every penalty; add the bonuses too only when the score after penalties is still at least
``extra_credit_minimum`` (90); floor at 0; the grade is the table's letter for the score rounded
down to a multiple of 5 (capped at 100). The score itself is kept as computed (every modifier is a
multiple of 5, so it is already round).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, Iterable, Sequence

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
from fetchheads.audit.findings import findings, found_in, header_findings, response_findings
from fetchheads.audit.model import Audit, Check, Exchange, Finding, HeaderView
from fetchheads.audit.rules import Rules, default_rules
from fetchheads.models import Headers, Redirect, Result

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
    """The audit of ``exchange``: the headers' own findings (``header_findings``, per header)
    and the rest, worked out once per distinct ``Key`` (see ``AUDIT_CACHE_SIZE``)."""
    return _audited(
        exchange.url,
        exchange.status,
        exchange.headers,
        exchange.tls_verified,
        exchange.redirects,
        exchange.request_origin,
        rules or default_rules(),
        exchange,
    )


def _audited(
    url: str,
    status: int,
    headers: Headers,
    tls_verified: bool | None,
    redirects: tuple[Redirect, ...],
    request_origin: str | None,
    rules: Rules,
    exchange: Exchange | None = None,
) -> Audit:
    """``audit`` from the exchange's fields: a cache hit builds no ``Exchange`` (``exchange``,
    when the caller has one, is used as it is)."""
    names = tuple(map(_name, headers))
    plan = _PLANS.get(names)
    if plan is None:
        plan = _plan(names)
    pick_inputs, shaped, pick_about = plan
    inputs = pick_inputs(headers)
    if shaped:
        lines = list(inputs)
        for at, shape in shaped:
            name, value = lines[at]
            lines[at] = (name, shape(value))
        inputs = tuple(lines)
    about = pick_about(headers)
    # The key: everything the tests and ``response_findings`` read but the URLs of a redirect
    # chain, which only ``redirection`` reads (``_rerouted``): the URL matters by its scheme.
    first = redirects[0].url if redirects else url
    https = url[:8].lower() == "https://"
    key: Key = (
        status,
        https,
        first[:7].lower() == "http://",
        bool(redirects),
        tls_verified,
        request_origin,
        inputs,
    )
    cache = _cache(rules)
    entry = cache.get(key)
    if entry is None:
        if exchange is None:
            exchange = Exchange(url, status, headers, tls_verified, redirects, request_origin)
        only = dataclasses.replace(exchange, headers=key[-1])
        entry = (_audit_of(only, rules, response_findings), {})
        if len(cache) >= AUDIT_CACHE_SIZE:
            del cache[next(iter(cache))]  # the oldest: first in, first out
        cache[key] = entry
    graded, told = entry
    if redirects and graded.graded:
        if exchange is None:
            exchange = Exchange(url, status, headers, tls_verified, redirects, request_origin)
        return _told(_rerouted(graded, exchange, key[-1], rules), about)
    if not about:
        return graded
    audit = told.get(about)
    if audit is None:
        audit = _told(graded, about)
        if len(told) < TOLD_SIZE:
            told[about] = audit
    return audit


def _told(graded: Audit, about: Headers) -> Audit:
    """``graded`` with the findings of the headers ``about`` (``header_findings``) first."""
    found = _about_findings(about) if about else ()
    if not found:
        return graded
    return Audit(  # not dataclasses.replace, which costs more than the rest of a cache hit
        graded.graded,
        graded.status,
        graded.score,
        graded.grade,
        graded.rules_version,
        graded.tests,
        (*found, *graded.findings),
        graded.reason,
    )


INPUTS = frozenset(
    {
        "content-security-policy",
        "content-security-policy-report-only",
        "set-cookie",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "location",
        "referrer-policy",
        "strict-transport-security",
        "x-content-type-options",
        "x-frame-options",
        "cross-origin-resource-policy",
        "cross-origin-opener-policy",
        "cross-origin-embedder-policy",
    }
)
"""The headers the tests and ``response_findings`` read: only these are handed to them (so a
test that read another would see none, cached or not, and its own tests would fail), and only
these are in the cache key, so a ``Date`` or an ``ETag`` does not make a head new."""


def _cookie_shape(line: str) -> str:
    """A ``Set-Cookie`` line without the cookie's value, which no test reads: sessions differ in
    their values only. ``parse_set_cookie`` reads the same name and attributes from it."""
    pair, semicolon, attributes = line.partition(";")
    name, equals, _ = pair.partition("=")
    return f"{name}{equals}{semicolon}{attributes}"


def _present(value: str) -> str:
    return ""


_SHAPES = {
    "set-cookie": _cookie_shape,
    "location": _present,  # the tests ask only whether there is one
    "content-security-policy-report-only": _present,  # likewise
}
"""What of a header's value the tests read, where it is not the whole value."""


_INPUT, _ABOUT, _BOTH = "input", "about", "both"
_WATCHED: dict[str, str | Callable[[str], str]] = {
    **dict.fromkeys(found_in(), _ABOUT),
    **dict.fromkeys(INPUTS, _INPUT),
    **dict.fromkeys(INPUTS & found_in(), _BOTH),
    **_SHAPES,
}
"""Lower-cased name -> what ``audit`` does with a line of it: ``_INPUT``, it is an input
(``INPUTS``); ``_ABOUT``, only its own findings (``header_findings``) read it; ``_BOTH``, both;
else the ``_SHAPES`` entry that makes the input from the line's value."""
assert not _SHAPES.keys() & found_in(), "a shaped input would lose its own findings"

Pick = Callable[[Headers], Headers]
Plan = tuple[Pick, tuple[tuple[int, Callable[[str], str]], ...], Pick]
_PLANS: dict[tuple[str, ...], Plan] = {}
"""By a head's header names as sent, in order: which of its lines are inputs, which of those
are shaped and how, and which are read for their own findings. Servers send the same names in
the same order on every response, so a head's lines are picked at C speed by ``itemgetter``,
not looked at one by one."""
PLANS_SIZE = 1024
"""Name sequences remembered: past this many (a server that invents names), plans are made for
each head."""
_name = operator.itemgetter(0)


def _plan(names: tuple[str, ...]) -> Plan:
    inputs: list[int] = []
    shaped: list[tuple[int, Callable[[str], str]]] = []
    about: list[int] = []
    for at, name in enumerate(names):
        role = _WATCHED.get(name.lower())
        if role is None:
            continue
        if role is _ABOUT or role is _BOTH:
            about.append(at)
        if role is not _ABOUT:
            if callable(role):
                shaped.append((len(inputs), role))
            inputs.append(at)
    plan = (_picker(inputs), tuple(shaped), _picker(about))
    if len(_PLANS) < PLANS_SIZE:
        _PLANS[names] = plan
    return plan


def _picker(positions: list[int]) -> Pick:
    """The lines at ``positions``, as a tuple (``itemgetter`` of one position gives the line)."""
    if not positions:
        return _none
    if len(positions) == 1:
        at = positions[0]
        return lambda headers: (headers[at],)
    return operator.itemgetter(*positions)


def _none(headers: Headers) -> Headers:
    return ()


AUDIT_CACHE_SIZE = 8192
"""Distinct audit inputs remembered (``Key``): the hosts of an estate mostly repeat a few
header sets, and a hit costs a few microseconds where grading costs tens. Bounded (first in,
first out), as a run may meet a new set per response (a CSP nonce); 8,192 audits are a few MiB."""

TOLD_SIZE = 4
"""Per cached audit, the audits with their own findings (a ``Server``, an ``X-Powered-By`` ...)
remembered by those lines: the hosts behind one header set mostly name one or two versions, and
a hit then builds nothing. Past this many, the rest are built for each response."""

Key = tuple[int, bool, bool, bool, bool | None, str | None, Headers]
Entry = tuple[Audit, dict[Headers, Audit]]
"""A cached audit of a ``Key``, and its ``TOLD_SIZE`` audits with findings of their own."""


def _rerouted(graded: Audit, exchange: Exchange, inputs: Headers, rules: Rules) -> Audit:
    """``graded`` (an audit of the same inputs) with ``exchange``'s own redirection test: its
    reason names the URLs of the chain, so it is worked out for each exchange."""
    result, reason = redirection_check(exchange, HeaderView(inputs))
    at = REDIRECTION_AT
    if graded.tests[at].result == result and graded.tests[at].reason == reason:
        return graded
    tests = (
        *graded.tests[:at],
        _check("redirection", result, reason, rules),
        *graded.tests[at + 1 :],
    )
    score = score_of((check.score_modifier for check in tests), rules)
    return dataclasses.replace(graded, tests=tests, score=score, grade=rules.grade_for(score))


@functools.cache
def _cache(rules: Rules) -> dict[Key, Entry]:
    """The audits worked out under ``rules``, by ``Key``, oldest first."""
    return {}


@functools.lru_cache(maxsize=AUDIT_CACHE_SIZE)
def _about_findings(lines: Headers) -> tuple[Finding, ...]:
    """``header_findings`` of each name in ``lines`` (spelled as first sent), in order of first
    appearance: by the lines, as a host sends the same ``Server`` on every head."""
    named: dict[str, tuple[str, list[str]]] = {}
    for name, value in lines:
        known = named.get(name.lower())
        if known is None:
            named[name.lower()] = (name, [value])
        else:
            known[1].append(value)
    found: list[Finding] = []
    for spelled, values in named.values():
        found += header_findings(spelled, tuple(values))
    return tuple(found)


def reference_audit(exchange: Exchange, rules: Rules | None = None) -> Audit:
    """``audit`` without its cache: every header read, every finding and test worked out. It
    gives the same ``Audit`` as ``audit`` for every exchange (``tests/test_audit_cache.py`` and
    ``benchmarks/audit_db.py --verify`` check it)."""
    return _audit_of(exchange, rules or default_rules(), findings)


def _audit_of(
    exchange: Exchange,
    rules: Rules,
    findings_of: Callable[[Exchange, HeaderView, tuple[str, ...] | None], list[Finding]],
) -> Audit:
    """Every test, the score, the grade, and the findings ``findings_of`` gives."""
    headers = HeaderView(exchange.headers)
    csp = _cached_csp(
        tuple(headers.all("content-security-policy")),
        bool(headers.all("content-security-policy-report-only")),
        exchange.https,
    )
    found = tuple(findings_of(exchange, headers, csp.frame_ancestors))
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
    checks = [
        _check(name, result, reason, rules)
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


REDIRECTION_AT = 3
"""Where ``_outcomes`` puts the redirection test."""


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


@functools.lru_cache(maxsize=AUDIT_CACHE_SIZE)
def _check(name: str, result: str, reason: str, rules: Rules) -> Check:
    """One ``Check``, shared by every audit that has it: most reasons are fixed sentences."""
    return Check(name, result, *_verdicts(rules)[result], reason)


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
    # Under -k nothing was checked: None (as an offline audit of a -k snapshot says), not False,
    # which would claim a verification that failed.
    verified = (None if insecure else True) if https else None
    return _audited(  # the head's headers are str pairs already: ``grade`` would copy them
        result.url,
        result.head.status,
        result.head.headers,
        verified,
        result.redirects,
        request_origin,
        default_rules(),
    )
