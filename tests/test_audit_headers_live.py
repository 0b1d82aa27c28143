"""--audit against a loopback https server sending odd security headers, as a security team
grading its estate meets them: the grade, the score and every line of the plain output must add
up by the rules of docs/audit.md."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import ThreadedServer, routes
from tests.support.snapshots import fetchheads

# Every other test passes: 100, +5 for the CSP when the penalties leave at least 90.
HARDENED = b"X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"


def head(hsts: bytes = b"max-age=31536000", csp: bytes = b"default-src 'self'") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n"
        + HARDENED
        + b"Strict-Transport-Security: "
        + hsts
        + b"\r\nContent-Security-Policy: "
        + csp
        + b"\r\n\r\n"
    )


HEADS = {
    # A max-age of any length is a number of seconds: browsers cap it, the Observatory reads it.
    "/hsts-21-digits": head(hsts=b"max-age=123456789012345678901; includeSubDomains"),
    "/hsts-300-digits": head(hsts=b"max-age=" + b"9" * 300),
    # A directive given twice: Chromium and Firefox drop the whole header.
    "/hsts-max-age-twice": head(hsts=b"max-age=31536000; includeSubDomains; max-age=10"),
    "/hsts-include-twice": head(hsts=b"max-age=31536000; includeSubDomains; includeSubDomains"),
    # The Observatory passes images over http: on an https page, at -10.
    "/csp-images-over-http": head(csp=b"default-src 'self'; img-src 'self' http:"),
}


@pytest.fixture
def site(threaded_server: Callable[..., ThreadedServer], server_ssl_context: ssl.SSLContext) -> str:
    server = threaded_server(routes(HEADS), ssl_context=server_ssl_context)
    return f"https://127.0.0.1:{server.port}"


def audit_of(site: str, path: str, ca_file: Path) -> tuple[dict[str, Any], list[str]]:
    """The JSON audit of ``site + path``, and the plain format's ``audit >`` lines."""
    code, out, _ = fetchheads("--audit", "--json", "--cacert", str(ca_file), site + path)
    assert code == 0
    record = json.loads(out)["audit"]
    code, out, _ = fetchheads("--audit", "--format", "plain", "--cacert", str(ca_file), site + path)
    assert code == 0
    lines = [line.split(" audit > ", 1)[1] for line in out.splitlines() if " audit > " in line]
    return record, lines


def test_an_hsts_max_age_of_any_length_is_at_least_six_months(site: str, ca_file: Path) -> None:
    for path in ("/hsts-21-digits", "/hsts-300-digits"):
        record, lines = audit_of(site, path, ca_file)
        assert (record["grade"], record["score"]) == ("A+", 105), path
        assert lines == ["grade A+ (score 105, rules observatory-2026.12)"], path
    record, _ = audit_of(site, "/hsts-300-digits", ca_file)
    [hsts] = [t for t in record["tests"] if t["name"] == "strict-transport-security"]
    assert hsts["result"] == "hsts-implemented-max-age-at-least-six-months"
    assert hsts["reason"] == "max-age=99999999999999999999…: at least six months"


@pytest.mark.parametrize(
    ("path", "directive"),
    [("/hsts-max-age-twice", "max-age"), ("/hsts-include-twice", "includeSubDomains")],
)
def test_hsts_giving_a_directive_twice_is_invalid_as_browsers_ignore_it(
    site: str, ca_file: Path, path: str, directive: str
) -> None:
    record, lines = audit_of(site, path, ca_file)
    why = f"Strict-Transport-Security is invalid: {directive} is given more than once:"
    assert (record["grade"], record["score"]) == ("B+", 80)
    assert lines == [
        "grade B+ (score 80, rules observatory-2026.12)",
        f"fail strict-transport-security -20: {why} browsers ignore it",
        f"malformed: {why} browsers ignore it",
    ]


def test_a_passed_test_that_costs_points_is_listed_so_the_score_adds_up(
    site: str, ca_file: Path
) -> None:
    record, lines = audit_of(site, "/csp-images-over-http", ca_file)
    [csp] = [t for t in record["tests"] if t["name"] == "content-security-policy"]
    assert (csp["pass"], csp["score_modifier"]) == (True, -10)
    assert (record["grade"], record["score"]) == ("A", 90)
    assert lines == [
        "grade A (score 90, rules observatory-2026.12)",
        "pass content-security-policy -10: an https page allows images or media over http:",
    ]
    code, out, _ = fetchheads(
        "--audit", "--format", "pretty", "--no-waterfall", "--cacert", str(ca_file),
        site + "/csp-images-over-http",
    )  # fmt: skip
    assert code == 0
    assert "✓ content-security-policy -10: an https page allows images" in out


def test_asking_for_the_grade_in_fields_sort_or_write_out_grades_without_audit(
    site: str, ca_file: Path
) -> None:
    """Without --audit, audit.grade and audit.score were blank columns, without a word."""
    weak, strong = site + "/hsts-max-age-twice", site + "/hsts-21-digits"
    cacert = ("--cacert", str(ca_file))
    code, out, _ = fetchheads(*cacert, "--format", "csv", "--fields", "audit.grade,audit.score",
                              weak)  # fmt: skip
    assert (code, out) == (0, "audit.grade,audit.score\nB+,80\n")
    code, out, _ = fetchheads(*cacert, "-w", "%{audit.grade} %{url}\\n", weak)
    assert (code, out) == (0, f"B+ {weak}\n")
    code, out, _ = fetchheads(*cacert, "--format", "tsv", "--fields", "target",
                              "--sort", "audit.score", strong, weak)  # fmt: skip
    assert (code, out) == (0, f"target\n{weak}\n{strong}\n")
