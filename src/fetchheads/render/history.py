"""The text of ``fetchheads history`` and ``fetchheads diff``. Pure.

history, newest first, each snapshot with what changed since the one before it::

    2026-11-25T19:45:00.123Z  200 OK  (snapshot 3, run 3)
      X-Version: 1 -> 2
    2026-11-25T19:30:00.004Z  200 OK  (snapshot 2, run 2)  no change
    2026-11-25T19:15:00.310Z  200 OK  (snapshot 1, run 1, interrupted)  first snapshot

A run that is not finished is named ``running`` or ``interrupted``; the oldest snapshot of a
target is its ``first snapshot`` unless prune deleted older ones (``oldest kept``).

diff: a line naming the two snapshots, then ``TARGET changed > ...`` lines as ``--changes`` prints
them (or ``no changes``).
"""

from __future__ import annotations

from typing import Any

from fetchheads.models import Change
from fetchheads.render.changes import change_lines, describe_change
from fetchheads.render.jsonl import format_record
from fetchheads.render.safe import terminal_safe
from fetchheads.snapshots.changes import Snapshot
from fetchheads.snapshots.lookback import Entry

OLDEST_KEPT = "oldest kept (older snapshots pruned)"


def outcome(snapshot: Snapshot) -> str:
    if snapshot.status is not None:
        text = f"{snapshot.status} {snapshot.reason or ''}".rstrip()
        return terminal_safe(text + (f"  {snapshot.error}" if snapshot.error else ""))
    return terminal_safe(snapshot.error or "no response")


def _names(snapshot: Snapshot) -> str:
    state = snapshot.run_state
    shown = f", {state}" if state not in (None, "finished") else ""
    return f"(snapshot {snapshot.id}, run {snapshot.run_id}{shown})"


def history_text(entries: list[Entry]) -> str:
    lines: list[str] = []
    for snapshot, before, changes in entries:
        line = f"{terminal_safe(snapshot.fetched_at)}  {outcome(snapshot)}  {_names(snapshot)}"
        if changes is None:
            line += f"  {OLDEST_KEPT}"
        elif before is None:
            line += "  first snapshot"
        elif not changes:
            line += "  no change"
        lines.append(line)
        if before is not None and changes:
            lines.extend(f"  {describe_change(change)}" for change in changes)
    return "".join(line + "\n" for line in lines)


def history_jsonl(entries: list[Entry]) -> str:
    """One record per snapshot: the JSON record of docs/output.md, ``id``, ``run_id``,
    ``run_state`` and ``changes`` since the snapshot before it (``null`` when older snapshots
    were pruned)."""
    return "".join(
        format_record({**snapshot.to_record(), "changes": _changes_record(changes)})
        for snapshot, _, changes in entries
    )


def _changes_record(changes: tuple[Change, ...] | None) -> list[dict[str, Any]] | None:
    return None if changes is None else [change.to_record() for change in changes]


def diff_text(target: str, entry: Entry) -> str:
    after, before, changes = entry
    if before is not None:
        since = f"{terminal_safe(before.fetched_at)} {_names(before)}"
    else:
        since = "nothing" if changes is not None else "(older snapshots pruned)"
    when = terminal_safe(after.fetched_at)
    header = f"{terminal_safe(target)}: {since} -> {when} {_names(after)}"
    if changes is None:
        body = ["no earlier snapshot kept"]
    else:
        body = change_lines(target, changes) if changes else ["no changes"]
    return "".join(line + "\n" for line in [header, *body])


def diff_jsonl(target: str, entry: Entry) -> str:
    after, before, changes = entry
    record: dict[str, Any] = {
        "target": target,
        "before": None if before is None else _ref(before),
        "after": _ref(after),
        "changes": _changes_record(changes),
    }
    return format_record(record)


def _ref(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "id": snapshot.id,
        "run_id": snapshot.run_id,
        "run_state": snapshot.run_state,
        "fetched_at": snapshot.fetched_at,
    }
