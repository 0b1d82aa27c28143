"""A run's side of the snapshot database: ``--db``, ``--changes``, ``--warn-days``.

Results reach the store in batches on one writer thread, so the event loop never waits for SQLite:
not for a commit, and not for another process's lock (a busy database can make a write wait
seconds, and the targets in flight would time out meanwhile). A batch goes when ``BATCH_ROWS``
results are pending or ``BATCH_SECONDS`` after the first one; while one batch is being written the
next one gathers, so a slow database gets fewer, larger transactions.

Without ``--changes`` a result is printed at once and recorded on the side. With it, the writer
thread reads each target's previous snapshot in the same transaction that stores the new one, and
the result comes back to the loop carrying its ``changes``; only results with changes (or alerts)
are printed. A run into a database with no history (no run that finished with snapshots, so also
every shard of a fleet's first schedule) records the baseline and prints only the targets that
fail: that first cron run would otherwise mail every target as "new", but a target failing from
the start is news. A certificate warning is printed when it is news (``is_news``).

A database that cannot take a batch (locked past the busy timeout, a full disk) does not stop the
run: the batch is counted as not recorded, ``--changes`` compares it with what can still be read
(or, failing that, prints it whole), and the next batch tries again. The run ends with
``N results not recorded: REASON`` and exit status 1. (A PostgreSQL store connects again on its
own when its connection breaks: here that is a batch that took longer, or, when the server stays
away, a StoreError like any other; a batch whose COMMIT's answer was lost then is counted as not
recorded, unless a later connection finds it stored: until then the store has it ``in_doubt``.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from fetchheads import __version__
from fetchheads.config import Config
from fetchheads.errors import StoreError
from fetchheads.models import Result, format_timestamp, utc_now
from fetchheads.snapshots.changes import Snapshot, compare, is_news, snapshot_of
from fetchheads.wording import counted

if TYPE_CHECKING:  # sqlite3 is loaded only by runs with --db (cli opens the store)
    from fetchheads.snapshots.store import Store

BATCH_ROWS = 500
BATCH_SECONDS = 0.5
"""A cron job can afford half a second of latency; one transaction per 500 rows keeps the write
lock short (a few milliseconds) for the other processes sharing the file."""


@dataclasses.dataclass(frozen=True, slots=True)
class SnapshotOptions:
    """What the snapshot options of a run asked for."""

    changes: bool = False
    ignored: frozenset[str] = frozenset()
    warn_days: int | None = None
    warn_fraction: float | None = None

    @property
    def warns(self) -> bool:
        """Whether certificates are checked (``--warn-days`` or ``--warn-fraction``)."""
        return self.warn_days is not None or self.warn_fraction is not None


RECORDED_OPTIONS = (
    "concurrency",
    "timeout",
    "connect_timeout",
    "method",
    "user_agent",
    "default_scheme",
    "insecure",
    "cacert",
    "order",
    "location",
    "max_redirs",
    "retries",
    "rate",
    "shard",
    "ip_version",
    "dns_servers",
    "resolve",
)
"""What the ``runs`` row keeps of a run's options: a list of what is known to be harmless, so an
option added later that carries a secret is not written to a file people share."""


def run_options(config: Config, options: SnapshotOptions) -> dict[str, Any]:
    """The ``runs.options`` JSON. ``-H`` values and proxy credentials may be secrets: header
    names and proxy addresses only."""
    recorded: dict[str, Any] = {
        name: getattr(config, name) for name in RECORDED_OPTIONS if hasattr(config, name)
    }
    recorded["headers"] = [name for name, _ in config.headers]
    proxies = getattr(config, "proxies", None)
    for scheme in ("http", "https"):
        proxy = getattr(proxies, scheme, None)
        if proxy is not None:
            recorded[f"{scheme}_proxy"] = f"{proxy.host}:{proxy.port}"
    recorded["changes"] = options.changes
    recorded["warn_days"] = options.warn_days
    recorded["warn_fraction"] = options.warn_fraction
    return recorded


class Recorder:
    """Records results and decides which of them to print. Lives on the run's event loop."""

    def __init__(
        self,
        store: Store,
        run_id: Callable[[], int],
        emit: Callable[[Result], None],
        *,
        options: SnapshotOptions,
        baseline: bool = False,
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._emit = emit
        self._options = options
        self._baseline = baseline
        self._pending: list[Result] = []
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Future[Written] | None = None
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "fetchheads-db")
        self._on_error: Callable[[], None] = lambda: None
        self.failure: BaseException | None = None
        self.recorded = 0
        self.changed = 0
        self.alerts_shown = 0
        self.unrecorded = 0
        self.error: StoreError | None = None
        """The last reason a batch could not be recorded."""

    def begin(self) -> None:
        """Write the ``runs`` row on the writer thread, ahead of the first batch: a database
        locked by another process delays no fetch. Failing, it is tried again with each batch."""
        began = asyncio.get_running_loop().run_in_executor(self._thread, self._begin)
        began.add_done_callback(self._began)

    def _begin(self) -> None:
        try:
            self._run_id()
        except StoreError:
            # Waited the whole lock timeout already: the batches that follow fail fast (and are
            # counted as not recorded), as after a failed batch, not after a timeout each.
            with contextlib.suppress(StoreError):
                self._store.stop_waiting()

    def _began(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.failure = future.exception()  # a bug: drain() raises it
            self._on_error()

    def set_on_error(self, on_error: Callable[[], None]) -> None:
        """What to call when the recorder breaks (a bug, not a database problem): stop the run."""
        self._on_error = on_error

    def add(self, result: Result) -> None:
        if self.failure is not None:
            return
        if not self._options.changes:
            self._emit(result)
        self._pending.append(result)
        if len(self._pending) >= BATCH_ROWS:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(BATCH_SECONDS, self._flush)

    async def drain(self) -> None:
        """Write (and under ``--changes`` print) everything still pending; then stop the thread.
        A stop signal that comes meanwhile (the task cancelled) does not cut it short: the
        results still pending would be neither recorded nor counted as not recorded. The store
        was told to stop waiting (``stop_reconnecting``), so each write left tries once and is
        done; the CancelledError is raised when they are."""
        cancelled = False
        try:
            while self.failure is None and (self._pending or self._writing is not None):
                self._flush()
                if self._writing is not None:
                    try:
                        # The callback delivering its results runs before the next iteration.
                        await asyncio.wait([self._writing])
                        await asyncio.sleep(0)
                    except asyncio.CancelledError:
                        cancelled = True
        finally:
            if self._timer is not None:
                self._timer.cancel()
            self._thread.shutdown(wait=True)
        if self.failure is not None:
            raise self.failure
        if cancelled:
            raise asyncio.CancelledError

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is not None or not self._pending or self.failure is not None:
            return  # the batch being written hands over to the next when it is done
        batch, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        self._writing = loop.run_in_executor(self._thread, self._write, batch)
        self._writing.add_done_callback(self._written)

    def _write(self, batch: Sequence[Result]) -> Written:
        """On the writer thread: one transaction for the whole batch."""
        snapshots = [snapshot_of(result, self._options.warn_days) for result in batch]
        compared = self._options.changes
        error: StoreError | None = None
        previous: list[Snapshot | None] | None
        try:
            previous = self._store.record(self._run_id(), snapshots, previous=compared)
        except StoreError as exc:
            error, previous = exc, None
            with contextlib.suppress(StoreError):  # the next writes fail fast, not one by one
                self._store.stop_waiting()
            if compared:
                with contextlib.suppress(StoreError):  # then there is nothing to compare with
                    previous = self._store.previous(snapshots)
        if not compared or previous is None:
            return Written(list(batch), error)
        return Written(
            [
                self._compared(result, before, after)
                for result, before, after in zip(batch, previous, snapshots, strict=True)
            ],
            error,
        )

    def _compared(self, result: Result, before: Snapshot | None, after: Snapshot) -> Result:
        if self._baseline:
            changes = () if after.ok else compare(None, after, self._options.ignored)
        else:
            changes = compare(before, after, self._options.ignored)
        warnings = result.warnings
        earlier = before.cert_threshold if before is not None else None
        if warnings and not is_news(earlier, after.cert_threshold):
            warnings = ()
        return dataclasses.replace(result, changes=changes, warnings=warnings)

    def _written(self, future: asyncio.Future[Written]) -> None:
        self._writing = None
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:  # a bug: drain() raises it again
            self.failure = exc
            self._pending.clear()
            self._on_error()
            return
        done = future.result()
        if done.error is None:
            self.recorded += len(done.results)
        else:
            self.unrecorded += len(done.results)
            self.error = done.error
        if self._options.changes:
            for result in done.results:
                if result.changes:
                    self.changed += 1
                if result.warnings:
                    self.alerts_shown += 1
                if result.changes or result.warnings or result.changes is None:
                    self._emit(result)  # None: nothing to compare with, so all of it
        if self._pending:
            self._flush()


@dataclasses.dataclass(frozen=True, slots=True)
class Written:
    """What the writer thread did with a batch: the results (under ``--changes`` with their
    ``changes`` and news-only ``warnings``), and why it could not be recorded, if so."""

    results: list[Result]
    error: StoreError | None = None


class SnapshotSession:
    """Everything ``--db``, ``--changes`` and ``--warn-days`` add to one fetch run, as the hooks
    ``run.single.execute`` calls: ``start`` and ``finish`` around the event loop (the ``runs`` row),
    ``annotate`` and ``attach`` on it. Without a store only the alerts remain. A database that
    could not be opened for writing is ``unavailable``: every result is counted as not recorded,
    and printed (under ``--changes``, compared with ``store`` opened read-only, if it could be).
    """

    def __init__(
        self,
        store: Store | None = None,
        options: SnapshotOptions | None = None,
        *,
        path: str | None = None,
        unavailable: StoreError | None = None,
        interrupted: bool = False,
        terminated: bool = False,
    ) -> None:
        self.store = store
        self.interrupted = interrupted or terminated
        """Ctrl-C or SIGTERM came while the database was opened: the run ends before it
        fetches."""
        self.terminated = terminated
        """That was SIGTERM."""
        self.options = options or SnapshotOptions()
        self.path = path if path is not None else (store.path if store is not None else None)
        self.alerts = 0
        self._unavailable = unavailable
        self._run_id: int | None = None
        self._run_uid: str | None = None
        self._run_options: dict[str, Any] = {}
        self._started_at = ""
        self._baseline = False
        self._recorder: Recorder | None = None
        self._targets = 0
        self.stopped_finishing: KeyboardInterrupt | None = None
        """The Ctrl-C (or SIGTERM, as its ``guard`` raises it) that came while ``finish`` waited
        on the database, if one did."""

    @property
    def error(self) -> StoreError | None:
        """Why results were not recorded (the last reason), or None."""
        if self._unavailable is not None:
            return self._unavailable
        return self._recorder.error if self._recorder is not None else None

    @property
    def unrecorded(self) -> int:
        """How many results the database did not take, or may not have (``in_doubt``)."""
        if self._recorder is not None:
            return self._recorder.unrecorded - self._found_after_all
        return self._targets if self._unavailable is not None else 0

    @property
    def in_doubt(self) -> int:
        """How many of ``unrecorded`` may have been recorded all the same: the answer to their
        COMMIT was lost, and the database could not be reached since to look."""
        return self.store.in_doubt if self.store is not None else 0

    @property
    def _found_after_all(self) -> int:
        """Results counted as not recorded, found stored later (their COMMIT's answer lost)."""
        return self.store.found_after_all if self.store is not None else 0

    @property
    def shown_alerts(self) -> int:
        """Certificate warnings printed: under ``--changes`` only the news, else all of them."""
        if self._recorder is not None and self.options.changes:
            return self._recorder.alerts_shown
        return self.alerts

    def start(self, config: Config) -> None:
        """Before the loop: the baseline question, and what the ``runs`` row will say. A Ctrl-C
        while the database keeps it waiting is a KeyboardInterrupt (``process.interruptible``)."""
        if self.store is None:
            return
        self._run_options = run_options(config, self.options)
        self._started_at = format_timestamp(utc_now())
        try:  # a read: WAL readers wait for no writer, but PostgreSQL's may wait for a lock
            self._baseline = self.options.changes and not self.store.has_history()
        except StoreError:
            # Waited the whole lock timeout already: the batches fail fast, one timeout a run.
            with contextlib.suppress(StoreError):
                self.store.stop_waiting()

    def _ensure_run(self) -> int:
        """The ``runs`` row's id, made on first use (raises StoreError). Each try names the row
        by the same uid: one that failed after its COMMIT reached the database leaves no
        second row."""
        if self._run_id is None:
            assert self.store is not None
            if self._run_uid is None:
                from fetchheads.snapshots.store import new_uid  # loaded with the store

                self._run_uid = new_uid()
            self._run_id = self.store.begin_run(
                __version__, self._run_options, started_at=self._started_at, uid=self._run_uid
            )
        return self._run_id

    @property
    def annotates(self) -> bool:
        """Whether ``annotate`` does anything: without ``--warn-days`` and a database that could
        not be opened, it hands every result back as it came and counts nothing anyone reads,
        and the run need not call it (a Python call a target)."""
        return self.options.warns or self._unavailable is not None

    def annotate(self, result: Result) -> Result:
        self._targets += 1
        options = self.options
        if not options.warns:
            return result
        from fetchheads.certificates import certificate_alerts  # --warn-days only

        alerts = certificate_alerts(result, options.warn_days, options.warn_fraction)
        self.alerts += bool(alerts)
        return dataclasses.replace(result, warnings=alerts)

    def attach(
        self, emit: Callable[[Result], None], stop: Callable[[], None]
    ) -> Callable[..., None]:
        """Inside the loop: the function that takes each result from now on."""
        if self.store is None:
            return emit
        self._recorder = Recorder(
            self.store, self._ensure_run, emit, options=self.options, baseline=self._baseline
        )
        self._recorder.set_on_error(stop)
        self._recorder.begin()
        return self._recorder.add

    def describe(self) -> str:
        """The summary line's tail under ``--changes``, so a person at a terminal sees why a
        run printed nothing: ``; 2 changed`` or ``; baseline: 3 snapshots recorded, none shown``
        (failures are shown even then)."""
        recorder = self._recorder
        if recorder is None or not self.options.changes:
            return ""
        if self._baseline:
            parts = [f"{recorder.changed} failing"] if recorder.changed else []
            if recorder.alerts_shown:
                parts.append(counted(recorder.alerts_shown, "certificate warning"))
            shown = f"{' and '.join(parts)} shown" if parts else "none shown"
            recorded = recorder.recorded + self._found_after_all
            return f"; baseline: {counted(recorded, 'snapshot')} recorded, {shown}"
        return f"; {recorder.changed} changed"

    async def drain(self) -> None:
        if self._recorder is not None:
            await self._recorder.drain()

    def stop_reconnecting(self) -> None:
        """The run was stopped: a write waiting for a lost PostgreSQL server to come back gives
        up after one more try (the results it held are counted as not recorded)."""
        if self.store is not None:
            self.store.stop_reconnecting()

    def finish(
        self,
        targets: int,
        ok: int,
        *,
        interrupted: bool = False,
        guard: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        """After the loop: close the ``runs`` row and the database. Raises StoreError, unless
        results were not recorded already (that says what the database did). Inside ``guard``
        a signal raises KeyboardInterrupt: when one comes while the row waits for the database
        (another process's lock, a server that went away just then), the wait ends, the row is
        tried once more as interrupted, without waiting for a lock, and the signal is kept in
        ``stopped_finishing``."""
        if self.store is None:
            return
        try:
            if self._unavailable is not None:
                return
            try:
                with guard():
                    self._finish_run(targets, ok, interrupted=interrupted)
            except KeyboardInterrupt as exc:
                self.stopped_finishing = exc
                self.stop_reconnecting()
                # The try left waits for no lock: PostgreSQL's lock timeout would otherwise
                # keep the stopped run waiting its 30 s again, for the lock it was stopped in.
                with contextlib.suppress(StoreError):
                    self.store.stop_waiting()
                self._finish_run(targets, ok, interrupted=True)
        except StoreError:
            if not self.unrecorded:
                raise
        finally:
            self.close()

    def _finish_run(self, targets: int, ok: int, *, interrupted: bool) -> None:
        assert self.store is not None
        recorder = self._recorder
        self.store.finish_run(
            self._ensure_run(),
            targets=targets,
            ok=ok,
            changed=recorder.changed if recorder and self.options.changes else None,
            warnings=self.alerts if self.options.warns else None,
            interrupted=interrupted,
        )

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
