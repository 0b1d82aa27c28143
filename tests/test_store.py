"""store.py: the snapshot database's schema, refusals, migrations, lookups and pruning. The tests
taking ``db`` run against both backends; the SQLite file's own are here, PostgreSQL's own in
test_store_postgres.py."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from fetchheads.errors import StoreError, StoreRefused
from fetchheads.models import format_timestamp, utc_now
from fetchheads.snapshots.store import APPLICATION_ID, SCHEMA_VERSION, Store
from fetchheads.snapshots.store_sqlite import MIGRATIONS
from tests.support.snapshots import day, query, snap


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_new_database_is_created_in_wal_with_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "heads.db"
    Store.open(str(path)).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        columns = {row[1] for row in db.execute("PRAGMA table_info(snapshots)")}
    finally:
        db.close()
    assert {
        "id",
        "run_id",
        "target",
        "url",
        "fetched_at",
        "ok",
        "status",
        "reason",
        "http_version",
        "headers",
        "error_kind",
        "error_message",
        "timing",
        "tls",
    } <= columns


def test_record_history_and_the_previous_snapshot(db: str) -> None:
    with Store.open(db) as store:
        assert not store.has_snapshots()
        assert not store.has_history()
        run = store.begin_run("0", {"headers": []})
        first = snap("http://a/", "2026-11-01T00:00:00.000Z", ("Server", "one"))
        assert store.record(run, [first], previous=True) == [None]
        assert not store.has_history()  # a run still going is no history yet
        second = snap("http://a/", "2026-11-02T00:00:00.000Z", ("Server", "two"))
        other = snap("http://b/", "2026-11-02T00:00:00.000Z")
        before = store.record(run, [second, other], previous=True)
        assert [s.headers if s else None for s in before] == [(("Server", "one"),), None]
        store.finish_run(run, targets=3, ok=3)
        history = store.history(["http://a/"])
        assert [s.headers for s in history] == [(("Server", "two"),), (("Server", "one"),)]
        assert history[0].tls == {"not_after": "2027-01-01T00:00:00Z", "days_left": 30}
        assert history[0].run_id == run
        assert history[0].id is not None
        assert len(store.history(["http://a/"], limit=1)) == 1
        assert store.has_snapshots()
        assert store.has_history()  # a finished run left snapshots


def test_an_interrupted_run_that_left_snapshots_is_history(db: str) -> None:
    """A cron job always cut short (a timeout around it) must still report changes: a run that
    was interrupted after recording snapshots ends the silent baseline as a finished one does."""
    with Store.open(db) as store:
        stopped = store.begin_run("0", {})
        store.record(stopped, [snap("http://a/", day(1))])
        assert not store.has_history()  # still going
        store.finish_run(stopped, targets=1, ok=1, interrupted=True)
        assert store.has_history()


def test_after_stop_waiting_a_write_no_longer_waits_for_a_lock(db: str) -> None:
    """What the recorder asks for after a first failed write, so a database that stays locked
    costs a run one busy timeout, not one per write."""
    with Store.open(db) as store:
        store.stop_waiting()
        if db.startswith("postgresql://"):
            waits = store._rows("SHOW lock_timeout", ())
            assert waits == [("1ms",)]
        else:
            waits = store._rows("PRAGMA busy_timeout", ())
            assert waits == [(0,)]
        run = store.begin_run("0", {"headers": []})  # still writes when nobody holds the lock
        assert store.record(run, [snap("http://a/", "2026-11-01T00:00:00.000Z")]) == []


@contextlib.contextmanager
def lock_held_for(db: str, seconds: float) -> Iterator[None]:
    """Another connection holds the lock every write of ``db`` needs, for ``seconds`` from the
    start of the block (released by a thread meanwhile)."""
    holder: Any
    if db.startswith("postgresql://"):
        import psycopg

        holder = psycopg.connect(db)
        holder.execute("LOCK TABLE snapshots IN ACCESS EXCLUSIVE MODE")
    else:
        holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(seconds, holder.commit)
    release.start()
    try:
        yield
    finally:
        release.join()
        holder.close()


def test_once_a_batch_goes_through_after_stop_waiting_writes_wait_for_a_lock_again(
    db: str,
) -> None:
    """The fail-fast mode of a database that stayed locked lasts until it takes a batch again:
    then a lock another process holds for a moment is waited for, and the batch recorded."""
    with Store.open(db) as store:
        run = store.begin_run("0", {})
        store.stop_waiting()  # as the recorder does after a failed write
        store.record(run, [snap("http://a/", day(1))])  # nobody holds the lock: it goes through
        with lock_held_for(db, 0.5):
            store.record(run, [snap("http://a/", day(2))])
    assert query(db, "SELECT count(*) FROM snapshots") == [(2,)]


def test_a_snapshot_without_a_head_stays_without_one(db: str) -> None:
    with Store.open(db) as store:
        run = store.begin_run("0", {})
        down = dataclasses.replace(
            snap("http://a/", "2026-11-01T00:00:00.000Z"),
            ok=False,
            status=None,
            has_head=False,
            error_kind="dns",
            error_message="no such host",
        )
        store.record(run, [down])
        (again,) = store.history(["http://a/"])
    assert (again.has_head, again.headers, again.error) == (False, (), "dns: no such host")


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"www.example.com\nwww.sina.com.cn\n", id="text-file"),
        pytest.param(b"SQLite format 3\x00" + b"\xff" * 200, id="corrupt-sqlite"),
    ],
)
def test_a_file_that_is_not_a_database_is_refused_and_left_as_is(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "hosts.txt"
    path.write_bytes(content)
    with pytest.raises(StoreRefused, match=r"not (an SQLite|a fetchheads) database|not a data"):
        Store.open(str(path))
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts.txt"]


def test_another_programs_sqlite_database_is_refused_and_left_as_is(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT)")
    db.execute("INSERT INTO users VALUES ('ann')")
    db.commit()
    db.close()
    before = digest(path)
    with pytest.raises(StoreError, match=r"not a fetchheads database \(it holds users\)"):
        Store.open(str(path))
    assert digest(path) == before


def test_a_database_from_a_newer_fetchheads_is_refused_and_left_as_is(tmp_path: Path) -> None:
    path = tmp_path / "heads.db"
    Store.open(str(path)).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    before = digest(path)
    with pytest.raises(
        StoreError, match=rf"newer fetchheads \(schema version {SCHEMA_VERSION + 1}"
    ):
        Store.open(str(path))
    assert digest(path) == before


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        Store.open(str(tmp_path))


def test_an_older_schema_is_migrated_forward_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "heads.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO runs (started_at, version, options) VALUES ('2026', '0', '{}')")
    db.execute(
        "INSERT INTO snapshots (run_id, key, target, url, fetched_at, ok, status, headers, "
        "timing, redirects) VALUES (1, 'http://a/', 'a', 'http://a/', '2026', 1, 200, "
        """'[["Server","old"]]', '{}', '[]')"""
    )
    db.commit()
    db.close()
    with Store.open(str(path)) as store:
        assert [s.headers for s in store.history(["http://a/"])] == [(("Server", "old"),)]
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT name, value FROM headers").fetchall() == [("Server", "old")]
    finally:
        db.close()


def test_prune_by_age_keeps_the_newest_snapshot_of_every_target(db: str) -> None:
    with Store.open(db) as store:
        old_run = store.begin_run("0", {})
        store.record(old_run, [snap("http://a/", day(1)), snap("http://gone/", day(1))])
        store.finish_run(old_run, targets=2, ok=2)
        new_run = store.begin_run("0", {})
        store.record(new_run, [snap("http://a/", day(20))])
        store.finish_run(new_run, targets=1, ok=1)
        now = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
        assert store.prune(keep_days=7, keep=None, now=now) == (1, 0)
        assert [s.fetched_at for s in store.history(["http://a/"])] == [day(20)]
        # The last snapshot of a target no longer fetched stays: --changes compares with it.
        assert [s.fetched_at for s in store.history(["http://gone/"])] == [day(1)]


def test_prune_keep_n_per_target_and_empty_runs_go(db: str) -> None:
    with Store.open(db) as store:
        runs = []
        for n in range(1, 6):
            run = store.begin_run("0", {})
            store.record(run, [snap("http://a/", day(n))] + [snap("http://b/", day(n))] * (n == 5))
            store.finish_run(run, targets=1, ok=1)
            runs.append(run)
        assert store.prune(keep_days=None, keep=2, now=None) == (3, 3)
        assert [s.fetched_at for s in store.history(["http://a/"])] == [day(5), day(4)]
        assert [s.fetched_at for s in store.history(["http://b/"])] == [day(5)]
        assert store.prune(keep_days=None, keep=None) == (0, 0)


def test_prune_counts_what_it_deleted_when_another_prune_deletes_some_first(db: str) -> None:
    with Store.open(db) as store:
        for n in range(1, 5):
            run = store.begin_run("0", {})
            store.record(run, [snap("http://a/", day(n))])
            store.finish_run(run, targets=1, ok=1)
        select = store._rows

        def then_another_prune(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            rows = select(sql, params)
            if "row_number()" in sql:  # the ids to delete, chosen: another prune takes two
                query(
                    db,
                    f"DELETE FROM snapshots WHERE id IN ({rows[0][0]}, {rows[1][0]}) RETURNING id",
                )
            return rows

        store._rows = then_another_prune  # type: ignore[method-assign]
        assert store.prune(keep_days=None, keep=1)[0] == 1  # of the 3 it chose, 1 was left
    assert query(db, "SELECT count(*) FROM snapshots") == [(1,)]


class _Interleaved(sqlite3.Connection):
    """A connection that lets another process's work happen right after one chosen statement."""

    after: str = ""
    hook: Any = None

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        cursor = super().execute(sql, *args)
        hook, type(self).hook = type(self).hook, None
        if hook is not None and sql.startswith(self.after):
            hook()
        else:
            type(self).hook = hook
        return cursor


@pytest.mark.parametrize("after", ["PRAGMA application_id", "PRAGMA user_version"])
def test_a_database_created_by_another_process_while_this_one_looks_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after: str
) -> None:
    # Two cron runs open a new --db together: the other one (already past switching the empty
    # file to WAL) creates the schema between this one's looks at the file. This one must see
    # the file either before or after, never half of each ("not a fetchheads database").
    path = tmp_path / "heads.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.close()
    connect = sqlite3.connect

    def other_process() -> None:
        monkeypatch.setattr(sqlite3, "connect", connect)
        Store.open(str(path)).close()

    def interleaved(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        _Interleaved.after, _Interleaved.hook = after, other_process
        return connect(*args, **kwargs, factory=_Interleaved)

    monkeypatch.setattr(sqlite3, "connect", interleaved)
    with Store.open(str(path)) as store:
        run = store.begin_run("1", {})
        store.record(run, [snap("http://a/", "2026-11-25T10:00:00.000Z")])
    check = connect(path)
    assert check.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert check.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 1
    check.close()


def test_a_version_2_database_migrates_to_runs_with_states_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "heads.db"
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        db.executescript(script)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute("PRAGMA user_version = 2")
    db.execute(
        "INSERT INTO runs (started_at, finished_at, version, options) "
        "VALUES ('2026-11-01T00:00:00.000Z', '2026-11-01T00:01:00.000Z', '0', '{}')"
    )
    # Never finished, by a fetchheads that did not record its process: a day old, so over.
    db.execute(
        "INSERT INTO runs (started_at, version, options) "
        "VALUES ('2026-11-02T00:00:00.000Z', '0', '{}')"
    )
    db.execute(
        "INSERT INTO snapshots (run_id, key, target, url, fetched_at, ok, status, headers, "
        "timing, redirects) VALUES (2, 'http://a/', 'a', 'http://a/', "
        """'2026-11-02T00:00:01.000Z', 1, 200, '[["Server","old"]]', '{}', '[]')"""
    )
    db.commit()
    db.close()
    with Store.open(str(path)) as store:
        (old,) = store.history(["http://a/"])
        assert (old.headers, old.cert_threshold, old.run_state) == (
            (("Server", "old"),),
            None,
            "interrupted",
        )
        assert store.run_states([1, 2]) == {1: "finished", 2: "interrupted"}
        assert not store.was_pruned(["http://a/"])
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        assert db.execute("SELECT id, state FROM runs").fetchall() == [(1, "finished"), (2, None)]
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        assert {"state", "host", "pid", "boot_id", "uid"} <= columns
        # Version 4 names every old row, so db copy can tell them apart from any other file's.
        uids = db.execute("SELECT uid FROM runs UNION ALL SELECT uid FROM snapshots").fetchall()
        assert len({uid for (uid,) in uids}) == len(uids) == 3
        assert all(len(uid) == 32 for (uid,) in uids)
    finally:
        db.close()


def test_a_new_run_records_this_process_and_a_gone_process_means_interrupted(
    db: str,
) -> None:
    with Store.open(db) as store:
        mine = store.begin_run("0", {})
        assert store.run_states([mine]) == {mine: "running"}  # this very process
        dead = store.begin_run("0", {})
        store._run("UPDATE runs SET pid = 2147483646 WHERE id = ?", (dead,))
        other_host = store.begin_run("0", {})
        store._run("UPDATE runs SET host = 'elsewhere' WHERE id = ?", (other_host,))
        assert store.run_states([mine, dead, other_host]) == {
            mine: "running",
            dead: "interrupted",
            other_host: "running",  # its process cannot be seen from here: recent, so running
        }
        store.finish_run(mine, targets=0, ok=0, interrupted=True)
        assert store.run_states([mine]) == {mine: "interrupted"}
        # prune removes the empty runs that are over, and only those.
        assert store.prune(keep_days=None, keep=1) == (0, 2)
        assert store.run_states([mine, dead, other_host]) == {other_host: "running"}


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_path_that_is_no_regular_file_is_refused_before_it_is_opened(
    tmp_path: Path, kind: str
) -> None:
    if kind == "fifo":
        path = tmp_path / "heads.db"
        os.mkfifo(path)
    else:
        path = Path(os.devnull)
    with pytest.raises(StoreRefused, match="not a database file"):
        Store.open(str(path))
    with pytest.raises(StoreRefused, match="not a database file"):
        Store.open(str(path), readonly=True)


@pytest.mark.parametrize("location", [":memory:", "", "file:heads.db", "file:x?mode=memory"])
def test_a_database_sqlite_would_not_keep_in_the_named_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, location: str
) -> None:
    monkeypatch.chdir(tmp_path)
    for readonly in (False, True):
        with pytest.raises(StoreRefused, match="a snapshot database must be a file"):
            Store.open(location, readonly=readonly)
    assert list(tmp_path.iterdir()) == []


def test_a_database_is_read_only_when_asked_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "heads.db"
    with Store.open(str(path)) as store:
        run = store.begin_run("0", {})
        store.record(run, [snap("http://a/", day(1))])
    before = digest(path)
    with Store.open(str(path), readonly=True) as store:
        assert len(store.history(["http://a/"])) == 1
        with pytest.raises(StoreError, match="readonly"):
            store.begin_run("0", {})
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heads.db"]  # no -wal, -shm left


def test_a_fetch_stamped_in_the_future_silences_nothing(db: str) -> None:
    """A machine whose clock was ahead stored a fetch days from now: later honest fetches are
    still compared, with the latest fetch stamped before them."""
    ahead = format_timestamp(utc_now() + dt.timedelta(days=3))
    now = format_timestamp(utc_now())
    with Store.open(db) as store:
        run = store.begin_run("0", {})
        store.record(run, [snap("http://a/", day(1), ("Server", "one"))])
        store.record(run, [snap("http://a/", ahead, ("Server", "wrong clock"))])
        [before] = store.record(run, [snap("http://a/", now, ("Server", "two"))], previous=True)
        assert before is not None
        assert before.headers == (("Server", "one"),)  # compared: the change is reported


def test_a_target_twice_in_a_batch_around_another_runs_fetch(db: str) -> None:
    """Stored: A at 10:00 and, from another run, C at 12:00. One batch holds B (11:00, old
    news) and D (13:00): D follows C, the latest fetch before it, not A."""
    at = "2026-11-01T{}:00:00.000Z".format
    with Store.open(db) as store:
        run = store.begin_run("0", {})
        store.record(run, [snap("http://a/", at("10"), ("V", "A"))])
        store.record(run, [snap("http://a/", at("12"), ("V", "C"))])
        b = snap("http://a/", at("11"), ("V", "B"))
        d = snap("http://a/", at("13"), ("V", "D"))
        found = store.record(run, [d, b], previous=True)
        assert found[1] == b  # old news
        assert found[0] is not None
        assert found[0].headers == (("V", "C"),)


def test_two_fetches_stamped_alike_report_their_change_once(db: str) -> None:
    """Overlapping runs fetched in the same millisecond: whichever records second is old news
    (neither order is known, so neither is reported backwards)."""
    at = "2026-11-01T{}:00:00.000Z".format
    with Store.open(db) as store:
        run = store.begin_run("0", {})
        store.record(run, [snap("http://a/", at("10"), ("V", "A"))])
        first = snap("http://a/", at("11"), ("V", "B"))
        [before] = store.record(run, [first], previous=True)
        assert before is not None
        assert before.headers == (("V", "A"),)
        second = snap("http://a/", at("11"), ("V", "A"))
        assert store.record(run, [second], previous=True) == [second]
        # The next fetch follows the one of the two that reported, not the old news.
        [before] = store.record(run, [snap("http://a/", at("12"), ("V", "B"))], previous=True)
        assert before is not None
        assert before.headers == (("V", "B"),)


def test_a_target_twice_in_one_batch_compares_with_its_first_snapshot(db: str) -> None:
    with Store.open(db) as store:
        run = store.begin_run("0", {})
        store.record(run, [snap("http://a/", day(1), ("Server", "one"))])
        twice = [
            snap("http://a/", day(2), ("Server", "two")),
            snap("http://a/", day(3), ("Server", "three")),
        ]
        before = store.record(run, twice, previous=True)
        assert [s.headers if s else None for s in before] == [
            (("Server", "one"),),
            (("Server", "two"),),
        ]
        found = store.previous([snap("http://a/", day(4)), snap("http://none/", day(4))])
        assert [s.headers if s else None for s in found] == [(("Server", "three"),), None]


def test_a_fetch_recorded_after_a_later_one_is_old_news(db: str) -> None:
    """Two runs overlap: run Y fetched at 12:00 and recorded first (A -> B, reported once);
    run X had fetched at 11:00, still A, and records last. X is its own predecessor (nothing to
    report), not compared with Y's later B, which would report the change again, backwards."""
    at = "2026-11-01T{}:00:00.000Z".format
    with Store.open(db) as store:
        base = store.begin_run("0", {})
        store.record(base, [snap("http://a/", at("10"), ("X-Version", "A"))])
        store.finish_run(base, targets=1, ok=1)
        late, slow = store.begin_run("0", {}), store.begin_run("0", {})
        y = snap("http://a/", at("12"), ("X-Version", "B"))
        [before] = store.record(late, [y], previous=True)
        assert before is not None
        assert before.headers == (("X-Version", "A"),)
        x = snap("http://a/", at("11"), ("X-Version", "A"))
        assert store.previous([x]) == [x]  # read without writing (a locked database): the same
        assert store.record(slow, [x], previous=True) == [x]
        # The next run follows the latest fetch, the 12:00 one, whatever was recorded last.
        [before] = store.previous([snap("http://a/", at("13"))])
        assert before is not None
        assert before.headers == (("X-Version", "B"),)


@pytest.mark.parametrize("into", ["sqlite", "postgres"])
def test_a_run_copied_while_going_is_finished_by_the_next_copy(
    db: str, into: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``db copy`` on a schedule catches runs in progress: the next copy brings their end."""
    from fetchheads.snapshots.store import copy_history

    if into == "sqlite":
        destination = str(tmp_path / "copy.db")
    else:
        destination = request.getfixturevalue("postgres").new_database()
    with Store.open(db) as source:
        run = source.begin_run("0", {})
        source.record(run, [snap("http://a/", day(1))])
        with Store.open(destination) as copy:
            copy_history(source, copy)
        source.finish_run(run, targets=2, ok=1, changed=1)
        source.record(run, [snap("http://b/", day(1))])  # recorded after the first copy
        with Store.open(destination) as copy:
            copied = copy_history(source, copy)
            assert (copied.runs, copied.snapshots) == (0, 1)
            assert copy.export_runs() == source.export_runs()
        with Store.open(destination) as copy:  # and once finished, it stays as it is
            copy_history(source, copy)
            assert copy.export_runs() == source.export_runs()
