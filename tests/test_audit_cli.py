"""--audit as a security engineer meets it: against a real nginx serving known header sets, in
every format, with --fail-under's exit status, grade changes under --changes, and the offline
``fetchheads audit --db`` over stored snapshots (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.nginx import Nginx
from tests.support.servers import ThreadedServer
from tests.support.snapshots import Site, fetchheads, query

HARDENED = """
    add_header Content-Security-Policy "default-src 'none'; frame-ancestors 'none'" always;
    add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;
    add_header X-Content-Type-Options "nosniff" always;
    add_header X-Frame-Options "DENY" always;
    add_header Referrer-Policy "no-referrer" always;
"""
LOCATIONS = f"""
    location = /bare {{ add_header X-Powered-By "PHP/5.6" always; return 200; }}
    location = /hardened {{ {HARDENED} return 200; }}
    location = /cookie-flags {{
        {HARDENED}
        add_header Set-Cookie "sessionid=1; Path=/; Secure; HttpOnly; SameSite=Strict" always;
        return 200;
    }}
    location = /cookie-bare {{
        {HARDENED}
        add_header Set-Cookie "sessionid=1; Path=/" always;
        return 200;
    }}
    location = /csp-unsafe {{
        add_header Content-Security-Policy "script-src 'self' 'unsafe-inline'" always;
        return 200;
    }}
    location = /csp-two {{
        add_header Content-Security-Policy "script-src 'self' 'unsafe-inline'" always;
        add_header Content-Security-Policy "script-src 'self'; object-src 'none'" always;
        return 200;
    }}
"""


@pytest.fixture(scope="module")
def headers_nginx(
    tmp_path_factory: pytest.TempPathFactory, server_cert: trustme.LeafCert
) -> Iterator[Nginx]:
    workdir = tmp_path_factory.mktemp("nginx-audit")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    for n, pem in enumerate(server_cert.cert_chain_pems):
        pem.write_to_path(str(cert), append=n > 0)
    server_cert.private_key_pem.write_to_path(str(key))
    server = Nginx(workdir, cert_file=cert, key_file=key, extra_locations=LOCATIONS).start()
    try:
        yield server
    finally:
        server.stop()


def audits(out: str) -> dict[str, dict[str, object]]:
    """url path -> the audit of each JSON record."""
    records = [json.loads(line) for line in out.splitlines()]
    return {r["url"].split("/", 3)[3]: r["audit"] for r in records}


def test_known_header_sets_graded_over_http_and_https(headers_nginx: Nginx, ca_file: Path) -> None:
    paths = ["/bare", "/hardened", "/cookie-flags", "/cookie-bare", "/csp-unsafe", "/csp-two"]
    urls = [headers_nginx.url(p, tls=True) for p in paths] + [headers_nginx.url("/bare")]
    code, out, _ = fetchheads("--audit", "--json", "--cacert", str(ca_file), *urls)
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    by_url = {r["url"]: r["audit"] for r in records}
    hardened = by_url[headers_nginx.url("/hardened", tls=True)]
    assert (hardened["grade"], hardened["score"]) == (
        "A+",
        120,
    )  # +10 default-src none, +5 referrer, +5 frame-ancestors
    bare_https = by_url[headers_nginx.url("/bare", tls=True)]
    bare_http = by_url[headers_nginx.url("/bare")]
    assert bare_http["grade"] == "F"
    assert bare_https["grade"] == "D"
    tests = {t["name"]: t for t in bare_http["tests"]}
    assert tests["strict-transport-security"]["result"] == "hsts-not-implemented-no-https"
    assert tests["content-security-policy"]["pass"] is False
    assert tests["content-security-policy"]["reason"]
    assert any(
        f["kind"] == "disclosure" and f["header"] == "X-Powered-By" for f in bare_http["findings"]
    )
    flags = {t["name"]: t for t in by_url[headers_nginx.url("/cookie-flags", tls=True)]["tests"]}
    bare = {t["name"]: t for t in by_url[headers_nginx.url("/cookie-bare", tls=True)]["tests"]}
    assert flags["cookies"]["pass"] is True
    assert bare["cookies"]["pass"] is False
    unsafe = by_url[headers_nginx.url("/csp-unsafe", tls=True)]["tests"][0]
    combined = by_url[headers_nginx.url("/csp-two", tls=True)]["tests"][0]
    assert unsafe["result"] == "csp-implemented-with-unsafe-inline"
    # Two policies: a browser enforces both, so the first one's 'unsafe-inline' scripts are not
    # allowed; what is left to fault is that neither restricts styles.
    assert combined["result"] == "csp-implemented-with-unsafe-inline-in-style-src-only"
    assert "2 policies" in combined["reason"]


def test_plain_pretty_and_prometheus_show_the_grade(headers_nginx: Nginx) -> None:
    url = headers_nginx.url("/bare")
    code, out, _ = fetchheads("--audit", "--format", "plain", url)
    assert code == 0
    assert f"{url} audit > grade F (score 10, rules " in out
    assert f"{url} audit > fail content-security-policy -25: " in out
    assert f"{url} audit > disclosure: X-Powered-By: " in out
    code, out, _ = fetchheads("--audit", "--format", "pretty", url)
    assert "audit  F  score 10" in out
    assert "✗ x-frame-options" in out


def test_fail_under_sets_exit_status_3_and_says_why(headers_nginx: Nginx, ca_file: Path) -> None:
    good = headers_nginx.url("/hardened", tls=True)
    bad = headers_nginx.url("/bare")
    assert fetchheads("--fail-under", "B", "--cacert", str(ca_file), "-q", good)[0] == 0
    code, out, err = fetchheads("--fail-under", "b", "--cacert", str(ca_file), good, bad)
    assert code == 3
    assert "fetchheads: 1 target graded under B (--fail-under)" in err
    assert " audit > grade F" in out  # --fail-under implies --audit
    # A failed target keeps status 1: a failure is worse than a grade.
    code, _, err = fetchheads("--fail-under", "B", bad, "127.0.0.1:9")
    assert code == 1
    assert "graded under B" in err
    code, _, err = fetchheads("--fail-under", "Z", bad)
    assert code == 2
    assert "--fail-under" in err
    assert "'Z' is not a grade: one of A+ A A- B+ B B- C+ C C- D+ D D- F" in err  # as written


@pytest.fixture
def hardened_site(threaded_server: Callable[..., ThreadedServer]) -> tuple[Site, str]:
    site = Site(
        **{
            "Content-Security-Policy": "default-src 'none'",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        }
    )
    server = threaded_server(site.handler)
    return site, f"127.0.0.1:{server.port}"


def test_changes_reports_a_grade_change_and_stores_the_audit(
    hardened_site: tuple[Site, str], db: str
) -> None:
    site, target = hardened_site
    assert fetchheads("--db", db, "--audit", "--changes", "--json", target)[0] == 0
    stored = query(db, "SELECT audit FROM snapshots")
    audit = stored[0][0] if isinstance(stored[0][0], dict) else json.loads(stored[0][0])
    assert audit["grade"] == "C+"
    assert audit["tests"]["x-frame-options"][1] is True
    del site.headers["X-Frame-Options"]
    del site.headers["Content-Security-Policy"]
    code, out, _ = fetchheads("--db", db, "--audit", "--changes", "--format", "plain", target)
    assert code == 0
    assert f"{target} changed > :audit.grade: C+ -> F" in out
    assert (
        f"{target} changed > :audit.x-frame-options: pass (x-frame-options-sameorigin-or-deny)"
        " -> fail (x-frame-options-not-implemented)"
    ) in out
    code, out, _ = fetchheads("--db", db, "--audit", "--changes", "--format", "plain", target)
    assert (code, out) == (0, "")  # nothing changed since: nothing printed


def test_a_rules_version_change_is_no_change() -> None:
    from fetchheads.snapshots.changes import audit_changes

    before = {"rules_version": "1", "grade": "B", "tests": {"x": ["x-ok", True]}}
    after = {"rules_version": "2", "grade": "D", "tests": {"x": ["x-bad", False]}}
    assert audit_changes(before, after) == []
    assert [c.name for c in audit_changes({**before, "rules_version": "2"}, after)] == [
        ":audit.grade",
        ":audit.x",
    ]


def test_offline_audit_of_a_database(headers_nginx: Nginx, db: str, ca_file: Path) -> None:
    urls = [
        headers_nginx.url("/hardened", tls=True),
        headers_nginx.url("/bare"),
        headers_nginx.url("/csp-unsafe", tls=True),
    ]
    # Recorded without --audit: the offline audit grades the stored heads.
    assert fetchheads("--db", db, "-q", "--cacert", str(ca_file), *urls, "127.0.0.1:9")[0] == 1
    code, out, _ = fetchheads("audit", "--db", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["GRADE", "SCORE", "FETCHED_AT", "TARGET", "FAILING"]
    assert [line.split()[0] for line in lines[1:]] == ["F", "D", "A+", "-"]  # worst first
    assert headers_nginx.url("/bare") in lines[1]
    code, out, err = fetchheads("audit", "--db", db, "--fail-under", "A", "--format", "jsonl")
    assert code == 3
    assert err == "fetchheads: 2 targets graded under A (--fail-under)\n"
    # 3 although 127.0.0.1:9 is stored as failed, as the command's own help says (the fetch
    # command's --fail-under keeps status 1 for a failure; this one grades what is stored).
    helped = " ".join(fetchheads("audit", "--help")[1].split())
    assert "a stored failure has no grade and does not count" in helped
    assert "implies --audit" not in helped
    records = {json.loads(line)["url"]: json.loads(line) for line in out.splitlines()}
    hardened = records[headers_nginx.url("/hardened", tls=True)]["audit"]
    assert hardened["grade"] == "A+"  # tls.verified stored: HSTS counts
    code, out, _ = fetchheads("audit", "--db", db, "--format", "plain", headers_nginx.url("/bare"))
    assert code == 0
    assert out.startswith(f"{headers_nginx.url('/bare')} audit > grade F")
    code, _, err = fetchheads("audit", "--db", db, "http://127.0.0.1:1/nothing")
    assert code == 1
    assert "no snapshots of http://127.0.0.1:1/nothing" in err
    # One target unknown: the others are still graded, and each unknown one named.
    code, out, err = fetchheads(
        "audit", "--db", db, "--format", "plain", headers_nginx.url("/bare"),
        "http://127.0.0.1:1/nothing", "http://127.0.0.1:2/nothing",
    )  # fmt: skip
    assert code == 1
    assert out.startswith(f"{headers_nginx.url('/bare')} audit > grade F")
    assert err.splitlines() == [
        f"fetchheads: no snapshots of http://127.0.0.1:{port}/nothing in {db}" for port in (1, 2)
    ]


def test_attaching_the_audit_keeps_every_other_field_of_the_result() -> None:
    """The audit is attached by building the Result anew (cheaper than dataclasses.replace): a
    field added to Result and forgotten there would be silently reset in every --audit run."""
    import dataclasses
    import datetime as dt

    from fetchheads.models import (
        Alert,
        Change,
        Redirect,
        ResponseHead,
        Result,
        Timing,
        TLSInfo,
    )
    from fetchheads.run.plan import AuditPlan
    from fetchheads.run.single import auditor

    result = Result(
        target="t",
        url="https://t/",
        head=ResponseHead("HTTP/1.1", 200, "OK", (("Server", "x"),)),
        address="127.0.0.1",
        timing=Timing(connect=0.001, total=0.002),
        tls=TLSInfo("TLSv1.3", "X", "CN=t", "CN=ca", "2030-01-01T00:00:00Z", 1000),
        redirects=(Redirect("http://t/", 301, "https://t/"),),
        fetched_at=dt.datetime(2026, 12, 4, tzinfo=dt.UTC),
        changes=(Change(":status", (), ("200",)),),
        warnings=(Alert("certificate", "soon"),),
    )
    grade = auditor(AuditPlan())
    assert grade is not None
    graded = grade(result)
    assert graded.audit is not None
    assert graded == dataclasses.replace(result, audit=graded.audit)


def test_the_offline_table_names_each_row_by_its_target_as_written(tmp_path: Path) -> None:
    """A target followed with -L ends on another URL: the TARGET column shows the target, as
    the plain and JSON Lines audits do, so a row can be matched with its input line."""
    import dataclasses

    from fetchheads.snapshots.store import Store
    from tests.support.snapshots import day, snap

    db = str(tmp_path / "heads.db")
    stored = dataclasses.replace(
        snap("http://a.test/start", day(1), ("Server", "x")), url="https://b.test/final"
    )
    with Store.open(db) as store:
        run = store.begin_run("0", {})
        store.record(run, [stored])
        store.finish_run(run, targets=1, ok=1)
    code, out, _ = fetchheads("audit", "--db", db)
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[3] == "TARGET"
    assert row.split()[3] == "a.test/start"
    code, out, _ = fetchheads("audit", "--db", db, "--format", "plain")
    assert out.split()[0] == "a.test/start"
