"""The PostgreSQL backend's own behaviour, against a real server on loopback: what it refuses and
leaves untouched, the schema it may be given, concurrent first opens, a missing driver, and a
password that appears nowhere. What both backends share is tested in test_store.py."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import psycopg
import pytest

from fetchheads.errors import StoreError, StoreRefused
from fetchheads.snapshots.store import SCHEMA_VERSION, Store
from tests.support import processes
from tests.support.postgres import Postgres
from tests.support.snapshots import day, fetchheads, query, run_cli, snap


def tables(url: str, schema: str = "public") -> list[str]:
    return [
        row[0]
        for row in query(
            url,
            "SELECT table_name FROM information_schema.tables "
            f"WHERE table_schema = '{schema}' ORDER BY 1",
        )
    ]


def test_a_new_database_gets_the_tables_and_the_mark(postgres: Postgres) -> None:
    url = postgres.new_database()
    Store.open(url).close()
    assert tables(url) == ["fetchheads_meta", "headers", "pruned_keys", "runs", "snapshots"]
    assert query(url, "SELECT application_id, schema_version FROM fetchheads_meta") == [
        (0x46484431, SCHEMA_VERSION)
    ]
    with Store.open(url) as store:
        run = store.begin_run("0", {})
        store.record(run, [snap("http://a/", day(1), ("Server", "one"), ("Vary", "x"))])
    # The view a psql user queries, and real types: a time is a time, JSON is JSON.
    assert query(url, "SELECT name, value FROM headers ORDER BY name") == [
        ("Server", "one"),
        ("Vary", "x"),
    ]
    assert query(url, "SELECT fetched_at < now(), timing ->> 'total' FROM snapshots") == [
        (True, "0.01")
    ]


def test_another_applications_database_is_refused_and_left_as_is(postgres: Postgres) -> None:
    url = postgres.new_database()
    with psycopg.connect(url) as connection:
        connection.execute("CREATE TABLE users (name text)")
        connection.execute("INSERT INTO users VALUES ('ann')")
    with pytest.raises(
        StoreRefused, match=r"not a fetchheads database \(schema public holds users\)"
    ):
        Store.open(url)
    assert tables(url) == ["users"]
    assert query(url, "SELECT name FROM users") == [("ann",)]
    code, out, err = fetchheads("--db", url, "-q", "127.0.0.1:9")
    assert (code, out) == (2, "")
    assert "not a fetchheads database" in err
    assert tables(url) == ["users"]


def test_a_newer_schema_is_refused_and_left_as_is(postgres: Postgres) -> None:
    url = postgres.new_database()
    Store.open(url).close()
    with psycopg.connect(url) as connection:
        connection.execute(f"UPDATE fetchheads_meta SET schema_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(
        StoreRefused, match=rf"newer fetchheads \(schema version {SCHEMA_VERSION + 1}"
    ):
        Store.open(url)
    assert query(url, "SELECT count(*) FROM runs") == [(0,)]


def test_a_schema_of_its_own_beside_another_applications_tables(postgres: Postgres) -> None:
    url = postgres.new_database()
    with psycopg.connect(url) as connection:
        connection.execute("CREATE TABLE users (name text)")
        connection.execute("CREATE SCHEMA heads")
    own = url + "?options=-csearch_path%3Dheads"
    with Store.open(own) as store:
        store.record(store.begin_run("0", {}), [snap("http://a/", day(1))])
    assert tables(url) == ["users"]
    assert "snapshots" in tables(url, "heads")
    code, out, _ = fetchheads("history", "--db", own, "http://a/")
    assert (code, len(out.splitlines())) == (0, 1)
    missing = url + "?options=-csearch_path%3Dnowhere"
    with pytest.raises(StoreRefused, match="no schema to create the tables in"):
        Store.open(missing)


def test_read_only_opens_write_nothing(postgres: Postgres) -> None:
    url = postgres.new_database()
    with pytest.raises(StoreRefused, match="holds no snapshots yet"):
        Store.open(url, readonly=True)
    assert tables(url) == []
    with Store.open(url) as store:
        store.record(store.begin_run("0", {}), [snap("http://a/", day(1))])
    with Store.open(url, readonly=True) as store:
        assert len(store.history(["http://a/"])) == 1
        with pytest.raises(StoreError, match="read-only transaction"):
            store.begin_run("0", {})
    assert query(url, "SELECT count(*) FROM runs") == [(1,)]


def test_processes_opening_a_new_database_at_once_create_it_once(postgres: Postgres) -> None:
    url = postgres.new_database()
    script = (
        "import sys; from fetchheads.snapshots.store import Store\n"
        "with Store.open(sys.argv[1]) as s: s.begin_run('0', {})\n"
    )
    openers = [
        subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    results = [(p.wait(timeout=60), p.communicate()[1]) for p in openers]
    assert results == [(0, "")] * 8
    assert query(url, "SELECT count(*) FROM runs") == [(8,)]
    assert query(url, "SELECT schema_version FROM fetchheads_meta") == [(SCHEMA_VERSION,)]


def test_without_psycopg_a_postgres_db_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    code, out, err = fetchheads("--db", "postgresql://127.0.0.1:9/heads", "-q", "127.0.0.1:9")
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        "Error: Invalid value for --db: PostgreSQL support is not installed: "
        "pip install 'fetchheads[postgres]'"
    )


def test_a_url_whose_password_holds_a_slash_is_refused_without_showing_it(
    tmp_path: Path,
) -> None:
    """``postgresql://user:pa/ss@host/db``: libpq would read ``user`` as the host and ``pa`` as its
    port, and the message naming the database would show the rest of the password."""
    url = "postgresql://user:hunter2/s3cret@127.0.0.1:9/heads"
    for args in (
        ("--db", url, "-q", "127.0.0.1:9"),
        ("history", "--db", url, "127.0.0.1:9"),
        ("db", "copy", url, str(tmp_path / "copy.db")),
    ):
        code, out, err = fetchheads(*args)
        assert (code, out) == (2, ""), args
        assert "hunter2" not in err, err
        assert "s3cret" not in err, err
        assert "postgresql://user:***@127.0.0.1:9/heads" in err
        assert "must be percent-encoded (%2F, %3F, %23)" in err


def every_command_on(url: str, tmp_path: Path) -> tuple[tuple[str, ...], ...]:
    """The commands that take a database URL, each given ``url``: a refusal must hold in all."""
    return (
        ("--db", url, "-q", "127.0.0.1:9"),
        ("history", "--db", url, "127.0.0.1:9"),
        ("prune", "--db", url, "--keep", "3"),
        ("db", "copy", url, str(tmp_path / "copy.db")),
    )


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://fh:s3%ZZcr3tPW@127.0.0.1:9/heads",  # a bad percent escape
        "postgresql://fh:s3cr3tPW@[127.0.0.1:9/heads",  # an unclosed bracket
        "postgresql://fh:s3cr3t@PW@127.0.0.1:9/heads",  # a bare @ in the password
    ],
)
def test_a_url_libpq_cannot_read_is_refused_without_showing_its_password(
    url: str, tmp_path: Path
) -> None:
    """libpq's own message would quote the password (or the part after an @, and look that up
    as a host name): a usage error instead, before anything is fetched or connected."""
    for args in every_command_on(url, tmp_path):
        code, out, err = fetchheads(*args)
        assert (code, out) == (2, ""), (args, err)
        for part in ("s3", "cr3t", "PW", "ZZ"):
            assert part not in err, (args, err)
        assert "not a URL libpq can read" in err, err
        assert "write @ as %40" in err
    assert not (tmp_path / "copy.db").exists()


def test_a_password_appears_in_no_message_no_output_and_no_row(
    postgres: Postgres, tmp_path: Path
) -> None:
    secret = "hunter2-s3cret"
    url = postgres.new_database()
    with_password = url.replace("fetchheads@", f"fetchheads:{secret}@")  # trust: accepted
    gone = with_password.rsplit("/", 1)[0] + "/no_such_database"
    seen: list[str] = []
    for args in (
        ("--db", with_password, "--json", "127.0.0.1:9"),
        ("--db", with_password, "--changes", "127.0.0.1:9"),
        ("--db", gone, "127.0.0.1:9"),  # cannot connect: every result "not recorded"
        ("--db", gone + f"?password={secret}", "127.0.0.1:9"),
        ("history", "--db", with_password, "127.0.0.1:9"),
        ("history", "--db", with_password, "127.0.0.1:1"),
        ("history", "--db", gone, "127.0.0.1:9"),
        ("prune", "--db", with_password, "--keep", "1"),
        ("db", "copy", with_password, str(tmp_path / "copy.db")),
        ("db", "copy", str(tmp_path / "copy.db"), gone),
    ):
        code, out, err = fetchheads(*args)
        seen.append(f"{args[0]} {code}\n{out}{err}")
    text = "\n".join(seen)
    assert secret not in text
    assert "fetchheads:***@127.0.0.1" in text  # named, so a person knows which database
    assert 'database "no_such_database" does not exist' in text
    stored = query(url, "SELECT options::text FROM runs")
    assert stored
    assert secret not in str(stored)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_the_hand_started_server_stops_on_sigterm_as_on_ctrl_c(stop: signal.Signals) -> None:
    process = processes.start(
        [sys.executable, "-m", "tests.support.postgres"],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    port = urllib.parse.urlsplit(url).port
    assert port is not None
    [(data,)] = query(url, "SHOW data_directory")
    try:
        process.send_signal(stop)
        _, err = process.communicate(timeout=60)
        assert (process.returncode, err) == (0, "")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:  # a server the helper left running must not outlive the test
        Postgres(Path(data).parent).stop()


INTERRUPTED_BEFORE_FETCHING = (
    "fetchheads: interrupted: 0 done, 0 not finished, the rest of the input not read"
)


@pytest.mark.parametrize(
    ("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["Ctrl-C", "SIGTERM"]
)
def test_a_stop_while_the_server_never_answers_ends_the_run_saying_so(
    stop: signal.Signals, status: int
) -> None:
    """As a stop during the fetch does: ``interrupted: ...`` or ``terminated: ...``, one line."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"postgresql://u:p@127.0.0.1:{silent.getsockname()[1]}/x"
        process = run_cli("--db", url, "127.0.0.1:9")
        silent.settimeout(30)
        connection, _ = silent.accept()  # fetchheads now waits for an answer that never comes
        with connection:
            process.send_signal(stop)
            out, err = process.communicate(timeout=5)  # not the 10 s connect timeout
    assert (process.returncode, out) == (status, "")
    how = "interrupted" if stop == signal.SIGINT else "terminated"
    assert err.splitlines() == [INTERRUPTED_BEFORE_FETCHING.replace("interrupted", how)]


def test_ctrl_c_while_history_waits_for_the_server_ends_it_quietly() -> None:
    """Outside a run (a snapshot command), Ctrl-C ends the process at once: 130 and nothing
    printed, not click's "Aborted!" and 1."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"postgresql://u:p@127.0.0.1:{silent.getsockname()[1]}/x"
        process = run_cli("history", "--db", url, "127.0.0.1")
        silent.settimeout(30)
        connection, _ = silent.accept()  # history now waits for an answer that never comes
        with connection:
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=5)  # not the 10 s connect timeout
    assert (process.returncode, out, err) == (130, "", "")


@pytest.mark.parametrize("existing", [True, False])
def test_ctrl_c_while_the_database_is_opened_leaves_the_output_file_as_it_was(
    tmp_path: Path, existing: bool
) -> None:
    """-o FILE and a database that keeps the run waiting: Ctrl-C leaves an existing file with its
    old content (the run never began), and creates none."""
    output = tmp_path / "keep.jsonl"
    if existing:
        output.write_text("previous\n")
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"postgresql://u:p@127.0.0.1:{silent.getsockname()[1]}/x"
        process = run_cli("--db", url, "-o", str(output), "127.0.0.1:9")
        silent.settimeout(30)
        connection, _ = silent.accept()
        with connection:
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=5)
    assert process.returncode == 130
    assert err.splitlines() == [INTERRUPTED_BEFORE_FETCHING]
    if existing:
        assert output.read_text() == "previous\n"
    else:
        assert not output.exists()


def test_ctrl_c_while_a_lock_keeps_changes_waiting_stores_no_finished_run(
    postgres: Postgres,
) -> None:
    url = postgres.new_database()
    Store.open(url).close()
    with psycopg.connect(url) as locker:
        locker.execute("LOCK TABLE snapshots IN ACCESS EXCLUSIVE MODE")
        process = run_cli("--db", url, "--changes", "127.0.0.1:9")
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fetchheads' "
        waiting += "AND wait_event_type = 'Lock'"
        deadline = time.monotonic() + 30
        while query(url, waiting) != [(1,)] and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)  # not the 30 s lock timeout
    assert (process.returncode, out) == (130, "")
    assert err.splitlines() == [INTERRUPTED_BEFORE_FETCHING]
    assert query(url, "SELECT count(*) FROM runs") == [(0,)]


def test_a_server_error_is_said_in_its_first_line_without_our_sql(postgres: Postgres) -> None:
    url = postgres.new_database()
    with Store.open(url) as store, pytest.raises(StoreError) as raised, store._translate("read"):
        store._rows("SELECT no_such_column FROM runs")
    assert str(raised.value).endswith(': cannot read: column "no_such_column" does not exist')


def test_a_locked_changes_run_waits_one_lock_timeout_not_two(
    postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fetchheads.snapshots import store_postgres

    monkeypatch.setattr(store_postgres, "LOCK_TIMEOUT", 1.0)
    url = postgres.new_database()
    Store.open(url).close()
    with psycopg.connect(url) as locker:
        locker.execute("LOCK TABLE snapshots IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        code, _, err = fetchheads("--db", url, "--changes", "-q", "127.0.0.1:9")
        elapsed = time.monotonic() - started
    assert code == 1
    assert "1 result not recorded: canceling statement due to lock timeout" in err
    assert elapsed < 1.8  # has_history waited 1 s; the batch then tried once


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        # libpq ends the password at the first @: "ss" would be the host, and a percent escape
        # it cannot read; the message used to show "***@ss:w/rd%x@...".
        ("postgresql://odd:p@ss:w/rd%x@127.0.0.1:54329/heads2", ("p@ss", "ss:w", "rd%x")),
        # a URL libpq reads: it would connect to 127.0.0.2 with database "TopSecretTail@...".
        (
            "postgresql://odd:Sekr1t@127.0.0.2/TopSecretTail@127.0.0.1:54329/heads2",
            ("Sekr1t", "127.0.0.2", "TopSecretTail"),
        ),
        # "kr1t" would be looked up as a host name, "foo@..." the database (or a parameter).
        ("postgresql://odd:Se@kr1t/foo@127.0.0.1:54329/heads2", ("Se@", "kr1t", "foo")),
        ("postgresql://odd:Se@kr1t?dbname=foo@127.0.0.1:54329/heads2", ("Se@", "kr1t", "foo")),
        ("postgresql://odd:Se@kr1t?foo@127.0.0.1:54329/heads2", ("Se@", "kr1t", "foo")),
        # libpq would read 12?34 as the password, but a URL reader ends the host at the ?: one
        # rule for both (the fetch command refuses such a password in a target too).
        ("postgresql://odd:12?34@127.0.0.1:54329/heads2", ("12?34", "34@")),
        ("postgresql://odd:12#34@127.0.0.1:54329/heads2", ("12#34", "34@")),
    ],
)
def test_a_bare_at_in_a_password_is_refused_before_any_lookup(
    url: str, parts: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq ends the user information at the first ``@``: the rest of the password would be a
    host to look up and connect to, or a database name to show. Refused (exit 2), the URL shown
    with nothing of the password, before any name is resolved or any connection made."""
    tried: list[object] = []

    def record(*args: object, **kwargs: object) -> None:
        tried.append(args)
        raise AssertionError("no lookup nor connection for a refused URL")

    monkeypatch.setattr(psycopg, "connect", record)
    monkeypatch.setattr(socket, "getaddrinfo", record)
    shown = "postgresql://odd:***@127.0.0.1:54329/heads2"
    for args in every_command_on(url, tmp_path):
        code, out, err = fetchheads(*args)
        assert (code, out) == (2, ""), (args, err)
        assert err.splitlines()[-1].endswith(
            f"{shown}: not a URL libpq can read; write @ as %40 "
            "wherever it stands, and in a user name or password "
            ": as %3A, / as %2F and % as %25"
        ), err
        for part in parts:
            assert part not in err, (args, err)
    # Store.open refuses it too, whoever calls it.
    with pytest.raises(StoreRefused) as refused:
        Store.open(url)
    assert str(refused.value).startswith(f"{shown}: not a URL libpq can read")
    assert tried == []
    assert not (tmp_path / "copy.db").exists()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # libpq reads these: a percent-encoded @ is no @ (? and # in a password: refused above).
        ("postgresql://odd:p%3Fss@127.0.0.1:9/heads", "postgresql://odd:***@127.0.0.1:9/heads"),
        ("postgresql://odd:p%40ss@127.0.0.1:9/heads", "postgresql://odd:***@127.0.0.1:9/heads"),
        ("postgresql://odd:pw@127.0.0.1:9/heads?password=x", None),
        ("postgresql://odd@127.0.0.1:9/heads", "postgresql://odd@127.0.0.1:9/heads"),
    ],
)
def test_a_password_libpq_reads_is_hidden_whole(
    url: str, shown: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``odd:12?34@host`` was shown as it is: read as RFC 3986 reads it, its "authority" ended at
    the ``?`` with what looked like a port. libpq reads ``12?34`` as the password."""
    from fetchheads.snapshots.store import shown as show

    expected = shown or "postgresql://odd:***@127.0.0.1:9/heads?password=***"
    assert show(url) == expected
    connected: list[str] = []

    def connect(location: str, **_kwargs: object) -> None:
        connected.append(location)
        raise psycopg.OperationalError("connection failed: refused here")

    monkeypatch.setattr(psycopg, "connect", connect)
    with pytest.raises(StoreError) as failed:
        Store.open(url)
    assert str(failed.value) == f"{expected}: cannot connect: refused here"
    assert connected == [url]  # a valid URL is used as given


@pytest.mark.parametrize(
    "url",
    [
        # libpq: user 127.0.0.1, password "54329?password=sek", host 127.0.0.2.
        "postgresql://127.0.0.1:54329?password=sek@127.0.0.2",
        "postgresql://127.0.0.1?password=sek@127.0.0.2",
    ],
)
def test_an_at_after_a_question_mark_is_refused_and_shows_no_password(url: str) -> None:
    code, out, err = fetchheads("--db", url, "-q", "127.0.0.1:9")
    assert (code, out) == (2, "")
    assert "not a URL libpq can read" in err
    assert "sek" not in err
    assert "127.0.0.2" not in err


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # libpq decodes a parameter's name too, and a value runs to the next & (# included).
        ("postgresql://u@h/db?%70assword=sekrit", "postgresql://u@h/db?%70assword=***"),
        ("postgresql://u@h/db?passwor%64=sekrit&a=1", "postgresql://u@h/db?passwor%64=***&a=1"),
        ("postgresql://u@h/db?password=abc#def", "postgresql://u@h/db?password=***"),
        ("postgresql://u@h/db?sslpassword=keyphrase", "postgresql://u@h/db?sslpassword=***"),
    ],
)
def test_every_secret_parameter_is_hidden_as_libpq_reads_it(url: str, expected: str) -> None:
    from fetchheads.snapshots.store import shown as show

    assert show(url) == expected


def test_a_short_password_is_not_searched_for_in_the_servers_message(refused_port: int) -> None:
    """With the password ``ion``, ``connection failed`` became ``connect*** failed``: garbled, and
    where the ``***`` fell told the password. libpq never quotes the password it read."""
    url = f"postgresql://odd:ion@127.0.0.1:{refused_port}/heads"
    with pytest.raises(StoreError) as failed:
        Store.open(url)
    message = str(failed.value)
    assert message.startswith(
        f"postgresql://odd:***@127.0.0.1:{refused_port}/heads: cannot connect: "
        f'connection to server at "127.0.0.1", port {refused_port} failed: Connection refused'
    ), message
    assert "***" not in message.split(": cannot connect: ", 1)[1]


def test_a_password_a_library_would_echo_is_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a password could stand in a message, whatever it is: ``password=``, a URL's
    ``user:password@``, a dictionary's ``'password':``."""

    def connect(location: str, **_kwargs: object) -> None:
        raise psycopg.OperationalError(
            "bad: host=127.0.0.1 password=ion dbname=x; password = 'a b' user=u; "
            "postgresql://odd:ion@127.0.0.1:5/db; {'password': 'ion'}; "
            'password authentication failed for user "odd"'
        )

    monkeypatch.setattr(psycopg, "connect", connect)
    with pytest.raises(StoreError) as failed:
        Store.open("postgresql://odd:ion@127.0.0.1:9/heads")
    assert str(failed.value) == (
        "postgresql://odd:***@127.0.0.1:9/heads: cannot connect: bad: host=127.0.0.1 "
        "password=*** dbname=x; password = *** user=u; postgresql://odd:***@127.0.0.1:5/db; "
        "{'password': ***}; password authentication failed for user \"odd\""
    )
