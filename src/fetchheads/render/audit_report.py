"""``fetchheads audit --db``'s report of stored snapshots: a table worst first, plain lines or
JSON Lines. Pure.

The table is sorted by score, lowest first (ties by target), the snapshots that could not be
graded (a failure, a status the Observatory does not grade) after the graded ones: the rows a
security engineer acts on come first. It needs every row before the first is printed, which the
offline report has anyway.
"""

from __future__ import annotations

import dataclasses
import json

from fetchheads.audit import Audit
from fetchheads.render.audit import failing, lines_of
from fetchheads.render.safe import json_safe, shown_target, terminal_safe
from fetchheads.snapshots.changes import Snapshot


@dataclasses.dataclass(frozen=True, slots=True)
class AuditRow:
    snapshot: Snapshot
    audit: Audit | None  # None: no response to grade


def worst_first(rows: list[AuditRow]) -> list[AuditRow]:
    def order(row: AuditRow) -> tuple[int, int, str]:
        score = row.audit.score if row.audit is not None else None
        return (score is None, score or 0, row.snapshot.target)

    return sorted(rows, key=order)


def format_rows(rows: list[AuditRow], output_format: str) -> str:
    if output_format == "jsonl":
        return "".join(_json(row) for row in rows)
    if output_format == "plain":
        lines: list[str] = []
        for row in rows:
            if row.audit is None:
                why = row.snapshot.error or "no response head"
                lines.append(f"{shown_target(row.snapshot.target)} audit > not graded: {why}")
            else:
                lines.extend(lines_of(row.snapshot.target, row.audit))
        return "".join(terminal_safe(line) + "\n" for line in lines)
    return table(worst_first(rows))


def table(rows: list[AuditRow]) -> str:
    """``GRADE SCORE FETCHED_AT TARGET FAILING``, one line each, columns aligned."""
    cells = [("GRADE", "SCORE", "FETCHED_AT", "TARGET", "FAILING")]
    for row in rows:
        audit = row.audit
        if audit is None or not audit.graded:
            grade, score = "-", "-"
            failed = (row.snapshot.error or "no response head") if audit is None else "not graded"
        else:
            grade, score = audit.grade or "-", str(audit.score)
            failed = ", ".join(check.name for check in failing(audit))
        target = terminal_safe(row.snapshot.target)  # as written, as plain and jsonl show it
        cells.append((grade, score, row.snapshot.fetched_at, target, terminal_safe(failed)))
    widths = [max(len(line[i]) for line in cells) for i in range(4)]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line[:4], widths, strict=True))
        + "  "
        + line[4]
        + "\n"
        for line in cells
    ).replace("  \n", "\n")


def _json(row: AuditRow) -> str:
    snapshot = row.snapshot
    record = {
        "target": snapshot.target,
        "url": snapshot.url,
        "fetched_at": snapshot.fetched_at,
        "status": snapshot.status,
        "error": snapshot.error,
        "audit": row.audit.to_record() if row.audit is not None else None,
    }
    return json_safe(json.dumps(record, ensure_ascii=False)) + "\n"
