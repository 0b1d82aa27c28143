"""A changed certificate under --changes, history and diff: one line naming what it is (renewed,
new key, new issuer, names changed) and where its expiry moved; never a change made up from a side
without certificate facts. The classification from a table, then real --changes runs against a
loopback TLS server whose certificate is swapped between runs, on both database backends."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fetchheads.models import Change
from fetchheads.render.history import history_text
from fetchheads.snapshots.changes import Snapshot, compare
from fetchheads.snapshots.renewals import certificate_change
from tests.support.certs import days, now, present_leaf
from tests.support.servers import ThreadedServer
from tests.support.snapshots import Site, fetchheads, query

DEC_1 = "2026-12-01T12:00:00Z"
MAR_1 = "2027-03-01T12:00:00Z"


def cert(
    fingerprint: str | None,
    *,
    spki: str = "k1",
    issuer: str = "CN=R3, O=Let's Encrypt",
    san: tuple[str, ...] = ("a.example", "www.a.example"),
    not_after: str = DEC_1,
) -> dict[str, Any]:
    return {
        "fingerprint_sha256": fingerprint,
        "spki_sha256": spki,
        "subject": "CN=a.example",
        "issuer": issuer,
        "san": list(san),
        "not_after": not_after,
    }


@pytest.mark.parametrize(
    ("after", "kind", "summary"),
    [
        (cert("f2", not_after=MAR_1), "renewed", "renewed, expires 2027-03-01 (was 2026-12-01)"),
        (
            cert("f2", spki="k2", not_after=MAR_1),
            "new key",
            "renewed with a new key, expires 2027-03-01 (was 2026-12-01)",
        ),
        (
            cert("f2", issuer="CN=E5, O=Let's Encrypt"),
            "new issuer",
            "new issuer: CN=R3, O=Let's Encrypt -> CN=E5, O=Let's Encrypt, expires 2026-12-01",
        ),
        (
            cert("f2", san=("a.example", "api.a.example"), spki="k2", not_after=MAR_1),
            "names changed",
            "names changed: +api.a.example, -www.a.example, new key, "
            "expires 2027-03-01 (was 2026-12-01)",
        ),
    ],
)
def test_a_new_certificate_is_named_for_what_it_is(
    after: dict[str, Any], kind: str, summary: str
) -> None:
    change = certificate_change(cert("f1"), after)
    assert change == Change(":certificate", ("f1",), ("f2",), kind=kind, summary=summary)
    assert change.to_record() == {
        "name": ":certificate",
        "before": ["f1"],
        "after": ["f2"],
        "kind": kind,
        "summary": summary,
    }


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (cert("f1"), cert("f1")),  # the same certificate, whatever else was stored
        (None, cert("f1")),  # an http target, or a failure before the handshake
        (cert("f1"), None),
        (cert(None), cert("f2")),  # a row stored before certificates had fingerprints
        ({"subject": "CN=a", "issuer": None, "san": []}, cert("f2")),  # -k, before this
    ],
)
def test_a_side_without_a_certificate_is_no_change(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    assert certificate_change(before, after) is None


def snap(tls: dict[str, Any] | None, *, error: str | None = None, n: int = 1) -> Snapshot:
    return Snapshot(
        key="https://a.example/",
        target="https://a.example/",
        url="https://a.example/",
        fetched_at=f"2026-11-2{n}T00:00:00.000Z",
        ok=error is None,
        status=None if error else 200,
        has_head=error is None,
        error_kind=error,
        error_message="refused" if error else None,
        tls=tls,
        id=n,
        run_id=n,
    )


def test_a_failure_between_two_certificates_changes_nothing_of_its_own() -> None:
    up, down = snap(cert("f1"), n=1), snap(None, error="connect", n=2)
    assert [c.name for c in compare(up, down)] == [":error", ":status"]
    back = snap(cert("f1"), n=3)
    # Coming back with the same certificate: no certificate change, whatever came between.
    assert [c.name for c in compare(down, back)] == [":error", ":status"]


# --- real runs: one server, its certificate swapped between them ------------------------------


class Swapped:
    """A loopback TLS server whose certificate a test replaces between runs."""

    def __init__(self, context: ssl.SSLContext, tmp: Path, target: str) -> None:
        self.context = context
        self.tmp = tmp
        self.target = target

    def present(
        self, ca: trustme.CA, key: ec.EllipticCurvePrivateKey, *hosts: str, left: float
    ) -> str:
        """Present a new leaf for ``hosts`` (default 127.0.0.1); its expiry day."""
        not_after = now() + days(left)
        present_leaf(
            self.context, ca, key, self.tmp, *(hosts or ("127.0.0.1",)), not_after=not_after
        )
        return not_after.strftime("%Y-%m-%d")

    def refuse_handshakes(self, refuse: bool) -> None:
        """Abort every handshake before a certificate is sent (a failure without TLS facts)."""
        self.context.sni_callback = (
            (lambda *_: ssl.ALERT_DESCRIPTION_INTERNAL_ERROR) if refuse else None
        )


@pytest.fixture
def swapped(
    threaded_server: Callable[..., ThreadedServer], ca: trustme.CA, tmp_path: Path
) -> tuple[Swapped, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    present_leaf(context, ca, key, tmp_path, "127.0.0.1", not_after=now() + days(30))
    server: ThreadedServer = threaded_server(Site(Server="tls").handler, ssl_context=context)
    return Swapped(context, tmp_path, f"https://127.0.0.1:{server.port}/"), key


@pytest.fixture
def second_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def both_cas(ca: trustme.CA, second_ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "cas.pem"
    ca.cert_pem.write_to_path(str(path))
    second_ca.cert_pem.write_to_path(str(path), append=True)
    return path


def issuer_of(ca: trustme.CA) -> str:
    """The issuer as the tls facts write it: ``O=..., OU=..., CN=...`` in the certificate's order."""
    subject = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject
    return ", ".join(f"{a.rfc4514_attribute_name}={a.value!s}" for a in subject)


def test_a_renewal_sequence_reads_one_line_per_certificate(
    swapped: tuple[Swapped, ec.EllipticCurvePrivateKey],
    ca: trustme.CA,
    second_ca: trustme.CA,
    both_cas: Path,
    db: str,
) -> None:
    server, key = swapped
    target = server.target
    run = ("--db", db, "--changes", "--cacert", str(both_cas), "--format", "plain", target)
    assert fetchheads(*run)[:2] == (0, "")  # run 1: the baseline
    first = (now() + days(30)).strftime("%Y-%m-%d")

    renewed = server.present(ca, key, left=90)  # run 2: renewed, same key
    assert fetchheads(*run)[:2] == (
        0,
        f"{target} changed > certificate: renewed, expires {renewed} (was {first})\n",
    )
    assert fetchheads(*run)[:2] == (0, "")  # the same certificate again: nothing

    moved = server.present(second_ca, key, left=60)  # run 3: another CA
    assert fetchheads(*run)[:2] == (
        0,
        f"{target} changed > certificate: new issuer: {issuer_of(ca)} -> "
        f"{issuer_of(second_ca)}, expires {moved} (was {renewed})\n",
    )

    rekeyed = server.present(second_ca, ec.generate_private_key(ec.SECP256R1()), left=61)
    code, out, _ = fetchheads(*run[:-3], "--json", target)
    assert code == 0
    [change] = json.loads(out)["changes"]
    assert change["kind"] == "new key"
    assert change["summary"] == f"renewed with a new key, expires {rekeyed} (was {moved})"
    assert change["before"] != change["after"]

    server.present(second_ca, key, "127.0.0.1", "localhost", left=61)
    code, out, _ = fetchheads(*run[:-3], "--format", "pretty", target)
    assert code == 0
    assert "certificate:  names changed: +localhost, new key" in out

    code, out, _ = fetchheads("history", "--db", db, target)
    assert code == 0
    story = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert story == [
        "certificate: names changed: +localhost, new key, expires " + rekeyed,
        f"certificate: renewed with a new key, expires {rekeyed} (was {moved})",
        f"certificate: new issuer: {issuer_of(ca)} -> {issuer_of(second_ca)}, "
        f"expires {moved} (was {renewed})",
        f"certificate: renewed, expires {renewed} (was {first})",
    ]
    code, out, _ = fetchheads("history", "--db", db, "--json", target)
    kinds = [[c.get("kind") for c in json.loads(line)["changes"]] for line in out.splitlines()]
    assert kinds == [["names changed"], ["new key"], ["new issuer"], [], ["renewed"], [None]]


def test_a_renewal_during_an_outage_is_named_when_the_target_comes_back(
    swapped: tuple[Swapped, ec.EllipticCurvePrivateKey], ca: trustme.CA, ca_file: Path, db: str
) -> None:
    server, key = swapped
    target = server.target
    run = ("--db", db, "--changes", "--cacert", str(ca_file), "--format", "plain", target)
    assert fetchheads(*run)[:2] == (0, "")
    first = (now() + days(30)).strftime("%Y-%m-%d")
    server.refuse_handshakes(True)
    code, out, _ = fetchheads(*run)
    assert code == 1
    # :error and :status, and no certificate change made up from the side that has none.
    assert [line.split(" > ")[1][:7] for line in out.splitlines()] == [":error:", ":status"]
    assert query(db, "SELECT count(*) FROM snapshots WHERE tls IS NULL") == [(1,)]
    renewed = server.present(ca, key, left=90)
    server.refuse_handshakes(False)
    code, out, _ = fetchheads(*run)
    assert code == 0
    assert out.splitlines()[1:] == [
        f"{target} changed > :status: (none) -> 200",
        f"{target} changed > certificate: renewed, expires {renewed} (was {first})",
    ]
    code, out, _ = fetchheads("history", "--db", db, target)
    assert f"  certificate: renewed, expires {renewed} (was {first})" in out.splitlines()
    assert out.count("certificate:") == 1


def test_a_row_without_certificate_facts_is_taken_as_the_baseline_silently(
    swapped: tuple[Swapped, ec.EllipticCurvePrivateKey], ca: trustme.CA, ca_file: Path, db: str
) -> None:
    server, key = swapped
    run = ("--db", db, "--changes", "--cacert", str(ca_file), "--format", "plain", server.target)
    assert fetchheads(*run)[:2] == (0, "")
    # As a row written before certificates were decoded (or under -k then) stores them.
    old = '{"version": "TLSv1.3", "subject": null, "issuer": null, "san": [], "days_left": 29}'
    assert query(db, f"UPDATE snapshots SET tls = '{old}' RETURNING id") == [(1,)]
    server.present(ca, key, left=90)
    assert fetchheads(*run)[:2] == (0, "")
    server.present(ca, key, left=91)
    assert "certificate: renewed" in fetchheads(*run)[1]


def test_history_text_shows_the_certificate_line_under_its_snapshot() -> None:
    before, after = snap(cert("f1"), n=1), snap(cert("f2", not_after=MAR_1), n=2)
    text = history_text([(after, before, compare(before, after)), (before, None, ())])
    assert text.splitlines()[1] == "  certificate: renewed, expires 2027-03-01 (was 2026-12-01)"
