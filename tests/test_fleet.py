"""One history for a fleet: shard processes writing into one PostgreSQL database at once, two
overlapping runs fetching the same target, and histories brought together with ``db copy``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from fetchheads.snapshots.store import Store
from tests.support.postgres import Postgres
from tests.support.servers import ThreadedServer
from tests.support.snapshots import Site, day, fetchheads, query, run_cli, snap, start_site

StartServer = Callable[..., ThreadedServer]


def run_all(*commands: list[str]) -> list[tuple[int, str, str]]:
    """Start every command at once (real processes), then wait for all of them."""
    started = [run_cli(*command) for command in commands]
    return [(p.wait(timeout=120), *p.communicate()) for p in started]


def test_three_shards_three_runs_report_the_one_change_once(
    postgres: Postgres, threaded_server: StartServer, tmp_path: Path
) -> None:
    """The issue's "done when": three shard processes with --changes writing into one PostgreSQL
    database, three times, one header changed before the third run: that change, once."""
    watched, one = start_site(threaded_server)
    others = []
    for _ in range(2):
        crowd, other = start_site(threaded_server)
        crowd.hold = 20  # the first run's shards overlap: none finishes before all have asked
        others.append(other)
    targets = [f"http://{one}/"] + [f"http://{o}/{n}" for o in others for n in range(20)]
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("\n".join(targets) + "\n")
    db = postgres.new_database()
    shards = [
        ["--db", db, "--changes", "--format", "plain", "-q", "--shard", f"{k}/3", "-i", str(hosts)]
        for k in (1, 2, 3)
    ]
    printed = []
    for run in range(3):
        if run == 2:
            watched.headers["X-Version"] = "2"
            watched.headers["X-Request-Id"] = "changed"  # volatile: no change
        outcomes = run_all(*shards)
        assert [(code, err) for code, _, err in outcomes] == [(0, "")] * 3
        printed.append("".join(out for _, out, _ in outcomes))
    assert printed == ["", "", f"http://{one}/ changed > X-Version: 1 -> 2\n"]
    assert query(db, "SELECT count(*), count(DISTINCT run_id) FROM snapshots") == [(3 * 41, 9)]
    code, out, _ = fetchheads("history", "--db", db, one)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4
    assert lines[0].endswith(")")  # the newest, its change on the next line
    assert lines[1] == "  X-Version: 1 -> 2"
    assert lines[2].endswith("no change")
    assert lines[3].endswith("first snapshot")


def test_two_overlapping_runs_fetching_one_target_report_its_change_once(
    db: str, threaded_server: StartServer
) -> None:
    """Both runs fetch the target at the same moment (the server answers neither until both
    asked), after its header changed: the run that records it first compares with the history
    and reports the change; the other compares with that run's snapshot, and says nothing."""
    site, target = start_site(threaded_server)
    assert fetchheads("--db", db, "-q", target)[0] == 0  # the baseline
    site.headers["X-Version"] = "2"
    site.hold = site.served + 2
    runs = run_all(*[["--db", db, "--changes", "--format", "plain", target]] * 2)
    assert sorted(runs) == [(0, "", ""), (0, f"{target} changed > X-Version: 1 -> 2\n", "")]
    assert query(db, "SELECT count(*), count(DISTINCT run_id) FROM snapshots") == [(3, 3)]
    code, out, _ = fetchheads("history", "--db", db, target)
    assert code == 0
    assert out.count("X-Version: 1 -> 2") == 1  # history, too, has the change once
    assert out.splitlines()[0].endswith("no change")


def recorded(site: Site, target: str, db: str, runs: int) -> None:
    for _ in range(runs):
        assert fetchheads("--db", db, "-q", target)[0] == 0


def test_db_copy_of_three_sqlite_files_into_postgres_twice_holds_each_snapshot_once(
    postgres: Postgres, threaded_server: StartServer, tmp_path: Path
) -> None:
    site, target = start_site(threaded_server)
    files = [str(tmp_path / f"web{n}.db") for n in range(3)]
    for n, path in enumerate(files):  # the same target from three machines, ids overlapping
        recorded(site, target, path, runs=n + 1)
    db = postgres.new_database()
    for attempt in range(2):
        for n, path in enumerate(files):
            code, out, err = fetchheads("db", "copy", path, db)
            assert (code, err) == (0, "")
            if attempt == 0:
                assert (
                    out
                    == f"copied {n + 1} snapshot{'s' * bool(n)} and {n + 1} run{'s' * bool(n)} from {path} to {db}\n"
                )
            else:
                assert out.endswith(f"({n + 1} there already)\n")
                assert out.startswith("copied 0 snapshots and 0 runs")
    assert query(
        db, "SELECT count(*), count(DISTINCT uid), count(DISTINCT run_id) FROM snapshots"
    ) == [(6, 6, 6)]
    assert query(
        db, "SELECT count(*), count(*) FILTER (WHERE finished_at IS NOT NULL) FROM runs"
    ) == [(6, 6)]
    code, out, _ = fetchheads("history", "--db", db, target)
    assert (code, len(out.splitlines())) == (0, 6)
    # The copied history is the baseline of the fleet's next --changes run.
    site.headers["X-Version"] = "2"
    code, out, _ = fetchheads("--db", db, "--changes", "--format", "plain", target)
    assert (code, out) == (0, f"{target} changed > X-Version: 1 -> 2\n")


def test_db_copy_between_sqlite_files_and_back_from_postgres(
    postgres: Postgres, threaded_server: StartServer, tmp_path: Path
) -> None:
    site, target = start_site(threaded_server)
    first, second = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    recorded(site, target, first, runs=2)
    recorded(site, target, second, runs=1)
    assert fetchheads("prune", "--db", first, "--keep", "1", "-q")[0] == 0
    for _ in range(2):
        assert fetchheads("db", "copy", "-q", first, second)[:2] == (0, "")
    assert query(second, "SELECT count(*) FROM snapshots") == [(2,)]
    assert query(second, "SELECT key FROM pruned_keys") == [(f"http://{target}/",)]
    db = postgres.new_database()
    assert fetchheads("db", "copy", "-q", second, db)[0] == 0
    back = str(tmp_path / "back.db")
    assert fetchheads("db", "copy", "-q", db, back)[0] == 0
    columns = (
        "uid, key, target, url, fetched_at, ok, status, reason, headers, timing, tls, redirects"
    )
    assert query(back, f"SELECT {columns} FROM snapshots ORDER BY uid") == query(
        second, f"SELECT {columns} FROM snapshots ORDER BY uid"
    )
    code, out, _ = fetchheads("history", "--db", back, target)
    assert code == 0
    assert out.splitlines()[-1].endswith("oldest kept (older snapshots pruned)")
    # A source that does not exist is named, and nothing is created for it.
    code, _, err = fetchheads("db", "copy", str(tmp_path / "none.db"), back)
    assert code == 2
    assert "none.db does not exist" in err
    assert not (tmp_path / "none.db").exists()


def test_two_copies_at_once_into_one_database_both_end_cleanly_and_copy_each_snapshot_once(
    db: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Two cron jobs copying the same file at the same moment: both exit 0, and between them
    every run and snapshot arrives once (the one that finds it there already says so)."""
    source = str(tmp_path / "web.db")
    with Store.open(source) as store:
        for n in range(30):  # many small import transactions: many chances to interleave
            run = store.begin_run("0", {})
            store.record(run, [snap(f"http://h{k}/", day(1 + n % 28)) for k in range(50)])
            store.finish_run(run, targets=50, ok=50)
    if db.startswith("postgresql://"):
        postgres: Postgres = request.getfixturevalue("postgres")
        destinations = [db, postgres.new_database(), postgres.new_database()]
    else:
        destinations = [db, str(tmp_path / "1.db"), str(tmp_path / "2.db")]
    for destination in destinations:
        outcomes = run_all(*[["db", "copy", source, destination]] * 2)
        assert [(code, err) for code, _, err in outcomes] == [(0, "")] * 2
        copied = [
            re.fullmatch(
                r"copied (\d+) snapshots? and (\d+) runs? from .*?(?: \((\d+) there already\))?\n",
                out,
            )
            for _, out, _ in outcomes
        ]
        assert all(copied)
        assert sum(int(m[1]) for m in copied if m) == 1500
        assert sum(int(m[2]) for m in copied if m) == 30
        assert query(destination, "SELECT count(*), count(DISTINCT uid) FROM snapshots") == [
            (1500, 1500)
        ]
        assert query(destination, "SELECT count(*), count(DISTINCT uid) FROM runs") == [(30, 30)]
