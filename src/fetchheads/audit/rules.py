"""The grading rules as data: ``rules.json`` (modifiers, grade table, version) and
``disclosure.json`` (headers that disclose software), both shipped inside the package.

Read on first use and cached, never at import time. A new grader version is a new ``rules.json``
with a new ``version``; every ``Audit`` records the version that graded it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pkgutil
from collections.abc import Mapping
from typing import Any

from fetchheads.grades import LETTERS, grade_rank, worse

__all__ = ["LETTERS", "Rules", "default_rules", "grade_rank", "worse"]


@dataclasses.dataclass(frozen=True, slots=True, eq=False)  # eq=False: hashed by identity
class Rules:
    version: str
    extra_credit_minimum: int
    grades: tuple[tuple[int, str], ...]  # (lowest score, grade), highest first
    modifiers: Mapping[str, int]

    def modifier(self, result: str) -> int:
        """The score modifier of a result id; a result id the rules do not know is a bug."""
        try:
            return self.modifiers[result]
        except KeyError:
            raise ValueError(f"rules {self.version} have no modifier for {result!r}") from None

    def grade_for(self, score: int) -> str:
        """The letter for a score rounded down to a multiple of 5 and capped at 100."""
        rounded = min(score - score % 5, 100)
        for lowest, grade in self.grades:
            if rounded >= lowest:
                return grade
        return self.grades[-1][1]


def _read(name: str) -> Any:
    """A JSON file of the package (``pkgutil``: ``importlib.resources`` costs an ``--audit``
    run some 8 ms of imports, pathlib and zipfile among them)."""
    data = pkgutil.get_data("fetchheads.audit", name)
    if data is None:  # only for a loader that cannot read files: not one a wheel installs
        raise FileNotFoundError(name)
    return json.loads(data.decode("utf-8"))


def rules_from(data: Mapping[str, Any]) -> Rules:
    grades = tuple(sorted(((int(s), str(g)) for s, g in data["grades"]), reverse=True))
    return Rules(
        version=str(data["version"]),
        extra_credit_minimum=int(data["extra_credit_minimum"]),
        grades=grades,
        modifiers={str(k): int(v) for k, v in data["modifiers"].items()},
    )


@functools.cache
def default_rules() -> Rules:
    """The rules shipped with this fetchheads."""
    return rules_from(_read("rules.json"))


@functools.cache
def disclosure_headers() -> frozenset[str]:
    """Lower-cased names of the headers OWASP's Secure Headers Project says to remove."""
    return frozenset(name.lower() for name in _read("disclosure.json")["headers"])
