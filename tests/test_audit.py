"""The security header audit (fetchheads.audit): each Observatory test's documented cases, the
score arithmetic, CSP combining, cookies, redirection, findings, and the Result adapter.

Cases marked with an Observatory test file come from github.com/mdn/mdn-http-observatory's
``test/<file>`` (the values it sets and the result it expects); the others are fetchheads' own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fetchheads.audit import Audit, default_rules, grade, score_of
from fetchheads.audit.csp import covers, intersect
from fetchheads.audit.model import Check
from fetchheads.errors import ErrorKind
from fetchheads.models import ErrorInfo, Redirect, ResponseHead, Result

CORPUS = Path(__file__).parent / "data" / "audit-corpus.json"
HTTPS = "https://mozilla.org/"


def audit(
    *headers: tuple[str, str],
    url: str = HTTPS,
    status: int = 200,
    verified: bool | None = True,
    redirects: tuple[Redirect, ...] = (),
    origin: str | None = None,
) -> Audit:
    return grade(
        url,
        status,
        headers,
        tls_verified=verified if url.startswith("https") else None,
        redirects=redirects,
        request_origin=origin,
    )


def check(name: str, *headers: tuple[str, str], **kwargs: Any) -> Check:
    return audit(*headers, **kwargs).test(name)


def csp(*policies: str, url: str = HTTPS) -> Check:
    headers = [("Content-Security-Policy", policy) for policy in policies]
    return check("content-security-policy", *headers, url=url)


# --- Content-Security-Policy: test/csp.test.js --------------------------------------------------

CSP_CASES = [
    # "header invalid"
    *[
        (value, "csp-header-invalid", False)
        for value in (
            "  ",
            "\r\n",
            "",
            "default-src 'none'; default-src 'none'",
            "default-src 'none'; img-src 'self'; default-src 'none'",
            "default-src 'none'; script-src 'strict-dynamic'",
            "defa",
        )
    ],
    # "insecure scheme broad and unsafe" and "unsafe inline"
    *[
        (value, "csp-implemented-with-unsafe-inline", False)
        for value in (
            "default-src 'none'; script-src https://*",
            "default-src 'none'; script-src 'unsafe-inline'",
            "script-src 'unsafe-inline'",
            "script-src data:",
            "script-src http:",
            "script-src ftp:",
            "default-src 'unsafe-inline'",
            "default-src 'UNSAFE-INLINE'",
            "upgrade-insecure-requests",
            "script-src 'none'",
            "script-src https:",
            "script-src https://mozilla.org https:",
            "default-src https://mozilla.org https:",
            "default-src 'none'; script-src *",
            "default-src *; script-src *; object-src 'none'",
            "default-src 'none'; script-src 'none'; object-src *",
            "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'",
            "default-src 'none'; script-src 'unsafe-inline' http:",
            "object-src https:; script-src 'none'",
            "frame-anchestors 'none'",  # "ignore frame-anchestors in http-equiv": a typo
        )
    ],
    # "insecure scheme"
    *[
        (value, "csp-implemented-with-insecure-scheme", False)
        for value in (
            "default-src http://mozilla.org",
            "default-src 'none'; script-src http://mozilla.org",
            "default-src 'none'; script-src ftp://mozilla.org",
        )
    ],
    # "insecure scheme in passive content only"
    *[
        (value, "csp-implemented-with-insecure-scheme-in-passive-content-only", True)
        for value in (
            "default-src 'none'; img-src http://mozilla.org",
            "default-src 'self'; img-src ftp:",
            "default-src 'self'; img-src http:",
            "default-src 'none'; img-src https:; media-src http://mozilla.org",
            "default-src 'none'; img-src http: https:; script-src 'self'; style-src 'self'",
            "default-src 'none'; img-src 'none'; media-src http:; script-src 'self'; style-src 'self'",
            "default-src 'none'; img-src 'none'; media-src http:; script-src 'self'; style-src 'unsafe-inline'",
        )
    ],
    # "unsafe eval"
    ("default-src 'none'; script-src 'unsafe-eval'", "csp-implemented-with-unsafe-eval", False),
    # "unsafe inline in style src only"
    *[
        (value, "csp-implemented-with-unsafe-inline-in-style-src-only", True)
        for value in (
            "object-src 'none'; script-src 'none'; style-src 'unsafe-inline'",
            "default-src 'none'; script-src https://mozilla.org; style-src 'unsafe-inline'",
            "default-src 'unsafe-inline'; script-src https://mozilla.org",
            "default-src 'none';;; ;;;style-src 'self' 'unsafe-inline'",
            "default-src 'none'; style-src data:",
            "default-src 'none'; style-src *",
            "default-src 'none'; style-src https:",
            "default-src 'none'; style-src 'unsafe-inline'; "
            "script-src 'sha256-hqBEA/HXB3aJU2FgOnYN8rkAgEVgyfi3Vs1j2/XMPBB=' 'unsafe-inline'",
        )
    ],
    # "no unsafe" (a nonce or hash makes 'unsafe-inline' inert)
    *[
        (value, "csp-implemented-with-no-unsafe", True)
        for value in (
            "default-src https://mozilla.org",
            "default-src https://mozilla.org;;; ;;;script-src 'none'",
            "object-src 'none'; script-src https://mozilla.org; "
            "style-src https://mozilla.org; upgrade-insecure-requests;",
            "object-src 'none'; script-src 'strict-dynamic' 'nonce-abc' 'unsafe-inline'; style-src 'none'",
            "object-src 'none'; style-src 'self';"
            "script-src 'sha256-hqBEA/HXB3aJU2FgOnYN8rkAgEVgyfi3Vs1j2/XMPBA='",
            "object-src 'none'; style-src 'self'; script-src 'unsafe-inline' "
            "'sha256-hqBEA/HXB3aJU2FgOnYN8rkAgEVgyfi3Vs1j2/XMPBA='"
            "'sha256-hqBEA/HXB3aJU2FgOnYN8rkAgEVgyfi3Vs1j2/XMPBB='",
            "object-src 'none'; script-src 'unsafe-inline' 'nonce-abc123' 'unsafe-inline'; style-src 'none'",
            "default-src https://mozilla.org; style-src 'unsafe-inline' 'nonce-abc123' 'unsafe-inline'",
            "default-src https://mozilla.org; style-src 'unsafe-inline' "
            "'sha256-hqBEA/HXB3aJU2FgOnYN8rkAgEVgyfi3Vs1j2/XMPBB=' 'unsafe-inline'",
        )
    ],
    # "no unsafe default src none" and "strict dynamic"
    *[
        (value, "csp-implemented-with-no-unsafe-default-src-none", True)
        for value in (
            "default-src",
            "default-src 'none'; script-src 'strict-dynamic' 'nonce-abc123' 'unsafe-inline'",
            "default-src 'none'; script-src https://mozilla.org; style-src https://mozilla.org; upgrade-insecure-requests;",
            "default-src 'none'; object-src https://mozilla.org",
            "default-src 'none'; script-src 'strict-dynamic' 'nonce-abc123'",
            "default-src 'none'; script-src 'strict-dynamic' 'sha256-abc123'",
            "default-src 'none'; script-src 'strict-dynamic' 'sha256-abc123' https://*",
            "default-src 'none'; script-src 'strict-dynamic' 'sha256-abc123' 'unsafe-inline'",
        )
    ],
]


@pytest.mark.parametrize(("policy", "result", "passed"), CSP_CASES)
def test_csp_observatory_cases(policy: str, result: str, passed: bool) -> None:
    outcome = csp(policy)
    assert (outcome.result, outcome.passed) == (result, passed)
    assert outcome.score_modifier == default_rules().modifiers[result]


def test_csp_missing_and_report_only() -> None:
    # test/csp.test.js "missing" and "report only"
    assert csp().result == "csp-not-implemented"
    assert csp().score_modifier == -25
    report_only = check(
        "content-security-policy",
        ("Content-Security-Policy-Report-Only", "default-src 'none'; report-to /_/csp-reports"),
    )
    assert report_only.result == "csp-not-implemented-but-reporting-enabled"
    assert report_only.passed is False


def test_csp_http_sources_count_only_on_an_https_page() -> None:
    assert csp("default-src http://mozilla.org").result == "csp-implemented-with-insecure-scheme"
    on_http = csp("default-src http://mozilla.org", url="http://mozilla.org/")
    assert on_http.result == "csp-implemented-with-no-unsafe"


def test_csp_repeated_report_directive_passes_with_no_bonus() -> None:
    outcome = csp("default-src 'none'; report-uri /a; report-uri /b")
    assert outcome.result == "csp-implemented-but-duplicate-directives"
    assert (outcome.passed, outcome.score_modifier) == (True, 0)


COMBINED_CASES = [
    # Two policies that each allow a different scheme allow nothing together: default-src 'none'
    # (test/csp.test.js does this with a header and a meta tag).
    (
        ("default-src http:", "default-src https:"),
        "csp-implemented-with-no-unsafe-default-src-none",
    ),
    # 'unsafe-inline' in only one policy: the other blocks inline scripts.
    (
        (
            "default-src 'self'; script-src 'unsafe-inline'; object-src 'none'",
            "script-src 'self'; object-src 'none'",
        ),
        "csp-implemented-with-no-unsafe",
    ),
    # ...in both: inline scripts run.
    (
        ("script-src 'unsafe-inline'; object-src 'none'", "script-src 'unsafe-inline'"),
        "csp-implemented-with-unsafe-inline",
    ),
    # A broad policy narrowed by a strict one.
    (
        (
            "default-src 'self'; script-src *; object-src 'none'",
            "script-src https://cdn.example; object-src 'none'",
        ),
        "csp-implemented-with-no-unsafe",
    ),
    # A policy without script-src restricts nothing: the other one decides (and style-src is
    # unset in both, but 'unsafe-eval' comes first in the Observatory's order).
    (("frame-ancestors 'none'", "script-src 'unsafe-eval' 'self'; object-src 'none'"), None),
    # A nonce in one policy makes its 'unsafe-inline' inert; the other policy has neither.
    (
        (
            "default-src 'self'; script-src 'nonce-r4nd' 'unsafe-inline'; object-src 'none'",
            "object-src 'none'",
        ),
        "csp-implemented-with-no-unsafe",
    ),
]


@pytest.mark.parametrize(("policies", "result"), COMBINED_CASES)
def test_several_policies_combine_so_each_must_allow(
    policies: tuple[str, str], result: str | None
) -> None:
    expected = result or "csp-implemented-with-unsafe-eval"
    assert csp(*policies).result == expected
    # One header with a comma is the same two policies (CSP3 §2.2).
    assert csp(", ".join(policies)).result == expected


def test_source_coverage_used_for_combining() -> None:
    assert covers("https://a.example/x", "https:")
    assert covers("https://a.example", "*")
    assert covers("https://a.b.example", "https://*.b.example")
    assert covers("https://a.example/js/app.js", "https://a.example/js/")
    assert not covers("https://a.example/css/", "https://a.example/js/")
    assert not covers("data:", "*")
    assert not covers("'unsafe-inline'", "*")
    assert not covers("http://a.example", "https:")
    assert intersect(("https:",), ("http:",)) == ("'none'",)
    assert intersect(None, ("'self'",)) == ("'self'",)


# --- X-Frame-Options: test/x-frame-options.test.js ------------------------------------------------

XFO_CASES = [
    ((), "x-frame-options-not-implemented", False),
    ((("X-Frame-Options", "whimsy"),), "x-frame-options-header-invalid", False),
    ((("X-Frame-Options", "SAMEORIGIN, SAMEORIGIN"),), "x-frame-options-header-invalid", False),
    (
        (("X-Frame-Options", "SAMEORIGIN"), ("X-Frame-Options", "SAMEORIGIN")),
        "x-frame-options-header-invalid",
        False,
    ),  # fetchheads' own: two lines read as the one above
    (
        (("X-Frame-Options", "ALLOW-FROM https://mozilla.org"),),
        "x-frame-options-allow-from-origin",
        True,
    ),
    ((("X-Frame-Options", "DENY"),), "x-frame-options-sameorigin-or-deny", True),
    ((("X-Frame-Options", "DENY "),), "x-frame-options-sameorigin-or-deny", True),
    (
        (
            ("X-Frame-Options", "DENY"),
            ("Content-Security-Policy", "frame-ancestors https://mozilla.org"),
        ),
        "x-frame-options-implemented-via-csp",
        True,
    ),
    (  # fetchheads' own: frame-ancestors alone, no X-Frame-Options: not "missing"
        (("Content-Security-Policy", "default-src 'self'; frame-ancestors 'self'"),),
        "x-frame-options-implemented-via-csp",
        True,
    ),
]


@pytest.mark.parametrize(("headers", "result", "passed"), XFO_CASES)
def test_x_frame_options(headers: tuple[tuple[str, str], ...], result: str, passed: bool) -> None:
    outcome = check("x-frame-options", *headers)
    assert (outcome.result, outcome.passed) == (result, passed)


def test_frame_ancestors_earns_five_and_deny_earns_nothing() -> None:
    via_csp = check("x-frame-options", ("Content-Security-Policy", "frame-ancestors 'none'"))
    deny = check("x-frame-options", ("X-Frame-Options", "DENY"))
    assert (via_csp.score_modifier, deny.score_modifier) == (5, 0)


# --- Strict-Transport-Security: test/strict-transport-security.test.js ---------------------------

STS = "Strict-Transport-Security"
HSTS_CASES = [
    ((), HTTPS, True, "hsts-not-implemented", False),
    (((STS, "includeSubDomains; preload"),), HTTPS, True, "hsts-header-invalid", False),
    (
        ((STS, "max-age=15768000; includeSubDomains, max-age=15768000; includeSubDomains"),),
        HTTPS,
        True,
        "hsts-header-invalid",
        False,
    ),
    (
        ((STS, "max-age=15768000"),),
        "http://mozilla.org/",
        None,
        "hsts-not-implemented-no-https",
        False,
    ),
    (
        ((STS, "max-age=15768000; includeSubDomains; preload"),),
        HTTPS,
        False,
        "hsts-invalid-cert",
        False,
    ),
    (
        ((STS, "max-age=86400"),),
        HTTPS,
        True,
        "hsts-implemented-max-age-less-than-six-months",
        False,
    ),
    (
        ((STS, "max-age=15768000; includeSubDomains; preload"),),
        HTTPS,
        True,
        "hsts-implemented-max-age-at-least-six-months",
        True,
    ),
    # "preloaded" (bugzilla.mozilla.org with no header): no preload list offline, so not preloaded.
    ((), "https://bugzilla.mozilla.org/", True, "hsts-not-implemented", False),
    # fetchheads' own: the 180-day boundary the Observatory accepts, a quoted max-age (RFC 6797),
    # a max-age that is not a number, -k (certificate not verified), two lines.
    (
        ((STS, "max-age=15552000"),),
        HTTPS,
        True,
        "hsts-implemented-max-age-at-least-six-months",
        True,
    ),
    (
        ((STS, "max-age=15551999"),),
        HTTPS,
        True,
        "hsts-implemented-max-age-less-than-six-months",
        False,
    ),
    (
        ((STS, 'max-age="31536000"'),),
        HTTPS,
        True,
        "hsts-implemented-max-age-at-least-six-months",
        True,
    ),
    (((STS, "max-age=abc"),), HTTPS, True, "hsts-header-invalid", False),
    # A quote on one side only is not RFC 6797's quoted-string: browsers ignore the header.
    (((STS, 'max-age="31536000'),), HTTPS, True, "hsts-header-invalid", False),
    (((STS, 'max-age=31536000"'),), HTTPS, True, "hsts-header-invalid", False),
    (((STS, 'max-age="'),), HTTPS, True, "hsts-header-invalid", False),
    (((STS, "max-age=31536000"),), HTTPS, None, "hsts-invalid-cert", False),
    (
        ((STS, "max-age=31536000"), (STS, "max-age=31536000")),
        HTTPS,
        True,
        "hsts-header-invalid",
        False,
    ),
]


@pytest.mark.parametrize(("headers", "url", "verified", "result", "passed"), HSTS_CASES)
def test_strict_transport_security(
    headers: tuple[tuple[str, str], ...], url: str, verified: bool | None, result: str, passed: bool
) -> None:
    outcome = check("strict-transport-security", *headers, url=url, verified=verified)
    assert (outcome.result, outcome.passed) == (result, passed)


def test_hsts_preload_directive_is_not_taken_for_preloaded() -> None:
    outcome = check(
        "strict-transport-security", (STS, "max-age=63072000; includeSubDomains; preload")
    )
    assert outcome.score_modifier == 0
    assert "preload list not consulted" in outcome.reason


# --- Referrer-Policy: test/referrer-policy.test.js ---------------------------------------------

RP = "Referrer-Policy"
REFERRER_CASES = [
    *[
        (value, "referrer-policy-private", True)
        for value in (
            "no-referrer",
            "same-origin",
            "strict-origin",
            "STRICT-ORIGIN",
            "strict-origin-when-cross-origin",
            "no-referrer, whimsy",
        )
    ],
    (None, "referrer-policy-not-implemented", True),
    ("whimsy", "referrer-policy-header-invalid", False),
    ("whimsy, whimsy1, whimsy2", "referrer-policy-header-invalid", False),
    *[
        (value, "referrer-policy-unsafe", False)
        for value in (
            "origin",
            "origin-when-cross-origin",
            "unsafe-url",
            "origin-when-cross-origin, no-referrer, unsafe-url",
            "no-referrer, unsafe-url",
        )
    ],
]


@pytest.mark.parametrize(("value", "result", "passed"), REFERRER_CASES)
def test_referrer_policy(value: str | None, result: str, passed: bool) -> None:
    headers = () if value is None else ((RP, value),)
    outcome = check("referrer-policy", *headers)
    assert (outcome.result, outcome.passed) == (result, passed)


def test_referrer_policy_last_line_wins_over_earlier_lines() -> None:
    assert check("referrer-policy", (RP, "unsafe-url"), (RP, "no-referrer")).passed is True


# --- X-Content-Type-Options and CORP: test/x-content-type-options.test.js,
# --- test/cross-origin-resource-policy.test.js ---------------------------------------------------

SIMPLE_CASES = [
    (
        "x-content-type-options",
        "X-Content-Type-Options",
        None,
        "x-content-type-options-not-implemented",
        False,
    ),
    (
        "x-content-type-options",
        "X-Content-Type-Options",
        "whimsy",
        "x-content-type-options-header-invalid",
        False,
    ),
    (
        "x-content-type-options",
        "X-Content-Type-Options",
        "nosniff, nosniff",
        "x-content-type-options-header-invalid",
        False,
    ),
    (
        "x-content-type-options",
        "X-Content-Type-Options",
        "nosniff",
        "x-content-type-options-nosniff",
        True,
    ),
    (
        "x-content-type-options",
        "X-Content-Type-Options",
        "nosniff ",
        "x-content-type-options-nosniff",
        True,
    ),
    (
        "cross-origin-resource-policy",
        "Cross-Origin-Resource-Policy",
        None,
        "corp-not-implemented",
        True,
    ),
    (
        "cross-origin-resource-policy",
        "Cross-Origin-Resource-Policy",
        "whimsy",
        "corp-header-invalid",
        False,
    ),
    (
        "cross-origin-resource-policy",
        "Cross-Origin-Resource-Policy",
        "same-site",
        "corp-implemented-with-same-site",
        True,
    ),
    (
        "cross-origin-resource-policy",
        "Cross-Origin-Resource-Policy",
        "same-origin",
        "corp-implemented-with-same-origin",
        True,
    ),
    (
        "cross-origin-resource-policy",
        "Cross-Origin-Resource-Policy",
        "cross-origin",
        "corp-implemented-with-cross-origin",
        True,
    ),
]


@pytest.mark.parametrize(("test", "header", "value", "result", "passed"), SIMPLE_CASES)
def test_single_value_headers(
    test: str, header: str, value: str | None, result: str, passed: bool
) -> None:
    headers = () if value is None else ((header, value),)
    outcome = check(test, *headers)
    assert (outcome.result, outcome.passed) == (result, passed)


def test_corp_same_origin_is_a_bonus_and_invalid_a_penalty() -> None:
    corp = "Cross-Origin-Resource-Policy"
    assert check("cross-origin-resource-policy", (corp, "same-origin")).score_modifier == 10
    assert check("cross-origin-resource-policy", (corp, "whimsy")).score_modifier == -5


# --- COOP / COEP: test/cross-origin-opener-policy.test.js, cross-origin-embedder-policy.test.js --

COOP = "Cross-Origin-Opener-Policy"
COEP = "Cross-Origin-Embedder-Policy"
POLICY_CASES = [
    (COOP, None, "coop-not-implemented"),
    *[
        (COOP, value, "coop-header-invalid")
        for value in (
            "whimsy",
            '"same-origin"',
            "Same-Origin",
            "SAME-ORIGIN",
            "same-origin; report-to=coop endpoint",
        )
    ],
    (COOP, "same-origin", "coop-implemented-with-same-origin"),
    (COOP, "same-origin-allow-popups", "coop-implemented-with-same-origin-allow-popups"),
    (COOP, "noopener-allow-popups", "coop-implemented-with-noopener-allow-popups"),
    (COOP, "unsafe-none", "coop-implemented-with-unsafe-none"),
    (COOP, 'same-origin; report-to="coop-endpoint"', "coop-implemented-with-same-origin"),
    (
        COOP,
        'same-origin-allow-popups; report-to="coop-endpoint"',
        "coop-implemented-with-same-origin-allow-popups",
    ),
    (COOP, "same-origin; report-to", "coop-implemented-with-same-origin"),
    (COEP, None, "coep-not-implemented"),
    (COEP, "whimsy", "coep-header-invalid"),
    (COEP, "require-corp", "coep-implemented-with-require-corp"),
    (COEP, "credentialless", "coep-implemented-with-credentialless"),
    (COEP, "unsafe-none", "coep-implemented-with-unsafe-none"),
    (COEP, 'require-corp; report-to="coep-endpoint"', "coep-implemented-with-require-corp"),
    (COEP, 'credentialless; report-to="coep-endpoint"', "coep-implemented-with-credentialless"),
    (COEP, "require-corp; report-to", "coep-implemented-with-require-corp"),
]


@pytest.mark.parametrize(("header", "value", "result"), POLICY_CASES)
def test_opener_and_embedder_policies(header: str, value: str | None, result: str) -> None:
    headers = () if value is None else ((header, value),)
    outcome = check(header.lower(), *headers)
    assert outcome.result == result
    assert outcome.passed is not result.endswith("-invalid")
    # The grader read has no modifier for them: reported, not scored.
    assert outcome.score_modifier == 0


def test_opener_policy_sent_twice_is_invalid() -> None:
    # test/cross-origin-opener-policy.test.js "checks for multiple headers"
    outcome = check(COOP.lower(), (COOP, "same-origin"), (COOP, "unsafe-none"))
    assert outcome.result == "coop-header-invalid"


# --- CORS: test/cors.test.js ----------------------------------------------------------------------

ACAO = "Access-Control-Allow-Origin"
ACAC = "Access-Control-Allow-Credentials"
ORIGIN = "https://http-observatory.security.mozilla.org"
CORS_CASES: list[tuple[tuple[tuple[str, str], ...], str | None, str, bool]] = [
    ((), None, "cross-origin-resource-sharing-not-implemented", True),
    (((ACAO, "*"),), None, "cross-origin-resource-sharing-implemented-with-public-access", True),
    (
        ((ACAO, "https://mozilla.org"),),
        ORIGIN,
        "cross-origin-resource-sharing-implemented-with-restricted-access",
        True,
    ),
    (
        ((ACAO, ORIGIN), (ACAC, "true")),
        ORIGIN,
        "cross-origin-resource-sharing-implemented-with-universal-access",
        False,
    ),
    # fetchheads' own: no Origin was sent, so an echo cannot be seen and is not assumed; and a
    # wildcard with credentials is public (browsers refuse the credentials).
    (
        ((ACAO, ORIGIN), (ACAC, "true")),
        None,
        "cross-origin-resource-sharing-implemented-with-restricted-access",
        True,
    ),
    (
        ((ACAO, "*"), (ACAC, "true")),
        None,
        "cross-origin-resource-sharing-implemented-with-public-access",
        True,
    ),
]


@pytest.mark.parametrize(("headers", "origin", "result", "passed"), CORS_CASES)
def test_cors(
    headers: tuple[tuple[str, str], ...], origin: str | None, result: str, passed: bool
) -> None:
    outcome = check("cross-origin-resource-sharing", *headers, origin=origin)
    assert (outcome.result, outcome.passed) == (result, passed)


def test_cors_without_origin_says_how_to_test_it() -> None:
    outcome = check("cross-origin-resource-sharing", (ACAO, "https://mozilla.org"))
    assert "-H 'Origin:" in outcome.reason


# --- Cookies: test/cookies.test.js ------------------------------------------------------------------

SC = "Set-Cookie"
HSTS_HEADER = (STS, "max-age=15768000")
COOKIE_CASES: list[tuple[tuple[str, ...], bool, str, bool]] = [
    ((), False, "cookies-not-found", True),
    (
        (
            "SESSIONID=bar; Domain=mozilla.org; Path=/; Secure; HttpOnly",
            "foo=bar; Domain=mozilla.org; Secure; Path=/",
            "heroku-session-affinity=bar; Domain=mozilla.org; Path=/",
        ),
        False,
        "cookies-secure-with-httponly-sessions",
        True,
    ),
    (
        (
            "SESSIONID_SAMESITE_STRICT=bar; Domain=mozilla.org; Path=/; Secure; HttpOnly; SameSite=Strict",
            "SESSIONID_SAMESITE_LAX=bar; Domain=mozilla.org; Path=/; Secure; HttpOnly; SameSite=Lax",
            "SESSIONID_SAMESITE_NONE=bar; Domain=mozilla.org; Path=/; Secure; HttpOnly; SameSite=None",
        ),
        False,
        "cookies-secure-with-httponly-sessions-and-samesite",
        True,
    ),
    (
        (
            "SESSIONID_SAMESITE_STRICT=bar; Domain=mozilla.org; Path=/; Secure; HttpOnly; SameSite=Strict",
            "SESSIONID_SAMESITE_NO_SAMESITE=bar; Domain=mozilla.org; Path=/; Secure; HttpOnly",
            "SESSIONID_SAMESITE_LAX=bar; Domain=mozilla.org; Path=/; Secure; HttpOnly; SameSite=Lax",
        ),
        False,
        "cookies-secure-with-httponly-sessions",
        True,
    ),
    (
        ("CSRFTOKEN=bar; Domain=mozilla.org; Path=/; Secure; HttpOnly",),
        False,
        "cookies-anticsrf-without-samesite-flag",
        False,
    ),
    *[
        (
            (f"SESSIONID=bar; Domain=mozilla.org; Path=/; Secure; HttpOnly; SameSite={value}",),
            False,
            "cookies-samesite-flag-invalid",
            False,
        )
        for value in ("", "True", "Invalid")
    ],
    (
        ("foo=bar; Domain=mozilla.org; Path=/",),
        True,
        "cookies-without-secure-flag-but-protected-by-hsts",
        False,
    ),
    (
        ("SESSIONID=bar; Domain=mozilla.org; Path=/; HttpOnly",),
        True,
        "cookies-session-without-secure-flag-but-protected-by-hsts",
        False,
    ),
    (("foo=bar; Domain=mozilla.org; Path=/",), False, "cookies-without-secure-flag", False),
    (
        ("SESSIONID=bar; Domain=mozilla.org; Path=/; Secure",),
        False,
        "cookies-session-without-httponly-flag",
        False,
    ),
    (
        ("SESSIONID=bar; Domain=mozilla.org; Path=/; HttpOnly",),
        False,
        "cookies-session-without-secure-flag",
        False,
    ),
    (
        ("SESSIONID=bar; Domain=mozilla.org; Path=/",),
        False,
        "cookies-session-without-secure-flag",
        False,
    ),
    # fetchheads' own: SameSite=None without Secure is refused by browsers; a line with no
    # name=value is not a cookie.
    (("id=1; SameSite=None",), False, "cookies-samesite-flag-invalid", False),
    (("garbage",), False, "cookies-not-found", True),
]


@pytest.mark.parametrize(("lines", "hsts", "result", "passed"), COOKIE_CASES)
def test_cookies(lines: tuple[str, ...], hsts: bool, result: str, passed: bool) -> None:
    headers = [(SC, line) for line in lines] + ([HSTS_HEADER] if hsts else [])
    outcome = check("cookies", *headers)
    assert (outcome.result, outcome.passed) == (result, passed)


def test_cookies_keep_the_worst_problem_in_the_observatory_order() -> None:
    # A session cookie without HttpOnly (-30) is worse than one without Secure under HSTS (-10):
    # the Observatory's order, not the modifiers', decides, and HttpOnly comes later in it.
    outcome = check(
        "cookies",
        (SC, "sessionid=1; Secure"),
        (SC, "loginid=2; HttpOnly"),
        HSTS_HEADER,
    )
    assert outcome.result == "cookies-session-without-httponly-flag"
    assert outcome.score_modifier == -30


def test_hsts_on_an_http_page_does_not_protect_cookies() -> None:
    outcome = check("cookies", (SC, "foo=bar"), HSTS_HEADER, url="http://mozilla.org/")
    assert outcome.result == "cookies-without-secure-flag"


# --- Redirection: test/redirection.test.js ------------------------------------------------------


def chain(*route: tuple[str, int]) -> dict[str, Any]:
    """A route as the Observatory's tests write it -> the url, status and hops of an -L fetch."""
    hops = tuple(
        Redirect(url=url, status=status, location=route[i + 1][0])
        for i, (url, status) in enumerate(route[:-1])
    )
    return {"url": route[-1][0], "status": route[-1][1], "redirects": hops}


REDIRECTION_CASES = [
    (chain(("http://mozilla.org", 200)), "redirection-missing", False),
    (
        chain(("http://mozilla.org", 301), ("http://www.mozilla.org", 200)),
        "redirection-not-to-https",
        False,
    ),
    (
        chain(
            ("http://mozilla.org", 301),
            ("http://www.mozilla.org", 302),
            ("http://www.mozilla.org/en/", 200),
        ),
        "redirection-not-to-https",
        False,
    ),
    (
        chain(("http://mozilla.org/", 301), ("https://mozilla.org/", 200)),
        "redirection-to-https",
        True,
    ),
    (
        chain(("http://mozilla.org/", 301), ("https://mozilla.org:8443/", 200)),
        "redirection-to-https",
        True,
    ),
    (
        chain(
            ("http://mozilla.org/", 301),
            ("http://www.mozilla.org/", 301),
            ("https://www.mozilla.org/", 200),
        ),
        "redirection-not-to-https-on-initial-redirection",
        False,
    ),
    (
        chain(("http://mozilla.org/", 301), ("https://www.mozilla.org/", 200)),
        "redirection-off-host-from-http",
        False,
    ),
    # "all redirections preloaded": no preload list offline, so graded on the route itself.
    (
        chain(
            ("http://cloudflare.com/", 301),
            ("https://cloudflare.com/", 302),
            ("https://www.cloudflare.com/", 302),
            ("https://baz.cloudflare.com/foo", 200),
        ),
        "redirection-to-https",
        True,
    ),
    # "no http but does have https": an https target, whose http URL was not fetched.
    (chain(("https://mozilla.org/", 200)), "redirection-not-tested", None),
]


@pytest.mark.parametrize(("fetched", "result", "passed"), REDIRECTION_CASES)
def test_redirection(fetched: dict[str, Any], result: str, passed: bool | None) -> None:
    outcome = check("redirection", **fetched)
    assert (outcome.result, outcome.passed) == (result, passed)


def test_redirection_needs_a_valid_certificate_at_the_end() -> None:
    fetched = chain(("http://mozilla.org/", 301), ("https://mozilla.org/", 200))
    assert check("redirection", **fetched, verified=False).result == "redirection-invalid-cert"
    assert check("redirection", **fetched, verified=None).result == "redirection-invalid-cert"


def test_an_unfollowed_redirect_is_not_graded_as_missing() -> None:
    outcome = check(
        "redirection", ("Location", "https://mozilla.org/"), url="http://mozilla.org/", status=301
    )
    assert (outcome.result, outcome.passed, outcome.score_modifier) == (
        "redirection-not-tested",
        None,
        0,
    )
    assert "-L" in outcome.reason


# --- Score and grade: src/scanner/index.js, src/grader/grader.js, test/grader.test.js -------------

SCORE_CASES = [
    ([], 100),
    ([-25, -20], 55),
    ([-5, 10, 5], 110),  # 95 after penalties: bonuses count
    ([-10, 10, 5], 105),  # exactly 90: bonuses count
    ([-15, 10, 5], 85),  # 85 after penalties: bonuses dropped
    ([-50, -40, -30, -25], 0),  # floor
    ([10, 10, 5, 5, 5, 5, 5], 145),  # the most a head could earn
]


@pytest.mark.parametrize(("modifiers", "score"), SCORE_CASES)
def test_score_arithmetic(modifiers: list[int], score: int) -> None:
    assert score_of(modifiers, default_rules()) == score


GRADE_CASES = [
    (145, "A+"), (120, "A+"), (100, "A+"), (99, "A"), (90, "A"), (89, "A-"), (85, "A-"),
    (84, "B+"), (80, "B+"), (79, "B"), (70, "B"), (69, "B-"), (65, "B-"), (64, "C+"),
    (60, "C+"), (59, "C"), (50, "C"), (49, "C-"), (45, "C-"), (44, "D+"), (40, "D+"),
    (39, "D"), (30, "D"), (29, "D-"), (25, "D-"), (24, "F"), (0, "F"),
]  # fmt: skip


@pytest.mark.parametrize(("score", "letter"), GRADE_CASES)
def test_grade_table(score: int, letter: str) -> None:
    assert default_rules().grade_for(score) == letter


def test_a_bare_https_head_scores_thirty() -> None:
    # No CSP -25, no HSTS -20, no X-Content-Type-Options -5, no X-Frame-Options -20.
    result = audit()
    assert (result.score, result.grade) == (30, "D")


def test_bonuses_need_ninety_after_penalties() -> None:
    good = [
        ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
        (STS, "max-age=31536000"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
    ]
    assert audit(*good).score == 100 + 10 + 5 + 5 + 10
    # A cookie without Secure under HSTS (-5) leaves 95: the bonuses still count.
    assert audit(*good, (SC, "a=b")).score == 95 + 30
    # A session cookie without HttpOnly (-30) leaves 70: every bonus is dropped.
    assert audit(*good, (SC, "sessionid=1; Secure")).score == 70
    assert audit(*good, (SC, "sessionid=1; Secure")).grade == "B"


def test_statuses_outside_2xx_3xx_401_403_are_not_graded() -> None:
    for status in (404, 500, 101):
        result = audit(("Server", "Apache/2.4.1"), status=status)
        assert not result.graded
        assert (result.score, result.grade, result.tests) == (None, None, ())
        assert f"status {status} is not graded" in (result.reason or "")
        assert result.findings  # the disclosure is still reported
    for status in (200, 204, 301, 304, 401, 403):
        assert audit(status=status).graded


def test_a_403_is_graded_with_a_note_that_it_may_be_a_gateway() -> None:
    result = audit(status=403)
    notes = [f.message for f in result.findings if f.kind == "note"]
    assert any("WAF" in note for note in notes)


# --- Findings --------------------------------------------------------------------------------------


def kinds(result: Audit) -> list[tuple[str, str | None]]:
    return [(f.kind, f.header) for f in result.findings]


def test_disclosure_headers_from_the_owasp_list() -> None:
    result = audit(("X-Powered-By", "PHP/8.2.1"), ("X-AspNet-Version", "4.0.30319"))
    assert kinds(result) == [("disclosure", "X-Powered-By"), ("disclosure", "X-AspNet-Version")]
    assert "PHP/8.2.1" in result.findings[0].message


@pytest.mark.parametrize(
    ("server", "reported"),
    [("nginx/1.25.3", True), ("Apache/2.4.57 (Debian)", True), ("Microsoft-IIS/10.0", True),
     ("nginx", False), ("cloudflare", False), ("AmazonS3", False)],
)  # fmt: skip
def test_server_is_reported_only_with_a_version(server: str, reported: bool) -> None:
    assert (("disclosure", "Server") in kinds(audit(("Server", server)))) is reported


def test_deprecated_headers_are_reported_never_graded() -> None:
    result = audit(
        ("X-XSS-Protection", "1; mode=block"),
        ("Expect-CT", "max-age=0"),
        ("Public-Key-Pins", 'pin-sha256="x"; max-age=1'),
        ("Feature-Policy", "camera 'none'"),
    )
    assert [k for k, _ in kinds(result)] == ["deprecated"] * 4
    assert result.score == audit().score
    names = {check.name for check in result.tests}
    assert not names & {"x-xss-protection", "expect-ct", "public-key-pins"}


def test_duplicated_and_malformed_security_headers_are_flagged() -> None:
    result = audit(
        (STS, "max-age=31536000"),
        (STS, "max-age=31536000"),
        ("X-Frame-Options", "ALLOWALL"),
        ("X-Content-Type-Options", "nosniff; yes"),
    )
    assert ("duplicate", STS) in kinds(result)
    assert ("malformed", "X-Frame-Options") in kinds(result)
    assert ("malformed", "X-Content-Type-Options") in kinds(result)
    no_max_age = audit((STS, "includeSubDomains"))
    assert ("malformed", STS) in kinds(no_max_age)
    assert "no max-age" in no_max_age.findings[0].message


def test_ineffective_headers_are_flagged() -> None:
    over_http = audit((STS, "max-age=31536000"), url="http://mozilla.org/")
    assert ("ineffective", STS) in kinds(over_http)
    wildcard = audit((ACAO, "*"), (ACAC, "true"))
    assert ("ineffective", ACAC) in kinds(wildcard)
    allow_from = audit(("X-Frame-Options", "ALLOW-FROM https://a.example"))
    assert ("ineffective", "X-Frame-Options") in kinds(allow_from)


def test_findings_quote_a_bounded_part_of_a_hostile_value() -> None:
    """As sent, in quotes, cut at 80 characters: the formats escape it where it is shown."""
    value = "\x1b[31mPHP/5.6\x7f" + "x" * 10_000
    result = audit(("X-Powered-By", value))
    assert result.findings[0].message == f"X-Powered-By: '{value[:80]}…' discloses software"


# --- Records, the Result adapter, the corpus -------------------------------------------------------


def test_record_is_json_ready_and_names_the_rules_version() -> None:
    record = audit((SC, "sid=1")).to_record()
    assert json.loads(json.dumps(record)) == record
    assert record["rules_version"] == default_rules().version
    assert set(record) == {
        "graded", "status", "score", "grade", "rules_version", "reason", "tests", "findings",
    }  # fmt: skip
    sri = next(t for t in record["tests"] if t["name"] == "subresource-integrity")
    assert sri == {
        "name": "subresource-integrity",
        "result": "sri-not-tested",
        "pass": None,
        "score_modifier": 0,
        "reason": "needs the body: a head-only audit cannot see the scripts",
    }


def test_audit_result_adapts_a_followed_result() -> None:
    from fetchheads.audit import audit_result

    head = ResponseHead("HTTP/1.1", 200, "OK", ((STS, "max-age=31536000"),))
    result = Result(
        target="mozilla.org",
        url="https://mozilla.org/",
        head=head,
        redirects=(Redirect("http://mozilla.org/", 301, "https://mozilla.org/"),),
    )
    audited = audit_result(result)
    assert audited is not None
    assert audited.test("redirection").result == "redirection-to-https"
    assert audited.test("strict-transport-security").passed is True
    insecure = audit_result(result, insecure=True)
    assert insecure is not None
    assert insecure.test("strict-transport-security").result == "hsts-invalid-cert"
    # -k checked nothing: said as such (as the offline audit of a -k snapshot says it), never
    # as a verification that failed.
    assert insecure.test("strict-transport-security").reason == (
        "the certificate was not verified (-k): HSTS needs a valid certificate"
    )
    failed = Result(target="x", url="https://x/", error=ErrorInfo(ErrorKind.TIMEOUT, "slow"))
    assert audit_result(failed) is None


def load_corpus() -> list[dict[str, Any]]:
    return list(json.loads(CORPUS.read_text(encoding="utf-8"))["cases"])


@pytest.mark.parametrize("case", load_corpus(), ids=lambda case: case["name"])
def test_corpus_of_stored_heads(case: dict[str, Any]) -> None:
    """Heads as a JSON record stores them (headers as two-item lists), graded offline."""
    record = case["record"]
    result = grade(
        record["url"],
        record["status"],
        record["headers"],
        tls_verified=record["tls_verified"],
        redirects=[Redirect(**hop) for hop in record["redirects"]],
    )
    assert (result.score, result.grade) == (case["score"], case["grade"])
    failing = sorted(t.result for t in result.tests if t.score_modifier != 0)
    assert failing == sorted(case["scored"])
