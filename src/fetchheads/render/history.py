"""The text of ``fetchheads history`` and ``fetchheads diff``. Pure.

history, newest first, each snapshot with what changed since the one before it::

    2026-11-25T19:45:00.123Z  200 OK  (snapshot 3, run 3)
      X-Version: 1 -> 2
    2026-11-25T19:30:00.004Z  200 OK  (snapshot 2, run 2)  no change
    2026-11-25T19:15:00.310Z  200 OK  (snapshot 1, run 1)  first snapshot

diff: a line naming the two snapshots, then ``TARGET changed > ...`` lines as ``--changes`` prints
them (or ``no changes``).
"""

from __future__ import annotations

from typing import Any

from fetchheads.changes import Snapshot
from fetchheads.models import Change
from fetchheads.render.changes import change_lines, describe_change
from fetchheads.render.jsonl import format_record
from fetchheads.render.safe import terminal_safe

Entry = tuple[Snapshot, Snapshot | None, tuple[Change, ...]]
"""A snapshot, the one before it (``None``: the first), and the changes between them."""


def outcome(snapshot: Snapshot) -> str:
    if snapshot.status is not None:
        text = f"{snapshot.status} {snapshot.reason or ''}".rstrip()
        return terminal_safe(text + (f"  {snapshot.error}" if snapshot.error else ""))
    return terminal_safe(snapshot.error or "no response")


def _names(snapshot: Snapshot) -> str:
    return f"(snapshot {snapshot.id}, run {snapshot.run_id})"


def history_text(entries: list[Entry]) -> str:
    lines: list[str] = []
    for snapshot, before, changes in entries:
        line = f"{snapshot.fetched_at}  {outcome(snapshot)}  {_names(snapshot)}"
        if before is None:
            line += "  first snapshot"
        elif not changes:
            line += "  no change"
        lines.append(line)
        if before is not None:
            lines.extend(f"  {describe_change(change)}" for change in changes)
    return "".join(line + "\n" for line in lines)


def history_jsonl(entries: list[Entry]) -> str:
    """One record per snapshot: the JSON record of docs/output.md, ``id``, ``run_id`` and
    ``changes`` since the snapshot before it."""
    return "".join(
        format_record({**snapshot.to_record(), "changes": [c.to_record() for c in changes]})
        for snapshot, _, changes in entries
    )


def diff_text(target: str, entry: Entry) -> str:
    after, before, changes = entry
    since = "nothing" if before is None else f"{before.fetched_at} {_names(before)}"
    header = f"{terminal_safe(target)}: {since} -> {after.fetched_at} {_names(after)}"
    body = change_lines(target, changes) if changes else ["no changes"]
    return "".join(line + "\n" for line in [header, *body])


def diff_jsonl(target: str, entry: Entry) -> str:
    after, before, changes = entry
    record: dict[str, Any] = {
        "target": target,
        "before": None if before is None else _ref(before),
        "after": _ref(after),
        "changes": [change.to_record() for change in changes],
    }
    return format_record(record)


def _ref(snapshot: Snapshot) -> dict[str, Any]:
    return {"id": snapshot.id, "run_id": snapshot.run_id, "fetched_at": snapshot.fetched_at}
