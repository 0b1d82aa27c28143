"""What an audit reads (``Exchange``) and what it gives back (``Audit``, ``Check``, ``Finding``).

Pure and frozen. ``Exchange`` is built from plain data, so a live ``Result`` and a stored snapshot
are audited by the same code; ``Audit.to_record`` is the one JSON translation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fetchheads.models import Headers, Redirect

VALUE_SHOWN = 80
"""How much of a server's value a message quotes: enough to recognise a product and version."""


def quoted(value: str) -> str:
    """A server's value as a reason or a finding quotes it: as sent (up to ``VALUE_SHOWN``
    characters), in single quotes. Not escaped here: plain, pretty and the audit table show
    what a terminal would obey escaped (``\\x1b``), as for every server text, and JSON keeps
    the text exact (docs/output.md)."""
    return "'" + value[:VALUE_SHOWN] + ("…" if len(value) > VALUE_SHOWN else "") + "'"


@dataclasses.dataclass(frozen=True, slots=True)
class Exchange:
    """The facts a head-only audit grades.

    ``url`` is the final URL (after the ``redirects``, when ``-L`` followed some); ``headers`` the
    final response's header lines in wire order, duplicates kept apart; ``redirects`` the hops
    followed, first to last. ``tls_verified`` is ``True`` when the final response came over TLS
    whose certificate was verified, ``False`` when verification failed, ``None`` when it was not
    checked (``-k``) or there was no TLS. ``request_origin`` is the ``Origin`` header the request
    carried, if any (fetchheads sends none unless ``-H`` adds one).
    """

    url: str
    status: int
    headers: Headers = ()
    tls_verified: bool | None = None
    redirects: tuple[Redirect, ...] = ()
    request_origin: str | None = None

    @property
    def https(self) -> bool:
        return self.url[:8].lower() == "https://"


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """One test's outcome. ``result`` is the Observatory's result id (fetchheads' own ids end in
    ``-not-tested``); ``passed`` is ``None`` when the test could not run on a head alone."""

    name: str
    result: str
    passed: bool | None
    score_modifier: int
    reason: str

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "result": self.result,
            "pass": self.passed,
            "score_modifier": self.score_modifier,
            "reason": self.reason,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """Something worth fixing that the grade does not count. ``kind`` is one of ``FINDING_KINDS``;
    ``header`` the header it is about (as the server spelled it), ``None`` for the response."""

    kind: str
    header: str | None
    message: str

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "header": self.header, "message": self.message}


FINDING_KINDS = ("disclosure", "deprecated", "duplicate", "malformed", "ineffective", "note")


@dataclasses.dataclass(frozen=True, slots=True)
class Audit:
    """A graded (or ungraded) response. ``score`` and ``grade`` are ``None`` when ``graded`` is
    false, and ``reason`` then says why; findings are reported either way."""

    graded: bool
    status: int
    score: int | None
    grade: str | None
    rules_version: str
    tests: tuple[Check, ...] = ()
    findings: tuple[Finding, ...] = ()
    reason: str | None = None

    def test(self, name: str) -> Check:
        """The check called ``name`` (``KeyError`` when it was not run)."""
        for check in self.tests:
            if check.name == name:
                return check
        raise KeyError(name)

    def to_record(self) -> dict[str, Any]:
        return {
            "graded": self.graded,
            "status": self.status,
            "score": self.score,
            "grade": self.grade,
            "rules_version": self.rules_version,
            "reason": self.reason,
            "tests": [check.to_record() for check in self.tests],
            "findings": [finding.to_record() for finding in self.findings],
        }


_NONE: list[str] = []  # shared and never mutated: what ``all`` gives for an absent header


class HeaderView:
    """The response headers as the tests read them: every value of a name, in wire order.

    ``joined`` is what Node's HTTP client (the Observatory's) gives for a repeated header: the
    values joined with ``", "``; that is why two ``X-Frame-Options: DENY`` lines grade as the
    invalid ``DENY, DENY``, as in the Observatory and in browsers.
    """

    __slots__ = ("_names", "_values")

    def __init__(self, headers: Headers) -> None:
        values: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        for name, value in headers:
            folded = name.lower()
            known = values.get(folded)
            if known is None:
                values[folded] = [value]
                names[folded] = name
            else:
                known.append(value)
        self._values = values
        self._names = names

    def all(self, name: str) -> list[str]:
        return self._values.get(name, _NONE)

    def joined(self, name: str) -> str | None:
        values = self._values.get(name)
        return None if values is None else ", ".join(values)

    def spelled(self, name: str) -> str:
        """``name`` (lower case) as the server first spelled it."""
        return self._names.get(name, name)

    def names(self) -> list[str]:
        """Every lower-cased name, in order of first appearance."""
        return list(self._values)
