"""A run's accounting: its results counted, for the summary line, the progress line, the exit
status and a worker's report to its supervisor. Pure."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

from fetchheads.grades import grade_rank, worse
from fetchheads.models import Result
from fetchheads.render.safe import terminal_safe
from fetchheads.wording import counted


def not_recorded(count: int, reason: str, path: str, *, in_doubt: int = 0) -> str:
    """``fetchheads: 3 results not recorded: database is locked (--db /var/heads.db)``: what a
    run whose database failed it says on stderr, however quiet (its exit status is then 1).
    ``in_doubt`` of the ``count`` may have been recorded: ``2 results not recorded, 3 more may
    not have been (the answer to their COMMIT was lost): ...``."""
    sure = count - in_doubt
    if not in_doubt:
        lost = f"{counted(count, 'result')} not recorded"
    elif not sure:
        lost = f"{counted(in_doubt, 'result')} may not have been recorded"
    else:
        lost = f"{counted(sure, 'result')} not recorded, {in_doubt} more may not have been"
    if in_doubt:
        lost += f" (the answer to {'its' if in_doubt == 1 else 'their'} COMMIT was lost)"
    return f"fetchheads: {lost}: {terminal_safe(reason)} (--db {terminal_safe(path)})"


def below(grades: collections.Counter[str], floor: str) -> int:
    """How many of the counted ``grades`` are worse than ``floor`` (``--fail-under``)."""
    return sum(n for grade, n in grades.items() if worse(grade, floor))


@dataclasses.dataclass(slots=True)
class Summary:
    targets: int = 0
    ok: int = 0
    failed_by_kind: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    statuses: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    grades: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """--audit: targets per grade (graded heads only)."""

    @property
    def failed(self) -> int:
        return self.targets - self.ok

    def to_counts(self) -> dict[str, Any]:
        """The counts as JSON can carry them (a ``--workers`` worker sends them this way)."""
        return {
            "targets": self.targets,
            "ok": self.ok,
            "failed_by_kind": dict(self.failed_by_kind),
            "statuses": {str(status): n for status, n in self.statuses.items()},
            "grades": dict(self.grades),
        }

    def add_counts(self, counts: dict[str, Any]) -> None:
        """Add another run's ``to_counts()`` to these."""
        self.targets += counts["targets"]
        self.ok += counts["ok"]
        self.failed_by_kind.update(counts["failed_by_kind"])
        self.statuses.update({int(status): n for status, n in counts["statuses"].items()})
        self.grades.update(counts.get("grades", {}))

    def add(self, result: Result) -> None:
        self.targets += 1
        error = result.error
        if error is None:
            head = result.head
            if head is not None:  # ``result.ok``, without the call
                self.ok += 1
                self.statuses[head.status] += 1
        else:
            # A failed chain (-L: a loop, an unfollowable Location) ends on a head, but it counts
            # under its error kind: "302 x1" would read as one redirect answered as asked.
            self.failed_by_kind[str(error.kind)] += 1
        audit = result.audit
        if audit is not None and audit.grade is not None:
            self.grades[audit.grade] += 1

    def describe(self, elapsed: float) -> str:
        """``12 targets, 10 ok, 2 failed (dns 1, timeout 1); 200 x8, 301 x2; 1.23 s, 9.8/s``."""
        parts = [counted(self.targets, "target"), f"{self.ok} ok"]
        if self.failed:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.failed_by_kind.items()))
            parts.append(f"{self.failed} failed ({kinds})")
        text = ", ".join(parts)
        if self.statuses:
            text += "; " + ", ".join(f"{s} x{n}" for s, n in sorted(self.statuses.items()))
        if self.grades:
            text += "; grades " + ", ".join(
                f"{g} x{n}"
                for g, n in sorted(self.grades.items(), key=lambda item: grade_rank(item[0]))
            )
        rate = self.targets / elapsed if elapsed > 0 else 0.0
        return f"{text}; {elapsed:.2f} s, {rate:.1f}/s"

    def progress(self, read: int, elapsed: float) -> str:
        """The live line: ``1,234/5,000 done  1,200 ok  34 failed  812/s  12 s``.

        ``read`` is how many targets have been read so far: input is streamed, so the end of the
        list is not known until it has been read."""
        rate = self.targets / elapsed if elapsed > 0 else 0.0
        shown_rate = f"{rate:.1f}" if rate < 10 else f"{rate:,.0f}"  # slow runs are not "0/s"
        return (
            f"{self.targets:,}/{max(read, self.targets):,} done  {self.ok:,} ok  "
            f"{self.failed:,} failed  {shown_rate}/s  {elapsed:.0f} s"
        )

    def stopped(self, how: str, read: int, *, all_read: bool = True) -> str:
        """After Ctrl-C (``how`` is ``interrupted``) or SIGTERM (``terminated``): ``interrupted:
        1,234 done, 56 not finished`` (of the ``read`` targets), and ``, the rest of the input
        not read`` unless ``all_read``."""
        text = f"{how}: {self.targets:,} done, {max(read - self.targets, 0):,} not finished"
        if not all_read:
            text += ", the rest of the input not read"
        return text
