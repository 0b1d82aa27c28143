"""The snapshot commands as a cron user meets them: --db, --changes, --warn-days, history, diff,
prune, several processes on one database, and the examples' SQL against a real database."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from fetchheads.config import Config
from fetchheads.errors import StoreError
from fetchheads.proxy import proxy_rules
from fetchheads.snapshots.recorder import SnapshotOptions, run_options
from fetchheads.snapshots.store import Store
from tests.support.postgres import Postgres
from tests.support.servers import ThreadedServer, silent
from tests.support.snapshots import Site, fetchheads, query, run_cli, start_site

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def site(threaded_server: Callable[..., ThreadedServer]) -> tuple[Site, str]:
    return start_site(threaded_server)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_three_cron_runs_print_nothing_nothing_then_exactly_the_change(
    site: tuple[Site, str], db: str
) -> None:
    server, target = site
    outputs = []
    for run in range(3):
        if run == 2:
            server.headers["X-Version"] = "2"
            server.headers["X-Request-Id"] = "def"  # volatile: never a change
        code, out, err = fetchheads("--db", db, "--changes", "--format", "plain", target)
        assert (code, err) == (0, "")
        outputs.append(out)
    assert outputs == ["", "", f"{target} changed > X-Version: 1 -> 2\n"]
    assert server.served == 3
    code, out, _ = fetchheads("history", "--db", db, target)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4  # three snapshots, the newest with its one change
    assert lines[0].endswith("200 OK  (snapshot 3, run 3)")
    assert lines[1] == "  X-Version: 1 -> 2"
    assert lines[2].endswith("(snapshot 2, run 2)  no change")
    assert lines[3].endswith("(snapshot 1, run 1)  first snapshot")


def test_changes_in_json_and_a_new_target_in_an_existing_database(
    site: tuple[Site, str], db: str
) -> None:
    server, target = site
    assert fetchheads("--db", db, "--json", target)[0] == 0  # no --changes: prints everything
    server.status = "301 Moved Permanently"
    server.headers["Strict-Transport-Security"] = "max-age=60"
    code, out, _ = fetchheads("--db", db, "--changes", "--json", target, f"{target}/new")
    assert code == 0
    records = {r["url"].rsplit("/", 1)[1]: r for r in map(json.loads, out.splitlines())}
    assert records[""]["changes"] == [
        {"name": ":status", "before": ["200"], "after": ["301"]},
        {"name": "Strict-Transport-Security", "before": [], "after": ["max-age=60"]},
    ]
    assert records[""]["status"] == 301  # the rest of the record is all there
    assert records["new"]["changes"] == [{"name": ":status", "before": [], "after": ["301"]}]


def test_ignore_header_and_an_error_outcome_as_changes(site: tuple[Site, str], db: str) -> None:
    server, target = site
    down = "127.0.0.1:9"  # discard port: nothing listens on loopback
    assert fetchheads("--db", db, target, down)[0] == 1
    server.headers["Server"] = "test/2"
    code, out, _ = fetchheads(
        "--db", db, "--changes", "--ignore-header", "server", "--format", "plain", target, down
    )
    assert (code, out) == (1, "")  # the down target stayed down: no change either
    server.headers["X-Version"] = "3"
    code, out, _ = fetchheads("--db", db, "--changes", "--format", "pretty", target)
    assert code == 0
    assert "X-Version:  1  →  3" in out
    # Ignored in run 2, so absorbed there: a run compares with the snapshot before it.
    assert "Server" not in out
    server.hang_up = True
    code, out, _ = fetchheads("--db", db, "--changes", "--format", "plain", target)
    assert code == 1
    assert out.splitlines() == [
        f"{target} changed > :error: (none) -> protocol: {out.split('protocol: ')[1].splitlines()[0]}",
        f"{target} changed > :status: 200 -> (none)",
    ]


@pytest.mark.parametrize("name", ["a b", "X-Id:", "", "caf\u00e9", "x\x1b[31m"])
def test_an_ignore_header_that_is_no_header_name_is_refused_before_any_fetch(
    site: tuple[Site, str], tmp_path: Path, name: str
) -> None:
    server, target = site
    db = str(tmp_path / "heads.db")
    assert fetchheads("--db", db, "-q", target)[0] == 0
    served = server.served
    for command in (["--db", db, "--changes"], ["history", "--db", db], ["diff", "--db", db]):
        code, out, err = fetchheads(*command, "--ignore-header", name, target)
        assert (code, out) == (2, "")
        last = err.splitlines()[-1]
        assert last.startswith(f"Error: invalid header name {name!r} in --ignore-header")
        assert "\x1b" not in err
    assert server.served == served


def test_changes_needs_a_database() -> None:
    code, _, err = fetchheads("--changes", "127.0.0.1:9")
    assert code == 2
    assert "--changes" in err
    assert "--db" in err


def test_fetchheads_db_environment_variable(site: tuple[Site, str], tmp_path: Path) -> None:
    _, target = site
    db = tmp_path / "env.db"
    assert fetchheads("-q", target, env={"FETCHHEADS_DB": str(db)})[0] == 0
    with contextlib.closing(sqlite3.connect(db)) as connection:  # 3.13 warns on an unclosed one
        assert connection.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 1


@pytest.mark.parametrize("kind", ["text", "other-app", "newer", "garbage", "truncated"])
def test_a_refused_database_exits_2_untouched_and_nothing_is_fetched(
    site: tuple[Site, str], tmp_path: Path, kind: str
) -> None:
    server, target = site
    path = tmp_path / "heads.db"
    if kind == "text":
        path.write_text("www.example.com\n")
    elif kind == "garbage":  # SQLite's header, then not a database
        path.write_bytes(b"SQLite format 3\x00garbage")
    elif kind == "truncated":  # a real one, cut inside its first page
        assert fetchheads("--db", str(path), "-q", target)[0] == 0
        path.write_bytes(path.read_bytes()[:3000])
    else:
        if kind == "newer":
            assert fetchheads("--db", str(path), "-q", target)[0] == 0
        db = sqlite3.connect(path)
        if kind == "newer":
            db.execute("PRAGMA user_version = 99")
        else:
            db.execute("CREATE TABLE notes (body TEXT)")
        db.commit()
        db.close()
    before, served = digest(path), server.served
    code, out, err = fetchheads("--db", str(path), target)
    assert code == 2
    assert out == ""
    expected = {
        "text": "not an SQLite database",
        "other-app": "holds notes",
        "newer": "newer",
        "garbage": "not a database SQLite can read (file is not a database)",
        "truncated": "not a database SQLite can read (database disk image is malformed)",
    }
    assert expected[kind] in err
    assert digest(path) == before
    assert server.served == served


@pytest.fixture(scope="module")
def expiring_context(ca: trustme.CA) -> ssl.SSLContext:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=10, hours=12)
    cert = ca.issue_cert("127.0.0.1", not_after=soon)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


def test_warn_days_flags_a_certificate_in_every_format_and_exits_3(
    threaded_server: Callable[..., ThreadedServer],
    expiring_context: ssl.SSLContext,
    ca_file: Path,
) -> None:
    server = threaded_server(Site(Server="tls").handler, ssl_context=expiring_context)
    target = f"https://127.0.0.1:{server.port}"
    base = ("--cacert", str(ca_file), target)
    code, out, _ = fetchheads("--warn-days", "30", "--format", "plain", *base)
    assert code == 3
    assert out.splitlines()[-1].startswith(f"{target} warning > certificate expires in 10 days (")
    code, out, _ = fetchheads("--warn-days", "30", "--json", *base)
    assert code == 3
    record = json.loads(out)
    assert record["warnings"] == [
        {"kind": "certificate", "message": record["warnings"][0]["message"]}
    ]
    assert record["tls"]["days_left"] == 10
    code, out, _ = fetchheads("--warn-days", "30", "--format", "pretty", *base)
    assert code == 3
    assert "⚠ certificate expires in 10 days" in out
    code, out, _ = fetchheads("--warn-days", "10", "--format", "plain", *base)
    assert code == 0
    assert "warning" not in out


def test_a_certificate_warning_under_changes_is_printed_when_new_or_worse_only(
    threaded_server: Callable[..., ThreadedServer], ca: trustme.CA, ca_file: Path, tmp_path: Path
) -> None:
    # A 15-minute cron job must not mail the same warning 96 times a day: once when it starts,
    # again when the certificate crosses the next step (7, 3, 1 days, expired).
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    now = dt.datetime.now(dt.UTC)
    ca.issue_cert("127.0.0.1", not_after=now + dt.timedelta(days=10, hours=12)).configure_cert(
        context
    )
    server = threaded_server(Site(Server="tls").handler, ssl_context=context)
    target = f"https://127.0.0.1:{server.port}"
    db = tmp_path / "heads.db"
    args = ("--db", str(db), "--changes", "--warn-days", "30", "--cacert", str(ca_file))
    code, out, err = fetchheads(*args, "--format", "plain", "--progress", target)
    assert code == 3
    assert out.startswith(f"{target} warning > certificate expires in 10 days")
    # The baseline's summary counts what it did show.
    assert "; baseline: 1 snapshot recorded, 1 certificate warning shown" in " ".join(err.split())
    assert fetchheads(*args, "--format", "plain", target)[:2] == (0, "")  # known: no mail
    # Renewed with a certificate even closer to its end (the server's next handshakes use it).
    ca.issue_cert("127.0.0.1", not_after=now + dt.timedelta(days=5, hours=12)).configure_cert(
        context
    )
    code, out, _ = fetchheads(*args, "--format", "plain", target)
    assert code == 3
    renewal, warning = out.splitlines()  # the new certificate is news of its own
    assert renewal.startswith(f"{target} changed > certificate: renewed with a new key, expires ")
    assert warning.startswith(f"{target} warning > certificate expires in 5 days")
    code, out, _ = fetchheads(*args, "--json", target)
    assert code == 0
    assert out == ""
    # Without --changes every run says it: nothing is compared.
    code, out, _ = fetchheads(
        "--db", str(db), "--warn-days", "30", "--cacert", str(ca_file), "--format", "plain", target
    )
    assert code == 3
    assert "warning > certificate expires in 5 days" in out
    connection = sqlite3.connect(db)
    try:
        rows = connection.execute("SELECT warnings FROM runs ORDER BY id").fetchall()
        steps = connection.execute("SELECT cert_threshold FROM snapshots ORDER BY id").fetchall()
    finally:
        connection.close()
    assert rows == [(1,)] * 5  # the database keeps every warning, printed or not
    assert steps == [(30,), (30,), (7,), (7,), (7,)]


def test_six_overlapping_processes_lose_no_row_and_fail_none(
    site: tuple[Site, str], db: str, tmp_path: Path
) -> None:
    server, target = site
    server.hold = 6 * 20  # every process has its first 20 requests in flight before any answer
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"{target}/{n}\n" for n in range(200)))
    # Not created yet (no file, no tables): the six race to create it too.
    writers = [
        run_cli("--db", db, "--changes", "-q", "-c", "20", "-i", str(hosts)) for _ in range(6)
    ]
    outcomes = [(p.wait(timeout=60), p.stderr.read()) for p in writers if p.stderr]
    for p in writers:
        assert p.stdout is not None
        p.stdout.close()
        assert p.stderr is not None
        p.stderr.close()
    assert outcomes == [(0, "")] * 6
    assert query(db, "SELECT count(*) FROM snapshots") == [(6 * 200,)]
    runs = query(db, "SELECT targets, ok, finished_at IS NOT NULL FROM runs")
    assert runs == [(200, 200, 1)] * 6
    per_key = query(
        db,
        "SELECT count(DISTINCT key), min(n), max(n) FROM "
        "(SELECT key, count(*) AS n FROM snapshots GROUP BY key) AS per_key",
    )
    assert per_key == [(200, 6, 6)]


def test_history_json_limit_and_the_same_target_written_another_way(
    site: tuple[Site, str], db: str
) -> None:
    server, target = site
    for version in ("1", "2", "3"):
        server.headers["X-Version"] = version
        assert fetchheads("--db", db, "-q", target)[0] == 0
    code, out, _ = fetchheads("history", "--db", db, "--json", "-n", "2", f"http://{target}/")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in records] == [3, 2]
    assert records[0]["changes"] == [{"name": "X-Version", "before": ["2"], "after": ["3"]}]
    assert ["X-Version", "3"] in records[0]["headers"]
    assert {"target", "url", "status", "headers", "tls", "fetched_at", "run_id"} <= set(records[0])


def test_diff_the_last_two_or_since_a_time(site: tuple[Site, str], db: str) -> None:
    server, target = site
    for version in ("1", "2", "3"):
        server.headers["X-Version"] = version
        assert fetchheads("--db", db, "-q", target)[0] == 0
    code, out, _ = fetchheads("diff", "--db", db, target)
    assert code == 0
    assert out.splitlines()[1:] == [f"{target} changed > X-Version: 2 -> 3"]
    code, out, _ = fetchheads("diff", "--db", db, "--since", "1w", "--json", target)
    assert code == 0
    record = json.loads(out)
    assert (record["before"]["id"], record["after"]["id"]) == (1, 3)
    assert record["changes"] == [{"name": "X-Version", "before": ["1"], "after": ["3"]}]
    code, out, _ = fetchheads("diff", "--db", db, "--at", "2000-01-01", target)
    assert code == 1
    code, out, err = fetchheads("diff", "--db", db, "127.0.0.1:1")
    assert (code, out) == (1, "")
    assert "no snapshots of 127.0.0.1:1" in err
    code, _, err = fetchheads("diff", "--db", db, "--since", "last tuesday", target)
    assert code == 2
    assert "neither an age" in err
    # The same age on both sides is one moment, never "--since later than --at".
    for _ in range(20):
        code, _, err = fetchheads("diff", "--db", db, "--since", "1d", "--at", "1d", target)
        assert "is later than" not in err
    # The two sides the wrong way round: refused, not compared backwards.
    code, out, err = fetchheads("diff", "--db", db, "--since", "5m", "--at", "30m", target)
    assert (code, out) == (2, "")
    assert "is later than --at" in err


def test_diff_since_a_date_takes_in_that_whole_day(site: tuple[Site, str], db: str) -> None:
    """ "What changed since December 3" includes what changed during December 3: the older side
    is the snapshot the day began with. ``--at`` a date is the end of that day."""
    server, target = site
    for version in ("1", "2", "3"):
        server.headers["X-Version"] = version
        assert fetchheads("--db", db, "-q", target)[0] == 0
    taken = ("2026-12-02T23:00:00.000Z", "2026-12-03T10:00:00.000Z", "2026-12-04T10:00:00.000Z")
    for snapshot_id, fetched_at in enumerate(taken, start=1):
        sql = f"UPDATE snapshots SET fetched_at = '{fetched_at}' WHERE id = {snapshot_id} RETURNING id"
        assert query(db, sql) == [(snapshot_id,)]

    def compared(*options: str) -> tuple[int, int]:
        code, out, err = fetchheads("diff", "--db", db, "--json", *options, target)
        assert code == 0, err
        record = json.loads(out)
        return record["before"]["id"], record["after"]["id"]

    assert compared("--since", "2026-12-03") == (1, 3)
    assert compared("--since", "2026-12-03T12:00") == (2, 3)  # a time: up to that moment
    assert compared("--since", "2026-12-03", "--at", "2026-12-03") == (1, 2)  # during the 3rd
    assert compared("--since", "2026-12-04") == (2, 3)
    assert compared("--since", "0001-01-01") == (1, 3)  # none before: since the oldest
    code, out, err = fetchheads(
        "diff", "--db", db, "--since", "2026-12-03", "--at", "2026-12-02", target
    )
    assert (code, out) == (2, "")
    assert "--since 2026-12-03 is later than --at 2026-12-02" in err  # as typed


def test_prune_keeps_the_newest_and_says_what_it_did(site: tuple[Site, str], db: str) -> None:
    _, target = site
    for _ in range(3):
        assert fetchheads("--db", db, "-q", target, f"{target}/other")[0] == 0
    assert fetchheads("prune", "--db", db)[0] == 2  # nothing said to keep
    code, out, _ = fetchheads("prune", "--db", db, "--keep", "1")
    assert (code, out) == (0, f"pruned 4 snapshots and 2 runs from {db}\n")
    assert fetchheads("--db", db, "-q", target, f"{target}/other")[0] == 0
    code, out, _ = fetchheads("prune", "--db", db, "--keep", "1")
    assert (code, out) == (0, f"pruned 2 snapshots and 1 run from {db}\n")
    for bad in ("nan", "inf"):
        code, _, err = fetchheads("prune", "--db", db, "--keep-days", bad)
        assert (code, "must be a finite number" in err) == (2, True)
    code, out, _ = fetchheads("prune", "--db", db, "--keep-days", "0", "-q")
    assert (code, out) == (0, "")
    assert len(fetchheads("history", "--db", db, target)[1].splitlines()) == 1


def test_prune_beside_a_writing_run(site: tuple[Site, str], db: str, tmp_path: Path) -> None:
    _, target = site
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"{target}/{n}\n" for n in range(1000)))
    assert fetchheads("--db", db, "-q", "-i", str(hosts))[0] == 0  # run 1: what prune removes
    writer = run_cli("--db", db, "-q", "-c", "10", "-i", str(hosts), stdout=subprocess.DEVNULL)
    prunes: list[tuple[int, str, str]] = []
    while writer.poll() is None and len(prunes) < 100:
        pruner = run_cli("prune", "--db", db, "--keep", "1", "-q")
        prunes.append((pruner.wait(timeout=60), *pruner.communicate()))
    _, err = writer.communicate(timeout=60)
    assert (writer.returncode, err) == (0, "")
    assert prunes
    assert set(prunes) == {(0, "", "")}
    final = run_cli("prune", "--db", db, "--keep", "1", "-q")
    assert final.wait(timeout=60) == 0
    final.communicate()
    counts = query(db, "SELECT run_id, count(*) FROM snapshots GROUP BY run_id")
    assert counts == [(2, 1000)]  # the writer lost nothing; run 1 is gone


def sql_statements(path: Path) -> list[str]:
    statements, pending = [], ""
    for line in path.read_text().splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    assert not pending.strip()
    return statements


def psql_statements(path: Path) -> list[str]:
    """The statements of a psql file: each ends with ``;`` at the end of a line."""
    statements, pending = [], ""
    for line in path.read_text().splitlines(keepends=True):
        if line.startswith("--") and not pending:
            continue
        pending += line
        if line.rstrip().endswith(";"):
            statements.append(pending.strip())
            pending = ""
    assert not pending.strip()
    return statements


def test_the_examples_run_as_written_and_their_sql_answers(
    threaded_server: Callable[..., ThreadedServer],
    expiring_context: ssl.SSLContext,
    ca_file: Path,
    tmp_path: Path,
    postgres: Postgres,
) -> None:
    site = Site(Server="nginx/1.22", **{"Strict-Transport-Security": "max-age=60"})
    plain = threaded_server(site.handler)
    tls = threaded_server(Site(Server="tls").handler, ssl_context=expiring_context)
    http_target, tls_target = f"127.0.0.1:{plain.port}", f"https://127.0.0.1:{tls.port}"
    (tmp_path / "hosts.txt").write_text(f"{http_target}\n{tls_target}\n127.0.0.1:9\n")
    jobs = [
        line.split(None, 5)[5].replace("/etc/fetchheads/hosts.txt", str(tmp_path / "hosts.txt"))
        for line in (EXAMPLES / "crontab").read_text().splitlines()
        if line[:1].isdigit() or line.startswith("*")
    ]
    cron = [
        next(job for job in jobs if "--changes" in job),
        next(job for job in jobs if " prune " in job),
    ]
    env = {
        "HOME": str(tmp_path),
        "PATH": os.environ["PATH"],  # as cron's: the jobs name fetchheads by its full path
        "SSL_CERT_FILE": str(ca_file),
    }
    installed = shutil.which("fetchheads", path=str(Path(sys.executable).parent))
    assert installed is not None
    (tmp_path / ".local" / "bin").mkdir(parents=True)
    (tmp_path / ".local" / "bin" / "fetchheads").symlink_to(installed)

    def cron_job(number: int) -> tuple[int, str, str]:
        done = subprocess.run(
            ["sh", "-c", cron[number]], env=env, capture_output=True, text=True, timeout=60
        )
        return done.returncode, done.stdout, done.stderr

    # The baseline prints no change, only what is already wrong: the host that is down (exit 1)
    # and the certificate warning.
    code, out, err = cron_job(0)
    assert (code, err) == (1, "")
    lines = sorted(out.splitlines())
    assert lines[0].startswith("127.0.0.1:9 changed > :error: (none) -> connect: ")
    assert lines[1].startswith(f"{tls_target} warning > certificate expires in 10 days (")
    assert len(lines) == 2
    site.headers["Server"] = "nginx/1.27"
    del site.headers["Strict-Transport-Security"]
    # The host still down and the warning already given are not news; the exit status still
    # says a host failed.
    code, out, err = cron_job(0)
    assert (code, err) == (1, "")
    assert sorted(out.splitlines()) == [
        f"{http_target} changed > Server: nginx/1.22 -> nginx/1.27",
        f"{http_target} changed > Strict-Transport-Security: max-age=60 -> (none)",
    ]
    assert cron_job(1) == (0, "", "")  # prune

    database = tmp_path / "heads.db"
    connection = sqlite3.connect(database)
    try:
        answers = [
            connection.execute(query).fetchall()
            for query in sql_statements(EXAMPLES / "queries.sql")
        ]
    finally:
        connection.close()
    check_answers(answers, http_target, tls_target)
    # The same history in PostgreSQL (db copy), and the psql versions of the queries.
    url = postgres.new_database()
    assert fetchheads("db", "copy", "-q", str(database), url)[:2] == (0, "")
    answers = [query(url, sql) for sql in psql_statements(EXAMPLES / "queries-postgres.sql")]
    check_answers(answers[:5], http_target, tls_target)
    assert [(row[2], row[3]) for row in answers[5]] == [("finished", 3)]  # one host here
    shell = subprocess.run(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", url, "-f", str(EXAMPLES / "queries-postgres.sql")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (shell.returncode, shell.stderr) == (0, "")
    assert "nginx/1.27" in shell.stdout
    # The same file through the sqlite3 shell, as the comment at its top says to run it.
    shell = subprocess.run(
        ["sqlite3", "-bail", str(database)],
        input=(EXAMPLES / "queries.sql").read_text(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (shell.returncode, shell.stderr) == (0, "")
    assert "nginx/1.27" in shell.stdout


def check_answers(answers: list[list[tuple[Any, ...]]], http_target: str, tls_target: str) -> None:
    """What the example queries (queries.sql, queries-postgres.sql) answer after the crontab's
    runs: the same facts from either database."""
    server_changed, expiring, failing, hsts_dropped, runs = answers
    assert [(row[0], row[1], row[2]) for row in server_changed] == [
        (http_target, "nginx/1.22", "nginx/1.27")
    ]
    assert [(row[0], row[2]) for row in expiring] == [(tls_target, 10)]
    assert [(row[0], row[1]) for row in failing] == [("127.0.0.1:9", "connect")]
    assert hsts_dropped == [(http_target,)]
    assert [row[3:6] for row in runs] == [(3, 2, 1), (3, 2, 1)]


def test_an_interrupted_run_keeps_what_finished_and_closes_its_run(
    site: tuple[Site, str], threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    _, target = site
    hung = threaded_server(silent())
    db = tmp_path / "heads.db"
    process = run_cli(
        "--db", str(db), "--json", "-q", f"{target}/a", f"{target}/b", f"127.0.0.1:{hung.port}"
    )
    assert process.stdout is not None
    finished = [process.stdout.readline(), process.stdout.readline()]
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert err == "fetchheads: interrupted: 2 done, 1 not finished\n"
    assert all(json.loads(line)["ok"] for line in finished)
    connection = sqlite3.connect(db)
    try:
        assert connection.execute("SELECT count(*) FROM snapshots").fetchone() == (2,)
        assert connection.execute(
            "SELECT targets, ok, finished_at IS NOT NULL FROM runs"
        ).fetchall() == [(2, 2, 1)]
    finally:
        connection.close()


@pytest.mark.parametrize("command", ["history", "diff", "prune"])
def test_every_snapshot_command_has_help_with_examples(command: str) -> None:
    code, out, _ = fetchheads(command, "--help")
    assert code == 0
    assert "--db PATH|URL" in out
    assert "FETCHHEADS_DB" in out
    assert "it must exist" in " ".join(out.split())  # they refuse a missing file
    assert "created if missing" not in " ".join(out.split())
    assert f"fetchheads {command} --db" in out.rsplit("Examples:", 1)[1]


def test_fetch_help_says_db_is_created_if_missing() -> None:
    code, out, _ = fetchheads("--help")
    assert code == 0
    assert "an SQLite file (created if missing) or a postgresql:// URL" in " ".join(out.split())


def test_the_runs_row_keeps_options_but_no_secret(site: tuple[Site, str], tmp_path: Path) -> None:
    _, target = site
    db = tmp_path / "heads.db"
    code, _, _ = fetchheads(
        "--db", str(db), "-q", "-c", "7", "-H", "Authorization: Bearer s3cret-token", target
    )
    assert code == 0
    connection = sqlite3.connect(db)
    try:
        (options,) = connection.execute("SELECT options FROM runs").fetchone()
    finally:
        connection.close()
    recorded = json.loads(options)
    assert (recorded["concurrency"], recorded["headers"]) == (7, ["Authorization"])
    everything = b"".join(path.read_bytes() for path in tmp_path.glob("heads.db*"))
    assert b"s3cret-token" not in everything


def test_the_runs_row_records_insecure(
    threaded_server: Callable[..., ThreadedServer],
    server_ssl_context: ssl.SSLContext,
    tmp_path: Path,
) -> None:
    # Whether a run verified certificates decides what its TLS facts mean: -k must be on record.
    server = threaded_server(Site(Server="tls").handler, ssl_context=server_ssl_context)
    target = f"https://127.0.0.1:{server.port}"
    db = tmp_path / "heads.db"
    assert fetchheads("--db", str(db), "-q", "-k", target)[0] == 0
    assert fetchheads("--db", str(db), "-q", "127.0.0.1:9")[0] == 1
    connection = sqlite3.connect(db)
    try:
        options = [json.loads(row[0]) for row in connection.execute("SELECT options FROM runs")]
    finally:
        connection.close()
    assert [recorded["insecure"] for recorded in options] == [True, False]


def test_run_options_name_a_proxy_without_its_password() -> None:
    config = Config(proxies=proxy_rules({}, proxy="http://ann:pr0xy-pass@127.0.0.1:3128"))
    recorded = run_options(config, SnapshotOptions(changes=True))
    assert recorded["http_proxy"] == recorded["https_proxy"] == "127.0.0.1:3128"
    text = json.dumps(recorded)
    assert "pr0xy-pass" not in text
    assert "YW5uOnByMHh5LXBhc3M=" not in text  # base64 of ann:pr0xy-pass


def test_a_database_failing_every_write_still_prints_every_change_and_exits_1(
    site: tuple[Site, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, target = site
    db = str(tmp_path / "heads.db")
    assert fetchheads("--db", db, "-q", target)[0] == 0
    server.headers["X-Version"] = "2"

    def broken(self: Store, run_id: int, snapshots: object, *, previous: bool = False) -> None:
        raise StoreError(f"{self.path}: cannot write: disk I/O error", "disk I/O error")

    monkeypatch.setattr(Store, "record", broken)
    code, out, err = fetchheads("--db", db, "-q", "--changes", "--format", "plain", target)
    assert code == 1
    # Compared with what could still be read: the change goes out although it was not recorded.
    assert out == f"{target} changed > X-Version: 1 -> 2\n"
    assert err == f"fetchheads: 1 result not recorded: disk I/O error (--db {db})\n"


@pytest.mark.parametrize("command", [["history", "x"], ["diff", "x"], ["prune", "--keep", "1"]])
def test_looking_into_a_missing_database_creates_none(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "typo.db"
    code, _, err = fetchheads(command[0], "--db", str(missing), *command[1:])
    assert code == 2
    assert "does not exist" in err
    assert list(tmp_path.iterdir()) == []


def test_the_summary_says_why_a_changes_run_printed_nothing(
    site: tuple[Site, str], tmp_path: Path
) -> None:
    server, target = site
    db = str(tmp_path / "heads.db")
    args = ("--db", db, "--changes", "--progress", "--format", "plain", target, f"{target}/b")
    code, out, err = fetchheads(*args)
    assert (code, out) == (0, "")
    assert "; baseline: 2 snapshots recorded, none shown" in " ".join(err.split())
    server.headers["X-Version"] = "9"
    code, out, err = fetchheads(*args)
    assert code == 0
    assert len(out.splitlines()) == 2
    assert "; 2 changed" in " ".join(err.split())


def test_db_copy_has_help_with_examples_and_creates_no_source(tmp_path: Path) -> None:
    code, out, _ = fetchheads("db", "copy", "--help")
    assert code == 0
    assert "fetchheads db copy " in out.rsplit("Examples:", 1)[1]
    code, out, _ = fetchheads("db", "--help")
    assert (code, "copy" in out) == (0, True)
    missing, destination = tmp_path / "typo.db", tmp_path / "new.db"
    code, _, err = fetchheads("db", "copy", str(missing), str(destination))
    assert code == 2
    assert f"{missing} does not exist" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def cli_process(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """fetchheads run as a user runs it: its own process, its own exit status."""
    return subprocess.run(
        [sys.executable, "-m", "fetchheads", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_a_run_refused_for_its_output_file_leaves_no_database(tmp_path: Path) -> None:
    done = cli_process("--db", "new.db", "-o", "/nonexistent/x.txt", "127.0.0.1:9", cwd=tmp_path)
    assert done.returncode == 2
    assert "cannot write /nonexistent/x.txt: No such file or directory" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("existing", [True, False])
def test_a_run_refused_for_its_database_leaves_the_output_file_as_it_was(
    tmp_path: Path, existing: bool
) -> None:
    (tmp_path / "notes.db").write_text("not a database\n")
    out = tmp_path / "heads.txt"
    if existing:
        out.write_text("yesterday's heads\n")
    done = cli_process("--db", "notes.db", "-o", "heads.txt", "127.0.0.1:9", cwd=tmp_path)
    assert done.returncode == 2
    assert "not an SQLite database" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heads.txt"] * existing + ["notes.db"]
    if existing:
        assert out.read_text() == "yesterday's heads\n"


@pytest.mark.parametrize(
    ("command", "location"),
    [
        (["-q", "127.0.0.1:9"], ":memory:"),
        (["history", "x"], ":memory:"),
        (["prune", "--keep", "1"], ":memory:"),
        (["-q", "127.0.0.1:9"], "file:heads.db"),
        (["diff", "x"], "file:heads.db?mode=memory"),
    ],
)
def test_a_database_that_is_no_file_is_refused_and_nothing_created(
    tmp_path: Path, command: list[str], location: str
) -> None:
    if command[0] in ("history", "diff", "prune"):
        args = [command[0], "--db", location, *command[1:]]
    else:
        args = ["--db", location, *command]
    done = cli_process(*args, cwd=tmp_path)
    assert done.returncode == 2
    last = done.stderr.splitlines()[-1]
    # Typed on the command line: no "(env var: 'FETCHHEADS_DB')", which did not supply it.
    assert last.startswith(f"Error: Invalid value for '--db': '{location}' is ")
    assert ": a snapshot database must be a file" in last
    assert list(tmp_path.iterdir()) == []


def test_a_file_whose_name_starts_with_file_colon_is_reached_as_dot_slash(tmp_path: Path) -> None:
    done = cli_process("--db", "./file:heads.db", "-q", "127.0.0.1:9", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (1, "")
    assert [p.name for p in tmp_path.iterdir()] == ["file:heads.db"]
    done = cli_process("history", "--db", "./file:heads.db", "127.0.0.1:9", cwd=tmp_path)
    assert done.returncode == 0
    assert "connection refused" in done.stdout
