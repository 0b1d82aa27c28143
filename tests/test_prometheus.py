"""The textfile for node_exporter, read back by prometheus_client's own parser."""

from __future__ import annotations

import datetime as dt
import ssl
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from fetchheads.cli import cli
from fetchheads.models import Result
from fetchheads.render.prometheus import PHASES, PrometheusTextfile
from tests.support.results import (
    BARE,
    HEAD,
    fetch_following,
    fetch_head,
    fetch_refused,
    fetch_tls,
    input_error,
)
from tests.support.servers import LoopbackServer, reply

LENGTH_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nServer: x\r\n\r\n"


def parsed(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """family name -> {sorted labels: value}, with every family checked to be a gauge."""
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        assert family.documentation, family.name
        samples = families.setdefault(family.name, {})
        for sample in family.samples:
            assert sample.name == family.name
            samples[tuple(sorted(sample.labels.items()))] = sample.value
    return families


def of(
    families: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, target: str
) -> float:
    (value,) = [v for labels, v in families[name].items() if ("target", target) in labels]
    return value


async def test_blackbox_names_types_and_values_for_every_kind_of_result(
    refused_port: int, server_ssl_context: ssl.SSLContext, ca_file: Path
) -> None:
    ok = await fetch_head(LENGTH_HEAD)
    missing = await fetch_head(BARE)
    failed = await fetch_refused(refused_port)
    secure = await fetch_tls(server_ssl_context, str(ca_file))
    textfile = PrometheusTextfile()
    for result in (ok, missing, failed, secure):
        textfile.add(result)
    text = textfile.render()
    families = parsed(text)
    assert set(families) == {
        "probe_duration_seconds",
        "probe_http_content_length",
        "probe_http_duration_seconds",
        "probe_http_redirects",
        "probe_http_ssl",
        "probe_http_status_code",
        "probe_http_version",
        "probe_ssl_earliest_cert_expiry",
        "probe_success",
        "probe_tls_version_info",
    }
    for name in families:  # HELP and TYPE once per family, as the textfile collector wants
        assert text.count(f"# TYPE {name} gauge\n") == 1
    assert [of(families, "probe_success", r.target) for r in (ok, missing, failed, secure)] == [
        1,
        0,
        0,
        1,
    ]
    assert [
        of(families, "probe_http_status_code", r.target) for r in (ok, missing, failed, secure)
    ] == [200, 404, 0, 200]
    assert [of(families, "probe_http_version", r.target) for r in (ok, missing, failed)] == [
        1.1,
        1.0,
        0,
    ]
    assert of(families, "probe_http_content_length", ok.target) == 1234
    assert of(families, "probe_http_content_length", missing.target) == 0
    assert all(("target", failed.target) not in k for k in families["probe_http_content_length"])
    assert of(families, "probe_http_ssl", secure.target) == 1
    assert of(families, "probe_http_ssl", ok.target) == 0
    assert of(families, "probe_duration_seconds", ok.target) == pytest.approx(ok.timing.total)


async def test_phases_split_the_time_as_blackbox_does(
    server_ssl_context: ssl.SSLContext, ca_file: Path
) -> None:
    plain = await fetch_head(HEAD)
    secure = await fetch_tls(server_ssl_context, str(ca_file))
    textfile = PrometheusTextfile()
    textfile.add(plain)
    textfile.add(secure)
    phases = parsed(textfile.render())["probe_http_duration_seconds"]

    def phase(result: Result, name: str) -> float:
        return phases[tuple(sorted({"target": result.target, "phase": name}.items()))]

    assert len(phases) == 2 * len(PHASES)  # every phase of every target, 0 when not reached
    assert phase(plain, "tls") == 0
    # Without TLS the phases follow each other: together they are the whole fetch.
    assert sum(phase(plain, p) for p in PHASES) == pytest.approx(plain.timing.total)
    # blackbox's tls phase runs from the end of DNS, so it holds the TCP connect too.
    assert phase(secure, "tls") >= phase(secure, "connect") > 0
    assert secure.timing.tls is not None
    assert phase(secure, "tls") == pytest.approx(secure.timing.tls - (secure.timing.dns or 0))


async def test_certificate_expiry_and_tls_version_are_blackboxs(
    server_ssl_context: ssl.SSLContext, ca_file: Path
) -> None:
    secure = await fetch_tls(server_ssl_context, str(ca_file))
    textfile = PrometheusTextfile()
    textfile.add(secure)
    families = parsed(textfile.render())
    assert secure.tls is not None
    assert secure.tls.not_after is not None
    expiry = dt.datetime.fromisoformat(secure.tls.not_after)
    assert of(families, "probe_ssl_earliest_cert_expiry", secure.target) == expiry.timestamp()
    ((labels, value),) = families["probe_tls_version_info"].items()
    assert value == 1
    assert dict(labels)["version"] in {"TLS 1.2", "TLS 1.3"}


async def test_label_values_are_escaped_and_no_header_becomes_a_label(refused_port: int) -> None:
    hostile = input_error('a\\b"c')  # what a hostile input line becomes: its text is the label
    newline = Result(target="x\ny", url=None, error=hostile.error)
    textfile = PrometheusTextfile()
    for result in (hostile, newline, await fetch_head(HEAD)):
        textfile.add(result)
    text = textfile.render()
    assert 'target="a\\\\b\\"c"' in text
    assert 'target="x\\ny"' in text
    families = parsed(text)
    targets = {dict(labels)["target"] for labels in families["probe_success"]}
    assert {'a\\b"c', "x\ny"} <= targets
    for samples in families.values():
        for labels in samples:
            assert {name for name, _ in labels} <= {"target", "phase", "version"}
    assert "scripted" not in text  # the Server header's value
    assert "HYPERLINK" not in text


async def test_a_target_given_twice_is_one_series_the_later_result(refused_port: int) -> None:
    first = await fetch_refused(refused_port)
    later = await fetch_head(HEAD)
    later = Result(target=first.target, url=later.url, head=later.head, timing=later.timing)
    textfile = PrometheusTextfile()
    textfile.add(first)
    textfile.add(later)
    assert len(textfile) == 1
    families = parsed(textfile.render())
    assert families["probe_success"] == {(("target", first.target),): 1.0}


def test_no_results_is_an_empty_file_not_families_without_samples() -> None:
    assert PrometheusTextfile().render() == ""


async def test_success_can_be_the_users_own_rule() -> None:
    missing = await fetch_head(BARE)
    textfile = PrometheusTextfile(success=lambda result: result.ok)
    textfile.add(missing)
    assert of(parsed(textfile.render()), "probe_success", missing.target) == 1


async def test_http_version_is_the_one_the_server_named_as_blackbox_reads_it() -> None:
    """``HTTP/1.2`` is an answer (RFC 9112 §2.3: read as 1.1); blackbox's Go client reports it as
    1.2. Never 0, which says no answer came, beside a status code of 200."""
    textfile = PrometheusTextfile()
    minor = await fetch_head(b"HTTP/1.2 200 OK\r\n\r\n")
    old = await fetch_head(BARE)
    textfile.add(minor)
    textfile.add(old)
    families = parsed(textfile.render())
    assert of(families, "probe_http_status_code", minor.target) == 200
    assert of(families, "probe_http_version", minor.target) == 1.2
    assert of(families, "probe_http_version", old.target) == 1.0


async def test_under_L_the_probe_lasts_the_whole_chain_and_phases_add_up_the_hops() -> None:
    """A redirect answered after 0.3 s, then a quick final hop: blackbox's probe_duration_seconds
    is the whole probe and each phase is "summed over all redirects" (its help text), so the slow
    hop shows in both; the last hop's times alone would say about a millisecond."""
    async with LoopbackServer(reply(b"HTTP/1.1 200 OK\r\n\r\n")) as final:
        moved = b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/\r\n\r\n" % final.port
        async with LoopbackServer(reply(moved, delay=0.3)) as first:
            result = await fetch_following(f"http://127.0.0.1:{first.port}/")
    assert result.ok
    assert len(result.redirects) == 1
    textfile = PrometheusTextfile()
    textfile.add(result)
    families = parsed(textfile.render())
    target = result.target
    assert 0.3 <= of(families, "probe_duration_seconds", target) < 3
    processing = families["probe_http_duration_seconds"][
        (("phase", "processing"), ("target", target))
    ]
    assert 0.3 <= processing < 3
    assert of(families, "probe_http_redirects", target) == 1


async def test_under_L_a_loop_is_not_timed_twice() -> None:
    """A page that redirects to itself after 0.3 s is one request, listed as the chain's redirect
    and kept as its answer: probe_duration_seconds and the processing phase count it once, never
    more than the probe took."""
    async with LoopbackServer(
        reply(b"HTTP/1.1 301 Moved\r\nLocation: /\r\n\r\n", delay=0.3)
    ) as server:
        started = time.monotonic()
        result = await fetch_following(f"http://127.0.0.1:{server.port}/")
        took = time.monotonic() - started
    assert result.error is not None
    assert result.error.message.startswith("redirect loop")
    textfile = PrometheusTextfile()
    textfile.add(result)
    families = parsed(textfile.render())
    target = result.target
    assert 0.3 <= of(families, "probe_duration_seconds", target) <= took
    processing = families["probe_http_duration_seconds"][
        (("phase", "processing"), ("target", target))
    ]
    assert 0.3 <= processing <= took


def test_targets_that_differ_by_a_byte_that_is_not_utf8_are_two_series() -> None:
    """Both are shown with U+FFFD in JSON; as labels they would be one series, the first lost.
    The byte is written \\xE9 instead (a backslash escaped, as the exposition format wants)."""
    outcome = CliRunner().invoke(
        cli, ["--format", "prometheus", "127.0.0.1:9/caf\udce9", "127.0.0.1:9/caf\udcff"]
    )
    assert outcome.exit_code == 1
    assert 'probe_success{target="127.0.0.1:9/caf\\\\xE9"} 0\n' in outcome.stdout
    families = parsed(outcome.stdout)
    assert families["probe_success"] == {
        (("target", "127.0.0.1:9/caf\\xE9"),): 0.0,
        (("target", "127.0.0.1:9/caf\\xFF"),): 0.0,
    }
