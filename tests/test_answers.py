"""Answers in one command, end to end: --format table/csv/tsv/prometheus, -w, the filters, -o,
--unique, against loopback servers with known heads (a host without the header, repeated
headers, a failure, hostile text), through the command line as a user runs it."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from click.testing import Result as CliResult
from prometheus_client.parser import text_string_to_metric_families

from fetchheads.cli import cli
from fetchheads.run.plan import PLAIN_SUFFIXES, SUFFIX_FORMATS, Environment
from tests.support import processes
from tests.support.certs import self_signed
from tests.support.servers import ThreadedServer, routes, silent

StartServer = Callable[..., ThreadedServer]

HEADS = {
    "/hsts": b"HTTP/1.1 200 OK\r\nServer: nginx\r\nCache-Control: max-age=60\r\n"
    b"Strict-Transport-Security: max-age=31536000\r\nContent-Type: text/html\r\n\r\n",
    "/plain": b"HTTP/1.1 200 OK\r\nServer: Apache\r\nCache-Control: no-cache\r\n"
    b"Cache-Control: private\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2, c\r\n\r\n",
    "/hostile": b'HTTP/1.1 404 Not Found\r\nServer: =HYPERLINK("http://x")\r\n'
    b"X-Evil: a\x1b[31mred\r\n\r\n",
    "/moved": b"HTTP/1.1 301 Moved Permanently\r\nLocation: /hsts\r\n\r\n",
}


@pytest.fixture
def site(threaded_server: StartServer) -> ThreadedServer:
    return threaded_server(routes(HEADS))


def targets(server: ThreadedServer, refused_port: int) -> list[str]:
    port = server.port
    return [f"127.0.0.1:{port}{path}" for path in HEADS] + [f"127.0.0.1:{refused_port}/"]


def run(
    args: list[str], environment: Environment | None = None, input: str | None = None
) -> CliResult:
    return CliRunner().invoke(
        cli,
        ["-q", *args],
        obj=environment or Environment(),
        input=input,
        prog_name="fetchheads",
        catch_exceptions=False,
    )


def by_target(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["target"].rsplit("/", 1)[1]: row for row in rows}


# --- CSV and TSV ---------------------------------------------------------------------------------


def test_csv_is_one_row_per_host_that_a_spreadsheet_reads_safely(
    site: ThreadedServer, refused_port: int
) -> None:
    fields = "target,status,header:server,header:cache-control,header:set-cookie,error.kind"
    result = run(["--format", "csv", "--fields", fields, *targets(site, refused_port)])
    assert result.exit_code == 1  # the refused port: selections never change the status
    assert result.stdout.startswith(fields + "\n")  # the header row, once, first
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 5
    got = by_target(rows)
    assert got["hsts"]["header:cache-control"] == "max-age=60"
    assert got["plain"]["header:cache-control"] == "no-cache, private"  # repeated: joined
    assert got["plain"]["header:set-cookie"] == "a=1; Path=/\nb=2, c"  # one cookie a line
    assert got["moved"]["header:server"] == ""  # absent: empty, the row still there
    assert got["hostile"]["header:server"] == '\'=HYPERLINK("http://x")'  # not a formula
    assert got[""]["status"] == ""
    assert got[""]["error.kind"] == "connect"


def test_tsv_escapes_what_would_break_a_line_or_a_column(
    site: ThreadedServer, refused_port: int
) -> None:
    fields = "target,status,header:x-evil,header:set-cookie"
    result = run(["--format", "tsv", "--fields", fields, *targets(site, refused_port)])
    lines = result.stdout.splitlines()
    assert lines[0] == fields.replace(",", "\t")
    assert len(lines) == 6
    assert all(line.count("\t") == 3 for line in lines)
    assert "\x1b" not in result.stdout
    row = {line.split("\t")[0].rsplit("/", 1)[1]: line.split("\t") for line in lines[1:]}
    assert row["hostile"][2] == "a\\x1b[31mred"
    assert row["plain"][3] == "a=1; Path=/\\nb=2, c"


def test_fields_without_a_format_are_tsv_in_a_pipe(site: ThreadedServer) -> None:
    result = run(["--fields", "status,target", f"127.0.0.1:{site.port}/moved"])
    assert result.stdout == f"status\ttarget\n301\t127.0.0.1:{site.port}/moved\n"


# --- the table -----------------------------------------------------------------------------------


def test_the_table_is_one_aligned_row_per_target_cut_to_the_width(
    site: ThreadedServer, refused_port: int
) -> None:
    fields = "target,status,header:cache-control,header:x-evil,error.message"
    result = run(
        ["--format", "table", "--order", "input", "--fields", fields, *targets(site, refused_port)],
        Environment(width=60),
    )
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["target", "status"]  # names are cut like values
    assert len(lines) == 6
    assert all(len(line) <= 60 for line in lines)
    assert [line.split()[1] for line in lines[1:]] == ["200", "200", "404", "301", "-"]
    assert len({line.index(line.split()[1], 5) for line in lines[1:]}) == 1  # aligned
    assert "\x1b" not in result.stdout  # no colour in a pipe; server escapes shown escaped
    assert "a\\x1b[31m" in lines[3]
    assert "no-cache, …" in lines[2]  # a long value cut with …, never wrapped
    assert lines[5].endswith("…")  # the error message too


def test_a_list_read_on_a_terminal_is_a_table_by_default(
    site: ThreadedServer, refused_port: int
) -> None:
    hosts = "\n".join(targets(site, refused_port)) + "\n"
    terminal = Environment(stdout_isatty=True, width=80, colour=False)
    result = run(["-i", "-"], terminal, input=hosts)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["target", "status", "time.total", "header:server", "error.message"]
    assert len(lines) == 6
    # Targets given as arguments keep the pretty blocks.
    pretty = run([f"127.0.0.1:{site.port}/hsts"], terminal)
    assert "Strict-Transport-Security" in pretty.stdout


def test_targets_cut_in_an_80_column_table_stay_told_apart(
    site: ThreadedServer, refused_port: int
) -> None:
    # The target is what tells the rows apart; cut at its end, every row of a list that differs
    # only in the path read "http://127.0.0.1:…".
    hosts = "".join(f"http://127.0.0.1:{site.port}{path}\n" for path in HEADS)
    terminal = Environment(stdout_isatty=True, width=80, colour=False)
    result = run(["-i", "-"], terminal, input=hosts)
    shown = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert len(shown) == len(HEADS)
    assert len(set(shown)) == len(HEADS), shown
    assert all(
        "…" in target and target.endswith(path) for target, path in zip(shown, HEADS, strict=True)
    )


def test_the_table_colours_the_status_on_a_terminal(site: ThreadedServer) -> None:
    terminal = Environment(stdout_isatty=True, width=80, colour=True)
    result = run(["--format", "table", f"127.0.0.1:{site.port}/hostile"], terminal)
    row = result.stdout.splitlines()[1]
    assert "\x1b[" in row
    assert "404" in row
    assert "\x1b[31mred" not in result.stdout  # the server's own escape is still escaped


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_300_targets_in_an_80_column_terminal_are_300_unwrapped_rows(
    site: ThreadedServer, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"127.0.0.1:{site.port}/hsts?{'n' * 40}{n}\n" for n in range(300)))
    done = tmp_path / "done"
    socket = str(tmp_path / "tmux.sock")
    command = (
        f"{sys.executable} -m fetchheads -i {hosts} --fields "
        f"target,status,header:server,header:cache-control; touch {done}; sleep 60"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    tmux = ["tmux", "-S", socket, "-f", "/dev/null"]
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "80", "-y", "40", command], env=env, check=True
    )
    try:
        subprocess.run([*tmux, "set-option", "-g", "history-limit", "5000"], check=True)
        deadline = time.monotonic() + 60
        while not done.exists():
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.1)
        screen = subprocess.run(
            [*tmux, "capture-pane", "-p", "-S", "-", "-E", "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
    lines = [line for line in screen.splitlines() if line.strip()]
    rows = [line for line in lines if line.startswith("127.0.0.1:")]
    assert len(rows) == 300
    assert all(len(line) <= 80 for line in lines)
    assert all(" 200 " in row and "nginx" in row and "…" in row for row in rows)
    others = [line for line in lines if not line.startswith("127.0.0.1:")]
    assert len(others) == 2  # no wrapped tails: only the header row and the summary line
    assert others[0].startswith("target ")
    assert others[1].startswith("300 targets, 300 ok")


# --- -w ------------------------------------------------------------------------------------------

CURL_TEMPLATE = (
    "%{url_effective} %{http_code} %{response_code} %{http_version} %{num_headers} "
    "%{remote_ip} %{remote_port} %{content_type} %{exitcode} [%header{server}] "
    "[%header{cache-control}]\\n"
)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_write_out_prints_what_curl_prints_for_the_same_variables(
    site: ThreadedServer, refused_port: int
) -> None:
    urls = [f"http://{target}" for target in targets(site, refused_port)]
    ours = run(["-w", CURL_TEMPLATE, "--order", "input", *urls]).stdout
    theirs = "".join(
        subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "--noproxy", "*", "-w", CURL_TEMPLATE, url],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        for url in urls
    )
    assert ours == theirs
    assert "[nginx] [max-age=60]" in ours


def test_write_out_takes_every_field_and_a_file(site: ThreadedServer, tmp_path: Path) -> None:
    template = tmp_path / "template"
    template.write_text("%{status} %{header:cache-control} %{header:x-evil}\n")
    target = f"127.0.0.1:{site.port}"
    result = run(["-w", f"@{template}", f"{target}/plain", f"{target}/hostile", "--order", "input"])
    assert result.stdout == "200 no-cache, private \n404  a\\x1b[31mred\n"


def test_a_template_file_is_printed_as_written(site: ThreadedServer, tmp_path: Path) -> None:
    template = tmp_path / "template"
    template.write_bytes(b"a\rb %{http_code}\r\n")
    result = run(["-w", f"@{template}", f"127.0.0.1:{site.port}/plain"])
    assert result.stdout_bytes == b"a\rb 200\r\n"  # a CR stays a CR: not read as a newline


@pytest.mark.parametrize(
    ("given", "says"), [("@-", "a template from stdin is not supported"), ("@", "no file is named")]
)
def test_a_template_from_no_file_is_a_usage_error(given: str, says: str) -> None:
    result = run(["-w", given, "127.0.0.1:1"])
    assert result.exit_code == 2
    assert f"-w {given}: {says}; put the template in a file and give -w @FILE" in result.stderr


def test_only_the_status_codes(site: ThreadedServer, refused_port: int) -> None:
    result = run(["-w", "%{http_code}\\n", "--order", "input", *targets(site, refused_port)])
    assert result.stdout.split() == ["200", "200", "404", "301", "000"]


# --- the filters ---------------------------------------------------------------------------------


def shown(args: list[str], site: ThreadedServer, refused_port: int) -> list[str]:
    result = run(["-w", "%{target}\\n", *args, *targets(site, refused_port)])
    assert result.exit_code == 1  # the refused port counts, shown or not
    return sorted(line.rsplit("/", 1)[1] for line in result.stdout.splitlines())


def test_the_filters_choose_what_is_printed(site: ThreadedServer, refused_port: int) -> None:
    assert shown(["--match-status", "2xx"], site, refused_port) == ["hsts", "plain"]
    assert shown(["--match-status", "301,400-499"], site, refused_port) == ["hostile", "moved"]
    assert shown(["--filter-status", "200-299"], site, refused_port) == ["", "hostile", "moved"]
    assert shown(["--failed"], site, refused_port) == [""]
    assert shown(["--has-header", "cache-control"], site, refused_port) == ["hsts", "plain"]
    assert shown(["--has-header", "server=^ngi"], site, refused_port) == ["hsts"]
    # The hosts lacking HSTS: a failure is not "missing" a header.
    hsts = ["--missing-header", "strict-transport-security"]
    assert shown(hsts, site, refused_port) == ["hostile", "moved", "plain"]
    assert shown([*hsts, "--match-status", "2xx"], site, refused_port) == ["plain"]


def test_with_db_every_result_is_recorded_whatever_is_printed(
    site: ThreadedServer, refused_port: int, tmp_path: Path
) -> None:
    db = tmp_path / "heads.db"
    result = run(["--db", str(db), "--failed", "--format", "csv", *targets(site, refused_port)])
    assert len(list(csv.DictReader(io.StringIO(result.stdout)))) == 1
    # closing(): sqlite3's own ``with`` ends the transaction but leaves the file open
    with contextlib.closing(sqlite3.connect(db)) as connection:
        (count,) = connection.execute("SELECT count(*) FROM snapshots").fetchone()
    assert count == 5


def test_certificates_expiring_within_the_warning_days(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    month = self_signed(tmp_path, "localhost")  # 30 days left
    tls = threaded_server(routes(HEADS, HEADS["/hsts"]), ssl_context=month)
    plain = threaded_server(routes(HEADS))
    fields = "target,cert.days_left,cert.not_after"
    args = ["--cacert", str(tmp_path / "self.pem"), "--fields", fields, "--format", "csv"]
    hosts = [f"https://localhost:{tls.port}/", f"127.0.0.1:{plain.port}/hsts"]
    soon = run([*args, "--warn-days", "31", "--warned", *hosts])
    rows = list(csv.DictReader(io.StringIO(soon.stdout)))
    assert [row["target"] for row in rows] == [hosts[0]]
    assert int(rows[0]["cert.days_left"]) in (29, 30)
    assert rows[0]["cert.not_after"]
    assert soon.exit_code == 3  # a certificate needs attention, as without --warned
    later = run([*args, "--warn-days", "10", "--warned", *hosts])
    assert later.stdout == fields + "\n"
    assert later.exit_code == 0


# --- prometheus ----------------------------------------------------------------------------------


def test_prometheus_under_changes_is_a_usage_error_not_an_empty_textfile(
    site: ThreadedServer, tmp_path: Path
) -> None:
    # --changes prints only what changed; a textfile with only that would drop every unchanged
    # target's series from Prometheus on a quiet night.
    db = str(tmp_path / "heads.db")
    target = f"127.0.0.1:{site.port}/hsts"
    path = tmp_path / "fetchheads.prom"
    result = run(["--db", db, "--changes", "-o", str(path), target])
    assert result.exit_code == 2
    assert "--changes" in result.output
    assert "Prometheus textfile must hold every target" in result.output
    assert not path.exists()


def test_prometheus_file_is_whole_parseable_and_labelled_by_target_only(
    site: ThreadedServer, refused_port: int, tmp_path: Path
) -> None:
    path = tmp_path / "fetchheads.prom"
    hosts = targets(site, refused_port)
    result = run(["-o", str(path), *hosts, hosts[0]])  # the suffix names the format
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fetchheads.prom"]  # no temp left
    families = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    success = {s.labels["target"]: s.value for s in families["probe_success"].samples}
    assert len(success) == 5  # a target given twice is one series
    assert success[hosts[0]] == 1
    assert success[hosts[2]] == 0
    assert success[hosts[4]] == 0
    status = {s.labels["target"]: s.value for s in families["probe_http_status_code"].samples}
    assert status[hosts[2]] == 404
    assert status[hosts[4]] == 0
    labels = {key for f in families.values() for s in f.samples for key in s.labels}
    assert labels == {"target", "phase"}  # never a header value
    assert "HYPERLINK" not in path.read_text()
    assert "nginx" not in path.read_text()


def test_prometheus_into_a_symlink_of_ours_replaces_the_file_it_points_to(
    site: ThreadedServer, tmp_path: Path
) -> None:
    real = tmp_path / "real.prom"
    real.write_text("old\n")
    link = tmp_path / "link.prom"
    link.symlink_to(real)
    assert run(["-o", str(link), f"127.0.0.1:{site.port}/hsts"]).exit_code == 0
    assert link.is_symlink()
    assert os.readlink(link) == str(real)
    families = {f.name for f in text_string_to_metric_families(real.read_text())}
    assert "probe_success" in families
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.prom", "real.prom"]


def test_an_output_path_names_a_descriptor_only_when_it_is_one() -> None:
    from fetchheads.render.output import _stream_fd

    assert _stream_fd("/dev/stdout") == 1
    assert _stream_fd("/dev/stderr") == 2
    assert _stream_fd("/dev/fd/3") == 3
    assert _stream_fd("/proc/self/fd/1") == 1
    assert _stream_fd("/proc/thread-self/fd/1") == 1
    assert _stream_fd(f"/proc/{os.getpid()}/fd/2") == 2
    assert _stream_fd("/proc/1/fd/1") is None  # another process's
    assert _stream_fd("/dev/shm/metrics.prom") is None  # a file on a tmpfs
    assert _stream_fd("heads.jsonl") is None


def test_output_to_dev_stdout_beside_2_to_1_keeps_every_line(
    site: ThreadedServer, tmp_path: Path
) -> None:
    """``-o /dev/stdout > log 2>&1``: stdout and stderr share one open file; a new open of it
    would write from offset 0, over what stderr wrote."""
    log = tmp_path / "log.txt"
    with log.open("wb") as both:
        process = subprocess.run(
            [sys.executable, "-m", "fetchheads", "--json", "--progress", "-o", "/dev/stdout",
             f"127.0.0.1:{site.port}/hsts", f"127.0.0.1:{site.port}/plain"],
            stdout=both, stderr=both, timeout=60, check=False,
        )  # fmt: skip
    assert process.returncode == 0
    lines = log.read_bytes().decode().splitlines()
    records = [line for line in lines if line.startswith("{")]
    assert len(records) == 2
    assert all(json.loads(record)["ok"] for record in records)
    assert "2 targets, 2 ok" in log.read_text()


def test_output_to_dev_stdout_appends_to_what_the_shell_redirected(
    site: ThreadedServer, tmp_path: Path
) -> None:
    """``-o /dev/stdout >> log``: the log keeps its lines (neither replaced nor emptied)."""
    log = tmp_path / "log.txt"
    for format_args in (["--format", "prometheus"], ["--json"]):
        log.write_text("OLD LINE\n")
        with log.open("ab") as appended:
            process = subprocess.run(
                [sys.executable, "-m", "fetchheads", "-q", *format_args, "-o", "/dev/stdout",
                 f"127.0.0.1:{site.port}/hsts"],
                stdout=appended, stderr=subprocess.PIPE, timeout=60, check=False,
            )  # fmt: skip
        assert process.returncode == 0, process.stderr
        lines = log.read_text().splitlines()
        assert lines[0] == "OLD LINE"
        assert len(lines) > 1


def test_prometheus_into_a_fifo_is_written_through_it(site: ThreadedServer, tmp_path: Path) -> None:
    """A pipe (or a device: /dev/stdout) is written as it is, never renamed over."""
    fifo = tmp_path / "metrics.prom"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as pipe:
            received.append(pipe.read())

    reader = threading.Thread(target=read)
    reader.start()
    result = run(["-o", str(fifo), f"127.0.0.1:{site.port}/hsts"])
    reader.join(timeout=30)
    assert result.exit_code == 0
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    families = {f.name for f in text_string_to_metric_families(received[0].decode())}
    assert "probe_success" in families
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.prom"]


@pytest.mark.parametrize("how", ["-i", "-i link", "stdin"])
def test_an_output_file_that_is_also_the_input_is_refused_and_kept(
    how: str, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("127.0.0.1:1\n")
    if how == "stdin":
        with hosts.open("rb") as stdin:
            process = subprocess.run(
                [sys.executable, "-m", "fetchheads", "-q", "-o", str(hosts)],
                stdin=stdin, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        code, stderr = process.returncode, process.stderr
    else:
        link = tmp_path / "link.txt"
        link.symlink_to(hosts)
        source = str(link if how == "-i link" else hosts)
        result = run(["-i", source, "-o", str(hosts)])
        code, stderr = result.exit_code, result.stderr
    assert code == 2
    assert "is also where the targets are read from" in stderr
    assert hosts.read_text() == "127.0.0.1:1\n"


def test_an_output_file_that_cannot_be_written_is_a_usage_error(tmp_path: Path) -> None:
    result = run(["-o", str(tmp_path / "no" / "such.csv"), "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "cannot write" in result.stderr
    assert "No such file or directory" in result.stderr


@pytest.mark.parametrize("format_args", [[], ["--format", "csv"]])
def test_output_dash_is_stdout_and_dot_slash_dash_a_file(
    site: ThreadedServer, tmp_path: Path, format_args: list[str]
) -> None:
    target = f"127.0.0.1:{site.port}/hsts"
    args = [sys.executable, "-m", "fetchheads", "-q", *format_args, target]
    done = subprocess.run(
        [*args, "-o", "-"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, "")
    if format_args:  # as without -o: a pipe gets plain lines, --format its format
        assert done.stdout.splitlines()[0].startswith("target,")
    else:
        assert f"{target} header > HTTP/1.1 200 OK" in done.stdout
    assert list(tmp_path.iterdir()) == []
    done = subprocess.run(
        [*args, "-o", "./-"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, "")
    assert target in (tmp_path / "-").read_text()


def test_the_output_help_names_every_suffix_and_the_format_it_writes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fetchheads", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    start = text.index("-o, --output FILE")
    help_text = text[start : text.index("--match-status", start)]
    for suffix, name in SUFFIX_FORMATS.items():
        assert re.search(rf"{re.escape(suffix)}\b[^:;]*: {name}\b", help_text), suffix
    for suffix in PLAIN_SUFFIXES:
        if suffix:
            assert re.search(rf"{re.escape(suffix)}\b[^:;]*: plain\b", help_text), suffix


@pytest.mark.parametrize("name", ["heads.xml", "heads.html", "heads.XLSX", "heads.yaml"])
def test_an_output_suffix_that_names_no_known_format_is_refused_with_the_known_ones(
    site: ThreadedServer, tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    result = run(["-o", str(path), f"127.0.0.1:{site.port}/hsts"])
    assert (result.exit_code, result.stdout) == (2, "")
    last = result.stderr.splitlines()[-1]
    suffix = name.rsplit(".", 1)[1]
    assert last.startswith(f"Error: Invalid value for -o/--output: {path}: fetchheads writes no ")
    assert f"'.{suffix}'" in last
    assert ".csv" in last
    assert ".jsonl" in last
    assert "--format" in last
    assert not path.exists()
    assert site.requests == []
    # --format says what to write, whatever the name.
    assert run(["-o", str(path), "--format", "jsonl", f"127.0.0.1:{site.port}/hsts"]).exit_code == 0
    assert path.read_text().startswith('{"target"')


@pytest.mark.parametrize(
    "options", [[], ["--fields", "status"], ["--sort", "status"], ["-w", "%{status}\\n"]]
)
def test_the_format_an_unknown_output_suffix_suggests_is_one_the_run_takes(
    site: ThreadedServer, tmp_path: Path, options: list[str]
) -> None:
    """Doing what the message says ends the usage errors: with --fields, that is not plain."""
    path = tmp_path / "heads.xml"
    target = f"127.0.0.1:{site.port}/hsts"
    refused = run(["-o", str(path), *options, target])
    if "-w" in options:  # a format of its own: the suffix is not read
        assert refused.exit_code == 0
        return
    assert refused.exit_code == 2
    suggested = re.findall(r"--format (\w+)", refused.stderr.splitlines()[-1])
    assert suggested
    result = run(["-o", str(path), *options, "--format", suggested[0], target])
    assert result.exit_code == 0, result.stderr
    assert "200" in path.read_text()


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("heads.txt", "127.0.0.1"),
        ("heads.log", "127.0.0.1"),
        ("heads", "127.0.0.1"),
        ("heads.ndjson", '{"target"'),
    ],
)
def test_plain_text_names_stay_plain_and_ndjson_is_json_lines(
    site: ThreadedServer, tmp_path: Path, name: str, first: str
) -> None:
    path = tmp_path / name
    assert run(["-o", str(path), f"127.0.0.1:{site.port}/hsts"]).exit_code == 0
    assert path.read_text().startswith(first)


# --- usage errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fields", "status,stauts"], "unknown field 'stauts' (did you mean status?); docs/"),
        (["-w", "%{htp_code}"], "unknown write-out variable %{htp_code} (did you mean %{"),
        (["-w", "%{location}"], "variable %{location} (a header is %{header:location});"),
        (["--match-status", "2yy"], "invalid status '2yy' in --match-status"),
        (["--has-header", "server=("], "invalid regular expression '(' in --has-header"),
        (["-w", "x", "--format", "csv"], "-w prints its template"),
        (["--fields", "status", "--json"], "--fields chooses the columns"),
        (["--warned"], "need attention: give --warn-days N or --warn-fraction F (e.g. "),
    ],
)
def test_bad_answers_are_usage_errors(args: list[str], message: str) -> None:
    result = run([*args, "127.0.0.1:1"])
    assert result.exit_code == 2
    assert message in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert len(message) < len(last) <= 160  # whole in a cron mail's line, not 35 names long


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fields", "target", "-o", "{dir}/heads.jsonl"], "not of -o {dir}/heads.jsonl, whose"),
        (["--sort", "status", "-o", "{dir}/heads.prom"], "not -o {dir}/heads.prom, whose suffix"),
    ],
)
def test_a_format_named_by_the_suffix_of_o_is_called_so(
    args: list[str], message: str, tmp_path: Path
) -> None:
    """No --format was typed: the message names the -o whose suffix chose the format."""
    result = run([arg.format(dir=tmp_path) for arg in args] + ["127.0.0.1:1"])
    assert result.exit_code == 2
    assert message.format(dir=tmp_path) in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--sort", "status"], {"FETCHHEADS_FORMAT": "prometheus"}, "not --format prometheus (from FETCHHEADS_FORMAT)"),
        (["--fields", "status"], {"FETCHHEADS_JSON": "1"}, "not of --format jsonl (from FETCHHEADS_JSON)"),
    ],
)  # fmt: skip
def test_a_format_from_the_environment_is_said_to_come_from_it(
    args: list[str], env: dict[str, str], message: str
) -> None:
    """No --format was typed: the message says which variable chose the format."""
    result = CliRunner().invoke(cli, [*args, "127.0.0.1:1"], env=env)
    assert result.exit_code == 2
    assert message in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FETCHHEADS_MATCH_STATUS", "2yy", "'2yy' in FETCHHEADS_MATCH_STATUS (--match-status)"),
        ("FETCHHEADS_HAS_HEADER", "server=(", "'(' in FETCHHEADS_HAS_HEADER (--has-header):"),
        ("FETCHHEADS_MISSING_HEADER", "a=b", "in FETCHHEADS_MISSING_HEADER (--missing-header)"),
        ("FETCHHEADS_IGNORE_HEADER", "a=b", "in FETCHHEADS_IGNORE_HEADER (--ignore-header)"),
    ],
)
def test_a_bad_filter_from_the_environment_names_its_variable(
    variable: str, value: str, message: str, tmp_path: Path
) -> None:
    """The command line shows no --match-status to fix: the message names the variable, as a bad
    value of any other option from the environment does."""
    db = str(tmp_path / "heads.db")
    result = CliRunner().invoke(cli, ["-q", "--db", db, "127.0.0.1:1"], env={variable: value})
    assert result.exit_code == 2
    assert message in result.stderr.strip().splitlines()[-1]


# --- --unique, -o and --workers, streaming -------------------------------------------------------


def spawn(*args: str) -> subprocess.Popen[str]:
    return processes.start(
        [sys.executable, "-m", "fetchheads", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_unique_fetches_a_repeat_once_and_prints_as_each_finishes(
    site: ThreadedServer, threaded_server: StartServer
) -> None:
    hang = threaded_server(silent())
    port = site.port
    spellings = [
        f"127.0.0.1:{port}/hsts",
        f"http://127.0.0.1:{port}/hsts",
        f"HTTP://127.0.0.1:{port}/hsts",
    ]
    process = spawn(
        "--unique", "-t", "30", "--format", "csv", "--fields", "target,status",
        f"127.0.0.1:{hang.port}/", *spellings, f"127.0.0.1:{port}/moved",
    )  # fmt: skip
    assert process.stdout is not None
    first = [process.stdout.readline() for _ in range(3)]
    assert process.poll() is None  # the silent target still waits: rows came as others ended
    assert first[0] == "target,status\n"
    assert sorted(first[1:]) == sorted([f"{spellings[0]},200\n", f"127.0.0.1:{port}/moved,301\n"])
    process.terminate()
    process.communicate(timeout=30)
    assert len(site.requests) == 2  # three spellings of one URL, fetched once


def test_output_file_with_workers_has_one_header_and_every_row(
    site: ThreadedServer, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"127.0.0.1:{site.port}/plain?{n}\n" for n in range(400)))
    out = tmp_path / "heads.csv"
    process = spawn("-i", str(hosts), "-o", str(out), "--workers", "2", "-c", "8", "-q")
    process.communicate(timeout=60)
    assert process.returncode == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 400
    assert {row["header:server"] for row in rows} == {"Apache"}
    assert out.read_text().count("target,url,status") == 1


def test_the_line_formats_and_an_output_file_can_be_split_over_workers() -> None:
    from fetchheads.config import Config
    from fetchheads.run.inputs import Source
    from fetchheads.run.plan import choose_view, choose_workers

    # No descriptor for stdout (as when it is closed): -o FILE is where the records go.
    environment = Environment(stdout_fd=False, cores=4)
    sources = [Source(path="hosts.txt")]
    for output, fmt in [("heads.csv", None), ("heads.txt", "table"), (None, "tsv")]:
        view = choose_view(
            fmt,
            waterfall=None,
            progress=None,
            quiet=True,
            sources=sources,
            environment=environment,
            output=output,
        )
        workers = choose_workers(
            2,
            config=Config(),
            view=view,
            sources=sources,
            snapshots=False,
            environment=environment,
        )
        assert workers == (2 if output is not None else 1), (output, fmt)
    prometheus = choose_view(
        None,
        waterfall=None,
        progress=None,
        quiet=True,
        sources=sources,
        environment=environment,
        output="x.prom",
    )
    assert prometheus.format == "prometheus"
    assert choose_workers(
        2, config=Config(), view=prometheus, sources=sources, snapshots=False,
        environment=environment,
    ) == 1  # fmt: skip


def test_every_field_is_documented() -> None:
    from fetchheads.render.fields import BUILTIN

    page = (Path(__file__).resolve().parent.parent / "docs" / "fields.md").read_text()
    missing = [name for name, _ in BUILTIN.describe() if f"| `{name}` |" not in page]
    assert missing == []


@pytest.mark.parametrize(
    ("environment", "args", "first"),
    [
        ({"FETCHHEADS_FORMAT": "jsonl"}, ["-w", "%{http_code}\\n"], "200"),
        ({"FETCHHEADS_JSON": "1"}, ["-w", "%{http_code}\\n"], "200"),
        ({"FETCHHEADS_WRITE_OUT": "%{http_code}\\n"}, ["--json"], "{"),
        ({"FETCHHEADS_WRITE_OUT": "%{http_code}\\n"}, ["--format", "csv"], "target,"),
    ],
)
def test_the_command_line_wins_over_the_environment_between_w_and_format(
    site: ThreadedServer, environment: dict[str, str], args: list[str], first: str
) -> None:
    result = CliRunner().invoke(cli, ["-q", *args, f"127.0.0.1:{site.port}/hsts"], env=environment)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(first)


def test_w_and_format_both_from_the_environment_say_so(site: ThreadedServer) -> None:
    environment = {"FETCHHEADS_WRITE_OUT": "%{http_code}", "FETCHHEADS_FORMAT": "jsonl"}
    result = CliRunner().invoke(cli, ["-q", f"127.0.0.1:{site.port}/"], env=environment)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: -w prints its template for each target; it cannot be combined with --format "
        "jsonl (both set in the environment: FETCHHEADS_WRITE_OUT, and FETCHHEADS_FORMAT or "
        "FETCHHEADS_JSON; unset one)"
    )


@pytest.mark.parametrize("name", ["heads.txt", "heads", "heads.log"])
def test_fields_into_a_file_named_as_plain_writes_tsv(
    site: ThreadedServer, tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    result = run(["--fields", "target,status", "-o", str(path), f"127.0.0.1:{site.port}/hsts"])
    assert result.exit_code == 0, result.output
    assert path.read_text() == f"target\tstatus\n127.0.0.1:{site.port}/hsts\t200\n"


def test_an_output_file_that_is_the_snapshot_database_is_refused_and_kept(
    site: ThreadedServer, tmp_path: Path
) -> None:
    db = tmp_path / "heads.db"
    target = f"127.0.0.1:{site.port}/hsts"
    assert run(["--db", str(db), target]).exit_code == 0
    before = db.read_bytes()
    result = run(["--db", str(db), "-o", str(db), "--format", "prometheus", target])
    assert result.exit_code == 2
    assert "is also the snapshot database (--db)" in result.stderr
    assert db.read_bytes() == before


def test_an_output_file_that_will_be_the_new_snapshot_database_is_refused(
    site: ThreadedServer, tmp_path: Path
) -> None:
    """Not there yet, the two names still name one file: the records would overwrite the
    database (or the database the records)."""
    db = tmp_path / "new.db"
    result = run(["--db", str(db), "-o", str(db), "--format", "jsonl", f"127.0.0.1:{site.port}/"])
    assert result.exit_code == 2
    assert "is also the snapshot database (--db)" in result.stderr
    assert not db.exists()


def test_prometheus_into_a_link_to_dev_stdout_writes_to_stdout(
    site: ThreadedServer, tmp_path: Path
) -> None:
    link = tmp_path / "metrics.prom"
    link.symlink_to("/dev/stdout")
    process = subprocess.run(
        [sys.executable, "-m", "fetchheads", "-q", "-o", str(link), f"127.0.0.1:{site.port}/hsts"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr
    assert "probe_success" in {f.name for f in text_string_to_metric_families(process.stdout)}
    assert link.is_symlink()


def test_prometheus_into_another_users_symlink_writes_through_it(
    site: ThreadedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link this user does not own is not followed and replaced (protected_symlinks): the
    file behind it is opened and written, as the line formats write theirs."""
    from fetchheads.render import output

    real = tmp_path / "real.prom"
    real.write_text("old\n")
    link = tmp_path / "link.prom"
    link.symlink_to(real)
    monkeypatch.setattr(os, "geteuid", lambda: os.lstat(link).st_uid + 1)
    file = output.OutputFile(str(link), whole=True)
    try:
        assert file._temporary is None  # written through, no temporary file to rename
    finally:
        file.abandon()
    assert link.is_symlink()


def test_a_dumb_terminal_gets_no_colour_even_with_force_color(
    site: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")
    terminal = Environment(stdout_isatty=True, width=80)
    result = run(["--format", "table", f"127.0.0.1:{site.port}/hostile"], terminal)
    assert "404" in result.stdout
    assert "\x1b[" not in result.stdout


@pytest.mark.parametrize("forced", ["1", ""])
def test_no_color_wins_over_force_color_in_the_table_as_in_the_pretty_view(
    site: ThreadedServer, monkeypatch: pytest.MonkeyPatch, forced: str
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("FORCE_COLOR", forced)
    terminal = Environment(stdout_isatty=True, width=80)
    result = run(["--format", "table", f"127.0.0.1:{site.port}/hostile"], terminal)
    assert "404" in result.stdout
    assert "\x1b[" not in result.stdout


def test_prometheus_replacing_a_file_keeps_its_permissions(
    site: ThreadedServer, tmp_path: Path
) -> None:
    """As an editor's save does: a textfile made 0640 for node_exporter's group stays so."""
    path = tmp_path / "fetchheads.prom"
    path.write_text("old\n")
    path.chmod(0o640)
    inode = path.stat().st_ino
    assert run(["-o", str(path), f"127.0.0.1:{site.port}/hsts"]).exit_code == 0
    assert path.stat().st_ino != inode  # replaced whole...
    assert path.stat().st_mode & 0o7777 == 0o640  # ...with the old file's permissions
    assert "probe_success" in path.read_text()


def test_prometheus_into_a_missing_directory_names_the_temporary_file(tmp_path: Path) -> None:
    result = run(["-o", str(tmp_path / "no" / "such.prom"), "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "No such file or directory (a temporary file in" in result.stderr
    assert "to replace it whole)" in result.stderr
