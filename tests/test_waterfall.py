"""The pretty block's timing waterfall, TLS facts and redirect chain, rendered to a plain console."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from fetchheads.cli import cli
from fetchheads.errors import ErrorKind
from fetchheads.models import ErrorInfo, Redirect, ResponseHead, Result, Timing, TLSInfo
from fetchheads.render.pretty import render_result, waterfall_phases
from tests.support.servers import ThreadedServer, reply

FULL = Timing(dns=0.125, connect=0.25, tls=0.5, ttfb=1.0, total=1.0)
HEAD = ResponseHead("HTTP/1.1", 200, "OK", (("Server", "nginx"),))


def render(result: Result, *, waterfall: bool = True) -> list[str]:
    out = io.StringIO()
    console = Console(
        file=out, width=100, color_system=None, highlight=False, markup=False, emoji=False
    )
    console.print(render_result(result, waterfall=waterfall))
    return [line.rstrip() for line in out.getvalue().splitlines()]


def result(**fields: object) -> Result:
    defaults: dict[str, object] = {
        "target": "example.com",
        "url": "https://example.com/",
        "head": HEAD,
    }
    return Result(**{**defaults, **fields})  # type: ignore[arg-type]


def test_phases_start_where_the_previous_one_ended() -> None:
    assert waterfall_phases(FULL) == [
        ("dns", 0.0, 0.125),
        ("connect", 0.125, 0.25),
        ("tls", 0.25, 0.5),
        ("first byte", 0.5, 1.0),
    ]


def test_an_ip_literal_has_no_dns_phase_and_plain_http_no_tls() -> None:
    timing = Timing(dns=None, connect=0.002, tls=None, ttfb=0.005, total=0.006)
    assert waterfall_phases(timing) == [("connect", 0.0, 0.002), ("first byte", 0.002, 0.005)]


def test_the_bars_sit_on_one_time_axis_scaled_to_the_total() -> None:
    lines = render(result(timing=FULL))
    rows = {line.split()[0]: line for line in lines if line.startswith("  ") and "█" in line}
    # 32 cells for 1 s: 31.25 ms a cell. dns 0-4, connect 4-8, tls 8-16, first byte 16-32.
    assert rows["dns"] == "  dns        " + "█" * 4 + " " * 28 + "   125 ms"
    assert rows["connect"] == "  connect    " + " " * 4 + "█" * 4 + " " * 24 + "   125 ms"
    assert rows["tls"] == "  tls        " + " " * 8 + "█" * 8 + " " * 16 + "   250 ms"
    assert rows["first"] == "  first byte " + " " * 16 + "█" * 16 + "   500 ms"
    total = next(line for line in lines if line.startswith("  total"))
    assert total == "  total      " + "─" * 32 + "  1000 ms"


def test_a_phase_shorter_than_a_cell_still_shows_one_cell() -> None:
    timing = Timing(dns=0.0001, connect=0.0002, tls=None, ttfb=1.0, total=1.0)
    lines = render(result(timing=timing))
    dns = next(line for line in lines if line.startswith("  dns"))
    assert dns.count("█") == 1
    assert dns.endswith("0.1 ms")


def test_a_failed_target_shows_the_phases_it_reached() -> None:
    timing = Timing(dns=0.001, connect=0.002, tls=None, ttfb=None, total=0.5)
    lines = render(
        result(head=None, timing=timing, error=ErrorInfo(ErrorKind.TLS, "handshake failed"))
    )
    names = [line.split()[0] for line in lines if "█" in line or "─" in line]
    assert names == ["dns", "connect", "total"]
    assert lines[-2] == "  ✗ tls: handshake failed"


def test_no_waterfall_unless_asked() -> None:
    lines = render(result(timing=FULL), waterfall=False)
    assert not any("█" in line for line in lines)


TLS = TLSInfo(
    version="TLSv1.3",
    cipher="TLS_AES_256_GCM_SHA384",
    subject="CN=example.com",
    issuer="C=US, O=Let's Encrypt, CN=R3",
    not_after="2027-01-30T12:00:00Z",
    days_left=66,
    san=("example.com", "www.example.com"),
)


def test_tls_facts_show_expiry_in_days_issuer_and_names() -> None:
    lines = render(result(tls=TLS), waterfall=False)
    assert "  TLS  TLSv1.3 TLS_AES_256_GCM_SHA384" in lines
    assert "       expires 2027-01-30T12:00:00Z (66 days)" in lines
    assert "       issuer C=US, O=Let's Encrypt, CN=R3" in lines
    assert "       subject CN=example.com" in lines
    assert "       names example.com, www.example.com" in lines


def test_many_names_are_cut_short_and_an_expired_certificate_says_so() -> None:
    tls = TLSInfo(
        **{**TLS.to_record(), "san": tuple(f"n{i}.example" for i in range(10)), "days_left": -4}
    )
    fetched_at = dt.datetime(2027, 2, 2, 13, 0, tzinfo=dt.UTC)  # 3 days and an hour after
    lines = render(result(tls=tls, fetched_at=fetched_at), waterfall=False)
    assert (
        "       names n0.example, n1.example, n2.example, n3.example, n4.example, n5.example +4 more"
        in lines
    )
    assert "       expires 2027-01-30T12:00:00Z (EXPIRED 3 days ago)" in lines


def test_a_certificate_expired_an_hour_ago_says_today_as_its_error_does() -> None:
    """Whole days elapsed, as ``certificates.explain_rejection`` counts them: days_left (-1,
    rounded down) would say "1 day ago" beside an error saying "(today)"."""
    tls = TLSInfo(**{**TLS.to_record(), "days_left": -1})
    fetched_at = dt.datetime(2027, 1, 30, 13, 0, tzinfo=dt.UTC)
    lines = render(result(tls=tls, fetched_at=fetched_at), waterfall=False)
    assert "       expires 2027-01-30T12:00:00Z (EXPIRED today)" in lines


def test_an_unreadable_certificate_says_why_there_are_no_names() -> None:
    tls = TLSInfo("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", None, None, None, None)
    lines = render(result(tls=tls), waterfall=False)
    assert "  TLS  TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256" in lines
    assert "       certificate not verified (-k)" in lines
    assert "       certificate not readable: no names or dates" in lines


def test_the_redirect_chain_comes_before_the_headers_and_hostile_text_is_escaped() -> None:
    hops = (
        Redirect("http://example.com/", 301, "https://example.com/\x1b[2J"),
        Redirect("https://example.com/\x1b[2J", 302, "https://example.com/home"),
    )
    lines = render(result(redirects=hops), waterfall=False)
    assert lines[1] == "  ↪ 301 http://example.com/ → https://example.com/\\x1b[2J"
    assert lines[2] == "  ↪ 302 https://example.com/\\x1b[2J → https://example.com/home"
    assert lines[3].startswith("  Server:")


def test_after_redirects_the_waterfall_says_it_is_the_last_hops() -> None:
    hops = (Redirect("http://example.com/", 301, "https://example.com/"),)
    lines = render(result(redirects=hops, timing=FULL))
    label = lines.index("  timing of the last hop:")
    assert lines[label + 1].startswith("  dns ")
    assert "  timing of the last hop:" not in render(result(timing=FULL))


RAW = b"HTTP/1.1 200 OK\r\nServer: scripted\r\n\r\n"


@pytest.mark.parametrize(
    ("count", "flag", "shown"),
    [
        (1, None, True),
        (3, None, True),
        (4, None, False),
        (4, "--waterfall", True),
        (1, "--no-waterfall", False),
    ],
)
def test_the_cli_shows_the_waterfall_for_a_few_targets(
    threaded_server: Callable[..., ThreadedServer], count: int, flag: str | None, shown: bool
) -> None:
    server = threaded_server(reply(RAW))
    targets = [f"127.0.0.1:{server.port}/{n}" for n in range(count)]
    args = ["--format", "pretty", *([flag] if flag else []), *targets]
    outcome = CliRunner().invoke(cli, args)
    assert outcome.exit_code == 0, outcome.output
    assert ("  first byte " in outcome.output) is shown
    assert outcome.output.count("  connect    ") == (count if shown else 0)


def test_targets_from_a_file_need_the_option(
    threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    server = threaded_server(reply(RAW))
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"127.0.0.1:{server.port}\n")
    plain = CliRunner().invoke(cli, ["--format", "pretty", "-i", str(hosts)])
    forced = CliRunner().invoke(cli, ["--format", "pretty", "--waterfall", "-i", str(hosts)])
    assert "  first byte " not in plain.output
    assert "  first byte " in forced.output


def test_the_waterfall_option_on_a_terminal_chooses_the_pretty_blocks(
    threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    """A list from a file is a table on a terminal, which has no bars: --waterfall asks for
    them, so it gets the pretty blocks instead of being ignored."""
    from fetchheads.run.plan import Environment

    server = threaded_server(reply(RAW))
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"127.0.0.1:{server.port}\n")
    terminal = Environment(stdout_isatty=True, width=100, colour=False)
    table = CliRunner().invoke(cli, ["-i", str(hosts)], obj=terminal)
    forced = CliRunner().invoke(cli, ["--waterfall", "-i", str(hosts)], obj=terminal)
    assert table.output.startswith("target")  # the table's header row
    assert "  first byte " in forced.output


@pytest.mark.parametrize("width", [80, 50, 40, 30])
def test_the_waterfall_fits_a_narrow_terminal_or_is_left_out(width: int) -> None:
    """Each bar row on one line, however narrow the terminal; below 30 columns no waterfall."""
    timing = Timing(dns=0.001, connect=0.003, tls=0.010, ttfb=0.015, total=0.02)
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None)
    console.print(
        render_result(Result(target="h", url="https://h/", timing=timing), waterfall=True)
    )
    lines = out.getvalue().splitlines()
    assert all(len(line) <= width for line in lines)
    rows = [line for line in lines if line.startswith(("  dns ", "  connect ", "  total "))]
    assert len(rows) == 3
    assert all(line.rstrip().endswith("ms") for line in rows)  # the duration on the bar's row
    narrow = io.StringIO()
    Console(file=narrow, width=29, color_system=None).print(
        render_result(Result(target="h", url="https://h/", timing=timing), waterfall=True)
    )
    assert "█" not in narrow.getvalue()
