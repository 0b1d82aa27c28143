"""Certificates as a user meets them: the facts of every https target, verified or not (-k, a
failed verification), the messages that say why verification failed and what to do, and the
warnings of --warn-days and --warn-fraction. Loopback TLS servers, the real command line."""

from __future__ import annotations

import datetime as dt
import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from click.testing import CliRunner

from fetchheads.certificates import certificate_alerts, decode, explain_rejection, tls_facts
from fetchheads.cli import cli
from fetchheads.fetch.connection import presented_chain
from fetchheads.models import Alert, ChainCert, Result, TLSInfo
from tests.support.certs import (
    days,
    leaf_context,
    now,
    presenting_unreadable,
    self_signed,
    self_signed_until_year_999,
    under_intermediate_until_year_999,
    under_short_intermediate,
    unreadable,
)
from tests.support.servers import ThreadedServer, reply

HEAD = b"HTTP/1.1 200 OK\r\nServer: tls-test\r\n\r\n"
LOOK_ANYWAY = "give --cacert FILE, or -k to look anyway"

StartServer = Callable[..., ThreadedServer]


def fetchheads(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout


def fetch_json(*args: str) -> tuple[int, dict[str, Any]]:
    code, out = fetchheads("--json", *args)
    [line] = out.splitlines()
    return code, json.loads(line)


@pytest.fixture
def serve(threaded_server: StartServer) -> Callable[[ssl.SSLContext], str]:
    """``serve(context)`` -> ``https://127.0.0.1:PORT/`` answering 200 over that context."""

    def start(context: ssl.SSLContext) -> str:
        return f"https://127.0.0.1:{threaded_server(reply(HEAD), ssl_context=context).port}/"

    return start


def iso_day(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d")


# --- the facts, whatever the verification ----------------------------------------------------


def test_every_key_of_the_tls_object_is_filled_for_a_verified_certificate(
    serve: Callable[[ssl.SSLContext], str], ca: trustme.CA, ca_file: Path
) -> None:
    not_before, not_after = now() - days(30), now() + days(60)
    url = serve(
        leaf_context(ca.issue_cert("127.0.0.1", not_before=not_before, not_after=not_after))
    )
    code, record = fetch_json("--cacert", str(ca_file), url)
    assert code == 0
    tls = record["tls"]
    assert tls["verified"] is True
    assert tls["self_signed"] is False
    assert tls["not_before"] == not_before.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert tls["not_after"] == not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert tls["days_left"] == 59  # whole days, rounded down: 60 days less a few milliseconds
    assert tls["lifetime_days"] == 90.0
    assert tls["life_left"] == pytest.approx(2 / 3, abs=0.002)
    assert tls["key"] == "EC P-256"  # trustme's default key
    assert tls["signature_algorithm"] == "ecdsa-with-SHA256"
    assert len(tls["fingerprint_sha256"]) == 64
    assert len(tls["spki_sha256"]) == 64
    assert tls["fingerprint_sha256"] != tls["spki_sha256"]
    assert int(tls["serial"], 16) > 0
    assert tls["san"] == ["127.0.0.1"]
    # trustme's leaf comes alone: the chain is the leaf, and nothing expires after it.
    assert [entry["not_after"] for entry in tls["chain"]] == [tls["not_after"]]
    assert tls["chain"][0]["issuer"] == tls["issuer"]
    assert tls["chain_earliest_expiry"] is None


def test_insecure_shows_the_names_and_dates_it_used_to_leave_out(
    serve: Callable[[ssl.SSLContext], str], ca: trustme.CA, ca_file: Path
) -> None:
    url = serve(leaf_context(ca.issue_cert("127.0.0.1", not_after=now() + days(60))))
    _, verified = fetch_json("--cacert", str(ca_file), url)
    code, insecure = fetch_json("-k", url)
    assert code == 0
    assert insecure["tls"]["verified"] is False
    same = {key: value for key, value in insecure["tls"].items() if key not in ("verified",)}
    assert same == {key: value for key, value in verified["tls"].items() if key != "verified"}
    code, out = fetchheads("--format", "pretty", "-k", url)
    assert "certificate not verified (-k)" in out
    assert "names 127.0.0.1" in out
    assert "no names or dates" not in out


# --- expired ------------------------------------------------------------------------------------


@pytest.fixture
def expired(serve: Callable[[ssl.SSLContext], str], ca: trustme.CA) -> tuple[str, dt.datetime]:
    end = now() - days(337.5)
    cert = ca.issue_cert("127.0.0.1", not_before=end - days(90), not_after=end)
    return serve(leaf_context(cert)), end


def test_an_expired_certificate_says_when_it_expired(
    expired: tuple[str, dt.datetime], ca_file: Path
) -> None:
    url, end = expired
    code, record = fetch_json("--cacert", str(ca_file), url)
    assert code == 1
    assert record["ok"] is False
    assert record["error"] == {
        "kind": "tls",
        "message": f"certificate verification failed: certificate expired on {iso_day(end)} "
        "(337 days ago)",
    }
    assert record["tls"]["verified"] is False
    assert record["tls"]["days_left"] == -338
    assert record["tls"]["life_left"] == 0.0
    assert record["timing"]["tls"] is None  # the verified handshake never completed
    code, out = fetchheads("--format", "plain", "--cacert", str(ca_file), url)
    assert (
        out
        == f"{url} error > tls: certificate verification failed: certificate expired on {iso_day(end)} (337 days ago)\n"
    )


def test_warn_days_under_insecure_flags_an_expired_certificate_with_exit_3(
    expired: tuple[str, dt.datetime],
) -> None:
    url, end = expired
    code, out = fetchheads("--warn-days", "100", "-k", "--format", "plain", url)
    assert code == 3
    stamp = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert out.splitlines()[-1] == f"{url} warning > certificate expired ({stamp})"
    code, out = fetchheads("--warn-days", "100", "-k", "--format", "pretty", url)
    assert code == 3
    assert "EXPIRED 337 days ago" in out  # whole days elapsed, as the error message counts
    assert "⚠ certificate expired" in out


def test_an_untrusted_issuer_is_named_with_the_way_out(expired: tuple[str, dt.datetime]) -> None:
    url, _ = expired
    code, record = fetch_json(url)  # the system store does not know the test CA
    assert code == 1
    message = record["error"]["message"]
    assert message.startswith("certificate verification failed: issued by O=trustme")
    assert message.endswith(f", which is not trusted: {LOOK_ANYWAY}")
    assert record["tls"]["issuer"] in message
    assert record["tls"]["days_left"] < 0  # the facts are there for what comes next


# --- not yet valid, another host ----------------------------------------------------------------


def test_a_certificate_not_yet_valid_asks_about_the_clock(
    serve: Callable[[ssl.SSLContext], str], ca: trustme.CA, ca_file: Path
) -> None:
    start = now() + days(30.5)
    url = serve(
        leaf_context(ca.issue_cert("127.0.0.1", not_before=start, not_after=start + days(90)))
    )
    code, record = fetch_json("--cacert", str(ca_file), url)
    assert code == 1
    assert record["error"]["message"] == (
        f"certificate verification failed: certificate is not valid until {iso_day(start)} "
        "(in 30 days): is this machine's clock right?"
    )
    assert record["tls"]["life_left"] == 1.0
    code, record = fetch_json("-k", url)
    assert code == 0
    assert record["tls"]["not_before"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_certificate_for_another_host_lists_the_names_it_is_for(
    serve: Callable[[ssl.SSLContext], str], ca: trustme.CA, ca_file: Path
) -> None:
    url = serve(leaf_context(ca.issue_cert("www.example.com", "example.com")))
    code, record = fetch_json("--cacert", str(ca_file), url)
    assert code == 1
    assert record["error"]["message"] == (
        "certificate verification failed: certificate is for www.example.com, example.com — "
        "not 127.0.0.1"
    )
    assert record["tls"]["san"] == ["www.example.com", "example.com"]
    localhost = url.replace("127.0.0.1", "localhost")
    code, record = fetch_json(
        "--cacert",
        str(ca_file),
        "--resolve",
        f"localhost:{url.split(':')[2][:-1]}:127.0.0.1",
        localhost,
    )
    assert record["error"]["message"].endswith("www.example.com, example.com — not localhost")
    assert fetch_json("-k", url)[0] == 0


# --- self-signed ----------------------------------------------------------------------------------


def test_a_self_signed_certificate_says_so_and_can_be_trusted_with_cacert(
    serve: Callable[[ssl.SSLContext], str], ca_file: Path, tmp_path: Path
) -> None:
    url = serve(self_signed(tmp_path, "127.0.0.1"))
    code, record = fetch_json("--cacert", str(ca_file), url)
    assert code == 1
    assert record["error"]["message"] == (
        "certificate verification failed: self-signed certificate "
        f"(O=fetchheads tests, CN=self.test), which is not trusted: {LOOK_ANYWAY}"
    )
    assert record["tls"]["self_signed"] is True
    assert record["tls"]["key"] == "RSA 2048"
    assert record["tls"]["signature_algorithm"] == "sha256WithRSAEncryption"
    code, record = fetch_json("--cacert", str(tmp_path / "self.pem"), url)
    assert code == 0
    assert record["tls"]["verified"] is True
    assert record["tls"]["self_signed"] is True
    code, out = fetchheads("--format", "pretty", "-k", url)
    assert code == 0
    assert "issuer O=fetchheads tests, CN=self.test (self-signed)" in out


# --- an intermediate that expires first ---------------------------------------------------------


@pytest.fixture
def short_intermediate(
    serve: Callable[[ssl.SSLContext], str], ca: trustme.CA, tmp_path: Path
) -> str:
    return serve(
        under_short_intermediate(ca, tmp_path, "127.0.0.1", intermediate_days=20.5, leaf_days=60.5)
    )


def test_the_chain_and_its_earliest_expiry_are_kept_apart_from_the_leaf(
    short_intermediate: str, ca_file: Path
) -> None:
    code, record = fetch_json("--cacert", str(ca_file), short_intermediate)
    assert code == 0
    tls = record["tls"]
    assert tls["days_left"] == 60
    [leaf, middle] = tls["chain"]
    assert leaf == {
        "subject": tls["subject"],
        "issuer": tls["issuer"],
        "not_after": tls["not_after"],
    }
    assert middle["subject"] == "O=fetchheads tests, CN=Short Intermediate"
    assert middle["issuer"].startswith("O=trustme")
    assert tls["chain_earliest_expiry"] == middle["not_after"] < tls["not_after"]


@pytest.mark.parametrize("anchor", [0, 1], ids=["the-leaf", "the-intermediate"])
def test_a_cacert_of_the_leaf_or_its_intermediate_alone_is_trusted_as_curl_trusts_it(
    short_intermediate: str, tmp_path: Path, anchor: int
) -> None:
    """--cacert holding the server's own certificate, or the intermediate that signed it, and
    not the root: curl (partial chains, its default since 7.68) and Python 3.13 trust it; so does
    fetchheads, on 3.11 and 3.12 too."""
    chain = (tmp_path / "chain.pem").read_text()  # what the server presents: leaf, intermediate
    blocks = [
        f"{block}-----END CERTIFICATE-----\n"
        for block in chain.split("-----END CERTIFICATE-----\n")
        if block.strip()
    ]
    assert len(blocks) == 2
    (tmp_path / "anchor.pem").write_text(blocks[anchor])
    code, record = fetch_json("--cacert", str(tmp_path / "anchor.pem"), short_intermediate)
    assert (code, record["error"]) == (0, None)
    assert record["tls"]["verified"] is True


@pytest.mark.parametrize("trust", [["--cacert", "CA"], ["-k"]])
def test_an_intermediate_expiring_before_the_leaf_is_a_warning(
    short_intermediate: str, ca_file: Path, trust: list[str]
) -> None:
    trust = [str(ca_file) if arg == "CA" else arg for arg in trust]
    code, out = fetchheads("--warn-days", "7", "--format", "plain", *trust, short_intermediate)
    assert code == 3
    [warning] = [line for line in out.splitlines() if " warning > " in line]
    assert warning.startswith(
        f"{short_intermediate} warning > intermediate O=fetchheads tests, CN=Short Intermediate "
        "expires "
    )
    assert warning.endswith("the chain breaks then unless the server sends a renewed one")
    code, out = fetchheads("--format", "plain", *trust, short_intermediate)
    assert code == 0  # no warning unless asked for


def test_the_untrusted_issuer_of_a_chain_is_the_one_at_its_top(short_intermediate: str) -> None:
    code, record = fetch_json(short_intermediate)
    assert code == 1
    message = record["error"]["message"]
    assert message.startswith("certificate verification failed: issued by O=trustme")
    assert "Short Intermediate" not in message
    assert len(record["tls"]["chain"]) == 2


# --- short-lived certificates and --warn-fraction ------------------------------------------------


@pytest.fixture
def six_days(serve: Callable[[ssl.SSLContext], str], ca: trustme.CA) -> Callable[[float], str]:
    """``six_days(left)``: a server with a 6-day certificate that has ``left`` days to go."""

    def start(left: float) -> str:
        end = now() + days(left)
        return serve(
            leaf_context(ca.issue_cert("127.0.0.1", not_before=end - days(6), not_after=end))
        )

    return start


def test_a_six_day_certificate_warns_by_fraction_only_when_its_renewal_is_late(
    six_days: Callable[[float], str], ca_file: Path
) -> None:
    fresh, late = six_days(5), six_days(1.5)
    for url in (fresh, late):
        code, out = fetchheads(
            "--warn-days", "14", "--cacert", str(ca_file), "--format", "plain", url
        )
        assert code == 3  # fewer than 14 days: always, for a 6-day certificate
    code, out = fetchheads(
        "--warn-fraction", "1/3", "--cacert", str(ca_file), "--format", "plain", fresh
    )
    assert (code, out.count(" warning > ")) == (0, 0)
    code, out = fetchheads(
        "--warn-fraction", "1/3", "--cacert", str(ca_file), "--format", "plain", late
    )
    assert code == 3
    assert out.splitlines()[-1].startswith(f"{late} warning > certificate expires in 1 day (")
    assert out.splitlines()[-1].endswith("), 25% of its 6-day lifetime left")
    code, record = fetch_json("-k", "--warn-fraction", "30%", late)
    assert code == 3
    assert record["tls"]["lifetime_days"] == 6.0
    assert record["tls"]["life_left"] == pytest.approx(0.25, abs=0.002)


def test_a_certificate_of_hours_is_said_in_hours_not_as_0_days(
    serve: Callable[[ssl.SSLContext], str], ca: trustme.CA, ca_file: Path
) -> None:
    """A 12-hour certificate with 3 hours to go read "expires in 0 days", "0-day lifetime"."""
    end = now() + dt.timedelta(hours=3)
    url = serve(leaf_context(ca.issue_cert("127.0.0.1", not_before=end - days(0.5), not_after=end)))
    code, out = fetchheads(
        "--warn-days", "1", "--warn-fraction", "1/3", "--cacert", str(ca_file), "--format",
        "plain", url,
    )  # fmt: skip
    assert code == 3
    warning = out.splitlines()[-1]
    assert warning.startswith(f"{url} warning > certificate expires in less than a day (")
    assert warning.endswith("), 25% of its 12-hour lifetime left")
    code, out = fetchheads("--cacert", str(ca_file), "--format", "pretty", "--no-waterfall", url)
    assert code == 0
    assert "(less than a day; 25% of its 12-hour lifetime left)" in " ".join(out.split())


@pytest.mark.parametrize("value", ["0", "1", "4/3", "x", "1/0", "nan", "-25%"])
def test_a_warn_fraction_that_is_no_fraction_is_a_usage_error(value: str) -> None:
    result = CliRunner().invoke(cli, ["--warn-fraction", value, "https://127.0.0.1:1/"])
    assert result.exit_code == 2
    assert "is not a fraction of a lifetime: give one such as 1/3, 0.25 or 25%" in result.stderr


# --- certificates OpenSSL takes and cryptography cannot read ---------------------------------------


def fetch_records(*args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    code, out = fetchheads("--json", *args)
    records = [json.loads(line) for line in out.splitlines()]
    return code, {record["url"]: record for record in records}


@pytest.mark.parametrize(
    ("kind", "in_chain"),
    [
        # OpenSSL will not present a leaf with two subjectAltNames, only send one along.
        ("duplicate-san", True),
        ("x400-san", False),
        ("x400-san", True),
        ("version-4", False),
        ("version-4", True),
    ],
)
def test_a_certificate_cryptography_cannot_read_ends_only_its_own_target(
    serve: Callable[[ssl.SSLContext], str],
    ca: trustme.CA,
    ca_file: Path,
    tmp_path: Path,
    kind: str,
    in_chain: bool,
) -> None:
    """Two subjectAltName extensions, an x400Address among the names, a version field of 3:
    OpenSSL takes them in a handshake, cryptography raises for them. The run goes on: every
    target has its record, and the odd one says what could be read."""
    good = serve(leaf_context(ca.issue_cert("127.0.0.1")))
    odd = serve(presenting_unreadable(tmp_path, kind, in_chain=in_chain))
    code, records = fetch_records("-k", good, odd)
    assert code == 0
    assert records[good]["ok"] is True
    assert records[odd]["ok"] is True
    tls = records[odd]["tls"]
    assert len(tls["fingerprint_sha256"]) == 64
    if in_chain:
        assert tls["subject"] == "O=fetchheads tests, CN=self.test"
        assert len(tls["chain"]) == 2
    elif kind == "version-4":
        assert tls["subject"] is None  # not loaded at all: only its fingerprint is known
    else:
        assert tls["subject"] == "O=fetchheads tests, CN=127.0.0.1"
        assert tls["san"] == []  # the names could not be read; the rest is told
        assert tls["days_left"] == 29
    # Verified: the odd one fails verification, and the second look at it still ends well.
    code, records = fetch_records("--cacert", str(ca_file), good, odd)
    assert code == 1
    assert records[good]["ok"] is True
    assert records[odd]["error"]["kind"] == "tls"
    assert records[odd]["error"]["message"].startswith("certificate verification failed: ")
    code, out = fetchheads("-k", "--format", "pretty", good, odd)
    assert code == 0
    assert "internal error" not in out


def test_a_verified_certificate_keeps_its_names_when_another_extension_is_unreadable(
    serve: Callable[[ssl.SSLContext], str], tmp_path: Path
) -> None:
    """A malformed SCT list makes cryptography refuse every extension; OpenSSL verifies the
    certificate anyway, and its own reading of the names fills them in."""
    odd = serve(presenting_unreadable(tmp_path, "bad-sct"))
    trusted = tmp_path / "trusted.pem"
    trusted.write_bytes((tmp_path / "chain.pem").read_bytes())
    code, records = fetch_records("--cacert", str(trusted), odd)
    assert code == 0
    tls = records[odd]["tls"]
    assert tls["verified"] is True
    assert tls["san"] == ["127.0.0.1"]
    code, records = fetch_records("-k", odd)  # unverified: Python gives no names of its own
    assert records[odd]["tls"]["san"] == []


def test_decode_never_raises_for_what_cryptography_refuses() -> None:
    for kind in ("duplicate-san", "x400-san", "version-4"):
        der, _ = unreadable(kind)
        decoded = decode(der)
        assert len(decoded.fingerprint_sha256) == 64
        assert decoded.san == ()
        if kind != "version-4":
            assert decoded.subject == "O=fetchheads tests, CN=127.0.0.1"
            assert decoded.not_after is not None


# --- years before 1000 ---------------------------------------------------------------------------


def test_a_certificate_that_expired_in_the_year_999_is_told_with_four_digit_years(
    serve: Callable[[ssl.SSLContext], str], tmp_path: Path
) -> None:
    url = serve(self_signed_until_year_999(tmp_path))
    code, record = fetch_json("--cacert", str(tmp_path / "self.pem"), url)
    assert code == 1
    assert record["tls"]["not_after"] == "0999-12-31T23:59:59Z"
    assert record["error"]["message"].startswith(
        "certificate verification failed: certificate expired on 0999-12-31 ("
    )
    code, out = fetchheads("-k", "--format", "pretty", url)
    assert code == 0
    assert "0999-12-31T23:59:59Z (EXPIRED " in out


def test_an_intermediate_that_expired_in_the_year_999_is_warned_about(
    serve: Callable[[ssl.SSLContext], str], tmp_path: Path
) -> None:
    url = serve(under_intermediate_until_year_999(tmp_path))
    code, out = fetchheads("-k", "--warn-days", "7", "--format", "plain", url)
    assert code == 3
    [warning] = [line for line in out.splitlines() if " warning > " in line]
    assert warning.startswith(
        f"{url} warning > intermediate O=fetchheads tests, CN=Old Intermediate expires "
        "0999-12-31T23:59:59Z, before the certificate ("
    )


# --- the parts, alone -----------------------------------------------------------------------------


def test_a_rejection_without_the_certificate_still_gives_the_way_out() -> None:
    reason = "unable to get local issuer certificate"
    assert explain_rejection(20, reason, "h", None, now()) == f"{reason}: {LOOK_ANYWAY}"
    assert explain_rejection(10, "certificate has expired", "h", None, now()) == (
        "certificate has expired"
    )


def test_an_expired_or_future_certificate_above_a_valid_leaf_is_not_blamed_on_the_leaf() -> None:
    """OpenSSL says "certificate has expired" (10) or "not yet valid" (9) for any certificate
    of the chain, including a CA from --cacert that the server never sent. A valid leaf, and a
    presented chain with nothing expired: the message points above them, not at the site."""
    moment = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
    tls = TLSInfo(
        "TLSv1.3", None, "CN=site", "CN=CA", "2027-03-15T00:00:00Z", 99,
        not_before="2026-12-01T00:00:00Z",
        chain=(ChainCert("CN=site", "CN=CA", "2027-03-15T00:00:00Z"),),
    )  # fmt: skip
    assert explain_rejection(10, "certificate has expired", "h", tls, moment) == (
        "a CA certificate above those the server sent has expired (the server's own is valid "
        "until 2027-03-15): check --cacert or this machine's CA store"
    )
    assert explain_rejection(9, "certificate is not yet valid", "h", tls, moment) == (
        "a certificate in the chain above the server's own is not valid yet (the server's is "
        "valid since 2026-12-01): is this machine's clock right?"
    )


def test_a_certificate_whose_dates_are_reversed_is_never_valid_whatever_the_clock() -> None:
    moment = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
    tls = TLSInfo(
        "TLSv1.3", None, "CN=site", "CN=CA", "2027-01-01T00:00:00Z", 26,
        not_before="2027-02-23T00:00:00Z",
    )  # fmt: skip
    assert explain_rejection(9, "certificate is not yet valid", "h", tls, moment) == (
        "certificate is never valid: its dates are reversed (from 2027-02-23, until "
        "2027-01-01): the server needs a new one"
    )


def test_a_certificate_that_cannot_be_decoded_still_has_a_fingerprint() -> None:
    garbage = decode(b"\x30\x03\x02\x01\x01")
    assert garbage.subject is None
    assert garbage.not_after is None
    assert len(garbage.fingerprint_sha256) == 64
    facts = tls_facts("TLSv1.3", "X", b"\x30\x03\x02\x01\x01", None, verified=False, now=0.0)
    assert facts.days_left is None
    assert facts.chain is None


def test_where_the_interpreter_cannot_give_the_chain_it_is_null() -> None:
    class Bare:  # neither 3.13's get_unverified_chain nor CPython's private one
        pass

    assert presented_chain(Bare()) is None  # type: ignore[arg-type]


def test_a_root_sent_along_is_not_an_intermediate_to_warn_about() -> None:
    chain = (
        ChainCert("CN=leaf", "CN=root", "2027-01-01T00:00:00Z"),
        ChainCert("CN=root", "CN=root", "2026-12-31T00:00:00Z"),
    )
    tls = TLSInfo("TLSv1.3", "X", "CN=leaf", "CN=root", "2027-01-01T00:00:00Z", 30, chain=chain)
    result = Result(target="t", url="https://t/", tls=tls)
    assert certificate_alerts(result, 7, None) == ()
    middle = ChainCert("CN=mid", "CN=root", "2026-12-31T00:00:00Z")
    tls = TLSInfo(
        "TLSv1.3", "X", "CN=leaf", "CN=mid", "2027-01-01T00:00:00Z", 30, chain=(chain[0], middle)
    )
    [alert] = certificate_alerts(Result(target="t", url="https://t/", tls=tls), None, 0.1) or ()
    assert alert == Alert(
        "certificate",
        "intermediate CN=mid expires 2026-12-31T00:00:00Z, before the certificate "
        "(2027-01-01T00:00:00Z): the chain breaks then unless the server sends a renewed one",
    )


def tls_with(days_left: int | None) -> TLSInfo:
    return TLSInfo("TLSv1.3", "X", "CN=a", "CN=ca", "2026-12-01T00:00:00Z", days_left)


@pytest.mark.parametrize(
    ("days_left", "warn_days", "message"),
    [
        (29, 30, "certificate expires in 29 days (2026-12-01T00:00:00Z)"),
        (1, 30, "certificate expires in 1 day (2026-12-01T00:00:00Z)"),
        (-2, 30, "certificate expired (2026-12-01T00:00:00Z)"),
        (30, 30, None),
        (None, 30, None),
    ],
)
def test_certificate_alerts_flag_fewer_than_n_days(
    days_left: int | None, warn_days: int, message: str | None
) -> None:
    alerts = certificate_alerts(
        Result(target="t", url="https://t/", tls=tls_with(days_left)), warn_days
    )
    assert alerts == ((Alert("certificate", message),) if message else ())


def test_no_alerts_without_the_options_or_without_tls() -> None:
    assert certificate_alerts(Result(target="t", url="https://t/", tls=tls_with(3)), None) is None
    assert certificate_alerts(Result(target="t", url="http://t/"), 30) == ()


def test_a_certificate_with_an_empty_subject_that_signs_itself_is_self_signed() -> None:
    """Its subject and issuer are shown as none, but it signs itself all the same: what the
    error calls self-signed, the record does too."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())

    def signed_by(signer: ec.EllipticCurvePrivateKey) -> bytes:
        empty = x509.Name([])
        cert = (
            x509.CertificateBuilder()
            .subject_name(empty)
            .issuer_name(empty)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - days(1))
            .not_valid_after(now() + days(30))
            .sign(signer, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.DER)

    decoded = decode(signed_by(key))
    assert (decoded.subject, decoded.issuer) == (None, None)
    assert decoded.self_signed is True
    # Signed by another key under the same (empty) name: not self-signed.
    assert decode(signed_by(ec.generate_private_key(ec.SECP256R1()))).self_signed is False


@pytest.mark.parametrize(
    ("lifetime", "words"),
    [
        (dt.timedelta(hours=12), "12-hour"),
        (dt.timedelta(minutes=59, seconds=45), "1-hour"),
        (dt.timedelta(minutes=30), "30-minute"),
        (dt.timedelta(seconds=20), "1-minute"),
    ],
)
def test_a_lifetime_under_a_day_is_said_in_the_unit_it_rounds_to(
    lifetime: dt.timedelta, words: str
) -> None:
    """Just under an hour rounds to 60 minutes: the warning says a 1-hour lifetime, not a
    60-minute one."""
    start = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    end = start + lifetime
    tls = TLSInfo(
        "TLSv1.3", "X", "CN=leaf", "CN=ca", f"{end:%Y-%m-%dT%H:%M:%SZ}", 0,
        not_before=f"{start:%Y-%m-%dT%H:%M:%SZ}",
        lifetime_days=round(lifetime.total_seconds() / 86_400, 2), life_left=0.1,
    )  # fmt: skip
    [alert] = certificate_alerts(Result(target="t", url="https://t/", tls=tls), None, 0.25) or ()
    assert alert.message.endswith(f", 10% of its {words} lifetime left"), alert.message
