"""What changed between two snapshots of a target. Pure.

A *snapshot* is one stored observation of a target (a row of the ``snapshots`` table, or the result
just fetched). ``compare`` turns two of them into ``Change`` entries, the ``changes`` list of a
record (docs/output.md):

* header names compare case-insensitively; the values of one name compare as a multiset, so the
  same ``Set-Cookie``/``Vary`` lines in another order are no change, and a change shows both sides
  in wire order;
* ``:status`` is the status code; ``:error`` is ``kind: message``, compared by kind only (messages
  carry addresses and phases that vary between two failures of the same kind);
* headers are compared only when both sides have a head: a target that stops answering reports
  ``:error`` and ``:status`` rather than every header disappearing, and one that comes back reports
  the reverse (its record carries the full head);
* a first snapshot is compared with nothing: ``:status`` (or ``:error``) from ``[]``;
* volatile headers (``DEFAULT_VOLATILE`` plus ``--ignore-header``) are never compared;
* ``:certificate`` is one change naming what became of the certificate (``renewals``), compared
  with the certificate last seen: a failure in between has none, and changes nothing.
* under ``--audit``, when both sides carry an audit graded by the same rules version:
  ``:audit.grade`` (``B`` -> ``D``) and ``:audit.TEST`` for each test whose result changed
  (``pass (hsts-implemented-max-age-at-least-six-months)`` -> ``fail (hsts-not-implemented)``).

Certificate warnings (``--warn-days N``) go by steps: a certificate is under N days, then under 7,
3 and 1 day (steps at or above N are skipped), then expired (step 0). Under ``--changes`` a warning
is news, and printed, when its certificate reaches a step it had not reached in the target's
previous snapshot; a warning that stays on its step is not printed again (``is_news``), so a cron
job every 15 minutes mails a certificate four or five times in its last weeks, not 96 times a day.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from fetchheads.models import Change, Headers, Result, format_timestamp
from fetchheads.snapshots.renewals import Facts, certificate_change, certificate_facts

DEFAULT_VOLATILE = frozenset(
    name.lower()
    for name in (
        # Differ on every response by definition.
        "Date",
        "Age",
        "Expires",
        # Follow the body, which changes on its own schedule (news pages every minute); fetchheads
        # watches how a site is served, not its content.
        "Last-Modified",
        "ETag",
        "Content-Length",
        # Per-response session ids.
        "Set-Cookie",
        # Request ids, traces and timings.
        "X-Request-Id",
        "Request-Id",
        "X-Correlation-Id",
        "X-Trace-Id",
        "Traceparent",
        "X-B3-TraceId",
        "X-Cloud-Trace-Context",
        "X-Amzn-RequestId",
        "X-Amzn-Trace-Id",
        "X-Amz-Request-Id",
        "X-Amz-Id-2",
        "X-Amz-Cf-Id",
        "CF-Ray",
        "X-Runtime",
        "X-Response-Time",
        "Server-Timing",
        "X-Timer",
        "X-Varnish",
        # Which cache node answered, and whether it had the page: varies per request behind a CDN.
        "X-Amz-Cf-Pop",
        "X-Served-By",
        "X-Cache",
        "X-Cache-Hits",
        # Cloudflare signs each Report-To value.
        "Report-To",
    )
)
"""Lower-case names ``--changes`` ignores unless told otherwise (docs/snapshots.md)."""

STATUS = ":status"
ERROR = ":error"


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """One stored observation of a target. ``key`` is what snapshots of one target share: its URL
    before any redirect (for an input error, the text as given)."""

    key: str
    target: str
    url: str | None
    fetched_at: str
    ok: bool
    status: int | None = None
    reason: str | None = None
    http_version: str | None = None
    headers: Headers = ()
    has_head: bool = False
    error_kind: str | None = None
    error_message: str | None = None
    address: str | None = None
    timing: dict[str, Any] | None = None
    tls: dict[str, Any] | None = None
    redirects: tuple[dict[str, Any], ...] = ()
    cert_threshold: int | None = None
    """The ``--warn-days`` step the certificate had reached (``certificate_step``), or None."""
    audit: dict[str, Any] | None = None
    """``--audit``: the stored summary of the audit (``graded.stored_audit``), or None."""
    id: int | None = None
    run_id: int | None = None
    run_state: str | None = None
    """Read from the database: its run's state (running, finished, interrupted)."""
    last_certificate: Facts | None = None
    """Read from the database for one without certificate facts of its own (a failure): those of
    the latest earlier snapshot of its key that had some (``known_certificate``)."""

    @property
    def error(self) -> str | None:
        if self.error_kind is None:
            return None
        return f"{self.error_kind}: {self.error_message}" if self.error_message else self.error_kind

    def to_record(self) -> dict[str, Any]:
        """The JSON Lines record of docs/output.md, plus the row's ``id`` and ``run_id``."""
        return {
            "id": self.id,
            "run_id": self.run_id,
            "run_state": self.run_state,
            "target": self.target,
            "url": self.url,
            "ok": self.ok,
            "status": self.status,
            "reason": self.reason,
            "http_version": self.http_version,
            "headers": [[name, value] for name, value in self.headers],
            "error": (
                None
                if self.error_kind is None
                else {"kind": self.error_kind, "message": self.error_message or ""}
            ),
            "address": self.address,
            "timing": self.timing,
            "tls": self.tls,
            "redirects": list(self.redirects),
            "fetched_at": self.fetched_at,
        }


def snapshot_key(result: Result) -> str:
    """The target's URL before redirects: with ``-L`` the final URL may change, the target not."""
    if result.redirects:
        return result.redirects[0].url
    return result.url if result.url is not None else result.target


def snapshot_of(result: Result, warn_days: int | None = None) -> Snapshot:
    head = result.head
    return Snapshot(
        key=snapshot_key(result),
        target=result.target,
        url=result.url,
        fetched_at=format_timestamp(result.fetched_at),
        ok=result.ok,
        status=head.status if head else None,
        reason=head.reason if head else None,
        http_version=head.http_version if head else None,
        headers=head.headers if head else (),
        has_head=head is not None,
        error_kind=str(result.error.kind) if result.error else None,
        error_message=result.error.message if result.error else None,
        address=result.address,
        timing=result.timing.to_record(),
        tls=result.tls.to_record() if result.tls else None,
        redirects=tuple(hop.to_record() for hop in result.redirects),
        cert_threshold=certificate_step(result, warn_days),
        audit=stored_audit(result.audit.to_record()) if result.audit is not None else None,
    )


def stored_audit(record: dict[str, Any]) -> dict[str, Any]:
    """What a snapshot keeps of an audit's record: enough for ``--changes`` (the grade, each
    test's result id and verdict), not the reasons and findings, which ``fetchheads audit``
    works out again from the stored head."""
    return {
        "rules_version": record["rules_version"],
        "graded": record["graded"],
        "score": record["score"],
        "grade": record["grade"],
        "tests": {test["name"]: [test["result"], test["pass"]] for test in record["tests"]},
    }


AUDIT_GRADE = ":audit.grade"
AUDIT_TEST = ":audit."
"""Change names: ``:audit.grade``, and ``:audit.TEST`` for a test whose result changed."""


def audit_changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[Change]:
    """The grade and the test results that changed between two stored audits. Nothing when
    either side has none, or they were graded under different rules versions: a new version of
    the rules is no change in the site."""
    if before is None or after is None or before["rules_version"] != after["rules_version"]:
        return []
    changes: list[Change] = []
    if before["grade"] != after["grade"]:
        changes.append(Change(AUDIT_GRADE, _one(before["grade"]), _one(after["grade"])))
    old, new = before["tests"], after["tests"]
    for name, outcome in new.items():
        earlier = old.get(name)
        if earlier is not None and earlier[0] != outcome[0]:
            changes.append(Change(AUDIT_TEST + name, (_verdict(*earlier),), (_verdict(*outcome),)))
    return changes


def _verdict(result: str, passed: bool | None) -> str:
    """``fail (hsts-not-implemented)``."""
    word = "not tested" if passed is None else "pass" if passed else "fail"
    return f"{word} ({result})"


def ignored_names(extra: Iterable[str] = ()) -> frozenset[str]:
    """The default volatile headers plus ``extra`` (``--ignore-header``), lower-cased."""
    return DEFAULT_VOLATILE | {name.strip().lower() for name in extra}


def compare(
    before: Snapshot | None, after: Snapshot, ignored: frozenset[str] = DEFAULT_VOLATILE
) -> tuple[Change, ...]:
    """Every difference from ``before`` (``None``: no earlier snapshot) to ``after``."""
    changes: list[Change] = []
    before_kind = before.error_kind if before else None
    if before_kind != after.error_kind:
        changes.append(Change(ERROR, _one(before.error if before else None), _one(after.error)))
    before_status = before.status if before else None
    if before_status != after.status:
        changes.append(
            Change(
                STATUS,
                _one(None if before_status is None else str(before_status)),
                _one(None if after.status is None else str(after.status)),
            )
        )
    if before is not None:
        certificate = certificate_change(known_certificate(before), after.tls)
        if certificate is not None:
            changes.append(certificate)
    if before is not None and before.has_head and after.has_head:
        changes.extend(_header_changes(before.headers, after.headers, ignored))
        changes.extend(audit_changes(before.audit, after.audit))
    return tuple(changes)


def wants_last_certificate(snapshot: Snapshot) -> bool:
    """Whether ``--changes`` and ``history`` look further back for the certificate to compare
    with: a failed https target has none of its own; one that comes back names a certificate
    renewed meanwhile.
    (Only failures: an http target, or a row stored before certificates were decoded, would send
    the look through its whole history, every run, to find none.)"""
    return (
        snapshot.error_kind is not None
        and snapshot.key.startswith("https://")
        and certificate_facts(snapshot.tls) is None
    )


def known_certificate(snapshot: Snapshot) -> Facts | None:
    """The certificate last seen at ``snapshot``: its own, else the one before its failure."""
    return certificate_facts(snapshot.tls) or snapshot.last_certificate


def _one(value: str | None) -> tuple[str, ...]:
    return () if value is None else (value,)


def _by_name(headers: Headers, ignored: frozenset[str]) -> dict[str, tuple[str, list[str]]]:
    """lower-case name -> (name as first seen, values in wire order); insertion-ordered."""
    grouped: dict[str, tuple[str, list[str]]] = {}
    for name, value in headers:
        folded = name.lower()
        if folded in ignored:
            continue
        grouped.setdefault(folded, (name, []))[1].append(value)
    return grouped


def _header_changes(before: Headers, after: Headers, ignored: frozenset[str]) -> list[Change]:
    old = _by_name(before, ignored)
    new = _by_name(after, ignored)
    changes: list[Change] = []
    # New side's order first (what the server sends now), then the names that disappeared.
    for folded in [*new, *(name for name in old if name not in new)]:
        old_name, old_values = old.get(folded, ("", []))
        new_name, new_values = new.get(folded, ("", []))
        # Equal sorted lists are equal multisets; the first test settles the usual case cheaply.
        if old_values != new_values and sorted(old_values) != sorted(new_values):
            changes.append(Change(new_name or old_name, tuple(old_values), tuple(new_values)))
    return changes


CERTIFICATE_STEPS = (7, 3, 1, 0)
"""Days left under which a certificate warning is news again (0: expired), below --warn-days."""
WARNED = 1_000_000
"""The step of a certificate warned about for another reason than --warn-days (--warn-fraction, an
intermediate that expires first) while above every step of days: news once, then at 7, 3, 1, 0."""


def certificate_step(result: Result, warn_days: int | None) -> int | None:
    """The step a certificate has reached: the smallest of ``warn_days``, 7, 3, 1 and 0 that its
    days left are under (0: expired); ``WARNED`` when it carries a certificate warning for another
    reason while above them; None when it is not warned about (or no option)."""
    tls = result.tls
    if tls is None or tls.days_left is None:
        return None
    days = tls.days_left
    if warn_days is not None and days < warn_days:
        steps = (warn_days, *(step for step in CERTIFICATE_STEPS if step < warn_days))
        return min(step for step in steps if days < step)
    if any(alert.kind == "certificate" for alert in result.warnings or ()):
        return min((step for step in CERTIFICATE_STEPS if days < step), default=WARNED)
    return None


def is_news(before: int | None, after: int | None) -> bool:
    """Whether a certificate at step ``after`` is news after step ``before`` (None: none)."""
    return after is not None and (before is None or after < before)
