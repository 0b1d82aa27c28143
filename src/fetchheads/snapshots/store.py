"""The snapshot database (docs/snapshots.md "The database"): SQLite, one owned connection.

A documented interface, queried by users with ``sqlite3`` or Datasette::

    runs       one row per invocation: started_at, finished_at, version, options (JSON), counts,
               state ('running', 'finished', 'interrupted'), host, pid, boot_id
    snapshots  one row per fetched target: id, run_id, key, target, url, fetched_at, ok, status,
               reason, http_version, headers (JSON [[name, value], ...]; NULL when no head came),
               error_kind, error_message, address, timing (JSON), tls (JSON), redirects (JSON),
               cert_threshold (the --warn-days step the certificate had reached, see changes.py)
    headers    (view) one row per header line: snapshot_id, key, target, fetched_at, name, value
    pruned_keys  the keys prune has deleted snapshots of: their oldest kept is not their first

Overlapping cron runs share the file safely: WAL (readers never wait for the writer), a busy
timeout (a writer waits its turn instead of failing), and short ``BEGIN IMMEDIATE`` transactions
(the write lock is taken up front, so two writers never deadlock upgrading a read lock).

The schema is versioned with ``PRAGMA user_version`` and migrated forward by ``MIGRATIONS``; the
file is marked with ``PRAGMA application_id``. A path that cannot hold a fetchheads database (not
SQLite at all, SQLite with other tables, a newer schema, a FIFO or device, a missing directory) is
refused with ``StoreRefused`` before anything is written to it; a database that cannot be used
right now (locked past the busy timeout, a full disk, an I/O error) raises ``StoreError``.

``history`` and ``diff`` open the file read-only (``Store.open(readonly=True)``): a user who may
only read it (another user's file in a directory they cannot write) can still look. WAL needs the
``-shm`` file beside the database; when it does not exist and cannot be created, and there is no
``-wal`` content it would miss, the file is read as ``immutable``.

A run's state (running, finished, interrupted: a SIGKILLed run writes no finish) is told by
``runs.run_state`` from the row's pid, host and boot id.

The only module that imports sqlite3; every ``sqlite3.Error`` is translated to ``StoreError`` here.
SQLite specifics (PRAGMAs, URIs, WAL) stay in this module; the SQL of the tables and queries is
kept portable where that costs nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import sqlite3
import stat
import time
import urllib.parse
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from fetchheads.errors import StoreError, StoreRefused
from fetchheads.models import format_timestamp, utc_now
from fetchheads.snapshots.changes import Snapshot
from fetchheads.snapshots.runs import FINISHED, INTERRUPTED, RUNNING, run_state, this_machine

APPLICATION_ID = 0x46484431  # "FHD1": marks the file as fetchheads'
BUSY_TIMEOUT = 30.0
"""Seconds a writer waits for another's lock: far above any one transaction (milliseconds), so six
overlapping cron runs queue up instead of failing."""
PRUNE_BATCH = 2000
"""Rows deleted per transaction, so ``prune`` never holds the lock long beside a writing run."""
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
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = (
    "id, run_id, key, target, url, fetched_at, ok, status, reason, http_version, headers, "
    "error_kind, error_message, address, timing, tls, redirects, cert_threshold"
)
_INSERT = (
    "INSERT INTO snapshots (run_id, key, target, url, fetched_at, ok, status, reason, "
    "http_version, headers, error_kind, error_message, address, timing, tls, redirects, "
    "cert_threshold) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_PREVIOUS = (
    "SELECT id, run_id, key, target, url, fetched_at, ok, status, reason, http_version, headers, "
    "error_kind, error_message, NULL, '{}', NULL, '[]', cert_threshold "
    "FROM snapshots WHERE key = ? ORDER BY fetched_at DESC, id DESC LIMIT 1"
)
"""What --changes compares, and no more: decoding every JSON column of every predecessor would
double the cost of a --changes run."""
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")


class Store:
    """An open, checked, migrated snapshot database. Use from one thread at a time."""

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, path: str, *, readonly: bool = False, busy_timeout: float | None = None) -> Store:
        """Open (creating it if missing, unless ``readonly``) and migrate the database at
        ``path``. Raises ``StoreRefused`` for a path that cannot be a fetchheads database (left
        untouched), ``StoreError`` for one that cannot be used now."""
        timeout = BUSY_TIMEOUT if busy_timeout is None else busy_timeout
        _check_file(path, must_exist=readonly)
        if readonly:
            return cls._open_readonly(path, timeout)
        store = cls(_connect(path, path, timeout), path)
        try:
            store._check_identity()  # reads only: a refused file is not written to
            store._prepare(timeout)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def _open_readonly(cls, path: str, timeout: float) -> Store:
        uri = "file:" + urllib.parse.quote(os.path.abspath(path))
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
                        "file, and this user cannot create its -shm file: run as its owner",
                        "its -wal file cannot be read by this user",
                    ) from None
                store = cls(_connect(f"{uri}?mode=ro&immutable=1", path, timeout, uri=True), path)
                version = store._check_identity()
            if version < SCHEMA_VERSION:
                # An older schema is migrated by whoever may write it; a reader only asks.
                store.close()
                try:
                    Store.open(path, busy_timeout=timeout).close()
                except StoreRefused:
                    raise
                except StoreError as exc:
                    raise StoreError(
                        f"{path}: schema version {version} must be migrated to "
                        f"{SCHEMA_VERSION} first, which this user cannot do ({exc.reason}): "
                        "run fetchheads --db on it as its owner",
                        exc.reason,
                    ) from None
                return cls._open_readonly(path, timeout)
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening -------------------------------------------------------------------------------

    def _check_identity(self) -> int:
        """The schema version of a database we may use (0: a new, empty file); else StoreError.

        The three looks share one read transaction: another process creating the schema between
        them (one transaction of its own) would otherwise show an application id of 0 beside its
        tables, and a new database would be refused as foreign."""
        with self._translate("read"), self._read():
            app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            objects = [
                row[0]
                for row in self._db.execute(
                    "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
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
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # a full disk may have rolled back
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- runs and snapshots --------------------------------------------------------------------

    def begin_run(
        self, version: str, options: dict[str, Any], *, started_at: str | None = None
    ) -> int:
        host, boot_id = this_machine()
        with self._write():
            cursor = self._db.execute(
                "INSERT INTO runs (started_at, version, options, state, host, pid, boot_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    started_at or format_timestamp(utc_now()),
                    version,
                    _dumps(options),
                    RUNNING,
                    host,
                    os.getpid(),
                    boot_id,
                ),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish_run(
        self,
        run_id: int,
        *,
        targets: int,
        ok: int,
        changed: int | None = None,
        warnings: int | None = None,
        interrupted: bool = False,
    ) -> None:
        """``changed``/``warnings`` stay NULL when the run did not use --changes/--warn-days."""
        with self._write():
            self._db.execute(
                "UPDATE runs SET finished_at = ?, targets = ?, ok = ?, failed = ?, changed = ?, "
                "warnings = ?, state = ? WHERE id = ?",
                (
                    format_timestamp(utc_now()),
                    targets,
                    ok,
                    targets - ok,
                    changed,
                    warnings,
                    INTERRUPTED if interrupted else FINISHED,
                    run_id,
                ),
            )

    def has_snapshots(self) -> bool:
        with self._translate("read"):
            row = self._db.execute("SELECT EXISTS (SELECT 1 FROM snapshots)").fetchone()
        return bool(row[0])

    def record(
        self, run_id: int, snapshots: Sequence[Snapshot], *, previous: bool = False
    ) -> list[Snapshot | None]:
        """Insert ``snapshots`` in one transaction. With ``previous``, also return each one's
        predecessor (the latest earlier snapshot of its key), read in the same transaction."""
        found: list[Snapshot | None] = []
        with self._write():
            for snapshot in snapshots:
                if previous:
                    found.append(self._previous(snapshot.key))
                self._db.execute(_INSERT, _row(run_id, snapshot))
        return found

    def previous(self, keys: Sequence[str]) -> list[Snapshot | None]:
        """The latest snapshot of each key, read without the write lock: what ``--changes``
        compares with when the new snapshots cannot be written."""
        with self._translate("read"), self._read():
            return [self._previous(key) for key in keys]

    def _previous(self, key: str) -> Snapshot | None:
        row = self._db.execute(_PREVIOUS, (key,)).fetchone()
        return None if row is None else _snapshot(row)

    def history(
        self,
        keys: Sequence[str],
        *,
        limit: int | None = None,
        until: str | None = None,
        oldest_first: bool = False,
    ) -> list[Snapshot]:
        """Snapshots whose key is one of ``keys``, newest first (or oldest first); with
        ``until``, only those fetched at or before that timestamp. Each carries its run's
        state."""
        marks = ", ".join("?" for _ in keys)
        params: list[Any] = list(keys)
        query = f"SELECT {_COLUMNS} FROM snapshots WHERE key IN ({marks})"
        if until is not None:
            query += " AND fetched_at <= ?"
            params.append(until)
        order = "ASC" if oldest_first else "DESC"
        query += f" ORDER BY fetched_at {order}, id {order}"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self._translate("read"), self._read():
            found = [_snapshot(row) for row in self._db.execute(query, params)]
            states = self.run_states({s.run_id for s in found if s.run_id is not None})
        return [dataclasses.replace(s, run_state=states.get(s.run_id or 0)) for s in found]

    def run_states(self, run_ids: Collection[int]) -> dict[int, str]:
        """Each run's state: running, finished or interrupted (the module's rule)."""
        if not run_ids:
            return {}
        marks = ", ".join("?" for _ in run_ids)
        query = (
            "SELECT id, state, finished_at, host, boot_id, pid, started_at, "
            "(SELECT max(fetched_at) FROM snapshots WHERE run_id = runs.id) "
            f"FROM runs WHERE id IN ({marks})"
        )
        with self._translate("read"):
            rows = self._db.execute(query, list(run_ids)).fetchall()
        return {row[0]: run_state(*row[1:]) for row in rows}

    def was_pruned(self, keys: Sequence[str]) -> bool:
        """Whether prune has deleted snapshots of any of ``keys``."""
        marks = ", ".join("?" for _ in keys)
        query = f"SELECT EXISTS (SELECT 1 FROM pruned_keys WHERE key IN ({marks}))"
        with self._translate("read"):
            return bool(self._db.execute(query, list(keys)).fetchone()[0])

    def keys_at(self, host: str, limit: int = 100) -> list[str]:
        """The stored keys of ``host`` under any scheme and port, sorted (at most ``limit``).
        Range scans on the key index, one per scheme and separator (``/`` or ``:``)."""
        found: list[str] = []
        with self._translate("read"), self._read():
            for scheme in ("http", "https"):
                for separator in "/:":
                    low = f"{scheme}://{host}{separator}"
                    high = low[:-1] + chr(ord(separator) + 1)
                    found.extend(
                        row[0]
                        for row in self._db.execute(
                            "SELECT DISTINCT key FROM snapshots WHERE key >= ? AND key < ? "
                            "ORDER BY key LIMIT ?",
                            (low, high, limit),
                        )
                    )
        return sorted(found)[:limit]

    def prune(
        self, *, keep_days: float | None, keep: int | None, now: dt.datetime | None = None
    ) -> tuple[int, int]:
        """Delete snapshots older than ``keep_days`` and beyond the newest ``keep`` of each key;
        the newest snapshot of every key always stays, so ``--changes`` keeps its baseline. Runs
        that are over (finished or interrupted) and left without snapshots go too; an
        interrupted run's state is stored. Returns (snapshots deleted, runs deleted)."""
        conditions = []
        params: list[Any] = []
        if keep_days is not None:
            cutoff = (now or utc_now()) - dt.timedelta(days=keep_days)
            conditions.append("fetched_at < ?")
            params.append(format_timestamp(cutoff))
        if keep is not None:
            conditions.append("rank > ?")
            params.append(keep)
        if not conditions:
            return 0, 0
        select = (
            "SELECT id FROM (SELECT id, fetched_at, row_number() OVER "
            "(PARTITION BY key ORDER BY fetched_at DESC, id DESC) AS rank FROM snapshots) "
            f"WHERE rank > 1 AND ({' OR '.join(conditions)})"
        )
        with self._translate("read"):
            doomed = [row[0] for row in self._db.execute(select, params)]
        for start in range(0, len(doomed), PRUNE_BATCH):
            batch = doomed[start : start + PRUNE_BATCH]
            marks = ", ".join("?" for _ in batch)
            with self._write():
                self._db.execute(
                    "INSERT INTO pruned_keys (key) SELECT DISTINCT key FROM snapshots "
                    f"WHERE id IN ({marks}) ON CONFLICT (key) DO NOTHING",
                    batch,
                )
                self._db.execute(f"DELETE FROM snapshots WHERE id IN ({marks})", batch)
        with self._translate("read"):
            unfinished = [
                row[0]
                for row in self._db.execute(
                    "SELECT id FROM runs WHERE finished_at IS NULL "
                    "AND (state IS NULL OR state = ?)",
                    (RUNNING,),
                )
            ]
        gone = [i for i, state in self.run_states(unfinished).items() if state == INTERRUPTED]
        with self._write():
            self._db.executemany(
                "UPDATE runs SET state = ? WHERE id = ? AND finished_at IS NULL",
                [(INTERRUPTED, run_id) for run_id in gone],
            )
            runs = self._db.execute(
                "DELETE FROM runs WHERE (finished_at IS NOT NULL OR state = ?) "
                "AND NOT EXISTS (SELECT 1 FROM snapshots WHERE run_id = runs.id)",
                (INTERRUPTED,),
            ).rowcount
        return len(doomed), runs


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
    elif name.startswith("SQLITE_IOERR") and _no_space(path):
        # SQLite says "disk I/O error" when the -shm file cannot grow: say why.
        reason = f"no space left on the device ({reason})"
    return StoreError(f"{path}: cannot {doing}: {reason}", reason)


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


def _check_file(path: str, *, must_exist: bool = False) -> None:
    """Refuse, without opening it as a database, a path that cannot hold one: nothing is read
    from a FIFO (no wait for a writer) and nothing is created beside a device."""
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
        return  # created by connect
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


def _has_wal_content(path: str) -> bool:
    try:
        return os.path.getsize(path + "-wal") > 0
    except OSError:
        return False


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def _headers(text: str | None) -> tuple[tuple[str, str], ...]:
    pairs = json.loads(text) if text is not None else []
    return tuple((str(name), str(value)) for name, value in pairs)


def _row(run_id: int, s: Snapshot) -> tuple[Any, ...]:
    return (
        run_id,
        s.key,
        s.target,
        s.url,
        s.fetched_at,
        int(s.ok),
        s.status,
        s.reason,
        s.http_version,
        _dumps([list(pair) for pair in s.headers]) if s.has_head else None,
        s.error_kind,
        s.error_message,
        s.address,
        _dumps(s.timing or {}),
        None if s.tls is None else _dumps(s.tls),
        _dumps(list(s.redirects)),
        s.cert_threshold,
    )


def _snapshot(row: Sequence[Any]) -> Snapshot:
    (id_, run_id, key, target, url, fetched_at, ok, status, reason, http_version) = row[:10]
    headers, error_kind, error_message, address, timing, tls, redirects, threshold = row[10:]
    return Snapshot(
        key=key,
        target=target,
        url=url,
        fetched_at=fetched_at,
        ok=bool(ok),
        status=status,
        reason=reason,
        http_version=http_version,
        headers=_headers(headers),
        has_head=headers is not None,
        error_kind=error_kind,
        error_message=error_message,
        address=address,
        timing=json.loads(timing),
        tls=None if tls is None else json.loads(tls),
        redirects=tuple(json.loads(redirects)),
        cert_threshold=threshold,
        id=id_,
        run_id=run_id,
    )
