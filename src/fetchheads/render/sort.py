"""``--sort``: the order a sorted run prints its results in, from the field vocabulary. Pure.

``--sort FIELD`` sorts by a field, smallest first; ``--sort -FIELD`` largest first. Several
fields (``--sort -audit.score,target``, or ``--sort`` repeated) break ties in the order given;
results equal on every field keep the order they finished in (Python's sort is stable).

A value that is not known (``None``: no head, no TLS, not graded, a header not sent) or empty
(``""``) sorts last whichever the direction, so the rows that have the value lead. A field may
say how its values compare (``Field.order``): ``audit.grade`` by the Observatory's order, A+
first and F last, not by its letters.

What a sorted run holds until the end is the ``key`` of each printed result (the few values of
the sort fields) beside its formatted text, never the ``Result``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

from fetchheads.models import Result
from fetchheads.render.fields import Field, SpecError, Value, Vocabulary

T = TypeVar("T")
Key = tuple[Any, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class SortField:
    field: Field
    descending: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class SortOrder:
    """The fields a run sorts by, most significant first."""

    fields: tuple[SortField, ...]

    def key(self, result: Result) -> Key:
        """The values ``result`` sorts by (``None`` for unknown or empty), small enough to hold
        for every printed result of a long run."""
        return tuple(_sort_value(sort.field, sort.field.get(result)) for sort in self.fields)

    def sort(self, rows: Sequence[tuple[Key, T]]) -> list[T]:
        """The items of ``(key, item)`` rows in this order; ties keep their order in ``rows``."""
        ordered = list(rows)
        # One stable sort per field, least significant first: each keeps the order of the ties
        # the next one leaves. ``reverse`` keeps ties in order too.
        for index in reversed(range(len(self.fields))):
            descending = self.fields[index].descending
            ordered.sort(key=_known_first(index, descending), reverse=descending)
        return [item for _, item in ordered]


def compile_sort(specs: Sequence[str], vocabulary: Vocabulary) -> SortOrder | None:
    """``("-audit.score,target",)`` -> the order; ``None`` when no ``--sort`` was given. Raises
    ``SpecError`` for an empty or unknown name."""
    fields: list[SortField] = []
    for spec in specs:
        for item in spec.split(","):
            name = item.strip()
            descending = name.startswith("-")
            name = name.removeprefix("-").strip()
            if not name:
                raise SpecError(
                    f"empty field name in {spec!r} (e.g. --sort -audit.score,target: a leading "
                    "- sorts largest first)"
                )
            fields.append(SortField(vocabulary.field(name), descending))
    return SortOrder(tuple(fields)) if fields else None


def _sort_value(field: Field, value: Value) -> Any:
    if value is None or value == "":
        return None
    return field.order(value) if field.order is not None else value


def _known_first(index: int, descending: bool) -> Any:
    """The sort key of field ``index``: a known value before ``None`` in both directions (the
    flag is reversed with the sort), then the value itself."""
    if descending:
        return lambda row: (row[0][index] is not None, row[0][index])
    return lambda row: (row[0][index] is None, row[0][index])
