"""A run's side of the snapshot database: ``--db``, ``--changes``, ``--warn-days``.

Results reach the store in batches on one writer thread, so the event loop never waits for SQLite:
not for a commit, and not for another process's lock (a busy database can make a write wait
seconds, and the targets in flight would time out meanwhile). A batch goes when ``BATCH_ROWS``
results are pending or ``BATCH_SECONDS`` after the first one; while one batch is being written the
next one gathers, so a slow database gets fewer, larger transactions.

Without ``--changes`` a result is printed at once and recorded on the side. With it, the writer
thread reads each target's previous snapshot in the same transaction that stores the new one, and
the result comes back to the loop carrying its ``changes``; only results with changes (or alerts)
are printed. A run into a database with no snapshots at all records the baseline and prints nothing
for it: that first cron run would otherwise mail every target as "new".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from fetchheads import __version__
from fetchheads.certificates import certificate_alerts
from fetchheads.changes import Snapshot, compare, snapshot_of
from fetchheads.config import Config
from fetchheads.errors import StoreError
from fetchheads.models import Change, Result
from fetchheads.render.summary import counted

if TYPE_CHECKING:  # sqlite3 is loaded only by runs with --db (cli opens the store)
    from fetchheads.store import Store

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
        run_id: int,
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
        self._writing: asyncio.Future[list[Result]] | None = None
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "fetchheads-db")
        self._on_error: Callable[[], None] = lambda: None
        self.failure: BaseException | None = None
        self.recorded = 0
        self.changed = 0

    @property
    def error(self) -> StoreError | None:
        """Why the database could not take the results (the run stops)."""
        return self.failure if isinstance(self.failure, StoreError) else None

    def set_on_error(self, on_error: Callable[[], None]) -> None:
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
        """Write (and under ``--changes`` print) everything still pending; then stop the thread."""
        try:
            while self.failure is None and (self._pending or self._writing is not None):
                self._flush()
                if self._writing is not None:
                    # The callback delivering its results runs before the next loop iteration.
                    await asyncio.wait([self._writing])
                    await asyncio.sleep(0)
        finally:
            if self._timer is not None:
                self._timer.cancel()
            self._thread.shutdown(wait=True)
        if self.failure is not None and self.error is None:
            raise self.failure

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

    def _write(self, batch: Sequence[Result]) -> list[Result]:
        """On the writer thread: one transaction for the whole batch."""
        snapshots = [snapshot_of(result) for result in batch]
        compared = self._options.changes
        previous = self._store.record(self._run_id, snapshots, previous=compared)
        if not compared:
            return list(batch)
        return [
            dataclasses.replace(result, changes=self._changes(before, after))
            for result, before, after in zip(batch, previous, snapshots, strict=True)
        ]

    def _changes(self, before: Snapshot | None, after: Snapshot) -> tuple[Change, ...]:
        if self._baseline:
            return ()
        return compare(before, after, self._options.ignored)

    def _written(self, future: asyncio.Future[list[Result]]) -> None:
        self._writing = None
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            # A StoreError is reported by cli; anything else is a bug, raised again by drain().
            self.failure = exc
            self._pending.clear()
            self._on_error()
            return
        done = future.result()
        self.recorded += len(done)
        if self._options.changes:
            for result in done:
                if result.changes:
                    self.changed += 1
                if result.changes or result.warnings:
                    self._emit(result)
        if self._pending:
            self._flush()


class SnapshotSession:
    """Everything ``--db``, ``--changes`` and ``--warn-days`` add to one fetch run, as the hooks
    ``cli.run.execute`` calls: ``start`` and ``finish`` around the event loop (the ``runs`` row),
    ``annotate`` and ``attach`` on it. Without a store only the alerts remain."""

    def __init__(self, store: Store | None = None, options: SnapshotOptions | None = None) -> None:
        self.store = store
        self.options = options or SnapshotOptions()
        self.alerts = 0
        self._run_id: int | None = None
        self._baseline = False
        self._recorder: Recorder | None = None

    @property
    def error(self) -> StoreError | None:
        return self._recorder.error if self._recorder is not None else None

    def start(self, config: Config) -> None:
        if self.store is not None:
            self._baseline = self.options.changes and not self.store.has_snapshots()
            self._run_id = self.store.begin_run(__version__, run_options(config, self.options))

    def annotate(self, result: Result) -> Result:
        options = self.options
        if not options.warns:
            return result
        alerts = certificate_alerts(result, options.warn_days, options.warn_fraction)
        self.alerts += bool(alerts)
        return dataclasses.replace(result, warnings=alerts)

    def attach(
        self, emit: Callable[[Result], None], stop: Callable[[], None]
    ) -> Callable[..., None]:
        """Inside the loop: the function that takes each result from now on."""
        if self.store is None or self._run_id is None:
            return emit
        self._recorder = Recorder(
            self.store, self._run_id, emit, options=self.options, baseline=self._baseline
        )
        self._recorder.set_on_error(stop)
        return self._recorder.add

    def describe(self) -> str:
        """The summary line's tail under ``--changes``, so a person at a terminal sees why a
        run printed nothing: ``; 2 changed`` or ``; baseline: 3 snapshots recorded, none shown``."""
        recorder = self._recorder
        if recorder is None or not self.options.changes:
            return ""
        if self._baseline:
            return f"; baseline: {counted(recorder.recorded, 'snapshot')} recorded, none shown"
        return f"; {recorder.changed} changed"

    async def drain(self) -> None:
        if self._recorder is not None:
            await self._recorder.drain()

    def finish(self, targets: int, ok: int) -> None:
        """After the loop: close the ``runs`` row and the database. Raises StoreError."""
        if self.store is None:
            return
        try:
            if self._run_id is not None:
                recorder = self._recorder
                self.store.finish_run(
                    self._run_id,
                    targets=targets,
                    ok=ok,
                    changed=recorder.changed if recorder and self.options.changes else None,
                    warnings=self.alerts if self.options.warns else None,
                )
        finally:
            self.close()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
