"""The Observatory's grade letters and their order: what ``--fail-under`` and sorting need, known
without reading the rules (the ground floor: the command line imports it at start-up, the audit
package only when a run audits). Pure."""

from __future__ import annotations

LETTERS = ("A+", "A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "F")
"""The Observatory's letters, best first: ``--fail-under``'s choices, known before the rules are
read (a test holds them to ``rules.json``'s table)."""


def worse(grade: str, floor: str) -> bool:
    """Whether ``grade`` is below ``floor`` (both in ``LETTERS``; an unknown grade is worst)."""
    rank = LETTERS.index(floor)
    return grade not in LETTERS[: rank + 1]


def grade_rank(grade: str | None) -> int:
    """0 for A+ up to 12 for F; ungraded (``None``, unknown) after them: worst-first sorting."""
    return LETTERS.index(grade) if grade in LETTERS else len(LETTERS)
