"""The audit's cache and the offline audit's lean read give the grades the plain audit gives."""

from __future__ import annotations

import itertools
from typing import Any

from fetchheads.audit import Exchange, audit
from fetchheads.audit.grader import reference_audit
from fetchheads.models import Redirect
from fetchheads.snapshots.changes import Snapshot
from fetchheads.snapshots.graded import audit_snapshot
from fetchheads.snapshots.store import Store

VARIANTS: list[list[tuple[str, str]]] = [
    [("Strict-Transport-Security", "max-age=31536000"), ("strict-transport-security", "max-age=5")],
    [("Content-Security-Policy", "default-src 'none'; script-src 'nonce-{n}'; frame-ancestors *")],
    [("Content-Security-Policy", "script-src 'self', script-src https:")],
    [("Content-Security-Policy-Report-Only", "default-src 'self' {n}")],
    [("Set-Cookie", "sessionid={n}; Secure; HttpOnly"), ("Set-Cookie", "csrf={n}; SameSite=Bogus")],
    [("Set-Cookie", "novalue"), ("set-cookie", "pref={n}=x; Path=/")],
    [("X-Frame-Options", "DENY"), ("X-Frame-Options", "DENY")],
    [("X-Frame-Options", "ALLOW-FROM https://a.example"), ("X-Content-Type-Options", "sniff")],
    [
        ("Access-Control-Allow-Origin", "https://o.example"),
        ("Access-Control-Allow-Credentials", "true"),
    ],
    [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true")],
    [("Server", "nginx/1.25.{n}"), ("server", "Apache"), ("X-Powered-By", "PHP/8.{n}")],
    [("X-XSS-Protection", "1"), ("Referrer-Policy", "unsafe-url, no-referrer")],
    [
        ("Cross-Origin-Opener-Policy", "same-origin; report-to=x"),
        ("Cross-Origin-Embedder-Policy", "?1"),
    ],
    [("Cross-Origin-Resource-Policy", "same-site"), ("Location", "/elsewhere/{n}")],
    [("Date", "Wed, 25 Nov 2026 19:12:{n} GMT"), ("ETag", '"{n}"')],
]


def exchanges() -> list[Exchange]:
    """Heads that differ in what the cache leaves out (cookie values, Location, report-only
    policies, Date) and in what it must not (spelling, duplicates, scheme, status, verified,
    origin, redirect URLs), each made twice so that the second is graded from the cache."""
    made = []
    n = 0
    for first, second in itertools.combinations(range(len(VARIANTS)), 2):
        for status, scheme, verified, origin in (
            (200, "https", True, None),
            (301, "http", None, "https://o.example"),
            (403, "https", None, None),
            (500, "https", True, None),
        ):
            n += 1
            headers = tuple(
                (name, value.format(n=n % 7)) for name, value in VARIANTS[first] + VARIANTS[second]
            )
            url = f"{scheme}://h{n % 3}.example/"
            hops: tuple[Redirect, ...] = ()
            if n % 3 == 0:
                hops = (Redirect(f"http://h{n % 5}.example/", 301, url),)
            made.append(Exchange(url, status, headers, verified, hops, origin))
    return made + made


def test_every_cached_audit_is_the_audit_worked_out_from_every_header() -> None:
    heads = exchanges()
    graded = [audit(exchange).to_record() for exchange in heads]
    assert graded == [reference_audit(exchange).to_record() for exchange in heads]
    # The heads are varied enough to hold every outcome the cache must keep apart.
    grades = {record["grade"] for record in graded}
    assert {"F", None}.issubset(grades)
    assert len(grades) >= 5
    reasons = {
        t["reason"] for record in graded for t in record["tests"] if t["name"] == "redirection"
    }
    assert any("leaves h4.example for h0.example" in reason for reason in reasons)
    assert any("leaves h2.example for h0.example" in reason for reason in reasons)
    assert any(
        f["kind"] == "disclosure" and "PHP/8.3" in f["message"]
        for r in graded
        for f in r["findings"]
    )


def snapshot(key: str, tls: dict[str, Any] | None, fetched_at: str) -> Snapshot:
    return Snapshot(
        key=key,
        target=key,
        url=key,
        fetched_at=fetched_at,
        ok=True,
        status=200,
        reason="OK",
        http_version="HTTP/1.1",
        headers=(("Strict-Transport-Security", "max-age=31536000"),),
        has_head=True,
        timing={"total": 0.1},
        tls=tls,
        address="127.0.0.1:443",
    )


def test_the_newest_snapshot_is_read_with_what_decides_hsts(db: str) -> None:
    facts: dict[str, dict[str, Any] | None] = {
        "https://verified.test/": {"verified": True, "issuer": "CN=ca"},
        "https://insecure.test/": {"verified": False, "issuer": "CN=ca"},
        "https://older.test/": {"issuer": "CN=ca"},  # stored before "verified" was
        "https://nofacts.test/": None,
        "https://empty.test/": {},
    }
    with Store.open(db) as store:
        run = store.begin_run("test", {})
        old = [snapshot(key, {"verified": False}, "2026-11-24T00:00:00.000Z") for key in facts]
        store.record(run, old)
        store.record(run, [snapshot(k, t, "2026-11-25T00:00:00.000Z") for k, t in facts.items()])
        store.finish_run(run, targets=10, ok=10)
    with Store.open(db, readonly=True) as store:
        read = [s for batch in store.newest(batch=2) for s in batch]
        named = [s for batch in store.newest(["https://older.test/"]) for s in batch]
    assert [s.key for s in read] == sorted(facts)
    assert {s.fetched_at for s in read + named} == {"2026-11-25T00:00:00.000Z"}
    hsts = {}
    for stored in read + named:
        graded = audit_snapshot(stored)
        assert graded is not None
        hsts[stored.key] = graded.test("strict-transport-security").result
    assert hsts == {
        "https://verified.test/": "hsts-implemented-max-age-at-least-six-months",
        "https://older.test/": "hsts-implemented-max-age-at-least-six-months",
        "https://insecure.test/": "hsts-invalid-cert",
        "https://nofacts.test/": "hsts-invalid-cert",
        "https://empty.test/": "hsts-invalid-cert",
    }
