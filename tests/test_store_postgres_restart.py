"""A PostgreSQL server that restarts, or goes away for good, while a run records into it: the run
reconnects and loses and doubles no row, or ends saying how many results were not recorded.
Each test has a server of its own, restarted or stopped under a real fetchheads process."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fetchheads.errors import StoreError
from fetchheads.snapshots.store import Store, shown
from fetchheads.snapshots.store_postgres import PostgresStore
from tests.support import processes
from tests.support.postgres import Postgres, Relay, running_postgres
from tests.support.servers import ThreadedServer
from tests.support.snapshots import day, fetchheads, query, snap, start_site

TARGETS = 60
RATE = "20"  # 60 targets in 3 s: the server goes away while the run is well under way


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    with running_postgres() as server:
        yield server


def hosts(tmp_path: Path, target: str) -> Path:
    path = tmp_path / "hosts.txt"
    path.write_text("".join(f"{target}/{n}\n" for n in range(TARGETS)))
    return path


def wait_for_snapshots(url: str, process: subprocess.Popen[str], at_least: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        [(count,)] = query(url, "SELECT count(*) FROM snapshots")
        if count >= at_least:
            return int(count)
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError("the run recorded nothing")


def fetchheads_process(
    *args: str, reconnect_seconds: float | None = None, connect_timeout: int | None = None
) -> subprocess.Popen[str]:
    """A real fetchheads, its reconnect span (and connect timeout) shortened for a server that
    stays away."""
    setup = "import sys\nfrom fetchheads.snapshots import store_postgres\n"
    if reconnect_seconds is not None:
        setup += f"store_postgres.RECONNECT_SECONDS = {reconnect_seconds}\n"
    if connect_timeout is not None:
        setup += f"store_postgres.CONNECT_TIMEOUT = {connect_timeout}\n"
    setup += "from fetchheads.cli import main\nsys.argv[0] = 'fetchheads'\nmain()\n"
    return processes.start(
        [sys.executable, "-c", setup, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def relay(postgres: Postgres) -> Iterator[Relay]:
    """The shared server behind a relay that a test can cut."""
    relayed = Relay(postgres.port)
    yield relayed
    relayed.close()


NOT_RECORDED = re.compile(
    r"fetchheads: (?:(\d+) results? not recorded(?:, (\d+) more may not have been)?|"
    r"(\d+) results? may not have been recorded)(?: \(the answer to (?:its|their) COMMIT was "
    r"lost\))?: lost the connection, and could not make it again in \d+ s: .+ \(--db \S+\)\n"
)


def claims(err: str) -> tuple[int, int]:
    """What the run's last line says: (results not recorded, results that may not have been)."""
    match = NOT_RECORDED.fullmatch(err)
    assert match is not None, err
    if match[3] is not None:
        return 0, int(match[3])
    return int(match[1]), int(match[2] or 0)


def last_transaction_rows(url: str) -> int:
    """How many snapshots the last transaction that wrote some stored."""
    [(rows,)] = query(
        url,
        "SELECT count(*) FROM snapshots "
        "WHERE xmin = (SELECT xmin FROM snapshots ORDER BY id DESC LIMIT 1)",
    )
    return int(rows)


def test_a_batch_whose_commit_answer_was_lost_for_good_is_said_to_be_in_doubt(
    postgres: Postgres,
    relay: Relay,
    threaded_server: Callable[..., ThreadedServer],
    tmp_path: Path,
) -> None:
    """The server took a batch's COMMIT, its answer never came back, and the server was not
    reached again: the run cannot know, and does not count that batch as lost for sure."""
    _, target = start_site(threaded_server)
    url = postgres.new_database()
    Store.open(url).close()
    list_file = str(hosts(tmp_path, target))
    args = ["--db", relay.url(url), "--json", "--rate", RATE, "-q", "-i", list_file]
    process = fetchheads_process(*args, reconnect_seconds=1)
    wait_for_snapshots(url, process, 10)
    relay.lose_commit_answer(after=b"COPY snapshots")
    out, err = process.communicate(timeout=60)
    assert relay.lost.is_set()
    assert process.returncode == 1
    assert len(out.splitlines()) == TARGETS
    [(stored,)] = query(url, "SELECT count(*) FROM snapshots")
    lost, in_doubt = claims(err)
    assert in_doubt == last_transaction_rows(url)  # the batch whose answer was lost: stored
    assert lost == TARGETS - stored  # what it says is lost for sure is what is missing


def test_a_batch_whose_commit_answer_was_lost_is_found_when_the_server_is_back(
    postgres: Postgres,
    relay: Relay,
    threaded_server: Callable[..., ThreadedServer],
    tmp_path: Path,
) -> None:
    """The same, but the server is reached again later in the run: the batch is looked up, found
    stored, and not counted as lost."""
    _, target = start_site(threaded_server)
    url = postgres.new_database()
    Store.open(url).close()
    list_file = str(hosts(tmp_path, target))
    args = ["--db", relay.url(url), "--json", "--rate", "10", "-q", "-i", list_file]
    process = fetchheads_process(*args, reconnect_seconds=1)
    wait_for_snapshots(url, process, 10)
    relay.lose_commit_answer(after=b"COPY snapshots")
    assert relay.lost.wait(10)
    time.sleep(1.5)  # the run has given up meanwhile
    relay.restore()
    out, err = process.communicate(timeout=60)
    assert len(out.splitlines()) == TARGETS
    [(stored,)] = query(url, "SELECT count(*) FROM snapshots")
    if err:  # the batches the run failed while it had given up
        assert process.returncode == 1
        assert claims(err) == (TARGETS - stored, 0)
    else:
        assert (process.returncode, stored) == (0, TARGETS)
    assert query(url, "SELECT state, targets FROM runs") == [("finished", TARGETS)]


def test_a_run_row_whose_commit_answer_was_lost_is_not_written_twice(
    postgres: Postgres,
    relay: Relay,
    threaded_server: Callable[..., ThreadedServer],
    tmp_path: Path,
) -> None:
    """The run's first write (its ``runs`` row) committed, its answer lost, the server away for
    longer than the run waits: when it is back, the run goes on with that row, not a second."""
    _, target = start_site(threaded_server)
    url = postgres.new_database()
    Store.open(url).close()
    relay.lose_commit_answer(after=b"INSERT INTO runs")
    list_file = str(hosts(tmp_path, target))
    args = ["--db", relay.url(url), "--json", "--rate", "10", "-q", "-i", list_file]
    process = fetchheads_process(*args, reconnect_seconds=1)
    assert relay.lost.wait(10)
    time.sleep(1.5)  # the run has given up meanwhile
    relay.restore()
    out, err = process.communicate(timeout=60)
    assert len(out.splitlines()) == TARGETS
    assert query(url, "SELECT count(*), min(state), min(targets) FROM runs") == [
        (1, "finished", TARGETS)
    ]
    [(stored, runs)] = query(url, "SELECT count(*), count(DISTINCT run_id) FROM snapshots")
    assert runs == 1
    if err:
        assert claims(err) == (TARGETS - stored, 0)


def test_a_server_that_drops_packets_costs_a_run_one_reconnect_span(
    postgres: Postgres,
    relay: Relay,
    threaded_server: Callable[..., ThreadedServer],
    tmp_path: Path,
) -> None:
    """Each try to connect to it waits the connect timeout: once the run has given up, its later
    batches (and, under --changes, the reads that compare them) are not each tried again."""
    _, target = start_site(threaded_server)
    url = postgres.new_database()
    Store.open(url).close()
    list_file = str(hosts(tmp_path, target))
    args = ["--db", relay.url(url), "--changes", "--rate", "10", "-q", "-i", list_file]
    process = fetchheads_process(*args, reconnect_seconds=3, connect_timeout=2)
    wait_for_snapshots(url, process, 10)
    relay.hang()
    cut, tried = time.monotonic(), relay.attempts
    _, err = process.communicate(timeout=90)
    waited = time.monotonic() - cut
    assert process.returncode == 1
    lost, in_doubt = claims(err)
    [(stored,)] = query(url, "SELECT count(*) FROM snapshots")
    assert (lost, in_doubt) == (TARGETS - stored, 0)
    # The span: a try from 0 to 2 s, another from 2.1 to 4.1 s; then none before 7.1 s, and the
    # fetch is over by about 5 s (a slow machine may see the one try a span allows after it).
    # Before, each later batch tried twice more (record, and compare), 2 s each: 6 tries, 12 s.
    assert relay.attempts - tried <= 3
    assert waited < 9, err


def test_a_server_back_soon_after_the_run_gave_up_gets_the_rest_of_the_run(
    postgres: Postgres,
    relay: Relay,
    threaded_server: Callable[..., ThreadedServer],
    tmp_path: Path,
) -> None:
    """A failover a little longer than the reconnect span: the run gives up, then the server
    takes connections again before the run ends. A refused try costs nothing, so each batch
    tries once: the ones after the server's return are recorded, and so is the run's end."""
    _, target = start_site(threaded_server)
    url = postgres.new_database()
    Store.open(url).close()
    args = ["--db", relay.url(url), "--rate", "8", "-q", "-i", str(hosts(tmp_path, target))]
    process = fetchheads_process(*args, reconnect_seconds=4)
    wait_for_snapshots(url, process, 5)  # ~0.7 s into a run of 7.5 s
    relay.refuse()
    time.sleep(4.8)  # the span is over: the run has given up on the server
    [(before,)] = query(url, "SELECT count(*) FROM snapshots")
    relay.restore()  # ~2 s of targets are left, and the run's end: less than a span
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1  # the batches of the outage are lost, and said to be
    lost, in_doubt = claims(err)
    [(stored,)] = query(url, "SELECT count(*) FROM snapshots")
    assert (lost + stored, in_doubt) == (TARGETS, 0)
    assert stored >= before + 10, err  # before: the run stopped trying for a span, and lost them
    assert query(url, "SELECT state, targets FROM runs") == [("finished", TARGETS)]


@pytest.mark.parametrize("changes", [False, True], ids=["record", "changes"])
def test_a_server_restarted_mid_run_gets_every_result_once_and_the_run_finished(
    own_postgres: Postgres,
    threaded_server: Callable[..., ThreadedServer],
    tmp_path: Path,
    changes: bool,
) -> None:
    _, target = start_site(threaded_server)
    url = own_postgres.new_database()
    Store.open(url).close()  # the tables, to count the run's rows in
    args = ["--db", url, "--rate", RATE, "-q", "-i", str(hosts(tmp_path, target))]
    process = fetchheads_process(*args, *(["--changes"] if changes else []))
    before = wait_for_snapshots(url, process, 10)
    own_postgres.restart()
    assert process.poll() is None  # the restart came mid-run
    out, err = process.communicate(timeout=60)
    assert (process.returncode, err) == (0, "")
    if changes:
        assert out == ""  # a baseline under --changes: nothing to show
    else:
        printed = {line.split(" ", 1)[0] for line in out.splitlines()}
        assert len(printed) == TARGETS  # every target printed, the restart notwithstanding
    assert before < TARGETS
    assert query(
        url, "SELECT count(*), count(DISTINCT uid), count(DISTINCT key) FROM snapshots"
    ) == [(TARGETS, TARGETS, TARGETS)]
    assert query(url, "SELECT state, finished_at IS NOT NULL, targets, ok FROM runs") == [
        ("finished", True, TARGETS, TARGETS)
    ]


def test_a_server_that_stays_down_ends_the_run_saying_what_was_not_recorded(
    own_postgres: Postgres, threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    _, target = start_site(threaded_server)
    url = own_postgres.new_database()
    Store.open(url).close()  # the tables, to count the run's rows in
    secret = "s3cret-pw"
    with_password = url.replace("fetchheads@", f"fetchheads:{secret}@")  # trust: accepted
    list_file = str(hosts(tmp_path, target))
    started = time.monotonic()
    process = fetchheads_process(
        "--db", with_password, "--json", "--rate", RATE, "-q", "-i", list_file, reconnect_seconds=3
    )
    wait_for_snapshots(url, process, 10)
    own_postgres.stop("fast")
    out, err = process.communicate(timeout=60)
    elapsed = time.monotonic() - started
    own_postgres.resume()

    assert process.returncode == 1  # every target answered: the database failed the run
    assert len(out.splitlines()) == TARGETS  # every result printed all the same
    shown = with_password.replace(secret, "***")
    match = re.fullmatch(
        r"fetchheads: (\d+) results not recorded: lost the connection, and could not make it "
        r"again in \d+ s: connection to server at \"127\.0\.0\.1\", port \d+ failed: Connection "
        r"refused; Is the server running on that host and accepting TCP/IP connections\? "
        rf"\(--db {re.escape(shown)}\)\n",
        err,
    )
    assert match is not None, err
    assert secret not in err
    # What it says was not recorded is exactly what is missing.
    assert query(url, "SELECT count(*) FROM snapshots") == [(TARGETS - int(match[1]),)]
    # One reconnect span (3 s, while the 3 s run goes on), not one per batch (over 9 s).
    assert elapsed < 7.5, elapsed
    # The run row could not be finished: it stays unfinished, and does not claim to be.
    assert query(url, "SELECT state, finished_at FROM runs") == [("running", None)]
    [(recorded,)] = query(url, "SELECT target FROM snapshots ORDER BY id LIMIT 1")
    code, history, _ = fetchheads("history", "--db", url, recorded)
    assert code == 0
    assert "(snapshot 1, run 1, interrupted)" in history  # its process is gone


def test_ctrl_c_while_the_server_is_away_ends_the_run_at_once(
    own_postgres: Postgres, threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    """Not after the minute the writes would wait for the server to come back: the stop ends
    the wait, and the results it held are counted as not recorded."""
    _, target = start_site(threaded_server)
    url = own_postgres.new_database()
    Store.open(url).close()
    args = ["--db", url, "--json", "--rate", "10", "-q", "-i", str(hosts(tmp_path, target))]
    process = fetchheads_process(*args)
    wait_for_snapshots(url, process, 5)
    own_postgres.stop("fast")
    time.sleep(1.5)  # a batch has met the lost connection and waits to reconnect
    _, err, waited = processes.signal_and_wait(process, signal.SIGINT)
    own_postgres.resume()
    assert process.returncode == 130
    assert waited < 5, err  # RECONNECT_SECONDS is 60
    assert re.search(r"^fetchheads: \d+ results? not recorded: ", err, re.MULTILINE), err
    assert err.splitlines()[-1].startswith("fetchheads: interrupted: ")


def test_a_server_down_when_a_run_ends_is_said_and_not_waited_on_for_ever(
    own_postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run row's finish is written again on a new connection as well; when none comes, the
    message says so (the CLI prints it: 'the run could not be closed in the database')."""
    from fetchheads.snapshots import store_postgres

    monkeypatch.setattr(store_postgres, "RECONNECT_SECONDS", 1.0)
    url = own_postgres.new_database()
    with Store.open(url) as store:
        run = store.begin_run("0", {})
        store.record(run, [snap("http://a/", day(1))])
        own_postgres.restart()
        store.finish_run(run, targets=1, ok=1)  # on a new connection
        own_postgres.stop("fast")
        started = time.monotonic()
        with pytest.raises(StoreError, match="lost the connection, and could not make it again"):
            store.record(run, [snap("http://a/", day(2))])
        assert time.monotonic() - started < 3
        started = time.monotonic()
        with pytest.raises(StoreError, match="Connection refused"):
            store.finish_run(run, targets=2, ok=2)
        assert time.monotonic() - started < 0.5  # gave up before: one try
    own_postgres.resume()
    assert query(url, "SELECT state, targets FROM runs") == [("finished", 1)]


def test_a_server_back_when_the_run_ends_gets_its_end_though_a_slow_try_put_tries_off(
    postgres: Postgres, relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a try to connect that was slow to fail (a server that drops packets), the writes
    of the next span fail at once; the run's end is not one of them: a server that answers by
    then stores it, and history does not show a run that ended as interrupted."""
    from fetchheads.snapshots import store_postgres

    monkeypatch.setattr(store_postgres, "RECONNECT_SECONDS", 1.0)
    monkeypatch.setattr(store_postgres, "SLOW_TRY", 0.0)  # every failed try counts as slow
    url = postgres.new_database()
    with Store.open(relay.url(url)) as store:
        run = store.begin_run("0", {})
        store.record(run, [snap("http://a/", day(1))])
        relay.refuse()
        with pytest.raises(StoreError, match="could not make it again"):
            store.record(run, [snap("http://a/", day(2))])
        relay.restore()  # back within the span the slow try put further tries off for
        with pytest.raises(StoreError, match="could not make it again"):
            store.record(run, [snap("http://a/", day(3))])  # a batch: still put off
        store.finish_run(run, targets=3, ok=3)
    assert query(url, "SELECT state, targets FROM runs") == [("finished", 3)]


def test_a_batch_the_server_ended_before_going_away_is_not_in_doubt(
    postgres: Postgres, relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server answered the COMMIT by ending the connection (a shutdown, a terminated
    backend): it rolled the batch back, which is then not recorded for sure, not maybe."""
    from fetchheads.snapshots import store_postgres

    monkeypatch.setattr(store_postgres, "RECONNECT_SECONDS", 0.5)
    url = postgres.new_database()
    with Store.open(relay.url(url)) as store:
        assert isinstance(store, PostgresStore)
        run = store.begin_run("0", {})
        copy = store._insert_snapshots

        def copy_then_end(rows: Sequence[Sequence[Any]]) -> None:
            copy(rows)
            with psycopg.connect(url, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", (store._db.info.backend_pid,))
            time.sleep(0.3)  # its FATAL sent
            relay.refuse()

        monkeypatch.setattr(store, "_insert_snapshots", copy_then_end)
        with pytest.raises(StoreError, match="could not make it again"):
            store.record(run, [snap("http://a/", day(1))])
        assert store.in_doubt == 0
    assert query(url, "SELECT count(*) FROM snapshots") == [(0,)]


def test_the_reconnect_span_lasts_as_long_as_the_message_says(
    postgres: Postgres, relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole span, its last try at its end (it stopped a pause short of it: 56 s of 60), and
    the time said is the time spent."""
    from fetchheads.snapshots import store_postgres

    monkeypatch.setattr(store_postgres, "RECONNECT_SECONDS", 2.0)
    url = postgres.new_database()
    with Store.open(relay.url(url)) as store:
        run = store.begin_run("0", {})
        relay.refuse()
        started = time.monotonic()
        with pytest.raises(StoreError) as raised:
            store.record(run, [snap("http://a/", day(1))])
        waited = time.monotonic() - started
    said = re.search(r"could not make it again in (\d+) s: ", str(raised.value))
    assert said is not None, raised.value
    assert 2.0 <= waited < 2.5
    assert int(said[1]) == 2


@contextlib.contextmanager
def answer_lost_once(store: PostgresStore) -> Iterator[list[str]]:
    """The next write transaction of ``store`` commits, and then its connection breaks before
    the answer is read: the server is told to end it, as a restart would."""
    real = store._write
    lost: list[str] = []

    @contextlib.contextmanager
    def write() -> Iterator[None]:
        with real():
            yield
        if not lost:
            lost.append("committed")
            pid = store._db.info.backend_pid
            with psycopg.connect(store._location, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with store._translate("write"):
                store._db.execute("SELECT 1")  # the broken connection says so

    store._write = write  # type: ignore[method-assign]
    yield lost
    store._write = real  # type: ignore[method-assign]


def test_a_batch_whose_commit_answer_was_lost_is_stored_once_with_its_predecessors(
    postgres: Postgres,
) -> None:
    url = postgres.new_database()
    with Store.open(url) as store:
        assert isinstance(store, PostgresStore)
        with answer_lost_once(store) as lost:
            run = store.begin_run("0", {})
        assert lost == ["committed"]
        first = snap("http://a/", day(1), ("X-Version", "1"))
        store.record(run, [first])
        with answer_lost_once(store) as lost:
            found = store.record(
                run, [snap("http://a/", day(2), ("X-Version", "2"))], previous=True
            )
        assert lost == ["committed"]
    assert query(url, "SELECT count(*) FROM runs") == [(1,)]
    assert query(url, "SELECT count(*), count(DISTINCT uid) FROM snapshots") == [(2, 2)]
    # What the committed transaction read: the snapshot before it, not the new one itself.
    [before] = found
    assert before is not None
    assert (before.fetched_at, before.headers) == (first.fetched_at, first.headers)


@pytest.mark.parametrize("at", ["first", "last"], ids=["at-begin", "at-commit"])
def test_a_socket_that_hangs_up_before_libpq_reads_is_a_lost_connection(
    postgres: Postgres, monkeypatch: pytest.MonkeyPatch, at: str
) -> None:
    """The server ends the connection (a restart, a terminated backend), and psycopg's wait sees
    the socket hang up before libpq has read the server's goodbye: it raises
    ``connection socket closed`` and libpq still calls the connection good. That is a lost
    connection too: the batch is written on a new one, once, not reported as not recorded."""
    url = postgres.new_database()
    with Store.open(url) as store:
        assert isinstance(store, PostgresStore)
        run = store.begin_run("0", {})
        real_wait = psycopg.waiting.wait
        waits: list[int] = []

        def counting(gen: Any, fileno: int, *args: Any, **kwargs: Any) -> Any:
            waits.append(fileno)
            return real_wait(gen, fileno, *args, **kwargs)

        monkeypatch.setattr(psycopg.waiting, "wait", counting)
        store.record(run, [snap("http://a/", day(1), ("X-Version", "1"))])
        hang_up_at = 1 if at == "first" else len(waits)  # the batch's BEGIN, or its COMMIT
        seen = 0

        def hanging_up(gen: Any, fileno: int, *args: Any, **kwargs: Any) -> Any:
            nonlocal seen
            seen += 1
            if seen == hang_up_at:
                pid = store._db.info.backend_pid
                with psycopg.connect(url, autocommit=True) as other:
                    other.execute("SELECT pg_terminate_backend(%s)", (pid,))
                raise psycopg.OperationalError("connection socket closed")
            return real_wait(gen, fileno, *args, **kwargs)

        monkeypatch.setattr(psycopg.waiting, "wait", hanging_up)
        store.record(run, [snap("http://a/", day(2), ("X-Version", "2"))])
        assert seen > hang_up_at  # the batch was written again, on a new connection
        assert store.in_doubt == 0
    assert query(url, "SELECT count(*), count(DISTINCT uid) FROM snapshots") == [(2, 2)]


def test_sigterm_while_the_runs_end_waits_for_a_row_lock_ends_the_run_at_once(
    postgres: Postgres, threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    """Every result recorded, and another session holds the ``runs`` row as the run writes its
    end: SIGTERM (cron's ``timeout``) ends that wait, and the try that follows, as the run's
    stopped end, waits for no lock: not the 30 s lock timeout again, for the same lock."""
    _, target = start_site(threaded_server)
    url = postgres.new_database()
    Store.open(url).close()
    finishing, held = tmp_path / "finishing", tmp_path / "held"
    setup = (
        "import pathlib, sys, time\n"
        "from fetchheads.snapshots import store_postgres\n"
        "real = store_postgres.PostgresStore.finish_run\n"
        "def finish_run(self, *args, **kwargs):\n"
        f"    pathlib.Path({str(finishing)!r}).touch()\n"
        f"    while not pathlib.Path({str(held)!r}).exists():\n"
        "        time.sleep(0.01)\n"
        "    return real(self, *args, **kwargs)\n"
        "store_postgres.PostgresStore.finish_run = finish_run\n"
        "from fetchheads.cli import main\nsys.argv[0] = 'fetchheads'\nmain()\n"
    )
    process = processes.start(
        [sys.executable, "-c", setup, "--db", url, "--json", target, f"{target}/b"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes.wait_for_file(finishing)
    with psycopg.connect(url) as other:
        other.execute("SELECT * FROM runs FOR UPDATE")
        held.touch()
        time.sleep(1)  # inside the wait for the row
        out, err, waited = processes.signal_and_wait(process, signal.SIGTERM)
    assert process.returncode == 143
    assert len(out.splitlines()) == 2
    assert err == (
        "fetchheads: the run could not be closed in the database: "
        f"{shown(url)}: cannot write: canceling statement due to lock timeout\n"
        "fetchheads: terminated: 2 done, 0 not finished\n"
    )
    assert waited < 5, err  # the lock timeout is 30 s
    assert query(url, "SELECT count(*) FROM snapshots") == [(2,)]  # both results recorded


def test_a_signal_while_the_server_does_not_answer_the_runs_end_prints_only_our_lines(
    postgres: Postgres, threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    """The run's end sent to a server process that is frozen (its host still answers TCP):
    SIGTERM ends the wait, psycopg gives up on cancelling the statement after 5 s and logs so;
    that warning is not printed among fetchheads' lines, and the run's end is written on a new
    connection."""
    _, target = start_site(threaded_server)
    url = postgres.new_database()
    Store.open(url).close()
    finishing, held = tmp_path / "finishing", tmp_path / "held"
    setup = (
        "import pathlib, sys, time\n"
        "from fetchheads.snapshots import store_postgres\n"
        "real = store_postgres.PostgresStore.finish_run\n"
        "def finish_run(self, *args, **kwargs):\n"
        f"    if not pathlib.Path({str(held)!r}).exists():\n"
        f"        pathlib.Path({str(finishing)!r}).write_text(str(self._db.info.backend_pid))\n"
        f"    while not pathlib.Path({str(held)!r}).exists():\n"
        "        time.sleep(0.01)\n"
        "    return real(self, *args, **kwargs)\n"
        "store_postgres.PostgresStore.finish_run = finish_run\n"
        "from fetchheads.cli import main\nsys.argv[0] = 'fetchheads'\nmain()\n"
    )
    process = processes.start(
        [sys.executable, "-c", setup, "--db", url, "--json", target, f"{target}/b"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (finishing.exists() and finishing.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    backend = int(finishing.read_text())
    os.kill(backend, signal.SIGSTOP)
    try:
        held.touch()
        time.sleep(1)  # the statement sent, no answer
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        os.kill(backend, signal.SIGCONT)
    assert (process.returncode, len(out.splitlines())) == (143, 2), err
    assert err == "fetchheads: terminated: 2 done, 0 not finished\n"
    assert query(url, "SELECT state, targets FROM runs") == [("interrupted", 2)]


def test_sigterm_after_a_ctrl_c_ends_the_process_at_once(
    postgres: Postgres, threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    """Ctrl-C, and the run waits for a batch another session's lock keeps out (the lock
    timeout, 30 s): a ``kill`` then is the second signal, and ends the process at once, as a
    second Ctrl-C does; it used to be taken as a first, and the run waited the lock out."""
    _, target = start_site(threaded_server)
    url = postgres.new_database()
    Store.open(url).close()
    with psycopg.connect(url) as other:
        other.execute("LOCK TABLE snapshots IN EXCLUSIVE MODE")
        args = ["--db", url, "--json", "--rate", "10", "-i", str(hosts(tmp_path, target))]
        process = fetchheads_process(*args)
        assert process.stdout is not None
        for _ in range(5):
            process.stdout.readline()  # a batch is waiting for the lock
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        _, err, waited = processes.signal_and_wait(process, signal.SIGTERM)
    assert process.returncode == 143
    assert waited < 5, err  # the lock timeout is 30 s
    assert err == ""  # ended at once: nothing more written
