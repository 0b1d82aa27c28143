"""Security header audit: the MDN HTTP Observatory's grade for what one response head shows.

Pure (no I/O): ``grade(...)`` takes plain data (a live fetch or a stored snapshot),
``audit_result(result)`` adapts a ``Result``; both give a frozen ``Audit`` with ``to_record()``.
The rules (modifiers, grade table, version) are data in ``rules.json``; every ``Audit`` carries
the rules' version. Modules: ``csp`` and ``cookies`` (the two tests that parse), ``checks`` (the
others), ``findings`` (what is not graded), ``grader`` (running and scoring), ``rules``, ``model``.
"""

from __future__ import annotations

from fetchheads.audit.grader import audit, audit_result, grade, graded_status, score_of
from fetchheads.audit.model import Audit, Check, Exchange, Finding
from fetchheads.audit.rules import LETTERS, Rules, default_rules, grade_rank, worse

__all__ = [
    "LETTERS",
    "Audit",
    "Check",
    "Exchange",
    "Finding",
    "Rules",
    "audit",
    "audit_result",
    "default_rules",
    "grade",
    "grade_rank",
    "graded_status",
    "score_of",
    "worse",
]
