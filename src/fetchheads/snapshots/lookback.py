"""Looking back through the snapshot database: what ``history``, ``diff`` and ``prune`` do, apart
from their command line (``cli``) and their text (``render.history``).

A TARGET is matched the way ``--changes`` keys snapshots: by its URL as requested (``example.com``
and ``http://example.com/`` are one target), or, for a line that was not a valid target, its text.
When nothing is stored under that URL, the stored URLs of the same host and path under another
scheme or port are looked up: a TARGET given without a scheme that matches exactly one of them
means that one (``example.com`` finds ``https://example.com/``); otherwise they are named.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import TYPE_CHECKING

from fetchheads.errors import InputError
from fetchheads.hostport import bracketed
from fetchheads.models import Change, format_timestamp, utc_now
from fetchheads.snapshots.changes import (
    Snapshot,
    compare,
    known_certificate,
    wants_last_certificate,
)
from fetchheads.targets import parse_target

if TYPE_CHECKING:
    from fetchheads.snapshots.store import Store

Entry = tuple[Snapshot, Snapshot | None, tuple[Change, ...] | None]
"""One step of a target's history: a snapshot, the one before it (``None``: none kept), and the
changes between them (``None``: not known, older snapshots were pruned)."""

_AGE = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def find_keys(store: Store, text: str, default_scheme: str = "http") -> tuple[list[str], list[str]]:
    """(keys to read for TARGET ``text``, stored URLs it may have meant when those hold none)."""
    keys = target_keys(text, default_scheme)
    if store.history(keys, limit=1):
        return keys, []
    try:
        target = parse_target(text, default_scheme=default_scheme)
        other = parse_target(text, default_scheme="https" if default_scheme == "http" else "http")
    except InputError:
        return keys, []
    # A port written out (host:8080) is meant; a URL names its scheme, so its port is open.
    port = target.port if target.port == other.port and "://" not in text else None
    host = bracketed(target.host)  # as URLs write it
    stored = [
        key for key in store.keys_at(host) if _same_place(key, target.host, port, target.path)
    ]
    if len(stored) == 1 and "://" not in text:
        return stored, []
    return keys, stored


def _same_place(key: str, host: str, port: int | None, path: str) -> bool:
    try:
        stored = parse_target(key)
    except InputError:
        return False
    return (stored.host, stored.path) == (host, path) and port in (None, stored.port)


def target_keys(text: str, default_scheme: str = "http") -> list[str]:
    try:
        url = parse_target(text, default_scheme=default_scheme).url
    except InputError:
        return [text]
    return [url, text]


def parse_when(text: str, now: dt.datetime | None = None, *, since: bool = False) -> str:
    """``--at``/``--since``: an age (``90m``, ``12h``, ``3d``, ``2w``: that long ago) or a UTC date
    and time (``2026-11-25``, ``2026-11-25T19:30``, ``2026-11-25 19:30:00Z``) -> the timestamp
    text snapshots sort by: the latest snapshot at or before it is the one meant. A date alone
    is the whole of that day: for ``--at`` its end, for ``--since`` (``since``) its start, so
    that "since 2026-11-25" takes in what changed during the 25th. Raises ValueError with a
    message for the user."""
    raw = text.strip()
    age = _AGE.fullmatch(raw)
    if age:
        try:
            delta = dt.timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
            return format_timestamp((now or utc_now()) - delta)
        except OverflowError:  # longer ago than year 1: before any snapshot
            return format_timestamp(dt.datetime.min.replace(tzinfo=dt.UTC))
    try:
        moment = dt.datetime.fromisoformat(raw.removesuffix("Z").removesuffix("z"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an age (90m, 12h, 3d, 2w) nor a date (2026-11-25T19:30)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    if len(raw) <= len("2026-11-25"):  # a bare date means the whole day
        # --at: the last snapshot of the day; --since: the last one before the day began.
        if not since:
            moment += dt.timedelta(days=1, microseconds=-1000)
        elif moment > _FIRST_DAY:
            moment -= dt.timedelta(microseconds=1000)
    return format_timestamp(moment)


_FIRST_DAY = dt.datetime.min.replace(tzinfo=dt.UTC)
"""0001-01-01: nothing is before it, and ``--since`` that day is since the oldest."""


def history(
    store: Store, keys: list[str], ignored: frozenset[str], limit: int | None
) -> list[Entry]:
    """Newest first, each snapshot with its predecessor and the changes since it. The oldest
    kept snapshot of a target prune has thinned has changes ``None``: not known."""
    rows = _carry_certificates(store.history(keys, limit=None if limit is None else limit + 1))
    shown = rows if limit is None else rows[:limit]
    entries: list[Entry] = []
    for index, snapshot in enumerate(shown):
        before = rows[index + 1] if index + 1 < len(rows) else None
        entries.append((snapshot, before, _since(store, keys, before, snapshot, ignored)))
    return entries


def _carry_certificates(rows: list[Snapshot]) -> list[Snapshot]:
    """``rows`` (newest first), each failure given the certificate last seen before it, as
    ``--changes`` compares: a certificate renewed during an outage is named when it ends."""
    carried: list[Snapshot] = []
    last = None
    for row in reversed(rows):
        if last is not None and wants_last_certificate(row):
            row = dataclasses.replace(row, last_certificate=last)
        last = known_certificate(row) or last
        carried.append(row)
    return carried[::-1]


def _since(
    store: Store, keys: list[str], before: Snapshot | None, after: Snapshot, ignored: frozenset[str]
) -> tuple[Change, ...] | None:
    if before is None and store.was_pruned(keys):
        return None
    return compare(before, after, ignored)


def pick(
    store: Store,
    keys: list[str],
    ignored: frozenset[str],
    *,
    at: str | None = None,
    since: str | None = None,
) -> Entry | None:
    """The two snapshots ``diff`` compares: the latest at ``at`` (default: the newest) and the one
    before it, or with ``since`` the latest at or before ``since`` (the oldest when none is that
    old). ``None`` when the target has no snapshot (at ``at``)."""
    latest = store.history(keys, until=at, limit=2)
    if not latest:
        return None
    after = latest[0]
    before: Snapshot | None = latest[1] if len(latest) > 1 else None
    if since is not None:
        at_since = store.history(keys, until=since, limit=1)
        if at_since:
            # The snapshot at ``since`` may be the newest itself (nothing newer was taken):
            # then it is compared with itself, and nothing changed since.
            before = at_since[0]
        else:  # none that old: since the oldest, or, when that is the newest, since nothing
            oldest = store.history(keys, oldest_first=True, limit=1)
            before = oldest[0] if oldest and oldest[0].id != after.id else None
    return after, before, _since(store, keys, before, after, ignored)
