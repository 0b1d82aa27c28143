"""Whether a run recorded in the snapshot database is still running. The rule, for any backend:

A run is *finished* when it wrote its finish, *interrupted* when it ended on a signal (Ctrl-C,
SIGTERM: it says so itself) or never finished and cannot be running any more: it was started on
this machine since its last boot and its process is gone (or its pid now belongs to a process
younger than the run), or, started elsewhere (or by a fetchheads that did not record its process),
it has recorded nothing for ``STALE_RUN_HOURS``. Otherwise an unfinished run is *running*.

So a run in progress in another process is never called interrupted while its process lives, and
one killed with SIGKILL (or by a power cut) is, as soon as anyone looks.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import platform

from fetchheads.models import utc_now

RUNNING, FINISHED, INTERRUPTED = "running", "finished", "interrupted"
STALE_RUN_HOURS = 24
"""An unfinished run from another machine (or one whose process cannot be checked) that has
recorded nothing for this long is taken as interrupted: a fetch records every half second while
results come, and a cron job runs far more often than daily."""


@functools.cache
def this_machine() -> tuple[str, str | None]:
    """(host name, boot id): a pid means something only on its own machine and boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as stream:
            boot_id: str | None = stream.read().strip() or None
    except OSError:
        boot_id = None
    return platform.node(), boot_id


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (Unix time), or None when it cannot be told (not Linux).
    Raises ProcessLookupError when there is no such process."""
    if pid <= 0:  # kill() would mean a process group
        raise ProcessLookupError(pid)
    os.kill(pid, 0)
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            fields = stream.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as stream:
            boot = next(int(line.split()[1]) for line in stream if line.startswith(b"btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _moment(text: str) -> dt.datetime:
    """A stored timestamp; one that does not parse is taken as long ago."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def run_state(
    state: str | None,
    finished_at: str | None,
    host: str | None,
    boot_id: str | None,
    pid: int | None,
    started_at: str,
    last_snapshot: str | None,
) -> str:
    if state in (FINISHED, INTERRUPTED):
        return state
    if finished_at is not None:
        return FINISHED
    if pid is not None and (host, boot_id) == this_machine() and boot_id is not None:
        try:
            started = _process_start(pid)
        except ProcessLookupError:
            return INTERRUPTED
        except PermissionError:
            return RUNNING  # another user's live process
        # A process younger than the run got its pid after the run's process ended. The second
        # of slack covers clock-tick rounding.
        begun = _moment(started_at).timestamp()
        return INTERRUPTED if started is not None and started > begun + 1 else RUNNING
    last = _moment(last_snapshot or started_at)
    stale = utc_now() - last > dt.timedelta(hours=STALE_RUN_HOURS)
    return INTERRUPTED if stale else RUNNING
