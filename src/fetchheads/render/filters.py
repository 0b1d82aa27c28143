"""What is printed: ``--match-status``, ``--filter-status``, ``--failed``, ``--has-header``,
``--missing-header``, compiled once into one ``Selector``. Pure.

A selector only decides what a format shows: every result is still recorded (``--db``) and
counted in the summary and the exit status.

* ``--match-status LIST``: keep results whose status is in LIST (a result with no status, a
  failure, is not kept). LIST is comma-separated items, each ``200``, ``3xx`` or ``200-299``;
  the option may be repeated, and the lists add up.
* ``--filter-status LIST``: drop results whose status is in LIST (failures are kept).
* ``--failed``: keep only the results that failed (an error kind, even with a partial head).
* ``--has-header NAME`` / ``NAME=REGEX``: keep results whose head has header NAME (any case);
  with a REGEX, whose value matches it (``re.search`` in the value ``header:NAME`` shows: repeated
  lines joined by ", ", each Set-Cookie on its own line). Repeated: every one must hold.
* ``--warned``: keep only the results with a certificate warning (``--warn-days``,
  ``--warn-fraction``): ``--warn-days 30 --warned`` lists the certificates that expire within 30
  days.
* ``--missing-header NAME``: keep results that got a whole head without header NAME. Repeated:
  every one must be missing. A failure is not "missing" a header: it has none, or (a head cut
  short) the header might have come later.

Different options combine with AND: ``--match-status 2xx --missing-header
strict-transport-security`` lists the answering hosts without HSTS.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from fetchheads.models import Result
from fetchheads.render.fields import BUILTIN, SpecError, Value, value_text

Predicate = Callable[[Result], bool]

_STATUS_ITEM = re.compile(r"([1-9])[xX][xX]|([1-9][0-9]{2})(?:-([1-9][0-9]{2}))?")
_STATUS_HELP = "use codes, classes or ranges, e.g. 200,3xx,400-499"


def parse_statuses(text: str, option: str = "--match-status") -> frozenset[int]:
    """``"200,3xx,400-403"`` -> the set of status codes it names. Raises ``SpecError``."""
    codes: set[int] = set()
    for raw in text.split(","):
        item = raw.strip()
        match = _STATUS_ITEM.fullmatch(item)
        if match is None:
            raise SpecError(f"invalid status {item!r} in {option} ({_STATUS_HELP})")
        klass, low, high = match.groups()
        if klass is not None:
            codes.update(range(int(klass) * 100, int(klass) * 100 + 100))
        elif high is None:
            codes.add(int(low))
        elif int(high) < int(low):
            raise SpecError(f"empty status range {item!r} in {option} (the low code comes first)")
        else:
            codes.update(range(int(low), int(high) + 1))
    return frozenset(codes)


def _status_in(codes: frozenset[int]) -> Predicate:
    def select(result: Result) -> bool:
        head = result.head
        return head is not None and result.error is None and head.status in codes

    return select


def _status_not_in(codes: frozenset[int]) -> Predicate:
    def select(result: Result) -> bool:
        head = result.head
        return head is None or result.error is not None or head.status not in codes

    return select


def _failed(result: Result) -> bool:
    return result.error is not None


def _warned(result: Result) -> bool:
    return bool(result.warnings)


def has_header(spec: str) -> Predicate:
    """``NAME`` or ``NAME=REGEX`` (``--has-header``). Raises ``SpecError``."""
    name, equals, pattern = spec.partition("=")
    get = _header_getter(name, "--has-header")
    if not equals:
        return lambda result: get(result) is not None
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise SpecError(f"invalid regular expression {pattern!r} in --has-header: {exc}") from None
    search = regex.search

    def select(result: Result) -> bool:
        value = get(result)
        return value is not None and search(value_text(value)) is not None

    return select


def missing_header(name: str) -> Predicate:
    """``--missing-header NAME``: a whole head came back without it. Raises ``SpecError``."""
    get = _header_getter(name, "--missing-header")
    return lambda result: result.ok and get(result) is None


def _header_getter(name: str, option: str) -> Callable[[Result], Value]:
    """The accessor of field ``header:NAME``: the same joined value the formats show."""
    return BUILTIN.field(f"header:{header_name(name, option)}").get


def header_name(name: str, option: str) -> str:
    """``name`` without surrounding space, checked as ``header:NAME`` checks it (an RFC 9110
    token); raises ``SpecError`` naming ``option`` (``--ignore-header`` uses it too)."""
    name = name.strip()
    try:
        BUILTIN.field(f"header:{name}")
    except SpecError:
        raise SpecError(
            f"invalid header name {name!r} in {option} (e.g. {option} server)"
        ) from None
    return name


class Selector:
    """All the selections of a run as one predicate: ``selector(result)`` -> print it or not."""

    def __init__(self, predicates: Iterable[Predicate] = ()) -> None:
        self._predicates = tuple(predicates)

    @property
    def selects_everything(self) -> bool:
        """No selection given: the CLI can skip calling it."""
        return not self._predicates

    def __call__(self, result: Result) -> bool:
        return all(predicate(result) for predicate in self._predicates)


def compile_selector(
    *,
    match_status: Iterable[str] = (),
    filter_status: Iterable[str] = (),
    failed: bool = False,
    warned: bool = False,
    has_headers: Iterable[str] = (),
    missing_headers: Iterable[str] = (),
) -> Selector:
    """The options as given on the command line (each repeatable) -> one ``Selector``."""
    predicates: list[Predicate] = []
    matched = frozenset().union(*(parse_statuses(s, "--match-status") for s in match_status))
    if matched:
        predicates.append(_status_in(matched))
    filtered = frozenset().union(*(parse_statuses(s, "--filter-status") for s in filter_status))
    if filtered:
        predicates.append(_status_not_in(filtered))
    if failed:
        predicates.append(_failed)
    if warned:
        predicates.append(_warned)
    predicates.extend(has_header(spec) for spec in has_headers)
    predicates.extend(missing_header(name) for name in missing_headers)
    return Selector(predicates)
