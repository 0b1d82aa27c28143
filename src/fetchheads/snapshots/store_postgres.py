"""The PostgreSQL backend of the snapshot database (``store`` has the tables and shared queries):
``--db postgresql://[user[:password]@]host[:port]/dbname[?param=value...]``, the shared store of a
fleet, through psycopg 3 (the optional extra ``fetchheads[postgres]``; only this module imports
it, and only runs that use such a database load it).

The URL is libpq's: what it leaves out comes from the libpq environment (``PGHOST``, ``PGUSER``,
``PGPASSWORD``, ``PGSERVICE``...) and ``~/.pgpass``. The tables live in the connection's current
schema (``public``, or another with ``?options=-csearch_path%3Dname``). The password is never
shown: messages name the database by its URL with the password as ``***``.

Same tables, same meaning as SQLite; the types are PostgreSQL's own where a psql user gains by
them: times are ``timestamptz`` (read back as the same ``2026-11-25T19:12:17.123Z`` text), JSON
columns ``json`` (kept as written: header order and duplicates), ``ok`` a boolean, and ``key``
collated "C" so keys sort by bytes, as in SQLite. A table ``fetchheads_meta`` marks the schema as
fetchheads' and holds its version; a schema with other tables and no such mark is refused and left
untouched. Migrations run in one transaction under an advisory lock, so N shard processes opening
a new database at once create it once.

A writer is checked before it begins: the table privileges its purpose needs (``PRIVILEGES``:
``has_table_privilege``), CREATE on the schema for a new one, ownership for a migration. A user who
lacks one is refused (``StoreRefused``, exit 2) with the GRANT to run, not left to fetch a whole
run that could record nothing.

A connection that breaks under a run (a restart, a failover) is made again: ``begin_run``,
``record``, ``finish_run`` and the reads a run makes are each one transaction, tried again on a new
connection for ``RECONNECT_SECONDS``. Their rows keep their uids from try to try, so a try after
one whose COMMIT may have gone through looks for them first: nothing is lost or doubled. A batch
whose COMMIT was sent when the store gave up is ``in_doubt`` until a later connection finds it
stored (``found_after_all``) or not.

``db copy`` into one database twice at once: each import transaction holds one advisory lock, so
the second finds what the first added instead of inserting it again.

Many writers: each batch is one transaction; its rows go in by ``COPY``. Under ``--changes`` the
batch first takes a transaction-level advisory lock on each of its keys (in a fixed order, so two
batches never deadlock), then reads their latest snapshots in one query: the writes of one key are
serialized, as ``store`` requires, and shards (whose keys are disjoint) never wait for each other.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from fetchheads.credentials import MASK
from fetchheads.errors import StoreError, StoreRefused
from fetchheads.snapshots.changes import Snapshot
from fetchheads.snapshots.renewals import CERTIFICATE_KEYS
from fetchheads.snapshots.store import (
    APPLICATION_ID,
    COPY,
    PRUNE,
    RECORD,
    RUN_FIELDS,
    SCHEMA_VERSION,
    SNAPSHOT_FIELDS,
    UNREADABLE_URL,
    Store,
    decode,
    encode,
    has_stray_at,
    new_uid,
    shown,
    with_last_certificate,
)

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

NOT_INSTALLED = "PostgreSQL support is not installed: pip install 'fetchheads[postgres]'"
CONNECT_TIMEOUT = 10
"""Seconds to reach the server: a cron run whose database host is down says so, and goes on."""
LOCK_TIMEOUT = 30.0
"""Seconds a batch waits for another's key locks, as SQLite's busy timeout."""
RETRIES = 3
"""Times a batch is tried when the server broke a deadlock by aborting it."""
RECONNECT_SECONDS = 60.0
"""How long a write keeps trying to reach the server again after the connection broke: a
restart takes seconds, a managed database's failover about a minute. Meanwhile the fetch goes
on (the writes have a thread of their own) and the results wait. Once a whole span has failed,
each later call tries once more, at once, while a try is answered quickly (a server that is
down refuses the connection in a moment, and one back before the run ends gets the batches that
follow and the run's finish). A try that took ``SLOW_TRY`` or more (a server that drops packets:
each try waits ``CONNECT_TIMEOUT``) makes the calls of the next span fail at once instead: such a
server costs a run one span, not one, or two, a batch."""
SLOW_TRY = 1.0
"""Seconds a failed try to connect may take and still be made again by the next call."""
LAST_TRY_TIMEOUT = 2
"""Seconds (libpq's least) the run's end waits for a server it had stopped trying after a slow
try: ``finish_run`` tries once whatever the gate, so a server back by then gets the run's end,
and one that still drops packets costs the run these seconds, not ``CONNECT_TIMEOUT``."""
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 15,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}
"""A connection whose server went away without closing it (a network cut, a host gone) is found
broken within about half a minute, by TCP keepalives while idle and ``tcp_user_timeout`` (ms)
while a write waits for its acknowledgement, instead of the kernel's quarter of an hour; then
it is reconnected as after a restart. A server process that is frozen (SIGSTOP) while its host
still answers TCP is not found so: the write waits for it."""
RECONNECT_FIRST_PAUSE = 0.1
RECONNECT_LAST_PAUSE = 5.0
"""The pause between two tries to reconnect doubles from the first to the last."""
PRIVILEGES: dict[str, dict[str, tuple[str, ...]]] = {
    RECORD: {"runs": ("SELECT", "INSERT", "UPDATE"), "snapshots": ("SELECT", "INSERT")},
    # INSERT ... ON CONFLICT into pruned_keys reads it too: SELECT as well as INSERT.
    PRUNE: {
        "runs": ("SELECT", "UPDATE", "DELETE"),
        "snapshots": ("SELECT", "DELETE"),
        "pruned_keys": ("SELECT", "INSERT"),
    },
    COPY: {
        "runs": ("SELECT", "INSERT", "UPDATE"),
        "snapshots": ("SELECT", "INSERT"),
        "pruned_keys": ("SELECT", "INSERT"),
    },
}
"""The table privileges each writer needs (``store.RECORD`` ...), checked when it opens. Reading
``fetchheads_meta`` is checked by opening at all. Identity columns need no sequence privilege."""
PURPOSES = {RECORD: "fetchheads --db", PRUNE: "prune", COPY: "db copy"}
_TIMESTAMP = '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\''

# Each entry takes the schema from version i to i + 1 (the same steps as SQLite's), in one
# transaction with the version bump. Append new entries, never edit old ones.
MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the tables, and the mark.
    f"""
    CREATE TABLE fetchheads_meta (
        application_id bigint NOT NULL,
        schema_version integer NOT NULL
    );
    INSERT INTO fetchheads_meta VALUES ({APPLICATION_ID}, 0);
    CREATE TABLE runs (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        started_at timestamptz NOT NULL,
        finished_at timestamptz,
        version text NOT NULL,
        options json NOT NULL,
        targets integer NOT NULL DEFAULT 0,
        ok integer NOT NULL DEFAULT 0,
        failed integer NOT NULL DEFAULT 0,
        changed integer,
        warnings integer
    );
    CREATE TABLE snapshots (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        run_id bigint NOT NULL REFERENCES runs (id),
        key text COLLATE "C" NOT NULL,
        target text NOT NULL,
        url text,
        fetched_at timestamptz NOT NULL,
        ok boolean NOT NULL,
        status integer,
        reason text,
        http_version text,
        headers json,
        error_kind text,
        error_message text,
        address text,
        timing json NOT NULL,
        tls json,
        redirects json NOT NULL
    );
    CREATE INDEX snapshots_by_key ON snapshots (key, fetched_at);
    CREATE INDEX snapshots_by_run ON snapshots (run_id);
    CREATE INDEX snapshots_by_time ON snapshots (fetched_at);
    """,
    # 1 -> 2: one row per header line.
    """
    CREATE VIEW headers AS
    SELECT s.id AS snapshot_id, s.key, s.target, s.fetched_at,
           h.value ->> 0 AS name, h.value ->> 1 AS value
    FROM snapshots AS s CROSS JOIN LATERAL json_array_elements(s.headers) AS h (value);
    """,
    # 2 -> 3: run states, certificate steps, pruned keys.
    """
    ALTER TABLE runs ADD COLUMN state text, ADD COLUMN host text, ADD COLUMN pid integer,
        ADD COLUMN boot_id text;
    ALTER TABLE snapshots ADD COLUMN cert_threshold integer;
    CREATE TABLE pruned_keys (key text COLLATE "C" PRIMARY KEY);
    """,
    # 3 -> 4: names that survive a copy into another database.
    """
    ALTER TABLE runs ADD COLUMN uid text;
    ALTER TABLE snapshots ADD COLUMN uid text;
    UPDATE runs SET uid = md5(random()::text || id::text);
    UPDATE snapshots SET uid = md5(random()::text || id::text);
    CREATE UNIQUE INDEX runs_by_uid ON runs (uid);
    CREATE UNIQUE INDEX snapshots_by_uid ON snapshots (uid);
    """,
    # 4 -> 5: the audit of each snapshot (--audit).
    """
    ALTER TABLE snapshots ADD COLUMN audit json;
    """,
)
assert len(MIGRATIONS) == SCHEMA_VERSION


def _load() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreRefused(NOT_INSTALLED) from None
    # psycopg logs a warning when a Ctrl-C or SIGTERM cuts a query short and the server does
    # not end it in time ("query not terminated after cancellation: closing connection"), and
    # Python's last-resort handler printed it as a bare line among ours: what the run did is
    # said by fetchheads' own lines (the connection is made again).
    psycopg_log = logging.getLogger("psycopg")
    if not psycopg_log.handlers:
        psycopg_log.addHandler(logging.NullHandler())
    return psycopg


def _ts(expression: str) -> str:
    return f"to_char({expression} AT TIME ZONE 'UTC', {_TIMESTAMP})"


class PostgresStore(Store):
    """A snapshot database in a PostgreSQL schema."""

    SNAPSHOT_COLUMNS = (
        f"id, run_id, key, target, url, {_ts('fetched_at')}, ok, status, reason, http_version, "
        "headers::text, error_kind, error_message, address, timing::text, tls::text, "
        "redirects::text, cert_threshold, audit::text"
    )
    CERTIFICATE = (
        "CASE WHEN tls IS NULL THEN NULL ELSE json_build_object("
        + ", ".join(f"'{key}', tls -> '{key}'" for key in CERTIFICATE_KEYS)
        + ")::text END"
    )
    FINGERPRINT = "(tls ->> 'fingerprint_sha256')"
    PREVIOUS_COLUMNS = (
        f"id, run_id, key, target, url, {_ts('fetched_at')}, ok, status, reason, http_version, "
        f"headers::text, error_kind, error_message, NULL, '{{}}', {CERTIFICATE}, '[]', "
        "cert_threshold, audit::text"
    )

    VERIFIED = (
        "CASE WHEN tls IS NULL OR tls::text = '{}' THEN NULL "
        "WHEN coalesce((tls -> 'verified')::text, 'true') = 'true' "
        """THEN '{"verified":true}' ELSE '{"verified":false}' END"""
    )
    AUDIT_COLUMNS = (
        f"id, run_id, key, target, url, {_ts('fetched_at')}, ok, status, NULL, NULL, "
        f"headers::text, error_kind, error_message, NULL, '{{}}', {VERIFIED}, redirects::text, "
        "NULL, NULL"
    )

    def __init__(self, connection: psycopg.Connection[Any], path: str, location: str) -> None:
        self._db = connection
        self.path = path
        self._psycopg = _load()
        self._location = location  # holds the password: for connecting again, never shown
        self._settings: dict[str, str] = {}
        """The session's SETs, made again on a new connection."""
        self._lost_at: float | None = None
        """When (monotonic) the connection broke, until a new one is made."""
        self._gave_up: StoreError | None = None
        """Reconnecting failed for ``RECONNECT_SECONDS``: why, said again by each call until
        ``_next_try``."""
        self._next_try = 0.0
        self._connect_timeout = CONNECT_TIMEOUT
        """The next try's; ``LAST_TRY_TIMEOUT`` for ``finish_run``'s try past the gate."""
        self._hung_up = False
        """The connection was closed here because its socket hung up under libpq (``_lost``)."""
        self._stopped = threading.Event()
        """Set by ``stop_reconnecting`` (the main thread): the pauses between tries end."""
        self._patience: str | None = None
        """The lock timeout ``stop_waiting`` put aside, until a batch goes through."""
        self._committing = False
        """The last ``_write`` had sent its COMMIT (or was about to) when it failed."""
        self._unsure: list[tuple[str, int]] = []
        """The batches ``in_doubt``: the uid of a row of each (stored all or none), its size."""
        self.in_doubt = 0
        self.found_after_all = 0

    @classmethod
    def open(
        cls,
        location: str,
        *,
        readonly: bool = False,
        busy_timeout: float | None = None,
        purpose: str = RECORD,
    ) -> PostgresStore:
        """Connect, check and migrate (see the module). A server that cannot be reached is a
        ``StoreError``; a schema that is not fetchheads', or one this user can never write for
        ``purpose`` (no table privileges, an old schema it does not own), a ``StoreRefused``."""
        psycopg = _load()
        path = shown(location)
        _check_url(psycopg, location, path)
        try:
            connection = _connect(psycopg, location)
        except psycopg.Error as exc:
            raise _error(path, "connect", exc) from None
        except ValueError as exc:  # a URL libpq cannot parse
            raise StoreRefused(f"{path}: {_one_line(str(exc))}") from None
        store = cls(connection, path, location)
        try:
            timeout = LOCK_TIMEOUT if busy_timeout is None else busy_timeout
            store._set("lock_timeout", str(int(timeout * 1000)))
            version = store._identity(readonly)
            if readonly:
                if version == 0:
                    raise StoreRefused(
                        f"{path}: holds no snapshots yet: record some with fetchheads --db first"
                    )
                if version < SCHEMA_VERSION:
                    try:
                        cls.open(location, busy_timeout=busy_timeout).close()
                    except StoreRefused as exc:  # a reader cannot migrate: it cannot read now
                        raise StoreError(str(exc), exc.reason) from None
                store._set("default_transaction_read_only", "on")
            else:
                if version < SCHEMA_VERSION:
                    store._migrate(version)
                store._check_privileges(purpose)
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()

    def stop_reconnecting(self) -> None:
        self._stopped.set()

    def stop_waiting(self) -> None:
        if self._patience is None:
            self._patience = self._settings["lock_timeout"]
        if self._db.closed:  # a connection made again will say it
            self._settings["lock_timeout"] = "1"
            return
        if self._db.info.transaction_status == self._psycopg.pq.TransactionStatus.INERROR:
            with self._translate("change the lock timeout"):
                self._db.rollback()
        self._set("lock_timeout", "1")  # 1 ms: 0 would mean wait for ever

    def _set(self, name: str, value: str) -> None:
        self._settings[name] = value
        with self._translate("prepare"):
            self._db.execute(f"SET {name} = {value}".encode())

    # -- a connection lost ---------------------------------------------------------------------

    def _again(self, operation: Callable[[], T]) -> T:
        """``operation()``, and when the connection broke under it (a server restarted, a
        failover, a network cut), ``operation()`` again on a new connection: each operation
        given here is one transaction that may be run twice (``record`` and ``begin_run`` know
        whether the broken one committed). Raises the StoreError of ``_reconnect`` when the
        server does not come back in time, and the operation's own when a connection made
        again keeps breaking under it for ``RECONNECT_SECONDS``."""
        broke: float | None = None
        while True:
            if self._db.closed:
                self._reconnect()
            try:
                return operation()
            except StoreError as exc:
                if not self._lost(exc):
                    raise
                now = time.monotonic()
                if broke is None:
                    broke = now
                elif now - broke > RECONNECT_SECONDS:
                    raise
                if self._lost_at is None:
                    self._lost_at = now

    def _reconnect(self) -> None:
        """A new connection, with the session's settings; tried again with a growing pause
        until ``RECONNECT_SECONDS`` after the connection was lost, the last try at that time.
        After a whole span failed (or the run was stopped), one try a call; after a try that was
        slow to fail (``SLOW_TRY``), none until another span has passed: the call fails at once."""
        now = time.monotonic()
        if self._gave_up is not None and now < self._next_try:
            raise StoreError(str(self._gave_up), self._gave_up.reason)
        if self._lost_at is None:
            self._lost_at = now
        deadline = self._lost_at + RECONNECT_SECONDS  # past, once given up: one try
        pause = RECONNECT_FIRST_PAUSE
        while True:
            connection = None
            began = time.monotonic()
            try:
                connection = _connect(self._psycopg, self._location, self._connect_timeout)
                for name, value in self._settings.items():
                    connection.execute(f"SET {name} = {value}".encode())
            except self._psycopg.Error as exc:
                if connection is not None:
                    connection.close()
                now = time.monotonic()
                if self._stopped.is_set() or now >= deadline:
                    raise self._give_up(exc, now, slow=now - began >= SLOW_TRY) from exc
                self._stopped.wait(min(pause, deadline - now))  # a stop ends it: one try more
                pause = min(pause * 2, RECONNECT_LAST_PAUSE)
                continue
            self.close()
            self._db = connection
            self._hung_up = False
            self._lost_at = None
            self._gave_up = None
            self._settle()
            return

    def _give_up(self, exc: Exception, now: float, *, slow: bool) -> StoreError:
        """Why the connection could not be made again, said with the time really spent trying;
        the calls that follow say it too, until ``_next_try`` (at once unless the try was
        ``slow``)."""
        assert self._lost_at is not None
        why = _error(self.path, "connect", exc).reason
        waited = now - self._lost_at
        reason = f"lost the connection, and could not make it again in {waited:.0f} s: {why}"
        self._gave_up = StoreError(f"{self.path}: cannot reconnect: {reason}", reason)
        self._next_try = now + RECONNECT_SECONDS if slow else now
        return StoreError(str(self._gave_up), reason)

    def _settle(self) -> None:
        """On a connection made again, look up the batches ``in_doubt``: each was stored whole
        (``found_after_all``) or not at all (counted as not recorded already)."""
        if not self._unsure:
            return
        try:
            with self._translate("read"):
                rows = self._rows(
                    "SELECT uid FROM snapshots WHERE uid = ANY(?::text[])",
                    ([uid for uid, _ in self._unsure],),
                )
        except StoreError:
            return  # looked up on the next connection
        stored = {row[0] for row in rows}
        self.found_after_all += sum(size for uid, size in self._unsure if uid in stored)
        self._unsure.clear()
        self.in_doubt = 0

    # -- opening -------------------------------------------------------------------------------

    def _identity(self, readonly: bool) -> int:
        """``_check_identity``; a user who may not read the mark is told what to grant (a
        reader can only not read now, exit 1; a writer can never write, a refusal)."""
        try:
            return self._check_identity()
        except StoreError as exc:
            if type(exc) is not StoreError or not self._denied(exc):
                raise
            with self._translate("read"):
                user = self._rows("SELECT quote_ident(current_user)")[0][0]
            message = (
                f"{self.path}: cannot read: {exc.reason}; have the owner run GRANT SELECT ON "
                f"fetchheads_meta, runs, snapshots, pruned_keys TO {user}"
            )
            raise (StoreError(message, exc.reason) if readonly else StoreRefused(message)) from None

    def _denied(self, exc: StoreError) -> bool:
        """Whether ``exc`` was the server refusing this user a privilege."""
        return isinstance(exc.__cause__, self._psycopg.errors.InsufficientPrivilege)

    def _check_identity(self) -> int:
        """The schema version of a schema we may use (0: one without tables); else refused."""
        with self._translate("read"), self._read():
            schema = self._rows("SELECT current_schema()")[0][0]
            if schema is None:
                raise StoreRefused(
                    f"{self.path}: no schema to create the tables in (its search_path names "
                    "none that exists); left as is: create the schema or give another --db"
                )
            tables = [
                row[0]
                for row in self._rows(
                    "SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n "
                    "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                    "AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY c.relname"
                )
            ]
            mark = (
                self._rows("SELECT application_id, schema_version FROM fetchheads_meta")
                if "fetchheads_meta" in tables
                else []
            )
        if mark and mark[0][0] == APPLICATION_ID:
            version = int(mark[0][1])
            if version > SCHEMA_VERSION:
                raise StoreRefused(
                    f"{self.path}: written by a newer fetchheads (schema version {version}; "
                    f"this one knows up to {SCHEMA_VERSION}); left as is: upgrade fetchheads"
                )
            return version
        if not tables:
            return 0
        listed = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise StoreRefused(
            f"{self.path}: not a fetchheads database (schema {schema} holds {listed}); "
            "left as is: give another --db"
        )

    def _migrate(self, version: int) -> None:
        """Bring the schema from ``version`` to ``SCHEMA_VERSION``. Creating the tables needs
        CREATE on the schema, changing them their owner: a user who may not is refused (the
        transaction leaves everything as it was), before any fetch that could not be recorded."""
        try:
            with self._write():
                # One process at a time; another may have migrated while this one waited.
                self._db.execute(f"SELECT pg_advisory_xact_lock({APPLICATION_ID}, 0)")
                version = self._check_identity()
                for script in MIGRATIONS[version:]:
                    self._db.execute(script.encode())  # several statements, no parameters
                self._db.execute(f"UPDATE fetchheads_meta SET schema_version = {SCHEMA_VERSION}")
        except StoreError as exc:
            if not self._denied(exc):
                raise
            raise self._not_migrated(version, exc.reason) from None

    def _not_migrated(self, version: int, why: str) -> StoreRefused:
        with self._translate("read"):
            user, schema, owner = self._rows(
                "SELECT quote_ident(current_user), quote_ident(current_schema()), "
                "(SELECT quote_ident(tableowner) FROM pg_tables "
                "WHERE schemaname = current_schema() AND tablename = 'runs')"
            )[0]
        if version == 0 or owner is None:
            return StoreRefused(
                f"{self.path}: cannot be written: user {user} may not create the tables in "
                f"schema {schema} ({why}); left as is: have its owner run GRANT CREATE ON "
                f"SCHEMA {schema} TO {user}, or run fetchheads --db on it once as a user who may"
            )
        return StoreRefused(
            f"{self.path}: cannot be written: its schema version {version} must be upgraded to "
            f"{SCHEMA_VERSION}, which only the owner of its tables ({owner}) may do ({why}); "
            f"left as is: run fetchheads --db on it once as {owner}"
        )

    def _check_privileges(self, purpose: str) -> None:
        """Refuse a user who lacks a table privilege ``purpose`` needs: without INSERT a fetch
        would run to its end and record nothing; told now, nothing is fetched in vain."""
        tables, privileges = zip(
            *[(table, p) for table, needed in PRIVILEGES[purpose].items() for p in needed],
            strict=True,
        )
        with self._translate("read"), self._read():
            user, schema = self._rows(
                "SELECT quote_ident(current_user), quote_ident(current_schema())"
            )[0]
            missing = self._rows(
                "SELECT t, p FROM unnest(?::text[], ?::text[]) WITH ORDINALITY AS w (t, p, n) "
                "WHERE NOT has_table_privilege(quote_ident(current_schema()) || '.' || t, p) "
                "ORDER BY n",
                (list(tables), list(privileges)),
            )
        if not missing:
            return
        lacking: dict[str, list[str]] = {}
        for table, privilege in missing:
            lacking.setdefault(table, []).append(privilege)
        prefix = "" if schema == "public" else f"{schema}."
        what = ", or ".join(f"{' or '.join(p)} {prefix}{table}" for table, p in lacking.items())
        grants = "; ".join(
            f"GRANT {', '.join(p)} ON {prefix}{table} TO {user}" for table, p in lacking.items()
        )
        raise StoreRefused(
            f"{self.path}: cannot be written: user {user} may not {what}, which "
            f"{PURPOSES[purpose]} needs; left as is: have the owner run {grants}"
        )

    # -- transactions --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        try:
            yield
        except self._psycopg.Error as exc:
            raise _error(self.path, doing, exc) from exc

    @contextlib.contextmanager
    def _read(self) -> Iterator[None]:
        if self._db.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
            yield
            return
        with self._db.transaction():
            yield

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        self._committing = False
        with self._translate("write"), self._db.transaction():
            yield
            self._committing = True  # what fails now may have been committed

    def _unanswered(self, exc: StoreError) -> bool:
        """Whether the write that failed with ``exc`` may have committed: its COMMIT was sent
        (or about to be), and the connection broke without the server's answer. An error the
        server sent (its SQLSTATE: shut down, terminated) says the transaction was rolled back."""
        answered = getattr(exc.__cause__, "sqlstate", None) is not None
        return self._committing and self._lost(exc) and not answered

    def _lost(self, exc: StoreError) -> bool:
        """Whether the connection is gone under ``exc``: libpq says so (psycopg's ``broken``),
        or psycopg's wait saw the socket hang up before libpq read what the server had said
        (``connection socket closed``: an OperationalError of the client's, without a SQLSTATE,
        libpq's status still OK). Such a connection is closed here, so that ``_again`` makes
        a new one, as it does for a broken one."""
        if self._db.broken:
            return True
        cause = exc.__cause__
        if (
            isinstance(cause, self._psycopg.OperationalError)
            and cause.sqlstate is None
            and not self._db.closed
        ):
            self._db.close()
            self._hung_up = True
        return self._hung_up

    def _wait_again(self) -> None:
        patience, self._patience = self._patience, None
        if patience is not None:
            self._settings["lock_timeout"] = patience
            with contextlib.suppress(StoreError):  # else a connection made again sets it
                self._set("lock_timeout", patience)

    # -- the primitives ``Store`` builds on -------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(_paramstyle(sql), params).fetchall()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._db.execute(_paramstyle(sql), params).rowcount

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._db.cursor().executemany(_paramstyle(sql), rows)

    def _insert_run(self, values: Sequence[Any]) -> int:
        marks = ", ".join("%s" for _ in values)
        query = f"INSERT INTO runs ({RUN_FIELDS}) VALUES ({marks}) RETURNING id"
        return int(self._db.execute(query.encode(), _clean(values)).fetchone()[0])  # type: ignore[index]

    def _insert_snapshots(self, rows: Sequence[Sequence[Any]]) -> None:
        with self._db.cursor().copy(f"COPY snapshots ({SNAPSHOT_FIELDS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(_clean(row))

    def _lock_keys(self, keys: Sequence[str]) -> None:
        self._db.execute(
            "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtextextended(k, 0) AS h "
            "FROM unnest(%s::text[]) AS k ORDER BY h) AS sorted",
            (list(keys),),
        )

    def _lock_imports(self) -> None:
        # Read committed: without it two copies both see a uid missing and one fails on the
        # unique index. (The two-key form: a space apart from _lock_keys' one-key locks.)
        self._db.execute(f"SELECT pg_advisory_xact_lock({APPLICATION_ID}, 1)")

    def _latest(self, wanted: Sequence[tuple[str, str]]) -> list[Snapshot | None]:
        # The second lateral looks back only for a failed https target without a certificate of
        # its own (store.wants_last_certificate); its condition on p alone gates it, so the other
        # keys cost nothing.
        rows = self._db.execute(
            "SELECT k.n, p.*, c.certificate FROM unnest(%s::text[], %s::timestamptz[]) "
            "WITH ORDINALITY AS k (key, until, n) CROSS JOIN LATERAL "
            f"(SELECT {self.PREVIOUS_COLUMNS}, {self.FINGERPRINT} AS fingerprint "
            "FROM snapshots AS s WHERE s.key = k.key AND s.fetched_at <= k.until "
            "ORDER BY s.fetched_at DESC, s.id LIMIT 1) AS p LEFT JOIN LATERAL "
            f"(SELECT {self.CERTIFICATE} AS certificate FROM snapshots AS s "
            "WHERE p.fingerprint IS NULL AND p.error_kind IS NOT NULL "
            "AND left(k.key, 8) = 'https://' AND s.key = k.key AND s.fetched_at <= k.until "
            f"AND {self.FINGERPRINT} IS NOT NULL "
            "ORDER BY s.fetched_at DESC, s.id LIMIT 1) AS c ON true",
            ([key for key, _ in wanted], [until for _, until in wanted]),
        ).fetchall()
        found: list[Snapshot | None] = [None] * len(wanted)
        for row in rows:
            found[row[0] - 1] = with_last_certificate(decode(row[1:-2]), row[-1])
        return found

    def _newest(self, keys: Sequence[str]) -> dict[str, Snapshot]:
        rows = self._db.execute(
            f"SELECT p.* FROM unnest(%s::text[]) AS k (key) CROSS JOIN LATERAL "
            f"(SELECT {self.AUDIT_COLUMNS} FROM snapshots AS s WHERE s.key = k.key "
            "ORDER BY s.fetched_at DESC, s.id DESC LIMIT 1) AS p",
            (list(keys),),
        ).fetchall()
        return {snapshot.key: snapshot for snapshot in map(decode, rows)}

    def _ts(self, expression: str) -> str:
        return _ts(expression)

    def _json(self, column: str) -> str:
        return f"{column}::text"

    # -- what a run writes, again after a lost connection -----------------------------------------

    def begin_run(
        self,
        version: str,
        options: dict[str, Any],
        *,
        started_at: str | None = None,
        uid: str | None = None,
    ) -> int:
        # The insert whose connection broke may have committed: each try looks for its uid.
        uid = uid or new_uid()
        return self._again(
            lambda: Store.begin_run(self, version, options, started_at=started_at, uid=uid)
        )

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
        # The run ends: a server it gave up on gets one more try, even when a slow try had put
        # the next one off (``_next_try``), so a run whose server is back by now does not stay
        # "running" (and be shown as interrupted) for want of it. That try is bounded by
        # ``LAST_TRY_TIMEOUT``: a server that still drops packets costs the run two seconds.
        if self._gave_up is not None and time.monotonic() < self._next_try:
            self._next_try = 0.0
            self._connect_timeout = min(CONNECT_TIMEOUT, LAST_TRY_TIMEOUT)
        try:
            self._again(
                lambda: Store.finish_run(
                    self,
                    run_id,
                    targets=targets,
                    ok=ok,
                    changed=changed,
                    warnings=warnings,
                    interrupted=interrupted,
                )
            )
        finally:
            self._connect_timeout = CONNECT_TIMEOUT

    def has_history(self) -> bool:
        return self._again(lambda: Store.has_history(self))

    def previous(self, snapshots: Sequence[Snapshot]) -> list[Snapshot | None]:
        return self._again(lambda: Store.previous(self, snapshots))

    def record(
        self, run_id: int, snapshots: Sequence[Snapshot], *, previous: bool = False
    ) -> list[Snapshot | None]:
        """One transaction, tried again when the server aborted it to break a deadlock, and on
        a new connection when the connection broke. The rows keep their uids from try to try:
        a try after a broken one first looks for them, since the broken one may have committed
        (its COMMIT sent, the answer lost); if it did, its predecessors are the ones it read
        before committing. No row is lost, none is stored twice (the uids are unique too)."""
        rows = [encode(run_id, snapshot) for snapshot in snapshots]
        uids = [row[1] for row in rows]
        found: list[Snapshot | None] = []
        tries = 0
        unsure = False  # a try's COMMIT was sent, and no later try has looked since

        def write() -> list[Snapshot | None]:
            nonlocal tries, unsure
            tries += 1
            if tries > 1:
                with self._translate("read"):
                    stored = self._rows(
                        "SELECT count(*) FROM snapshots WHERE uid = ANY(?::text[])", (uids,)
                    )[0][0]
                if stored:  # all of them: one transaction
                    return found
                unsure = False
            for attempt in range(RETRIES):
                try:
                    return self._record(rows, snapshots, previous=previous, found=found)
                except StoreError as exc:
                    unsure = unsure or self._unanswered(exc)
                    deadlock = isinstance(exc.__cause__, self._psycopg.errors.DeadlockDetected)
                    if not deadlock or attempt == RETRIES - 1:
                        raise
            raise AssertionError("unreachable")

        try:
            return self._again(write)
        except StoreError:
            if unsure and uids:
                self._unsure.append((uids[0], len(uids)))
                self.in_doubt += len(uids)
            raise


def _paramstyle(sql: str) -> bytes:
    """``store``'s ``?`` parameters as psycopg's ``%s`` (its SQL has no other ``?`` or ``%``)."""
    return sql.replace("%", "%%").replace("?", "%s").encode()


def _clean(row: Sequence[Any]) -> list[Any]:
    """PostgreSQL text cannot hold NUL, which an input line that was not a target may carry."""
    return [v.replace("\x00", "\ufffd") if isinstance(v, str) and "\x00" in v else v for v in row]


def _connect(driver: Any, location: str, timeout: int | None = None) -> psycopg.Connection[Any]:
    """A new connection to ``location`` (``driver``: psycopg, loaded), as every one is made:
    autocommit (each transaction is opened explicitly), bounded (``CONNECT_TIMEOUT`` unless
    ``timeout``), named, with ``KEEPALIVES``."""
    connection: psycopg.Connection[Any] = driver.connect(
        location,
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT if timeout is None else timeout,
        application_name="fetchheads",
        **KEEPALIVES,
    )
    return connection


def _check_url(psycopg: Any, location: str, path: str) -> None:
    """Refuse (``StoreRefused``, with the URL as ``path`` shows it) a URL that libpq would not
    read as written, before it is used: libpq's errors quote the part they stumbled on (a
    password, say), and an ``@`` typed in a password would make the rest of it a host name to
    look up (``has_stray_at``) or a database name to show."""
    if has_stray_at(location):
        raise StoreRefused(f"{path}: {UNREADABLE_URL}")
    try:
        psycopg.conninfo.conninfo_to_dict(location)
    except (psycopg.Error, UnicodeEncodeError):  # the second: a byte that is not UTF-8
        raise StoreRefused(f"{path}: {UNREADABLE_URL}") from None


_PASSWORD_VALUE = re.compile(
    r"""(\b(?:ssl)?password\s*=\s*|['"](?:ssl)?password['"]\s*:\s*)"""
    r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&,;'"}]*)""",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)[^\s@]*@")
"""Where a password could stand in a message: a conninfo's ``password=VALUE`` (quoted or not), a
URL's ``?password=VALUE`` or ``user:VALUE@``, a dictionary's ``'password': VALUE``. libpq never
quotes a password it has read; this is for a library that would echo its connection string. The
password itself is not searched for: a short one (``ion``) would turn ``connection`` into
``connect***``, and where the ``***`` fall would tell it."""


def _one_line(text: str) -> str:
    text = _URL_PASSWORD.sub(rf"\1{MASK}@", _PASSWORD_VALUE.sub(rf"\1{MASK}", text))
    return "; ".join(" ".join(part.split()) for part in text.splitlines() if part.strip())


_PREFIX = re.compile(r"^connection failed: ")


def _error(path: str, doing: str, exc: Exception) -> StoreError:
    # The server's own message is its first line; the rest (LINE 1: and the statement, a caret
    # under it, DETAIL, HINT) quotes our SQL. libpq's own messages (connecting) are kept whole.
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary if isinstance(primary, str) and primary.strip() else str(exc)
    reason = _PREFIX.sub("", _one_line(text)) or type(exc).__name__
    return StoreError(f"{path}: cannot {doing}: {reason}", reason)
