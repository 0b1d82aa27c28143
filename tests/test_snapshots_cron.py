"""The snapshot database in every state a cron machine meets it: a first run that already fails, a
host that stays down, another process holding the lock, a full disk, a file the user may only
read, a path that is no file at all, runs killed with SIGKILL, a pruned history."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fetchheads.snapshots import store_sqlite as store_module
from fetchheads.snapshots.changes import Snapshot
from fetchheads.snapshots.store import APPLICATION_ID, SCHEMA_VERSION, Store
from tests.support import processes
from tests.support.servers import ThreadedServer, silent
from tests.support.snapshots import Site, fetchheads, run_cli, start_site


@pytest.fixture
def site(threaded_server: Callable[..., ThreadedServer]) -> tuple[Site, str]:
    return start_site(threaded_server)


def rows(db: Path | str, query: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(db)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


# -- no silence --------------------------------------------------------------------------------


def test_a_target_failing_from_the_first_run_is_printed_and_keeps_exit_1(
    site: tuple[Site, str], refused_port: int, tmp_path: Path
) -> None:
    _, target = site
    down = f"127.0.0.1:{refused_port}"
    db = str(tmp_path / "heads.db")
    args = ("--db", db, "--changes", "-q", "--format", "plain")
    code, out, _ = fetchheads(*args, target, down)  # the baseline: an empty database
    assert code == 1
    assert out.startswith(f"{down} changed > :error: (none) -> connect: ")
    assert target not in out  # a successful first snapshot stays a silent baseline
    assert len(out.splitlines()) == 1
    for _ in range(2):  # still down: nothing new to say, but the exit status says it every time
        assert fetchheads(*args, target, down)[:2] == (1, "")
    # A new target that fails on its first snapshot, in a database that has others, is news too.
    code, out, _ = fetchheads(*args, target, "127.0.0.1:9")
    assert code == 1
    assert out.startswith("127.0.0.1:9 changed > :error: (none) -> connect: ")


# -- another process holds the lock; the disk is full --------------------------------------------


@contextlib.contextmanager
def write_lock_held(db: Path) -> Iterator[None]:
    """Another process inside ``BEGIN IMMEDIATE`` on ``db`` until the block ends."""
    holder = processes.start(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN IMMEDIATE')\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdin is not None
    assert holder.stdout.readline() == "held\n"
    try:
        yield
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
        holder.stdout.close()


def test_sigterm_while_a_lock_keeps_the_database_from_opening_ends_the_run_saying_so(
    tmp_path: Path,
) -> None:
    """An older schema to migrate, another process holding the write lock: SIGTERM (a cron
    ``timeout``, systemd) ends the wait with the line every stopped run prints, not in silence,
    and at once, not when the 30 s busy timeout is over."""
    db = tmp_path / "heads.db"
    old = sqlite3.connect(db)
    old.executescript(store_module.MIGRATIONS[0])
    old.execute("PRAGMA journal_mode = WAL")
    old.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    old.execute("PRAGMA user_version = 1")
    old.close()
    waiting = tmp_path / "waiting"
    setup = (
        "import pathlib, sys\n"
        "from fetchheads.snapshots import store_sqlite\n"
        "real = store_sqlite.SqliteStore._prepare\n"
        "def prepare(self, *args):\n"
        f"    pathlib.Path({str(waiting)!r}).touch()\n"
        "    return real(self, *args)\n"
        "store_sqlite.SqliteStore._prepare = prepare\n"
        "from fetchheads.cli import main\nsys.argv[0] = 'fetchheads'\nmain()\n"
    )
    with write_lock_held(db):
        process = processes.start(
            [sys.executable, "-c", setup, "--db", str(db), "127.0.0.1:9"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.wait_for_file(waiting)
        time.sleep(0.5)  # inside the wait for the lock
        out, err, waited = processes.signal_and_wait(process, signal.SIGTERM)
    assert (process.returncode, out) == (143, "")
    assert err == (
        "fetchheads: terminated: 0 done, 0 not finished, the rest of the input not read\n"
    )
    assert waited < 5  # the busy timeout is 30 s


FETCHHEADS = (sys.executable, "-m", "fetchheads")


def test_sigterm_while_a_lock_keeps_the_results_waiting_ends_the_run_at_once_counting_all(
    site: tuple[Site, str], tmp_path: Path
) -> None:
    """``timeout 60 fetchheads --db ...`` whose database another process keeps locked: every
    result is printed, and waits on the writer thread for the lock (30 s). SIGTERM then ends the
    run at once, not when the busy timeout is over, and counts every result it could not record,
    also those still waiting for their batch to be written."""
    _, target = site
    db = tmp_path / "heads.db"
    assert fetchheads("--db", str(db), "-q", target)[0] == 0
    targets = 40
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"{target}/{n}\n" for n in range(targets)))
    with write_lock_held(db):
        process = processes.start(
            [*FETCHHEADS, "--db", str(db), "--json", "--rate", "20", "-i", str(hosts)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        printed = [process.stdout.readline() for _ in range(targets)]  # the fetch is over
        rest, err, waited = processes.signal_and_wait(process, signal.SIGTERM)
    assert rest == ""
    assert [json.loads(line)["status"] for line in printed] == [200] * targets
    assert process.returncode == 143
    assert err == (
        f"fetchheads: {targets} results not recorded: database is locked (--db {db})\n"
        f"fetchheads: terminated: {targets} done, 0 not finished\n"
    )
    assert waited < 5, err  # the busy timeout is 30 s
    assert rows(db, "SELECT count(*) FROM snapshots") == [(1,)]  # the first run's only


def test_timeouts_sigterm_sent_twice_at_once_ends_the_run_as_one_does(
    site: tuple[Site, str], tmp_path: Path
) -> None:
    """GNU ``timeout`` sends SIGTERM to the process and then to its process group: twice, at
    once. When the first had been handled before the second came (the process sends the second
    itself at that moment here, every time), the second ended the process on the spot: no
    ``terminated:`` line, results lost, the run row left ``running``. It is the same stop."""
    _, target = site
    db = tmp_path / "heads.db"
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"{target}/{n}\n" for n in range(100)))
    setup = (
        "import os, signal, sys\n"
        "from fetchheads.run import process\n"
        "real = process.StopSignals.install\n"
        "def install(self, loop, task, on_stop=lambda: None):\n"
        "    def again():\n"
        "        os.kill(os.getpid(), signal.SIGTERM)  # timeout's kill(0, SIGTERM)\n"
        "        on_stop()\n"
        "    return real(self, loop, task, again)\n"
        "process.StopSignals.install = install\n"
        "from fetchheads.cli import main\nsys.argv[0] = 'fetchheads'\nmain()\n"
    )
    process = processes.start(
        [sys.executable, "-c", setup, "--db", str(db), "--json", "--rate", "40", "-i", str(hosts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    printed = [process.stdout.readline() for _ in range(10)]
    process.send_signal(signal.SIGTERM)
    rest, err = process.communicate(timeout=30)
    done = len(printed) + len(rest.splitlines())
    assert process.returncode == 143
    assert err == f"fetchheads: terminated: {done} done, {100 - done} not finished\n"
    assert rows(db, "SELECT state, targets FROM runs") == [("interrupted", done)]
    assert rows(db, "SELECT count(*) FROM snapshots") == [(done,)]


def test_sigterm_while_the_runs_end_waits_for_a_lock_ends_the_run_saying_so(
    site: tuple[Site, str], tmp_path: Path
) -> None:
    """Every result recorded, and another process takes the lock just as the run writes its
    end: SIGTERM then (cron's ``timeout``) ends that wait, and the run as terminated, with its
    lines; it used to end the process on the spot, silently, the row left ``running``."""
    _, target = site
    db = tmp_path / "heads.db"
    finishing, held = tmp_path / "finishing", tmp_path / "held"
    setup = (
        "import pathlib, sys, time\n"
        "from fetchheads.snapshots import store_sqlite\n"
        "real = store_sqlite.SqliteStore.finish_run\n"
        "def finish_run(self, *args, **kwargs):\n"
        f"    pathlib.Path({str(finishing)!r}).touch()\n"
        f"    while not pathlib.Path({str(held)!r}).exists():\n"
        "        time.sleep(0.01)\n"
        "    return real(self, *args, **kwargs)\n"
        "store_sqlite.SqliteStore.finish_run = finish_run\n"
        "from fetchheads.cli import main\nsys.argv[0] = 'fetchheads'\nmain()\n"
    )
    assert fetchheads("--db", str(db), "-q", target)[0] == 0  # the file, to lock
    process = processes.start(
        [sys.executable, "-c", setup, "--db", str(db), "--json", target, f"{target}/b"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes.wait_for_file(finishing)
    with write_lock_held(db):
        held.touch()
        time.sleep(0.5)  # inside the wait for the lock
        out, err, waited = processes.signal_and_wait(process, signal.SIGTERM)
    assert process.returncode == 143
    assert len(out.splitlines()) == 2
    assert err == (
        "fetchheads: the run could not be closed in the database: "
        f"{db}: cannot write: database is locked\n"
        "fetchheads: terminated: 2 done, 0 not finished\n"
    )
    assert waited < 5  # the busy timeout is 30 s
    assert rows(db, "SELECT count(*) FROM snapshots") == [(3,)]  # both results recorded


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (
            "prune",
            "prune stopped; what it had deleted is gone, and running it again prunes the rest",
        ),
        (
            "copy",
            "db copy stopped; what it had copied stays, and running it again copies the rest",
        ),
    ],
)
def test_sigterm_ends_prune_and_db_copy_with_a_line_saying_so(
    site: tuple[Site, str], tmp_path: Path, command: str, said: str
) -> None:
    """``timeout 10m fetchheads prune ...`` in a crontab, here while another process keeps the
    database locked: the signal ends the command at once and says so, with 143, not silently
    (a cron mail that cannot be told from success)."""
    _, target = site
    db = tmp_path / "heads.db"
    other = tmp_path / "other.db"
    assert fetchheads("--db", str(db), "-q", target)[0] == 0
    assert fetchheads("--db", str(other), "-q", f"{target}/other")[0] == 0
    waiting = tmp_path / "waiting"
    setup = (
        "import pathlib, sys\n"
        "from fetchheads.snapshots import store_sqlite\n"
        "real = store_sqlite.SqliteStore._begin_immediate\n"
        "def begin(self):\n"
        f"    pathlib.Path({str(waiting)!r}).touch()\n"
        "    return real(self)\n"
        "store_sqlite.SqliteStore._begin_immediate = begin\n"
        "from fetchheads.cli import main\nsys.argv[0] = 'fetchheads'\nmain()\n"
    )
    args = (
        ["prune", "--db", str(db), "--keep-days", "0"]
        if command == "prune"
        else ["db", "copy", str(other), str(db)]
    )
    with write_lock_held(db):
        process = processes.start(
            [sys.executable, "-c", setup, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.wait_for_file(waiting)
        time.sleep(0.3)  # inside the wait for the lock
        out, err, waited = processes.signal_and_wait(process, signal.SIGTERM)
    assert (process.returncode, out, err) == (143, "", f"fetchheads: terminated: {said}\n")
    assert waited < 5  # the busy timeout is 30 s
    assert rows(db, "SELECT count(*) FROM snapshots") == [(1,)]  # as it was


def test_a_lock_held_past_the_busy_timeout_loses_no_output_and_says_how_many(
    site: tuple[Site, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, target = site
    db = tmp_path / "heads.db"
    assert fetchheads("--db", str(db), "-q", target, f"{target}/b")[0] == 0
    server.headers["X-Version"] = "2"
    timeout = 1.0
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT", timeout)  # 30 s in real life
    waited: list[str] = []  # the writes that waited the whole timeout for the lock

    def timed(name: str) -> None:
        real = getattr(store_module.SqliteStore, name)

        def write(self: store_module.SqliteStore, *args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return real(self, *args, **kwargs)
            finally:
                if time.monotonic() - started >= timeout * 0.9:
                    waited.append(name)

        monkeypatch.setattr(store_module.SqliteStore, name, write)

    # After the first write that waited the whole timeout in vain (the run's row, written
    # ahead of the first batch), the others try once: a run pays one busy timeout, not one per
    # write (three of them took 90 s here; the run's row and the first batch, 60 s).
    timed("begin_run")
    timed("record")
    with write_lock_held(db):
        code, out, err = fetchheads(
            "--db",
            str(db),
            "--changes",
            "-q",
            "--format",
            "plain",
            target,
            f"{target}/b",
            f"{target}/c",
        )
        assert code == 1
        # Compared with what could still be read (WAL readers do not wait for the writer).
        assert sorted(out.splitlines()) == [
            f"{target} changed > X-Version: 1 -> 2",
            f"{target}/b changed > X-Version: 1 -> 2",
            f"{target}/c changed > :status: (none) -> 200",
        ]
        assert err == f"fetchheads: 3 results not recorded: database is locked (--db {db})\n"
        assert waited == ["begin_run"]
        code, out, err = fetchheads("--db", str(db), "-q", "--json", target)
        assert code == 1
        assert json.loads(out)["status"] == 200
        assert err.endswith(f"1 result not recorded: database is locked (--db {db})\n")
    assert server.served == 6
    assert rows(db, "SELECT count(*) FROM snapshots") == [(2,)]  # the first run's only
    # The lock gone, the next run records again, and still sees the change as new.
    code, out, err = fetchheads("--db", str(db), "--changes", "-q", "--format", "plain", target)
    assert (code, out, err) == (0, f"{target} changed > X-Version: 1 -> 2\n", "")


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 1 MiB tmpfs of its own, unmounted afterwards."""
    mountpoint = Path(tempfile.mkdtemp(prefix="fetchheads-disk-"))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
        check=True,
        capture_output=True,
    )
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)
        mountpoint.rmdir()


def fill(disk: Path) -> None:
    with contextlib.suppress(OSError), open(disk / "filler", "wb", buffering=0) as stream:
        while True:
            stream.write(b"\0" * 4096)
    assert shutil.disk_usage(disk).free == 0


@pytest.mark.parametrize("changes", [False, True])
def test_a_full_disk_loses_no_output_and_says_how_many(
    site: tuple[Site, str], small_disk: Path, changes: bool
) -> None:
    _, target = site
    db = small_disk / "heads.db"
    assert fetchheads("--db", str(db), "-q", target)[0] == 0
    fill(small_disk)
    flag = ["--changes"] if changes else []
    code, out, err = fetchheads(
        "--db", str(db), *flag, "-q", "--format", "plain", target, f"{target}/new"
    )
    assert code == 1
    if changes:
        assert out == f"{target}/new changed > :status: (none) -> 200\n"
    else:
        assert out.count(" header > HTTP/1.1 200 OK\n") == 2
    assert err.startswith("fetchheads: 2 results not recorded: ")
    assert "no space left on the device" in err  # SQLite's own: "database or disk is full"
    assert err.endswith(f" (--db {db})\n")
    assert len(err.splitlines()) == 1
    (small_disk / "filler").unlink()
    assert fetchheads("--db", str(db), "-q", target)[0] == 0
    assert rows(db, "SELECT count(*) FROM snapshots") == [(2,)]  # the database survived


# -- paths that are no database file --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "dev-null", "char-device-link"])
def test_a_fifo_or_a_device_is_refused_at_once_and_nothing_is_created(
    tmp_path: Path, kind: str
) -> None:
    if kind == "fifo":
        path = tmp_path / "heads.db"
        os.mkfifo(path)  # nobody writes to it: opening it to read would wait forever
        what = "is a FIFO"
    elif kind == "dev-null":
        path = Path(os.devnull)
        what = "is a character device"
    else:
        path = tmp_path / "heads.db"
        path.symlink_to("/dev/zero")
        what = "is a character device"
    before = set(os.listdir(path.parent))
    for command in (["-q", "127.0.0.1:9"], ["history", "x"]):
        process = run_cli(*command[:-1], "--db", str(path), command[-1])
        _, err = process.communicate(timeout=60)  # a hang is the bug: fail, do not wait
        assert process.returncode == 2
        assert what in err
        assert "not a database file" in err
    assert set(os.listdir(path.parent)) == before  # no -journal, -wal or -shm beside it


def test_a_missing_directory_is_named_as_such(tmp_path: Path) -> None:
    db = tmp_path / "no" / "such" / "heads.db"
    for args in (
        ["--db", str(db), "127.0.0.1:9"],
        ["history", "--db", str(db), "x"],
        ["prune", "--db", str(db), "--keep", "1"],
    ):
        code, out, err = fetchheads(*args)
        assert (code, out) == (2, "")
        assert f"directory {tmp_path / 'no' / 'such'} does not exist" in err
    assert list(tmp_path.iterdir()) == []


def test_a_database_that_can_never_be_created_is_refused_before_any_fetch(
    site: tuple[Site, str],
) -> None:
    server, target = site
    # /proc exists and is a directory, but no file can ever be created in it (not even by root).
    code, out, err = fetchheads("--db", "/proc/fetchheads-heads.db", target)
    assert (code, out, server.served) == (2, "", 0)
    assert "Invalid value for --db: /proc/fetchheads-heads.db: cannot be created: " in err
    assert not os.path.exists("/proc/fetchheads-heads.db")


def test_fetchheads_db_with_a_tilde_is_in_the_home_directory(
    site: tuple[Site, str], tmp_path: Path
) -> None:
    _, target = site
    # As crontab sets it: no shell expands this ~.
    env = {"FETCHHEADS_DB": "~/heads.db", "HOME": str(tmp_path)}
    assert fetchheads("-q", target, env=env)[0] == 0
    assert rows(tmp_path / "heads.db", "SELECT count(*) FROM snapshots") == [(1,)]
    code, out, _ = fetchheads("history", target, env=env)
    assert code == 0
    assert "first snapshot" in out
    assert not Path("~").exists()


def test_file_names_and_database_text_in_messages_are_terminal_safe(tmp_path: Path) -> None:
    hostile = tmp_path / "x\x1b]52;c;aGk=\x07.db"
    connection = sqlite3.connect(hostile)
    connection.execute('CREATE TABLE "\x1b[2Jgotcha" (a)')
    connection.commit()
    connection.close()
    for command in (["-q", "127.0.0.1:9"], ["history", "x"]):
        code, _, err = fetchheads(*command[:-1], "--db", str(hostile), command[-1])
        assert code == 2
        assert "\x1b" not in err
        assert "\x07" not in err
        assert "\\x1b]52;c;aGk=\\x07.db" in err
        assert "\\x1b[2Jgotcha" in err
    empty = tmp_path / "y\x1b[31m.db"
    assert fetchheads("--db", str(empty), "-q", "127.0.0.1:9")[0] == 1
    code, _, err = fetchheads("history", "--db", str(empty), "127.0.0.1:1")
    assert code == 1
    assert err == f"fetchheads: no snapshots of 127.0.0.1:1 in {tmp_path}/y\\x1b[31m.db\n"


# -- a database the user may only read ------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory under /tmp that the user nobody can reach (pytest's tmp_path is root's only)."""
    path = Path(tempfile.mkdtemp(prefix="fetchheads-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        path.chmod(0o755)
        shutil.rmtree(path)


def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """fetchheads run as the user nobody: no permission of root's files but to read them."""
    return subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            sys.executable,
            "-m",
            "fetchheads",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")},
    )


def test_history_and_diff_read_a_database_this_user_may_only_read(
    site: tuple[Site, str], shared_dir: Path
) -> None:
    server, target = site
    db = shared_dir / "heads.db"
    for version in ("1", "2"):
        server.headers["X-Version"] = version
        assert fetchheads("--db", str(db), "-q", target)[0] == 0
    assert sorted(os.listdir(shared_dir)) == ["heads.db"]  # no -wal, no -shm at rest
    db.chmod(0o444)
    shared_dir.chmod(0o555)  # nobody could create the -shm file WAL readers want
    done = as_nobody("history", "--db", str(db), target)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[1] == "  X-Version: 1 -> 2"
    done = as_nobody("diff", "--db", str(db), target)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[1] == f"{target} changed > X-Version: 1 -> 2"
    assert sorted(os.listdir(shared_dir)) == ["heads.db"]
    # A fetch into it could never record: refused before anything is fetched, saying why.
    served = server.served
    done = as_nobody("--db", str(db), "-q", "--format", "plain", target)
    assert (done.returncode, done.stdout, server.served) == (2, "", served)
    last = done.stderr.splitlines()[-1]
    assert last == f"Error: Invalid value for --db: {db}: cannot be written: Permission denied"
    done = as_nobody("prune", "--db", str(db), "--keep", "1")
    assert done.returncode == 2
    assert done.stderr.endswith(f"{db}: cannot be written: Permission denied\n")
    assert sorted(os.listdir(shared_dir)) == ["heads.db"]


def test_a_database_whose_directory_this_user_may_not_write_is_refused(
    site: tuple[Site, str], shared_dir: Path
) -> None:
    server, target = site
    db = shared_dir / "heads.db"
    assert fetchheads("--db", str(db), "-q", target)[0] == 0
    db.chmod(0o666)
    shared_dir.chmod(0o555)  # the file may be written, but not its -wal and -shm beside it
    served = server.served
    done = as_nobody("--db", str(db), "-q", target)
    assert (done.returncode, server.served) == (2, served)
    assert done.stderr.splitlines()[-1] == (
        f"Error: Invalid value for --db: {db}: cannot be written: its -wal and -shm files "
        f"cannot be created in {shared_dir} (Permission denied)"
    )


def remount_read_only(path: Path) -> None:
    """``small_disk`` made read-only: what a file system mounted ``ro`` shows."""
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def test_a_database_on_a_read_only_file_system_is_refused_to_writers_and_read(
    site: tuple[Site, str], small_disk: Path
) -> None:
    server, target = site
    db = small_disk / "heads.db"
    assert fetchheads("--db", str(db), "-q", target)[0] == 0
    remount_read_only(small_disk)
    served = server.served
    for args in (
        ["--db", str(db), "-q", target],
        ["--db", str(db), "--changes", target],
        ["prune", "--db", str(db), "--keep", "1"],
    ):
        code, out, err = fetchheads(*args)
        assert (code, out, server.served) == (2, "", served), args
        assert err.endswith(f"--db: {db}: cannot be written: Read-only file system\n"), args
    code, out, err = fetchheads("history", "--db", str(db), target)
    assert (code, err) == (0, "")
    assert "first snapshot" in out
    assert os.listdir(small_disk) == ["heads.db"]


def test_a_database_this_user_may_not_create_is_refused_before_any_fetch(
    site: tuple[Site, str], shared_dir: Path
) -> None:
    server, target = site
    shared_dir.chmod(0o555)
    db = shared_dir / "heads.db"
    done = as_nobody("--db", str(db), "-q", target)
    assert (done.returncode, done.stdout, server.served) == (2, "", 0)
    assert f"{db}: cannot be created: Permission denied" in done.stderr
    assert "Traceback" not in done.stderr
    assert os.listdir(shared_dir) == []


def test_unmerged_changes_on_a_read_only_file_system_say_to_read_a_copy(
    site: tuple[Site, str], small_disk: Path
) -> None:
    """There not even the owner can merge them: "run as its owner" would not help."""
    _, target = site
    db = small_disk / "heads.db"
    assert fetchheads("--db", str(db), "-q", target)[0] == 0
    writer = sqlite3.connect(db)  # a writer still running: its snapshots wait in the -wal file
    try:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("UPDATE snapshots SET status = 503")
        writer.commit()
        shutil.copy(db, small_disk / "copy.db")
        shutil.copy(f"{db}-wal", small_disk / "copy.db-wal")
    finally:
        writer.close()
    remount_read_only(small_disk)
    code, out, err = fetchheads("history", "--db", str(small_disk / "copy.db"), target)
    assert (code, out) == (1, "")
    assert err.endswith(
        "cannot create its -shm file: copy it (with its -wal file) to a writable directory and "
        "read the copy\n"
    )
    assert len(err.splitlines()) == 1


def test_a_reader_that_would_miss_unmerged_changes_says_so(
    site: tuple[Site, str], shared_dir: Path
) -> None:
    _, target = site
    db = shared_dir / "heads.db"
    assert fetchheads("--db", str(db), "-q", target)[0] == 0
    # A writer that is still running: its last snapshots wait in the -wal file.
    writer = sqlite3.connect(db)
    try:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("UPDATE snapshots SET status = 503")
        writer.commit()
        copy = shared_dir / "copy"
        copy.mkdir()
        shutil.copy(db, copy / "heads.db")
        shutil.copy(f"{db}-wal", copy / "heads.db-wal")  # no -shm: that writer's is in memory
    finally:
        writer.close()
    copy.chmod(0o555)
    done = as_nobody("history", "--db", str(copy / "heads.db"), target)
    assert done.returncode == 1
    assert "-wal" in done.stderr
    assert "run as its owner" in done.stderr
    assert len(done.stderr.splitlines()) == 1


# -- runs killed with SIGKILL ---------------------------------------------------------------------


def wait_for(condition: Callable[[], bool]) -> None:
    """Poll until ``condition`` holds (a bound, not a measurement)."""
    for _ in range(600):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition never held")


def test_a_killed_run_is_shown_interrupted_a_live_one_running_and_prune_removes_it(
    site: tuple[Site, str], threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    _, target = site
    hung = f"127.0.0.1:{threaded_server(silent()).port}"
    db = tmp_path / "heads.db"
    assert fetchheads("--db", str(db), "-q", target)[0] == 0  # run 1, finished

    def recorded(run: int) -> bool:
        return bool(rows(db, f"SELECT 1 FROM snapshots WHERE run_id = {run}"))

    def started(run: int) -> bool:
        return bool(rows(db, f"SELECT 1 FROM runs WHERE id = {run}"))

    # Run 2 records its fast target, then hangs on the other; run 3 records nothing.
    second = run_cli("--db", str(db), "-q", "-t", "600", target, hung, stdout=subprocess.DEVNULL)
    wait_for(lambda: recorded(2))
    third = run_cli("--db", str(db), "-q", "-t", "600", hung, stdout=subprocess.DEVNULL)
    wait_for(lambda: started(3))
    code, out, _ = fetchheads("history", "--db", str(db), target)
    assert code == 0
    assert out.splitlines()[0].endswith("(snapshot 2, run 2, running)  no change")
    assert fetchheads("prune", "--db", str(db), "--keep", "5")[1].startswith(
        "pruned 0 snapshots and 0 runs"
    )
    for process in (second, third):
        process.kill()  # SIGKILL: no finish is ever written
        process.wait(timeout=30)
    code, out, _ = fetchheads("history", "--db", str(db), "--json", target)
    assert [(r["run_id"], r["run_state"]) for r in map(json.loads, out.splitlines())] == [
        (2, "interrupted"),
        (1, "finished"),
    ]
    code, out, _ = fetchheads("prune", "--db", str(db), "--keep", "5")
    assert (code, out) == (0, f"pruned 0 snapshots and 1 run from {db}\n")  # run 3: empty
    assert rows(db, "SELECT id, state, finished_at FROM runs ORDER BY id") == [
        (1, "finished", rows(db, "SELECT finished_at FROM runs WHERE id = 1")[0][0]),
        (2, "interrupted", None),  # stored: the fact outlives the pid
    ]


def test_a_run_stopped_by_ctrl_c_is_interrupted_too(
    site: tuple[Site, str], threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    _, target = site
    hung = f"127.0.0.1:{threaded_server(silent()).port}"
    db = tmp_path / "heads.db"
    process = run_cli("--db", str(db), "--json", "-q", target, hung)
    assert process.stdout is not None
    process.stdout.readline()
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 130
    code, out, _ = fetchheads("history", "--db", str(db), target)
    assert code == 0
    assert out.splitlines()[0].endswith("(snapshot 1, run 1, interrupted)  first snapshot")


# -- a pruned history; a target stored under another scheme ---------------------------------------


def stored(db: Path, *snapshots: tuple[str, str, int]) -> None:
    """Snapshots (key, fetched_at, X-Version) written straight into ``db``, one run each."""
    with Store.open(str(db)) as store:
        for key, fetched_at, version in snapshots:
            run = store.begin_run("test", {})
            snapshot = Snapshot(
                key=key,
                target=key,
                url=key,
                fetched_at=fetched_at,
                ok=True,
                status=200,
                reason="OK",
                headers=(("X-Version", str(version)),),
                has_head=True,
                timing={},
            )
            store.record(run, [snapshot])
            store.finish_run(run, targets=1, ok=1)


def test_history_after_prune_calls_the_oldest_kept_snapshot_so(tmp_path: Path) -> None:
    db = tmp_path / "heads.db"
    stored(
        db,
        ("http://a.test/", "2026-11-01T10:00:00.000Z", 1),
        ("http://a.test/", "2026-11-02T10:00:00.000Z", 2),
        ("http://a.test/", "2026-11-03T10:00:00.000Z", 2),
        ("http://b.test/", "2026-11-01T10:00:00.000Z", 1),
    )
    assert fetchheads("prune", "--db", str(db), "--keep", "2", "-q")[0] == 0
    code, out, _ = fetchheads("history", "--db", str(db), "a.test")
    assert code == 0
    assert out.splitlines()[-1] == (
        "2026-11-02T10:00:00.000Z  200 OK  (snapshot 2, run 2)  oldest kept (older snapshots pruned)"
    )
    code, out, _ = fetchheads("history", "--db", str(db), "--json", "a.test")
    assert json.loads(out.splitlines()[-1])["changes"] is None  # not known
    code, out, _ = fetchheads("diff", "--db", str(db), "--at", "2026-11-02", "a.test")
    assert out.splitlines()[1] == "no earlier snapshot kept"
    # Nothing of b.test was pruned: its only snapshot is still its first.
    assert fetchheads("history", "--db", str(db), "b.test")[1].endswith("first snapshot\n")


def test_diff_at_a_date_means_the_whole_of_that_day(tmp_path: Path) -> None:
    db = tmp_path / "heads.db"
    stored(
        db,
        ("http://a.test/", "2026-11-24T10:00:00.000Z", 1),
        ("http://a.test/", "2026-11-25T23:59:59.000Z", 2),
        ("http://a.test/", "2026-11-26T00:00:00.000Z", 3),
    )
    code, out, _ = fetchheads("diff", "--db", str(db), "--at", "2026-11-25", "--json", "a.test")
    assert code == 0
    record = json.loads(out)
    assert (record["before"]["id"], record["after"]["id"]) == (1, 2)
    assert record["changes"] == [{"name": "X-Version", "before": ["1"], "after": ["2"]}]
    code, out, _ = fetchheads(
        "diff", "--db", str(db), "--at", "2026-11-25T12:00", "--json", "a.test"
    )
    assert json.loads(out)["after"]["id"] == 1  # a time, not a day: up to that moment


def two_versions(tmp_path: Path) -> Path:
    """A database holding a.test twice: X-Version 1 on 2026-11-24, 2 on 2026-11-25."""
    db = tmp_path / "heads.db"
    stored(
        db,
        ("http://a.test/", "2026-11-24T10:00:00.000Z", 1),
        ("http://a.test/", "2026-11-25T10:00:00.000Z", 2),
    )
    return db


def test_diff_since_a_time_after_the_newest_snapshot_is_no_change(tmp_path: Path) -> None:
    """The snapshot at --since is the newest itself: compared with itself, not with nothing."""
    db = two_versions(tmp_path)
    code, out, _ = fetchheads("diff", "--db", str(db), "--since", "2030-01-01", "--json", "a.test")
    assert code == 0
    record = json.loads(out)
    assert (record["before"]["id"], record["after"]["id"]) == (2, 2)
    assert record["changes"] == []
    code, out, _ = fetchheads("diff", "--db", str(db), "--since", "2030-01-01", "a.test")
    assert out.splitlines()[-1] == "no changes"


def test_diff_since_a_time_before_a_targets_only_snapshot_shows_it_as_new(
    tmp_path: Path,
) -> None:
    """None as old as --since, and the oldest is the newest: the target appeared since."""
    db = tmp_path / "heads.db"
    stored(db, ("http://a.test/", "2026-11-24T10:00:00.000Z", 1))
    code, out, _ = fetchheads("diff", "--db", str(db), "--since", "2026-11-01", "--json", "a.test")
    assert code == 0
    record = json.loads(out)
    assert record["before"] is None
    assert record["after"]["id"] == 1


def test_prune_with_an_age_before_year_1_still_tidies_the_runs(tmp_path: Path) -> None:
    db = tmp_path / "heads.db"
    stored(db, ("http://a.test/", "2026-11-24T10:00:00.000Z", 1))
    with Store.open(str(db)) as store:  # a run that ended having recorded nothing
        empty = store.begin_run("0", {})
        store.finish_run(empty, targets=0, ok=0)
    code, out, _ = fetchheads("prune", "--db", str(db), "--keep-days", "1e10")
    assert (code, out) == (0, f"pruned 0 snapshots and 1 run from {db}\n")


@pytest.mark.parametrize("command", ["history", "diff", "audit"])
def test_a_target_that_is_not_utf8_is_a_usage_error(command: str, tmp_path: Path) -> None:
    db = tmp_path / "heads.db"
    stored(db, ("http://a.test/", "2026-11-24T10:00:00.000Z", 1))
    code, out, err = fetchheads(command, "--db", str(db), "caf\udce9.test")
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        "Error: Invalid value for TARGET: caf\ufffd.test: byte 0xE9 in it is not UTF-8"
    )


def test_a_database_named_with_a_byte_that_is_not_utf8_is_read_and_named(tmp_path: Path) -> None:
    """A file may be named so (Latin-1 ``caf\xe9``): it is read, not an internal error, and a
    line naming it shows the byte as U+FFFD, valid UTF-8 (the test runner's output is strict)."""
    db = tmp_path / "caf\udce9.db"
    stored(db, ("http://a.test/", "2026-11-24T10:00:00.000Z", 1))
    code, out, err = fetchheads("history", "--db", str(db), "a.test")
    assert (code, out, err) == (
        0,
        "2026-11-24T10:00:00.000Z  200 OK  (snapshot 1, run 1)  first snapshot\n",
        "",
    )
    code, out, err = fetchheads("audit", "--db", str(db), "b.test")
    assert (code, out) == (1, "")
    assert err == f"fetchheads: no snapshots of b.test in {tmp_path}/caf\ufffd.db\n"
    code, out, _ = fetchheads("prune", "--db", str(db), "--keep", "1")
    assert (code, out) == (0, f"pruned 0 snapshots and 0 runs from {tmp_path}/caf\ufffd.db\n")
    code, out, _ = fetchheads("db", "copy", str(db), str(tmp_path / "copy\udce9.db"))
    assert (code, out) == (
        0,
        f"copied 1 snapshot and 1 run from {tmp_path}/caf\ufffd.db to {tmp_path}/copy\ufffd.db\n",
    )


def test_diff_at_a_time_before_every_snapshot_says_so(tmp_path: Path) -> None:
    db = tmp_path / "heads.db"
    stored(db, ("http://a.test/", "2026-11-24T10:00:00.000Z", 1))
    code, out, err = fetchheads("diff", "--db", str(db), "--at", "2020-01-01", "a.test")
    assert (code, out) == (1, "")
    assert err == (
        f"fetchheads: no snapshot of a.test in {db} as old as 2020-01-01T23:59:59.999Z (--at): "
        "all are newer\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ("prune", "--keep-days", "1e10"),
        ("prune", "--keep-days", "800000"),
        ("prune", "--keep", "99999999999999999999"),
        ("diff", "--since", "999999999d", "a.test"),
        ("diff", "--since", "99999999999999999999w", "a.test"),
        ("history", "-n", "99999999999999999999", "a.test"),
    ],
)
def test_numbers_too_large_for_a_date_or_a_count_mean_all(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    """An age before year 1 or a count past 2**63: everything, not an internal error."""
    db = two_versions(tmp_path)
    code, out, err = fetchheads(args[0], "--db", str(db), *args[1:])
    assert (code, err) == (0, "")
    if args[0] == "prune":
        assert out == f"pruned 0 snapshots and 0 runs from {db}\n"
    elif args[0] == "diff":  # since the oldest
        assert out.splitlines()[0].startswith("a.test: 2026-11-24T10:00:00.000Z (snapshot 1")
        assert "X-Version: 1 -> 2" in out
    else:  # both snapshots
        assert out.splitlines()[-1].endswith("(snapshot 1, run 1)  first snapshot")


def test_a_bare_host_finds_its_one_stored_url_or_names_them_all(tmp_path: Path) -> None:
    db = tmp_path / "heads.db"
    stored(db, ("https://a.test/", "2026-11-24T10:00:00.000Z", 1))
    code, out, _ = fetchheads("history", "--db", str(db), "a.test")
    assert (code, out.count("\n")) == (0, 1)
    assert "first snapshot" in out
    assert fetchheads("diff", "--db", str(db), "a.test")[0] == 0
    stored(db, ("http://a.test:8080/", "2026-11-24T10:00:00.000Z", 1))
    stored(db, ("https://a.test/login", "2026-11-24T10:00:00.000Z", 1))  # another path
    for command in ("history", "diff"):
        code, out, err = fetchheads(command, "--db", str(db), "a.test")
        assert (code, out) == (1, "")
        assert err == (
            f"fetchheads: no snapshots of a.test in {db}; "
            "stored: http://a.test:8080/, https://a.test/\n"
        )
    # A port or a scheme written out is taken as meant.
    code, _, err = fetchheads("history", "--db", str(db), "a.test:9090")
    assert code == 1
    assert "stored" not in err
    code, _, err = fetchheads("history", "--db", str(db), "http://a.test/")
    assert (code, err.endswith("stored: http://a.test:8080/, https://a.test/\n")) == (1, True)


def test_a_database_found_read_only_only_when_written_says_why(
    site: tuple[Site, str], small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a run that meets the read-only file system late (its up-front check skipped, as
    when the file system is remounted between them) tells its user."""
    _, target = site
    db = small_disk / "heads.db"
    assert fetchheads("--db", str(db), "-q", target)[0] == 0
    remount_read_only(small_disk)
    check_file = store_module._check_file
    monkeypatch.setattr(
        store_module, "_check_file", lambda path, **kw: check_file(path, must_exist=True)
    )
    code, out, err = fetchheads("--db", str(db), "-q", "--format", "plain", target)
    assert code == 1
    assert f"{target} header > HTTP/1.1 200 OK" in out
    assert err == f"fetchheads: 1 result not recorded: Read-only file system (--db {db})\n"
    code, _, err = fetchheads("prune", "--db", str(db), "--keep", "1")
    assert (code, err) == (1, f"fetchheads: {db}: cannot write: Read-only file system\n")


def test_an_old_database_on_a_read_only_file_system_says_it_needs_migrating(
    small_disk: Path,
) -> None:
    db = small_disk / "heads.db"
    old = sqlite3.connect(db)
    old.executescript(store_module.MIGRATIONS[0])
    old.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    old.execute("PRAGMA user_version = 1")
    old.close()
    remount_read_only(small_disk)
    code, _, err = fetchheads("history", "--db", str(db), "127.0.0.1:9")
    assert code == 1
    assert err == (
        f"fetchheads: {db}: schema version 1 must be migrated to {SCHEMA_VERSION} "
        "first, which this user cannot do (Read-only file system): copy it (with its -wal "
        "file) to a writable directory and read the copy\n"  # not even its owner can migrate it
    )


class _SignalJustAfterBegin:
    """``store._db``, and a Ctrl-C that lands just as ``BEGIN IMMEDIATE`` took the lock (the
    other process let go in the slice the signal came in): Python raises it at the next call."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._begun = False
        self.raised = False

    def execute(self, sql: str, *args: Any) -> Any:
        if self._begun and not self.raised:
            self.raised = True
            raise KeyboardInterrupt
        result = self._db.execute(sql, *args)
        self._begun = sql == "BEGIN IMMEDIATE"
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_a_signal_just_as_the_lock_is_taken_leaves_no_transaction_holding_it(
    tmp_path: Path,
) -> None:
    """A Ctrl-C or SIGTERM that ends the wait for the lock just as it was taken: the write is
    not left open holding the lock until the process exits (other cron runs locked out), and
    the run's end tried after it is written; it failed with ``cannot start a transaction within
    a transaction``, the row left ``running``."""
    db = tmp_path / "heads.db"
    with Store.open(str(db)) as store:
        assert isinstance(store, store_module.SqliteStore)
        run = store.begin_run("0", {})
        real = store._db
        store._db = _SignalJustAfterBegin(real)  # type: ignore[assignment]
        with pytest.raises(KeyboardInterrupt):
            store.finish_run(run, targets=1, ok=1)
        assert store._db.raised  # type: ignore[attr-defined]
        other = sqlite3.connect(db, timeout=0, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the lock is free
        other.execute("ROLLBACK")
        other.close()
        store._db = real
        store.finish_run(run, targets=1, ok=1, interrupted=True)
    assert rows(db, "SELECT state, targets FROM runs") == [("interrupted", 1)]
