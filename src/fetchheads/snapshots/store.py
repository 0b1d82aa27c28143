"""The snapshot database (docs/snapshots.md "The database"): what every backend offers, and the
part of it they share.

Two backends keep the same tables with the same meaning: SQLite (``store_sqlite``, a file, the
embedded default) and PostgreSQL (``store_postgres``, ``--db postgresql://...``, the shared store
of a fleet; psycopg 3 is an optional extra, imported only by that module)::

    runs       one row per invocation: uid, started_at, finished_at, version, options (JSON),
               counts, state ('running', 'finished', 'interrupted'), host, pid, boot_id
    snapshots  one row per fetched target: id, uid, run_id, key, target, url, fetched_at, ok,
               status, reason, http_version, headers (JSON [[name, value], ...]; NULL when no
               head came), error_kind, error_message, address, timing (JSON), tls (JSON),
               redirects (JSON), cert_threshold (the --warn-days step reached, see changes.py),
               audit (JSON, --audit: rules_version, graded, score, grade, each test's result;
               NULL when the run did not audit or there was no head to grade)
    headers    (view) one row per header line: snapshot_id, key, target, fetched_at, name, value
    pruned_keys  the keys prune has deleted snapshots of: their oldest kept is not their first

``uid`` (32 hex digits, random) names a run or a snapshot in every database it is copied to:
``copy_history`` maps runs to new ids and skips the snapshots already there, so a copy run twice
adds nothing, and several SQLite files (whose integer ids overlap) merge into one.

Writes of one key are serialized, and ``record(previous=True)`` reads each key's latest stored
snapshot in the transaction that inserts the new one: SQLite has one writer at a time, PostgreSQL
takes a lock per key for the batch's transaction. So when two overlapping runs fetch the same
target, the one that records it first compares with the history before both, and the other with
the first one's snapshot: a change is reported once, by the run that recorded it first.

Every backend error is a ``StoreError`` (cannot be used now) or ``StoreRefused`` (can never be a
fetchheads database; left untouched). ``Store.path`` names the database in messages: a file path,
or a URL with its password shown as ``***``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import uuid
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from fetchheads.credentials import MASK
from fetchheads.models import format_timestamp, utc_now
from fetchheads.snapshots.changes import Snapshot, known_certificate, wants_last_certificate
from fetchheads.snapshots.renewals import CERTIFICATE_KEYS
from fetchheads.snapshots.runs import FINISHED, INTERRUPTED, RUNNING, run_state, this_machine
from fetchheads.targets import undecodable_replaced

SCHEMA_VERSION = 5
"""Both backends number their migrations alike: version N means the same tables everywhere."""
APPLICATION_ID = 0x46484431  # "FHD1": marks a database as fetchheads'
PRUNE_BATCH = 2000
"""Rows deleted per transaction, so ``prune`` never holds a lock long beside a writing run."""
CLOCK_SLACK = 60
"""Seconds a stored fetch may be stamped after now and still count as a later fetch (the clocks
of a fleet's machines disagree a little): one further ahead came from a clock that was wrong."""
COPY_BATCH = 2000
"""Snapshots read and written per transaction by ``copy_history``."""
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
RECORD, PRUNE, COPY = "record", "prune", "copy"
"""What a writer opens a database for (``Store.open(purpose=...)``): a fetch records a run, prune
deletes, db copy adds runs, snapshots and pruned keys. PostgreSQL checks, before anything is
fetched or changed, that the user holds the table privileges that purpose needs."""

SNAPSHOT_FIELDS = (
    "run_id, uid, key, target, url, fetched_at, ok, status, reason, http_version, headers, "
    "error_kind, error_message, address, timing, tls, redirects, cert_threshold, audit"
)
"""The columns a snapshot row is written with, in ``encode``'s order."""
RUN_FIELDS = (
    "uid, started_at, finished_at, version, options, targets, ok, failed, changed, warnings, "
    "state, host, pid, boot_id"
)
UNREADABLE_URL = (
    "not a URL libpq can read; write @ as %40 wherever it stands, and in a user name or password "
    ": as %3A, / as %2F and % as %25"
)
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def is_postgres(location: str) -> bool:
    return location.startswith(POSTGRES_SCHEMES)


def not_a_file(path: str) -> str | None:
    """Why ``path`` names no SQLite file, or None. SQLite takes ``:memory:`` and ``""`` for a
    database gone when the run ends (a history of one run: --changes would never show a change),
    and ``file:`` for a URI whatever the caller asks, so the file it opens would not be the one
    fetchheads checks and creates. A file of such a name is ``./:memory:``, ``./file:...``."""
    if path == ":memory:":
        return (
            "':memory:' is SQLite's in-memory database, gone when the run ends: a snapshot "
            "database must be a file (give its path; a file of that name: ./:memory:)"
        )
    if not path:
        return "an empty path: a snapshot database must be a file (give its path)"
    if path.startswith("file:"):
        return (
            f"'{path}' is an SQLite URI: a snapshot database must be a file named by its path "
            f"(a file of that name: ./{path})"
        )
    return None


def shown(location: str) -> str:
    """``location`` as a message may name it: a URL's password (before the host or as the
    ``password`` parameter) is ``***``. The user information is read as libpq reads it: up to the
    first ``@`` (``?`` and ``#`` may stand in a password). A URL with another ``@``
    (``has_stray_at``: refused) shows nothing before its last ``@`` but a user name. A file
    name's byte that is not UTF-8 is shown as U+FFFD, so that the message can be written."""
    if not is_postgres(location):
        return undecodable_replaced(location)
    scheme, _, rest = location.partition("://")
    stray = has_stray_at(location)
    at = rest.rfind("@") if stray else rest.find("@")
    if at == -1:
        return f"{scheme}://{_masked_parameters(rest)}"
    user, colon, _password = rest[:at].partition(":")
    if not stray:
        userinfo = f"{user}:{MASK}" if colon else user  # a user name alone is no secret to libpq
    elif _has_secret_parameter(rest[:at]):
        return f"{scheme}://{MASK}"  # a ``password=`` value may run on past that ``@``
    else:
        userinfo = f"{user}:{MASK}" if colon and not re.search(r"[/?#@]", user) else MASK
    return f"{scheme}://{userinfo}@{_masked_parameters(rest[at + 1 :])}"


def _masked_parameters(text: str) -> str:
    """``text`` (a URL after its user information) with the value of every secret parameter
    ``***``. Read as libpq reads them: the names percent-decoded (``%70assword``), each value up
    to the next ``&`` (a ``#`` does not end it)."""
    head, question, query = text.partition("?")
    if not question:
        return text
    items = query.split("&")
    for n, item in enumerate(items):
        name, equals, _value = item.partition("=")
        if equals and _secret_name(name):
            items[n] = f"{name}={MASK}"
    return f"{head}?{'&'.join(items)}"


def _has_secret_parameter(text: str) -> bool:
    _, question, query = text.partition("?")
    return bool(question) and any(_secret_name(item.partition("=")[0]) for item in query.split("&"))


def _secret_name(name: str) -> bool:
    from urllib.parse import unquote

    return unquote(name).lower() in _SECRET_PARAMETERS


def has_stray_at(location: str) -> bool:
    """Whether a ``postgresql://`` URL holds an ``@`` that libpq does not read as the end of its
    user information: a second one, or one after a ``/``, ``?`` or ``#``. libpq ends the user
    information at the first ``@``, so an ``@`` typed in a password would make the rest of that
    password the host (looked up as a host name, and shown) or the database name
    (``user:pw@127.0.0.2/x@host/db`` connects to 127.0.0.2); and ``user:pa/ss@host`` makes
    ``user`` the host. Such a URL is refused (``UNREADABLE_URL``) before anything is looked up:
    an ``@`` anywhere else (a database name, a parameter) is written ``%40``, which libpq reads
    back as ``@``."""
    rest = location.partition("://")[2]
    at = rest.find("@")
    # libpq does not end the user information at ? or #, but a URL reader would (and
    # 'host:1?password=x@other' gives libpq the user '127.0.0.1' and that password for 'other').
    return at != -1 and (re.search(r"[/?#]", rest[:at]) is not None or "@" in rest[at + 1 :])


def new_uid() -> str:
    return uuid.uuid4().hex


def dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def new_run(
    version: str, options: dict[str, Any], *, started_at: str | None = None, uid: str | None = None
) -> tuple[Any, ...]:
    """A new ``runs`` row (``RUN_FIELDS``) of this process, running, its uid chosen (unless
    given)."""
    host, boot_id = this_machine()
    return (
        uid or new_uid(),
        started_at or format_timestamp(utc_now()),
        None,
        version,
        dumps(options),
        0,
        0,
        0,
        None,
        None,
        RUNNING,
        host,
        os.getpid(),
        boot_id,
    )


def encode(run_id: int, s: Snapshot, uid: str | None = None) -> tuple[Any, ...]:
    """A snapshot as the row ``SNAPSHOT_FIELDS`` names (JSON as text, ``ok`` a bool)."""
    return (
        run_id,
        uid or new_uid(),
        s.key,
        s.target,
        s.url,
        s.fetched_at,
        bool(s.ok),
        s.status,
        s.reason,
        s.http_version,
        dumps([list(pair) for pair in s.headers]) if s.has_head else None,
        s.error_kind,
        s.error_message,
        s.address,
        dumps(s.timing or {}),
        None if s.tls is None else dumps(s.tls),
        dumps(list(s.redirects)),
        s.cert_threshold,
        None if s.audit is None else dumps(s.audit),
    )


def _loads(text: str) -> Any:
    """``json.loads``, without its cost for the empty object and list most rows hold (and that
    ``AUDIT_COLUMNS`` and ``PREVIOUS_COLUMNS`` put in place of the columns they skip)."""
    if text == "{}":
        return {}
    if text == "[]":
        return []
    return json.loads(text)


def decode(row: Sequence[Any]) -> Snapshot:
    """A row of ``Store.SNAPSHOT_COLUMNS`` (id, run_id, then the snapshot) as a Snapshot."""
    (id_, run_id, key, target, url, fetched_at, ok, status, reason, http_version) = row[:10]
    headers, error_kind, error_message, address, timing, tls, redirects, threshold = row[10:18]
    audit = row[18] if len(row) > 18 else None
    pairs = json.loads(headers) if headers is not None else ()
    return Snapshot(
        key=key,
        target=target,
        url=url,
        fetched_at=fetched_at,
        ok=bool(ok),
        status=status,
        reason=reason,
        http_version=http_version,
        headers=tuple([(str(name), str(value)) for name, value in pairs]),
        has_head=headers is not None,
        error_kind=error_kind,
        error_message=error_message,
        address=address,
        timing=_loads(timing),
        tls=None if tls is None else json.loads(tls),
        redirects=tuple(_loads(redirects)),
        cert_threshold=threshold,
        audit=None if audit is None else json.loads(audit),
        id=id_,
        run_id=run_id,
    )


def with_last_certificate(snapshot: Snapshot, certificate: str | None) -> Snapshot:
    """``snapshot`` with the certificate (``Store.CERTIFICATE`` JSON) last seen before it."""
    if certificate is None:
        return snapshot
    return dataclasses.replace(snapshot, last_certificate=json.loads(certificate))


class Store:
    """An open, checked, migrated snapshot database. Use from one thread at a time.

    ``Store.open`` picks the backend from the location. The queries here are shared: they are
    written with ``?`` parameters and portable SQL, and each backend provides the primitives
    (``_rows``, ``_run``, ``_many``, transactions, inserts) and the few expressions that differ
    (``_ts``: a timestamp column as the text snapshots sort by)."""

    SNAPSHOT_COLUMNS = (
        "id, run_id, key, target, url, fetched_at, ok, status, reason, http_version, headers, "
        "error_kind, error_message, address, timing, tls, redirects, cert_threshold, audit"
    )
    CERTIFICATE = (
        "CASE WHEN tls IS NULL THEN NULL ELSE json_object("
        + ", ".join(f"'{key}', json_extract(tls, '$.{key}')" for key in CERTIFICATE_KEYS)
        + ") END"
    )
    """The ``tls`` keys a certificate change is told from, as JSON text (NULL: no TLS facts)."""
    FINGERPRINT = "json_extract(tls, '$.fingerprint_sha256')"
    PREVIOUS_COLUMNS = (
        "id, run_id, key, target, url, fetched_at, ok, status, reason, http_version, headers, "
        f"error_kind, error_message, NULL, '{{}}', {CERTIFICATE}, '[]', cert_threshold, audit"
    )
    """What --changes compares, and no more: decoding every JSON column of every predecessor
    would double the cost of a --changes run (its ``tls`` holds only ``CERTIFICATE_KEYS``)."""

    VERIFIED = (
        "CASE WHEN tls IS NULL OR tls = '{}' THEN NULL "
        "WHEN coalesce(json_type(tls, '$.verified'), 'true') = 'true' "
        """THEN '{"verified":true}' ELSE '{"verified":false}' END"""
    )
    """The ``tls`` column as ``graded.tls_verified`` reads it, and no more: none (NULL or no
    facts), verified (``true``, or facts from before ``verified`` was recorded), or not."""
    AUDIT_COLUMNS = (
        "id, run_id, key, target, url, fetched_at, ok, status, NULL, NULL, headers, "
        f"error_kind, error_message, NULL, '{{}}', {VERIFIED}, redirects, NULL, NULL"
    )
    """What ``fetchheads audit --db`` grades and shows, and no more: decoding the timing, the
    certificate facts and the stored audit of every row was a third of its time."""

    path: str
    in_doubt = 0
    """Snapshots of failed ``record`` calls that may have been stored all the same: their COMMIT
    was sent, its answer was lost, and no connection has been made since to look (PostgreSQL)."""
    found_after_all = 0
    """Snapshots of such calls that were found stored, on a connection made later."""

    @classmethod
    def open(
        cls,
        location: str,
        *,
        readonly: bool = False,
        busy_timeout: float | None = None,
        purpose: str = RECORD,
    ) -> Store:
        """Open (creating it if missing, unless ``readonly``) and migrate the database at
        ``location``: a ``postgresql://`` URL, or an SQLite file path. Raises ``StoreRefused``
        for one that cannot be a fetchheads database (left untouched) or that this user can
        never write for ``purpose`` (unless ``readonly``), ``StoreError`` for one that cannot
        be used now."""
        if is_postgres(location):
            from fetchheads.snapshots.store_postgres import PostgresStore

            return PostgresStore.open(
                location, readonly=readonly, busy_timeout=busy_timeout, purpose=purpose
            )
        from fetchheads.snapshots.store_sqlite import SqliteStore

        return SqliteStore.open(location, readonly=readonly, busy_timeout=busy_timeout)

    # -- what a backend provides ---------------------------------------------------------------

    def close(self) -> None:
        raise NotImplementedError

    def stop_reconnecting(self) -> None:
        """The run was stopped (Ctrl-C, SIGTERM): a write that is waiting to reach a server that
        went away (PostgreSQL, ``RECONNECT_SECONDS``) or for another process's lock (SQLite, the
        busy timeout) tries once more and gives up. Safe to call from any thread."""

    def stop_waiting(self) -> None:
        """Until a batch (``record``) goes through again, a write that meets another process's
        lock fails at once instead of waiting the busy timeout; then the timeout is as before.
        The recorder calls it after a write failed: a run whose database stays locked would
        otherwise wait the whole timeout at each of its writes (the run row, every batch, the
        close: 90 s for three targets), where one timeout says enough; once the database takes
        batches again, a lock held for a moment by another process is waited for, not a batch
        lost. (The run row is another table: its write going through says nothing of theirs.)
        Raises StoreError."""
        raise NotImplementedError

    def _wait_again(self) -> None:
        """A batch went through: undo ``stop_waiting``, if it was called."""
        raise NotImplementedError

    def _translate(self, doing: str) -> contextlib.AbstractContextManager[None]:
        """Turns the driver's errors into StoreError naming the database."""
        raise NotImplementedError

    def _read(self) -> contextlib.AbstractContextManager[None]:
        """One snapshot for several reads; nested inside ``_write``, the write's own."""
        raise NotImplementedError

    def _write(self) -> contextlib.AbstractContextManager[None]:
        """One short write transaction (translating errors)."""
        raise NotImplementedError

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute; the number of rows changed."""
        raise NotImplementedError

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _insert_run(self, values: Sequence[Any]) -> int:
        """Insert a ``runs`` row (``RUN_FIELDS``); its id."""
        raise NotImplementedError

    def _insert_snapshots(self, rows: Sequence[Sequence[Any]]) -> None:
        """Insert rows of ``SNAPSHOT_FIELDS``, inside a write transaction."""
        raise NotImplementedError

    def _lock_keys(self, keys: Sequence[str]) -> None:
        """Inside a write: make other writers of these keys wait until it ends."""

    def _lock_imports(self) -> None:
        """Inside a write: make another ``db copy`` into this database wait until it ends, so
        two never both find a uid missing and both insert it. A backend whose writes are one at
        a time already (SQLite's BEGIN IMMEDIATE) needs nothing more."""

    def _latest(self, wanted: Sequence[tuple[str, str]]) -> list[Snapshot | None]:
        """For each (key, time) of ``wanted``, the latest stored snapshot of the key fetched at
        or before that time (PREVIOUS_COLUMNS), or None. Of fetches stamped alike, the first
        recorded: the later ones were old news (``_predecessors``), and what came after them
        follows the one that reported."""
        found: list[Snapshot | None] = []
        for key, until in wanted:
            rows = self._rows(
                f"SELECT {self.PREVIOUS_COLUMNS} FROM snapshots WHERE key = ? "
                "AND fetched_at <= ? ORDER BY fetched_at DESC, id LIMIT 1",
                (key, until),
            )
            snapshot = decode(rows[0]) if rows else None
            if snapshot is not None and wants_last_certificate(snapshot):
                last = self._rows(
                    f"SELECT {self.CERTIFICATE} FROM snapshots WHERE key = ? AND "
                    f"fetched_at <= ? AND {self.FINGERPRINT} IS NOT NULL "
                    "ORDER BY fetched_at DESC, id LIMIT 1",
                    (key, until),
                )
                if last:
                    snapshot = with_last_certificate(snapshot, last[0][0])
            found.append(snapshot)
        return found

    def _ts(self, expression: str) -> str:
        """SQL for a timestamp column (or aggregate) as ``format_timestamp`` text."""
        return expression

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs and snapshots --------------------------------------------------------------------

    def begin_run(
        self,
        version: str,
        options: dict[str, Any],
        *,
        started_at: str | None = None,
        uid: str | None = None,
    ) -> int:
        """The id of a new ``runs`` row. Given its ``uid``, a row that a failed call may have
        stored all the same (its COMMIT sent, the answer lost) is found and not written twice:
        a run that tries again with the same uid has one row."""
        with self._write():
            if uid is not None:
                done = self._rows("SELECT id FROM runs WHERE uid = ?", (uid,))
                if done:
                    return int(done[0][0])
            return self._insert_run(new_run(version, options, started_at=started_at, uid=uid))

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
            self._run(
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
            return bool(self._rows("SELECT EXISTS (SELECT 1 FROM snapshots)")[0][0])

    def has_history(self) -> bool:
        """Whether a run that has ended (finished, or interrupted) left snapshots: what
        ``--changes`` compares with. A fleet's first shards, all running at once into a new
        database, see none of each other's and all record a silent baseline. An interrupted
        run counts: a cron job that is always cut short (a timeout around it) must still report
        changes, not record a silent baseline for ever."""
        query = (
            "SELECT EXISTS (SELECT 1 FROM runs WHERE finished_at IS NOT NULL "
            "AND EXISTS (SELECT 1 FROM snapshots WHERE run_id = runs.id))"
        )
        with self._translate("read"):
            return bool(self._rows(query)[0][0])

    def record(
        self, run_id: int, snapshots: Sequence[Snapshot], *, previous: bool = False
    ) -> list[Snapshot | None]:
        """Insert ``snapshots`` in one transaction. With ``previous``, also return each one's
        predecessor, read in the same transaction with the key locked (see the module): the
        latest snapshot of its key fetched at or before it, stored or earlier in the batch.

        In the order of fetching, not of recording: when runs overlap (a slow cron run and the
        next), a fetch can be recorded after a later fetch of the same target, which compared
        with what came before it and reported any change. The late one is old news: it is its
        own predecessor (nothing to report). Compared with the later fetch instead, it would
        report that change again, backwards (``B -> A``); compared with what came before it,
        a change both saw would be reported twice."""
        rows = [encode(run_id, snapshot) for snapshot in snapshots]
        return self._record(rows, snapshots, previous=previous, found=[])

    def _record(
        self,
        rows: Sequence[Sequence[Any]],
        snapshots: Sequence[Snapshot],
        *,
        previous: bool,
        found: list[Snapshot | None],
    ) -> list[Snapshot | None]:
        """``record``'s transaction, given the rows (their uids chosen). ``found`` is filled
        with the predecessors before the commit: a backend whose connection broke while
        committing keeps what that transaction read (``store_postgres``)."""
        with self._write():
            if previous:
                keys = sorted({snapshot.key for snapshot in snapshots})
                self._lock_keys(keys)
                found[:] = self._predecessors(snapshots)
            self._insert_snapshots(rows)
        self._wait_again()
        return found

    def previous(self, snapshots: Sequence[Snapshot]) -> list[Snapshot | None]:
        """What ``record`` would give as each one's predecessor, read without a write: what
        ``--changes`` compares with when the new snapshots cannot be written."""
        with self._translate("read"), self._read():
            return self._predecessors(snapshots)

    def _predecessors(self, snapshots: Sequence[Snapshot]) -> list[Snapshot | None]:
        found: list[Snapshot | None] = [None] * len(snapshots)
        wanted = sorted({(snapshot.key, snapshot.fetched_at) for snapshot in snapshots})
        stored = dict(zip(wanted, self._latest(wanted), strict=True))
        # A stored fetch stamped later than now (a machine whose clock was ahead) makes no one
        # old news: it would silence its target until the clock caught up.
        horizon = format_timestamp(utc_now() + dt.timedelta(seconds=CLOCK_SLACK))
        newest = self._newest_fetches(sorted({key for key, _ in wanted}), horizon)
        in_batch: dict[str, Snapshot] = {}
        for index in sorted(range(len(snapshots)), key=lambda i: snapshots[i].fetched_at):
            snapshot = snapshots[index]
            key = snapshot.key
            if newest.get(key, "") >= snapshot.fetched_at:
                found[index] = snapshot  # a fetch as late or later is stored: old news
                continue
            before = stored[(key, snapshot.fetched_at)]
            earlier = in_batch.get(key)  # the same target fetched earlier in this batch
            if earlier is not None and (before is None or earlier.fetched_at >= before.fetched_at):
                before = earlier
            found[index] = before
            if before is not None and wants_last_certificate(snapshot):
                last = known_certificate(before)
                snapshot = dataclasses.replace(snapshot, last_certificate=last)
            in_batch[key] = snapshot
        return found

    def _newest_fetches(self, keys: Sequence[str], horizon: str) -> dict[str, str]:
        """When each of ``keys`` that has a snapshot was last fetched, as stored, not counting
        fetches stamped after ``horizon``."""
        found: dict[str, str] = {}
        for start in range(0, len(keys), PRUNE_BATCH):
            part = keys[start : start + PRUNE_BATCH]
            marks = ", ".join("?" for _ in part)
            rows = self._rows(
                f"SELECT key, {self._ts('max(fetched_at)')} FROM snapshots "
                f"WHERE key IN ({marks}) AND fetched_at <= ? GROUP BY key",
                [*part, horizon],
            )
            found.update((key, newest) for key, newest in rows)
        return found

    def newest(
        self, keys: Sequence[str] | None = None, *, batch: int = COPY_BATCH
    ) -> Iterator[list[Snapshot]]:
        """The newest snapshot of every key (or of ``keys``), in key order, ``batch`` keys at a
        time: what ``fetchheads audit --db`` grades, each with only ``AUDIT_COLUMNS`` (no
        timing, address, stored audit or certificate facts but ``verified``). Each batch is one
        read."""
        if keys is not None:
            wanted = sorted(set(keys))
            for start in range(0, len(wanted), batch):
                with self._translate("read"), self._read():
                    latest = self._newest(wanted[start : start + batch])
                yield [latest[key] for key in wanted[start : start + batch] if key in latest]
            return
        after = ""
        while True:
            with self._translate("read"), self._read():
                page = [
                    row[0]
                    for row in self._rows(
                        "SELECT DISTINCT key FROM snapshots WHERE key > ? ORDER BY key LIMIT ?",
                        (after, batch),
                    )
                ]
                if not page:
                    return
                latest = self._newest(page)
            yield [latest[key] for key in page if key in latest]
            after = page[-1]

    def _newest(self, keys: Sequence[str]) -> dict[str, Snapshot]:
        """The latest snapshot of each of ``keys`` that has one, ``AUDIT_COLUMNS`` only, in one
        query."""
        raise NotImplementedError

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
        query = f"SELECT {self.SNAPSHOT_COLUMNS} FROM snapshots WHERE key IN ({marks})"
        if until is not None:
            query += " AND fetched_at <= ?"
            params.append(until)
        order = "ASC" if oldest_first else "DESC"
        query += f" ORDER BY fetched_at {order}, id {order}"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self._translate("read"), self._read():
            found = [decode(row) for row in self._rows(query, params)]
            states = self.run_states({s.run_id for s in found if s.run_id is not None})
        return [dataclasses.replace(s, run_state=states.get(s.run_id or 0)) for s in found]

    def run_states(self, run_ids: Collection[int]) -> dict[int, str]:
        """Each run's state: running, finished or interrupted (``runs.run_state``)."""
        if not run_ids:
            return {}
        marks = ", ".join("?" for _ in run_ids)
        query = (
            f"SELECT id, state, {self._ts('finished_at')}, host, boot_id, pid, "
            f"{self._ts('started_at')}, (SELECT {self._ts('max(fetched_at)')} FROM snapshots "
            f"WHERE run_id = runs.id) FROM runs WHERE id IN ({marks})"
        )
        with self._translate("read"):
            rows = self._rows(query, list(run_ids))
        return {row[0]: run_state(*row[1:]) for row in rows}

    def was_pruned(self, keys: Sequence[str]) -> bool:
        """Whether prune has deleted snapshots of any of ``keys``."""
        marks = ", ".join("?" for _ in keys)
        query = f"SELECT EXISTS (SELECT 1 FROM pruned_keys WHERE key IN ({marks}))"
        with self._translate("read"):
            return bool(self._rows(query, list(keys))[0][0])

    def keys_at(self, host: str, limit: int = 100) -> list[str]:
        """The stored keys of ``host`` under any scheme and port, sorted (at most ``limit``).
        Range scans on the key index (byte order), one per scheme and separator (``/``, ``:``).
        """
        found: list[str] = []
        with self._translate("read"), self._read():
            for scheme in ("http", "https"):
                for separator in "/:":
                    low = f"{scheme}://{host}{separator}"
                    high = low[:-1] + chr(ord(separator) + 1)
                    found.extend(
                        row[0]
                        for row in self._rows(
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
            try:
                cutoff = (now or utc_now()) - dt.timedelta(days=keep_days)
            except OverflowError:  # further back than year 1: no snapshot is that old
                cutoff = None
            if cutoff is not None:
                conditions.append("fetched_at < ?")
                params.append(format_timestamp(cutoff))
        if keep is not None:
            conditions.append("rank > ?")
            params.append(keep)
        if not conditions and keep_days is None:
            return 0, 0
        doomed: list[int] = []
        if conditions:  # none left: --keep-days so long that no snapshot is that old
            select = (
                "SELECT id FROM (SELECT id, fetched_at, row_number() OVER "
                "(PARTITION BY key ORDER BY fetched_at DESC, id DESC) AS rank FROM snapshots) "
                f"AS ranked WHERE rank > 1 AND ({' OR '.join(conditions)})"
            )
            with self._translate("read"):
                doomed = [row[0] for row in self._rows(select, params)]
        deleted = 0  # not len(doomed): another prune at once may delete some of them first
        for start in range(0, len(doomed), PRUNE_BATCH):
            batch = doomed[start : start + PRUNE_BATCH]
            marks = ", ".join("?" for _ in batch)
            with self._write():
                self._run(
                    "INSERT INTO pruned_keys (key) SELECT DISTINCT key FROM snapshots "
                    f"WHERE id IN ({marks}) ON CONFLICT (key) DO NOTHING",
                    batch,
                )
                deleted += self._run(f"DELETE FROM snapshots WHERE id IN ({marks})", batch)
        with self._translate("read"):
            unfinished = [
                row[0]
                for row in self._rows(
                    "SELECT id FROM runs WHERE finished_at IS NULL "
                    "AND (state IS NULL OR state = ?)",
                    (RUNNING,),
                )
            ]
        gone = [i for i, state in self.run_states(unfinished).items() if state == INTERRUPTED]
        with self._write():
            self._many(
                "UPDATE runs SET state = ? WHERE id = ? AND finished_at IS NULL",
                [(INTERRUPTED, run_id) for run_id in gone],
            )
            runs = self._run(
                "DELETE FROM runs WHERE (finished_at IS NOT NULL OR state = ?) "
                "AND NOT EXISTS (SELECT 1 FROM snapshots WHERE run_id = runs.id)",
                (INTERRUPTED,),
            )
        return deleted, runs

    # -- copying between databases -------------------------------------------------------------

    def export_runs(self) -> dict[int, tuple[Any, ...]]:
        """Every run: id -> its row of ``RUN_FIELDS`` (times and JSON as text)."""
        query = (
            f"SELECT id, uid, {self._ts('started_at')}, {self._ts('finished_at')}, version, "
            f"{self._json('options')}, targets, ok, failed, changed, warnings, state, host, pid, "
            "boot_id FROM runs ORDER BY id"
        )
        with self._translate("read"):
            return {row[0]: tuple(row[1:]) for row in self._rows(query)}

    def export_snapshots(self, after: int, limit: int) -> list[tuple[int, tuple[Any, ...]]]:
        """Up to ``limit`` snapshots with an id above ``after``, in id order: (id, its row of
        ``SNAPSHOT_FIELDS``)."""
        j = self._json
        query = (
            f"SELECT id, run_id, uid, key, target, url, {self._ts('fetched_at')}, ok, status, "
            f"reason, http_version, {j('headers')}, error_kind, error_message, address, "
            f"{j('timing')}, {j('tls')}, {j('redirects')}, cert_threshold, {j('audit')} "
            "FROM snapshots WHERE id > ? ORDER BY id LIMIT ?"
        )
        with self._translate("read"):
            rows = self._rows(query, (after, limit))
        return [
            (row[0], (row[1], row[2], *row[3:6], row[6], bool(row[7]), *row[8:])) for row in rows
        ]

    def import_runs(self, runs: dict[int, tuple[Any, ...]]) -> tuple[dict[int, int], int]:
        """Add the runs not here yet (by uid): (their ids elsewhere -> ids here, runs added).

        A run copied while it was still going is here unfinished: once it has ended where it
        came from, its end (when, its counts, its state) is copied over it, so a copy made on
        a schedule does not keep a run 'running' or 'interrupted' for ever."""
        mapping: dict[int, int] = {}
        added = 0
        with self._write():
            self._lock_imports()
            here: dict[str, tuple[int, bool]] = {
                uid: (run_id, finished is not None)
                for uid, run_id, finished in self._rows("SELECT uid, id, finished_at FROM runs")
            }
            for source_id, values in runs.items():
                uid, finished = values[0], values[2] is not None
                if uid not in here:
                    here[uid] = (self._insert_run(values), finished)
                    added += 1
                elif finished and not here[uid][1]:
                    self._run(
                        "UPDATE runs SET finished_at = ?, targets = ?, ok = ?, failed = ?, "
                        "changed = ?, warnings = ?, state = ? WHERE id = ?",
                        (*values[2:3], *values[5:11], here[uid][0]),
                    )
                    here[uid] = (here[uid][0], True)
                mapping[source_id] = here[uid][0]
        return mapping, added

    def import_snapshots(self, rows: Sequence[Sequence[Any]]) -> int:
        """Add the snapshot rows not here yet (by uid); how many were added."""
        if not rows:
            return 0
        marks = ", ".join("?" for _ in rows)
        with self._write():
            self._lock_imports()
            here = {
                row[0]
                for row in self._rows(
                    f"SELECT uid FROM snapshots WHERE uid IN ({marks})", [row[1] for row in rows]
                )
            }
            new = [row for row in rows if row[1] not in here]
            if new:
                self._insert_snapshots(new)
        return len(new)

    def pruned_keys(self) -> list[str]:
        with self._translate("read"):
            return [row[0] for row in self._rows("SELECT key FROM pruned_keys ORDER BY key")]

    def import_pruned_keys(self, keys: Sequence[str]) -> None:
        with self._write():
            self._many(
                "INSERT INTO pruned_keys (key) VALUES (?) ON CONFLICT (key) DO NOTHING",
                [(key,) for key in keys],
            )

    def _json(self, column: str) -> str:
        """SQL for a JSON column as text."""
        return column


@dataclasses.dataclass(frozen=True, slots=True)
class Copied:
    """What ``copy_history`` did: snapshots and runs added, snapshots that were there already."""

    snapshots: int = 0
    runs: int = 0
    present: int = 0


def copy_history(source: Store, destination: Store, *, batch: int = COPY_BATCH) -> Copied:
    """Copy every run and snapshot of ``source`` that ``destination`` does not hold yet (by uid),
    and which keys were pruned. Idempotent; safe while others write either database (what they
    commit meanwhile may or may not come along)."""
    mapping, runs = destination.import_runs(source.export_runs())
    snapshots = present = 0
    after = 0
    while True:
        page = source.export_snapshots(after, batch)
        if not page:
            break
        if any(row[0] not in mapping for _, row in page):  # a run begun since: take it too
            more, added = destination.import_runs(source.export_runs())
            mapping.update(more)
            runs += added
        rows = [(mapping[row[0]], *row[1:]) for _, row in page]
        added = destination.import_snapshots(rows)
        snapshots += added
        present += len(rows) - added
        after = page[-1][0]
    destination.import_pruned_keys(source.pruned_keys())
    return Copied(snapshots=snapshots, runs=runs, present=present)
