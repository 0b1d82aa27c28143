"""The snapshot database (docs/snapshots.md "The database"): SQLite, one owned connection.

A documented interface, queried by users with ``sqlite3`` or Datasette::

    runs       one row per invocation: started_at, finished_at, version, options (JSON), counts
    snapshots  one row per fetched target: id, run_id, key, target, url, fetched_at, ok, status,
               reason, http_version, headers (JSON [[name, value], ...]; NULL when no head came),
               error_kind, error_message, address, timing (JSON), tls (JSON), redirects (JSON)
    headers    (view) one row per header line: snapshot_id, key, target, fetched_at, name, value

Overlapping cron runs share the file safely: WAL (readers never wait for the writer), a busy
timeout (a writer waits its turn instead of failing), and short ``BEGIN IMMEDIATE`` transactions
(the write lock is taken up front, so two writers never deadlock upgrading a read lock).

The schema is versioned with ``PRAGMA user_version`` and migrated forward by ``MIGRATIONS``; the
file is marked with ``PRAGMA application_id``. A file that is not a fetchheads database (not SQLite
at all, or SQLite with other tables) or that a newer fetchheads wrote is refused with ``StoreError``
before anything is written to it.

The only module that imports sqlite3; every ``sqlite3.Error`` is translated to ``StoreError`` here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any

from fetchheads.changes import Snapshot
from fetchheads.errors import StoreError
from fetchheads.models import format_timestamp, utc_now

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
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = (
    "id, run_id, key, target, url, fetched_at, ok, status, reason, http_version, headers, "
    "error_kind, error_message, address, timing, tls, redirects"
)
_INSERT = (
    "INSERT INTO snapshots (run_id, key, target, url, fetched_at, ok, status, reason, "
    "http_version, headers, error_kind, error_message, address, timing, tls, redirects) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_PREVIOUS = (
    "SELECT id, run_id, key, target, url, fetched_at, ok, status, reason, http_version, headers, "
    "error_kind, error_message, NULL, '{}', NULL, '[]' "
    "FROM snapshots WHERE key = ? ORDER BY fetched_at DESC, id DESC LIMIT 1"
)
"""What --changes compares, and no more: decoding every JSON column of every predecessor would
double the cost of a --changes run."""
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


class Store:
    """An open, checked, migrated snapshot database. Use from one thread at a time."""

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, path: str, *, busy_timeout: float = BUSY_TIMEOUT) -> Store:
        """Open (creating it if missing) and migrate the database at ``path``, or raise
        ``StoreError`` saying why it cannot be used, leaving a foreign file untouched."""
        _check_file(path)
        try:
            connection = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open: {exc}") from exc
        store = cls(connection, path)
        try:
            store._check_identity()  # reads only: a refused file is not written to
            store._prepare(busy_timeout)
        except BaseException:
            connection.close()
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
                raise StoreError(
                    f"{self.path}: written by a newer fetchheads (schema version {version}; "
                    f"this one knows up to {SCHEMA_VERSION}); left as is: upgrade fetchheads"
                )
            return int(version)
        if app_id == 0 and version == 0 and not objects:
            return 0
        shown = ", ".join(objects[:5]) + (", ..." if len(objects) > 5 else "")
        what = f"it holds {shown}" if objects else f"application id {app_id:#x}"
        raise StoreError(
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
                    raise StoreError(f"{self.path}: cannot switch to WAL: {exc}") from exc
                time.sleep(0.05)

    # -- transactions --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot {doing}: {exc}") from exc

    @contextlib.contextmanager
    def _read(self) -> Iterator[None]:
        """One snapshot for several reads; nested inside ``_write``, the write's own."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One short write transaction; the lock is taken at BEGIN (waiting up to the timeout)."""
        with self._translate("write"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- runs and snapshots --------------------------------------------------------------------

    def begin_run(self, version: str, options: dict[str, Any]) -> int:
        with self._write():
            cursor = self._db.execute(
                "INSERT INTO runs (started_at, version, options) VALUES (?, ?, ?)",
                (format_timestamp(utc_now()), version, _dumps(options)),
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
    ) -> None:
        """``changed``/``warnings`` stay NULL when the run did not use --changes/--warn-days."""
        with self._write():
            self._db.execute(
                "UPDATE runs SET finished_at = ?, targets = ?, ok = ?, failed = ?, changed = ?, "
                "warnings = ? WHERE id = ?",
                (format_timestamp(utc_now()), targets, ok, targets - ok, changed, warnings, run_id),
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
                    row = self._db.execute(_PREVIOUS, (snapshot.key,)).fetchone()
                    found.append(None if row is None else _snapshot(row))
                self._db.execute(_INSERT, _row(run_id, snapshot))
        return found

    def history(
        self,
        keys: Sequence[str],
        *,
        limit: int | None = None,
        until: str | None = None,
        oldest_first: bool = False,
    ) -> list[Snapshot]:
        """Snapshots whose key is one of ``keys``, newest first (or oldest first); with
        ``until``, only those fetched at or before that timestamp."""
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
        with self._translate("read"):
            return [_snapshot(row) for row in self._db.execute(query, params)]

    def prune(
        self, *, keep_days: float | None, keep: int | None, now: dt.datetime | None = None
    ) -> tuple[int, int]:
        """Delete snapshots older than ``keep_days`` and beyond the newest ``keep`` of each key;
        the newest snapshot of every key always stays, so ``--changes`` keeps its baseline. Runs
        left without snapshots go too. Returns (snapshots deleted, runs deleted)."""
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
            with self._write():
                self._db.executemany("DELETE FROM snapshots WHERE id = ?", [(i,) for i in batch])
        with self._write():
            runs = self._db.execute(
                "DELETE FROM runs WHERE finished_at IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM snapshots WHERE run_id = runs.id)"
            ).rowcount
        return len(doomed), runs


def _check_file(path: str) -> None:
    """Refuse, without opening it as a database, a path that cannot hold one."""
    if os.path.isdir(path):
        raise StoreError(f"{path}: is a directory, not a database file")
    try:
        with open(path, "rb") as stream:
            start = stream.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return  # created by connect
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if start and start != SQLITE_MAGIC:
        raise StoreError(f"{path}: not an SQLite database (not written by fetchheads); left as is")


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
    )


def _snapshot(row: Sequence[Any]) -> Snapshot:
    (id_, run_id, key, target, url, fetched_at, ok, status, reason, http_version) = row[:10]
    headers, error_kind, error_message, address, timing, tls, redirects = row[10:]
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
        id=id_,
        run_id=run_id,
    )
