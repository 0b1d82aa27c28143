"""How ``--audit`` shows in the text formats: the grade, the failing tests, the findings. Pure.

Plain lines (``grep ' audit > '`` finds them all)::

    TARGET audit > grade F (score 10, rules observatory-2026.12)
    TARGET audit > fail strict-transport-security -20: no Strict-Transport-Security header
    TARGET audit > pass content-security-policy -10: an https page allows images or media over http:
    TARGET audit > disclosure: X-Powered-By: 'PHP/5.6' discloses software
    TARGET audit > not graded: status 500 is not graded: ...

Only failing tests are listed, and the passed tests that still cost points (the Observatory passes
``csp-implemented-with-insecure-scheme-in-passive-content-only`` at -10), so that the penalties
listed are every point the score lost; the JSON record has every test. A test that could not run
on a head alone (``pass`` null: subresource integrity) is never listed as failing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fetchheads.models import Result
from fetchheads.render.safe import shown_target, terminal_safe

if TYPE_CHECKING:  # the audit package loads only in runs that audit (start-up time)
    from fetchheads.audit import Audit, Check


def audit_of(result: Result) -> Audit | None:
    """The result's audit, typed: ``Result.audit`` names it by a protocol only, and is only ever
    set by ``--audit`` to an ``Audit``."""
    return cast("Audit | None", result.audit)


def failing(audit: Audit) -> list[Check]:
    return [check for check in audit.tests if check.passed is False]


def listed(audit: Audit) -> list[tuple[str, Check]]:
    """``("fail", check)`` for each failing test and ``("pass", check)`` for each passed test
    that costs points, in the tests' order: what the text formats list under the grade."""
    return [
        ("fail" if check.passed is False else "pass", check)
        for check in audit.tests
        if check.passed is False or check.score_modifier < 0
    ]


def headline(audit: Audit) -> str:
    """``grade D (score 30, rules observatory-2026.12)`` or ``not graded: why``."""
    if not audit.graded:
        return f"not graded: {audit.reason}"
    return f"grade {audit.grade} (score {audit.score}, rules {audit.rules_version})"


def describe_check(check: Check) -> str:
    """``strict-transport-security -20: no Strict-Transport-Security header``."""
    modifier = f" {check.score_modifier:+d}" if check.score_modifier else ""
    return f"{check.name}{modifier}: {check.reason}"


def audit_lines(result: Result) -> list[str]:
    """The plain format's ``TARGET audit > ...`` lines of one result (none without an audit)."""
    audit = audit_of(result)
    return [] if audit is None else lines_of(result.target, audit)


def lines_of(target: str, audit: Audit) -> list[str]:
    """``TARGET audit > ...``: the headline, each failing test and each passed one that costs
    points, each finding."""
    prefix = f"{shown_target(target)} audit > "
    lines = [prefix + terminal_safe(headline(audit))]
    lines.extend(
        f"{prefix}{verdict} {terminal_safe(describe_check(check))}"
        for verdict, check in listed(audit)
    )
    lines.extend(prefix + terminal_safe(f"{f.kind}: {f.message}") for f in audit.findings)
    return lines
