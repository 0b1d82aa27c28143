"""The SQLite backend of the snapshot database (``store`` has the tables and the shared queries):
one owned connection to a file, queried by users with ``sqlite3`` or Datasette.

Overlapping cron runs share the file safely: WAL (readers never wait for the writer), a busy
timeout (a writer waits its turn instead of failing), and short ``BEGIN IMMEDIATE`` transactions
(the write lock is taken up front, so two writers never deadlock upgrading a read lock; one writer
at a time also serializes the writes of every key, as ``store`` requires).

The schema is versioned with ``PRAGMA user_version`` and migrated forward by ``MIGRATIONS``; the
file is marked with ``PRAGMA application_id``. A path that cannot hold a fetchheads database (not
SQLite at all, SQLite with other tables, a newer schema, a FIFO or device, a missing directory, a
file that cannot be created) is refused with ``StoreRefused`` before anything is written to it; a
database that cannot be used right now (locked past the busy timeout, a full disk, an I/O error)
raises ``StoreError``.

``history`` and ``diff`` open the file read-only (``Store.open(readonly=True)``): a user who may
only read it (another user's file in a directory they cannot write) can still look. WAL needs the
``-shm`` file beside the database; when it does not exist and cannot be created, and there is no
``-wal`` content it would miss, the file is read as ``immutable``.

The only module that imports sqlite3; every ``sqlite3.Error`` is translated to ``StoreError`` here.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

from fetchheads.errors import StoreError, StoreRefused
from fetchheads.snapshots.changes import Snapshot
from fetchheads.snapshots.store import (
    APPLICATION_ID,
    RECORD,
    RUN_FIELDS,
    SCHEMA_VERSION,
    SNAPSHOT_FIELDS,
    Store,
    decode,
    dumps,
    not_a_file,
)

BUSY_TIMEOUT = 30.0
"""Seconds a writer waits for another's lock: far above any one transaction (milliseconds), so six
overlapping cron runs queue up instead of failing."""
LOCK_SLICE = 0.25
"""Seconds SQLite's own busy handler waits at a time for the write lock: it waits inside C,
where neither a signal nor ``stop_reconnecting`` reaches it, so the busy timeout is waited in
slices and a run that was stopped (Ctrl-C, SIGTERM) stops waiting after the current one."""
SQLITE_MAGIC = b"SQLite format 3\x00"

# Each entry takes the schema from version i to i + 1, in one transaction with the version bump.
# Statements are split on ";", so no trigger bodies: append new entries, never edit old ones.
MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the tables.
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        version TEXT NOT NULL,
        options TEXT NOT NULL,
        targets INTEGER NOT NULL DEFAULT 0,
        ok INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        changed INTEGER,
        warnings INTEGER
    );
    CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        key TEXT NOT NULL,
        target TEXT NOT NULL,
        url TEXT,
        fetched_at TEXT NOT NULL,
        ok INTEGER NOT NULL,
        status INTEGER,
        reason TEXT,
        http_version TEXT,
        headers TEXT,
        error_kind TEXT,
        error_message TEXT,
        address TEXT,
        timing TEXT NOT NULL,
        tls TEXT,
        redirects TEXT NOT NULL
    );
    CREATE INDEX snapshots_by_key ON snapshots (key, fetched_at);
    CREATE INDEX snapshots_by_run ON snapshots (run_id);
    CREATE INDEX snapshots_by_time ON snapshots (fetched_at);
    """,
    # 1 -> 2: one row per header line, for queries like "whose Server changed this week".
    """
    CREATE VIEW headers AS
    SELECT s.id AS snapshot_id, s.key, s.target, s.fetched_at,
           json_extract(h.value, '$[0]') AS name, json_extract(h.value, '$[1]') AS value
    FROM snapshots AS s, json_each(s.headers) AS h;
    """,
    # 2 -> 3: which runs were interrupted (a SIGKILLed run leaves no finish behind: its state is
    # told from its process), how far each certificate warning had gone (--changes prints one
    # again only when it gets worse), and which keys prune has thinned (no "first snapshot").
    """
    ALTER TABLE runs ADD COLUMN state TEXT;
    ALTER TABLE runs ADD COLUMN host TEXT;
    ALTER TABLE runs ADD COLUMN pid INTEGER;
    ALTER TABLE runs ADD COLUMN boot_id TEXT;
    UPDATE runs SET state = 'finished' WHERE finished_at IS NOT NULL;
    ALTER TABLE snapshots ADD COLUMN cert_threshold INTEGER;
    CREATE TABLE pruned_keys (key TEXT PRIMARY KEY);
    """,
    # 3 -> 4: a name for each run and snapshot that survives copying it into another database
    # (db copy): the integer ids of two files overlap. Old rows get random ones.
    """
    ALTER TABLE runs ADD COLUMN uid TEXT;
    ALTER TABLE snapshots ADD COLUMN uid TEXT;
    UPDATE runs SET uid = lower(hex(randomblob(16)));
    UPDATE snapshots SET uid = lower(hex(randomblob(16)));
    CREATE UNIQUE INDEX runs_by_uid ON runs (uid);
    CREATE UNIQUE INDEX snapshots_by_uid ON snapshots (uid);
    """,
    # 4 -> 5: the audit of each snapshot (--audit): its grade and test results, so --changes
    # can report a grade that changed. Old rows have none (fetchheads audit grades them).
    """
    ALTER TABLE snapshots ADD COLUMN audit TEXT;
    """,
)
assert len(MIGRATIONS) == SCHEMA_VERSION

_INSERT = f"INSERT INTO snapshots ({SNAPSHOT_FIELDS}) VALUES ({', '.join('?' * 19)})"
_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")


_UNREADABLE = frozenset({sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT})
"""SQLite's result codes for a file that is not a database, or a damaged one."""


class SqliteStore(Store):
    """A snapshot database in an SQLite file."""

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        self._db = connection
        self.path = path
        self._patience: int | None = None
        """The busy timeout (ms) ``stop_waiting`` put aside, until a batch goes through."""
        self._busy_ms = int(BUSY_TIMEOUT * 1000)
        """How long (ms) a write waits for another process's lock: the connection's own busy
        timeout, waited in ``LOCK_SLICE`` slices at ``BEGIN IMMEDIATE``."""
        self._stopped = threading.Event()
        """Set by ``stop_reconnecting`` (the main thread): the wait for a lock ends."""

    @classmethod
    def open(
        cls,
        path: str,
        *,
        readonly: bool = False,
        busy_timeout: float | None = None,
        purpose: str = RECORD,
    ) -> SqliteStore:
        """Open (creating it if missing, unless ``readonly``) and migrate the database at
        ``path``. Raises ``StoreRefused`` for a path that cannot be a fetchheads database (left
        untouched) or that this user can never write (whatever the ``purpose``: a file is
        writable or not), ``StoreError`` for one that cannot be used now."""
        timeout = BUSY_TIMEOUT if busy_timeout is None else busy_timeout
        _check_file(path, must_exist=readonly, writes=not readonly)
        if readonly:
            return cls._open_readonly(path, timeout)
        store = cls(_connect(path, path, timeout), path)
        store._busy_ms = int(timeout * 1000)
        try:
            store._check_identity()  # reads only: a refused file is not written to
            store._prepare(timeout)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def _open_readonly(cls, path: str, timeout: float) -> SqliteStore:
        uri = "file:" + urllib.parse.quote(os.fsencode(os.path.abspath(path)))  # bytes: any name
        # A user who may write there reads through an ordinary connection, which removes the
        # -wal and -shm files when it closes; a read-only one would leave them behind.
        directory = os.path.dirname(os.path.abspath(path))
        writable = os.access(path, os.W_OK) and os.access(directory, os.W_OK)
        mode = "rw" if writable else "ro"
        store = cls(_connect(f"{uri}?mode={mode}", path, timeout, uri=True), path)
        with store._translate("open"):
            store._db.execute("PRAGMA query_only = ON")  # reads only, whatever the mode
        try:
            try:
                version = store._check_identity()
            except StoreRefused:
                raise
            except StoreError:
                # WAL reads need the -shm file; this user cannot create it beside the file.
                store.close()
                if _has_wal_content(path):
                    raise StoreError(
                        f"{path}: cannot read: changes not yet merged into it wait in its -wal "
                        f"file, and this user cannot create its -shm file: {_remedy(path)}",
                        "its -wal file cannot be read by this user",
                    ) from None
                store = cls(_connect(f"{uri}?mode=ro&immutable=1", path, timeout, uri=True), path)
                version = store._check_identity()
            if version < SCHEMA_VERSION:
                # An older schema is migrated by whoever may write it; a reader only asks.
                store.close()
                why = _unwritable(path)
                try:
                    if why is None:
                        SqliteStore.open(path, busy_timeout=timeout).close()
                except StoreRefused:
                    raise
                except StoreError as exc:
                    why = exc.reason
                if why is not None:
                    raise StoreError(
                        f"{path}: schema version {version} must be migrated to "
                        f"{SCHEMA_VERSION} first, which this user cannot do ({why}): "
                        + (
                            _remedy(path)
                            if _read_only_file_system(path)
                            else "run fetchheads --db on it as its owner"
                        ),
                        why,
                    )
                return cls._open_readonly(path, timeout)
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    def stop_reconnecting(self) -> None:
        self._stopped.set()

    def stop_waiting(self) -> None:
        with self._translate("change the busy timeout"):
            if self._patience is None:
                self._patience = self._busy_ms
            self._db.execute("PRAGMA busy_timeout = 0")  # one try, no busy handler
            self._busy_ms = 0

    # -- opening -------------------------------------------------------------------------------

    def _check_identity(self) -> int:
        """The schema version of a database we may use (0: a new, empty file); else StoreError.

        The three looks share one read transaction: another process creating the schema between
        them (one transaction of its own) would otherwise show an application id of 0 beside its
        tables, and a new database would be refused as foreign."""
        try:
            with self._translate("read"), self._read():
                app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                objects = [
                    row[0]
                    for row in self._db.execute(
                        "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                        "ORDER BY name"
                    )
                ]
        except StoreError as exc:
            cause = exc.__cause__
            if getattr(cause, "sqlite_errorcode", None) in _UNREADABLE:
                # Damaged, or not SQLite at all: no run can record into it, now or later.
                raise StoreRefused(
                    f"{self.path}: not a database SQLite can read ({cause}); left as is: "
                    "give another --db, or restore it from a copy"
                ) from None
            raise
        if app_id == APPLICATION_ID:
            if version > SCHEMA_VERSION:
                raise StoreRefused(
                    f"{self.path}: written by a newer fetchheads (schema version {version}; "
                    f"this one knows up to {SCHEMA_VERSION}); left as is: upgrade fetchheads"
                )
            return int(version)
        if app_id == 0 and version == 0 and not objects:
            return 0
        shown = ", ".join(objects[:5]) + (", ..." if len(objects) > 5 else "")
        what = f"it holds {shown}" if objects else f"application id {app_id:#x}"
        raise StoreRefused(
            f"{self.path}: not a fetchheads database ({what}); left as is: give another --db"
        )

    def _prepare(self, busy_timeout: float) -> None:
        with self._translate("prepare"):
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints
        self._set_wal(busy_timeout)
        if self._check_identity() == SCHEMA_VERSION:
            return
        with self._write():
            # Another process may have migrated while we waited for the lock: look again.
            version = self._check_identity()
            for script in MIGRATIONS[version:]:
                for statement in script.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
            self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _set_wal(self, busy_timeout: float) -> None:
        # Switching the journal mode does not always wait on the busy handler, so a process that
        # meets another one creating the file retries here. WAL persists: later opens skip this.
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
                if mode != "wal":
                    self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise _error(self.path, "switch to WAL", exc) from exc
                time.sleep(0.05)

    # -- transactions --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise _error(self.path, doing, exc) from exc

    @contextlib.contextmanager
    def _read(self) -> Iterator[None]:
        """One snapshot for several reads; nested inside ``_write``, the write's own."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # the error raised says more
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One short write transaction; the lock is taken at BEGIN (waiting up to the timeout)."""
        with self._translate("write"):
            self._begin_immediate()
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # a full disk may have rolled back
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _begin_immediate(self) -> None:
        """``BEGIN IMMEDIATE``, waiting for another process's lock up to the busy timeout, one
        ``LOCK_SLICE`` at a time: between two, a Ctrl-C or SIGTERM on the main thread raises
        (Python runs its handlers there), and a stopped run (``stop_reconnecting``) gives up.
        Once stopped, one slice: the write still goes through if nobody holds the lock. A signal
        that lands just as the lock was taken rolls the transaction back: it would otherwise stay
        open, the lock held, until the connection closes, and the next write fail."""
        try:
            self._lock()
        except BaseException:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    def _lock(self) -> None:
        slice_ms = int(LOCK_SLICE * 1000)
        if self._busy_ms <= slice_ms:
            self._db.execute("BEGIN IMMEDIATE")
            return
        deadline = time.monotonic() + self._busy_ms / 1000
        self._db.execute(f"PRAGMA busy_timeout = {slice_ms}")
        try:
            while True:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    busy = getattr(exc, "sqlite_errorname", "").startswith(_BUSY)
                    if not busy or self._stopped.is_set() or time.monotonic() >= deadline:
                        raise
        finally:
            self._db.execute(f"PRAGMA busy_timeout = {self._busy_ms}")

    def _wait_again(self) -> None:
        patience, self._patience = self._patience, None
        if patience is not None:
            self._busy_ms = patience
            with contextlib.suppress(sqlite3.Error):
                self._db.execute(f"PRAGMA busy_timeout = {patience}")

    # -- the primitives ``Store`` builds on -------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchall()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, params).rowcount

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    def _newest(self, keys: Sequence[str]) -> dict[str, Snapshot]:
        # One query for the batch (the keys as one JSON parameter: no limit on their number);
        # each key's newest is found on the (key, fetched_at) index.
        rows = self._rows(
            f"SELECT {self.AUDIT_COLUMNS} FROM snapshots WHERE id IN (SELECT (SELECT s.id "
            "FROM snapshots AS s WHERE s.key = k.value ORDER BY s.fetched_at DESC, s.id DESC "
            "LIMIT 1) FROM json_each(?) AS k)",
            (dumps(list(keys)),),
        )
        return {snapshot.key: snapshot for snapshot in map(decode, rows)}

    def _insert_run(self, values: Sequence[Any]) -> int:
        marks = ", ".join("?" for _ in values)
        cursor = self._db.execute(f"INSERT INTO runs ({RUN_FIELDS}) VALUES ({marks})", values)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _insert_snapshots(self, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(_INSERT, rows)


def _connect(target: str, path: str, timeout: float, *, uri: bool = False) -> sqlite3.Connection:
    try:
        return sqlite3.connect(
            target, timeout=timeout, isolation_level=None, check_same_thread=False, uri=uri
        )
    except sqlite3.Error as exc:
        raise _error(path, "open", exc) from exc


def _error(path: str, doing: str, exc: sqlite3.Error) -> StoreError:
    reason = str(exc)
    name = getattr(exc, "sqlite_errorname", "")
    if name in _BUSY and "locked" not in reason:
        reason = "database is locked"
    elif name == "SQLITE_FULL" or (name.startswith("SQLITE_IOERR") and _no_space(path)):
        # SQLite says "disk I/O error" when the -shm file cannot grow: say why.
        reason = f"no space left on the device ({reason})"
    elif name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY")) and os.path.isfile(path):
        # "unable to open database file", "attempt to write a readonly database": say why.
        why = _unwritable(path)
        if why is not None:
            doing, reason = "write", why
    return StoreError(f"{path}: cannot {doing}: {reason}", reason)


def _read_only_file_system(path: str) -> bool:
    try:
        return bool(os.statvfs(os.path.dirname(os.path.abspath(path))).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _remedy(path: str) -> str:
    """What a reader who cannot write beside ``path`` can do: on a read-only file system not even
    its owner can, so read a copy."""
    if _read_only_file_system(path):
        return "copy it (with its -wal file) to a writable directory and read the copy"
    return "run as its owner"


def _no_space(path: str) -> bool:
    try:
        return os.statvfs(os.path.dirname(os.path.abspath(path))).f_bavail == 0
    except OSError:
        return False


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_file(path: str, *, must_exist: bool = False, writes: bool = False) -> None:
    """Refuse, without opening it as a database, a path that cannot hold one: nothing is read
    from a FIFO (no wait for a writer) and nothing is created beside a device. ``writes``: an
    existing file that this process can never write (a read-only file system, no permission) is
    refused too; SQLite would open it read-only and fail at the first write saying not why."""
    problem = not_a_file(path)
    if problem is not None:
        raise StoreRefused(problem)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.exists(directory):
            raise StoreRefused(f"directory {directory} does not exist") from None
        if not os.path.isdir(directory):
            raise StoreRefused(f"{directory} is not a directory") from None
        if must_exist:
            raise StoreRefused(f"{path}: does not exist") from None
        _create(path)
        return
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror or exc}", exc.strerror) from exc
    for test, kind in _FILE_KINDS:
        if test(mode):
            raise StoreRefused(f"{path}: is {kind}, not a database file; left as is")
    try:
        with open(path, "rb") as stream:
            start = stream.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror or exc}", exc.strerror) from exc
    if start and start != SQLITE_MAGIC:
        raise StoreRefused(
            f"{path}: not an SQLite database (not written by fetchheads); left as is"
        )
    if writes:
        problem = _unwritable(path)
        if problem is not None:
            raise StoreRefused(f"{path}: cannot be written: {problem}")


def _unwritable(path: str) -> str | None:
    """Why this process can never write the existing database ``path``, or None. Opening it for
    writing (not truncating) is the sure test, as creating is for a new one (``os.access``
    answers yes to root); WAL also creates ``-wal`` and ``-shm`` files beside it."""
    try:
        os.close(os.open(path, os.O_WRONLY))
    except OSError as exc:
        if exc.errno not in _PASSING_ERRNOS:
            return exc.strerror or str(exc)
    directory = os.path.dirname(os.path.abspath(path))
    sidecars = all(os.access(path + suffix, os.W_OK) for suffix in ("-wal", "-shm"))
    if not sidecars and not os.access(directory, os.W_OK | os.X_OK):
        return f"its -wal and -shm files cannot be created in {directory} (Permission denied)"
    return None


# Creating a file fails for these only until space or descriptors are freed: a run goes on and
# says how many results were not recorded. Any other reason (no permission, a read-only or
# pseudo file system like /proc) holds on every run, so the path is refused before any fetch.
_PASSING_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EMFILE, errno.ENFILE})


def _create(path: str) -> None:
    """Create the missing file (empty: SQLite makes it a database) to learn, before any fetch,
    whether it can be created at all; SQLite's own "unable to open database file" says not why.
    Creating is the only sure test: ``os.access`` answers yes to root, even in /proc."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return  # another process created it first: opened as an existing file
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in _PASSING_ERRNOS:
            raise StoreError(f"{path}: cannot create: {reason}", reason) from exc
        raise StoreRefused(f"{path}: cannot be created: {reason}") from None


def _has_wal_content(path: str) -> bool:
    try:
        return os.path.getsize(path + "-wal") > 0
    except OSError:
        return False
