"""CSV, TSV and the streaming table: one row per target, columns from ``--fields``. Pure.

All three read results through ``render.fields`` and share these rules for server text:

* **Control characters** (C0 but tab, DEL, C1, bidi controls) never reach the output: they are
  shown as ``\\xNN`` as in the terminal formats (``render.safe``). A field value may not hold them
  (RFC 9110 §5.5), so nothing legitimate is lost; JSON keeps the exact text.
* **Spreadsheet formulas**: in CSV and TSV a text cell that begins with ``=``, ``+``, ``-``, ``@``,
  a tab or a carriage return gets a leading ``'`` (OWASP "CSV Injection"), so a spreadsheet shows
  the text instead of running it. Numbers are never prefixed (``cert.days_left`` can be ``-3``).

CSV: RFC 4180 quoting by the csv module (a cell with a comma, a quote or a line break is quoted,
quotes doubled); records end in ``\\n``, not RFC 4180's CRLF, because the output is read by
pipelines (``grep``, ``while read``) at least as often as by spreadsheets, which accept both. A list
(``cert.san``, ``header:set-cookie``) is one cell, its items on separate lines.

TSV: the escaping of PostgreSQL's ``COPY`` and MySQL's ``LOAD DATA``: backslash, tab, newline and
carriage return in a value are written ``\\\\``, ``\\t``, ``\\n``, ``\\r``, so each record is one
line and each cell one column. A list's items are joined by a newline, so escaped ``\\n``.

Table: ``TableLayout`` decides the column widths once from the field kinds and the terminal width,
then formats each row as it comes: a value too wide for its column is cut with ``…``, a row never
wraps. ``table_row`` returns the cells as text and the style of each (the status coloured by
class) and leaves the colouring to a thin rich layer (``render.table_view``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import unicodedata
from collections.abc import Sequence

from fetchheads.models import Result
from fetchheads.render.fields import Field, Value, value_text
from fetchheads.render.safe import cell_safe, terminal_safe

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""Cell beginnings a spreadsheet may read as a formula (OWASP, "CSV Injection")."""


def spreadsheet_safe(text: str) -> str:
    """``text`` with a ``'`` in front when a spreadsheet would take it for a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _cell_text(value: Value, list_separator: str) -> str:
    """A value as CSV or TSV holds it: controls escaped, formulas neutralised (text only)."""
    if isinstance(value, str):
        return spreadsheet_safe(terminal_safe(value))
    if isinstance(value, tuple):
        # Each item sanitised on its own, so the separator (a newline) survives.
        return spreadsheet_safe(list_separator.join(terminal_safe(item) for item in value))
    return value_text(value)


class CsvFormat:
    """``header()`` once, then ``row(result)`` per target; each returns one CSV record."""

    def __init__(self, fields: Sequence[Field]) -> None:
        self._fields = tuple(fields)
        self._getters = tuple(field.get for field in fields)
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")

    def _record(self, cells: list[str]) -> str:
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        self._writer.writerow(cells)
        return buffer.getvalue()

    def header(self) -> str:
        return self._record([field.name for field in self._fields])

    def row(self, result: Result) -> str:
        return self._record([_cell_text(get(result), "\n") for get in self._getters])


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def tsv_cell(value: Value) -> str:
    """A value as a TSV cell: backslash, tab, newline and CR escaped, so it is one column.
    The ``'`` against formulas goes on before escaping: a cell that begins with a tab gets it."""
    if isinstance(value, tuple):
        # A list's items are joined by an escaped newline; a newline inside an item is \x0a (as
        # in CSV), so the two cannot be confused.
        guard = "'" if value and value[0].startswith(FORMULA_STARTS) else ""
        items = (terminal_safe(item.replace("\\", "\\\\")) for item in value)
        return guard + "\\n".join(item.replace("\t", "\\t") for item in items)
    if isinstance(value, str):
        if value.isprintable() and "\\" not in value:  # the common case: nothing to escape
            return spreadsheet_safe(value)
        # Escape backslashes first so that the \xNN of terminal_safe stays unambiguous.
        return terminal_safe(spreadsheet_safe(value).translate(_TSV_ESCAPES))
    return value_text(value)


class TsvFormat:
    """``header()`` once, then ``row(result)`` per target; each returns one line."""

    def __init__(self, fields: Sequence[Field]) -> None:
        self._fields = tuple(fields)
        self._getters = tuple(field.get for field in fields)

    def header(self) -> str:
        return "\t".join(tsv_cell(field.name) for field in self._fields) + "\n"

    def row(self, result: Result) -> str:
        return "\t".join([tsv_cell(get(result)) for get in self._getters]) + "\n"


# --- the table -----------------------------------------------------------------------------------

ELLIPSIS = "…"
COLUMN_GAP = 2
"""Spaces between columns."""
MIN_FLEXIBLE = 8
"""The narrowest a text column gets however narrow the terminal (the row is cut at the width)."""
MAX_FLEXIBLE = 1000
"""The widest a text column gets however wide the terminal says it is (``COLUMNS=99999999``
would otherwise pad every row of a middle column with a hundred million spaces)."""
NONE_CELL = "-"
LIST_SEPARATOR = " | "

Style = str | None
"""A style name for the rich layer: ``status.2xx`` ... ``status.5xx``, ``failed``, ``dim``."""


def cell_width(text: str) -> int:
    """Terminal cells ``text`` takes: East Asian wide and fullwidth characters take two,
    combining marks and other zero-width characters none."""
    if text.isascii():
        return len(text)
    return sum(_char_width(char) for char in text)


def _char_width(char: str) -> int:
    if char in _ZERO_WIDTH or unicodedata.category(char) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff")
"""Format characters a terminal gives no cell (a soft hyphen, also Cf, takes one)."""


def fit(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded to exactly ``width`` cells, or cut to ``width - 1`` and ``…`` added."""
    if text.isascii():  # the common case, one cell a character
        if len(text) > width:
            return text[: width - 1] + ELLIPSIS if width > 0 else ""
        return text.rjust(width) if right else text.ljust(width)
    cells = cell_width(text)
    if cells > width:
        if width <= 0:
            return ""
        kept: list[str] = []
        room = width - 1
        for char in text:
            size = cell_width(char)
            if size > room:
                break
            kept.append(char)
            room -= size
        text = "".join(kept) + ELLIPSIS
        cells = width - room
    padding = " " * (width - cells)
    return padding + text if right else text + padding


def fit_middle(text: str, width: int) -> str:
    """``text`` padded to ``width`` cells, or cut in the middle: ``http://exa…com/b``. For the
    URL columns, whose start is shared by many rows and whose end tells them apart."""
    if cell_width(text) <= width or width < 3:
        return fit(text, width)
    tail_room = width // 2
    tail: list[str] = []
    for char in reversed(text):
        size = cell_width(char)
        if size > tail_room:
            break
        tail.append(char)
        tail_room -= size
    end = "".join(reversed(tail))
    head = fit(text[: len(text) - len(end)], width - cell_width(end))
    return head + end


HEADER_PREFIX = "header:"


def _title(name: str, width: int) -> str:
    """A column's title: its field's name, without ``header:`` where the whole would be cut (five
    header columns would all read ``header:…``, the part that tells them apart cut off)."""
    if len(name) > width and name.startswith(HEADER_PREFIX):
        return name[len(HEADER_PREFIX) :]
    return name


_URL_FIELDS = frozenset({"target", "url", "final_url"})
"""Columns cut in the middle (``fit_middle``) rather than at the end."""


@dataclasses.dataclass(frozen=True, slots=True)
class Cell:
    text: str  # exactly the column's width, sanitised
    style: Style = None


class TableLayout:
    """The column widths of a table ``width`` cells wide, decided once for the whole stream.

    Fixed columns (status, times, counts) get the width their values need, or their name's if
    longer; the text columns share the rest equally, at least ``MIN_FLEXIBLE`` each. When the
    fixed columns alone are wider than the terminal the row is simply cut at ``width``.
    """

    def __init__(self, fields: Sequence[Field], width: int = 80) -> None:
        self.fields = tuple(fields)
        self.width = width
        fixed = [
            None if field.width is None else max(field.width, len(field.name))
            for field in self.fields
        ]
        flexible = fixed.count(None)
        used = sum(w for w in fixed if w is not None) + COLUMN_GAP * (len(self.fields) - 1)
        share = min(MAX_FLEXIBLE, max(MIN_FLEXIBLE, (width - used) // flexible)) if flexible else 0
        self.widths = tuple(share if w is None else w for w in fixed)
        self._right = tuple(field.kind in _NUMERIC for field in self.fields)
        self._columns = tuple(
            (field.get, field.kind, w, r, field.name in _URL_FIELDS)
            for field, w, r in zip(self.fields, self.widths, self._right, strict=True)
        )
        # Every cell is fitted to its column, so when the columns fit, so does every row.
        self._fits = sum(self.widths) + COLUMN_GAP * (len(self.widths) - 1) <= width

    def left_out(self) -> tuple[str, ...]:
        """The columns that do not fit in the width at all, or only cut short: rows end before
        them (see ``_cut``)."""
        names: list[str] = []
        room = self.width
        for index, (field, width) in enumerate(zip(self.fields, self.widths, strict=True)):
            room -= width + (COLUMN_GAP if index else 0)
            if room < 0:
                names.append(field.name)
        return tuple(names)

    def header(self) -> list[Cell]:
        return self._cut(
            [
                Cell(fit(_title(field.name, w), w, right=r), "header")
                for field, w, r in zip(self.fields, self.widths, self._right, strict=True)
            ]
        )

    def row(self, result: Result) -> list[Cell]:
        cells = []
        for get, kind, w, right, middle in self._columns:
            value = get(result)
            text = _table_text(value)
            fitted = fit_middle(text, w) if middle else fit(text, w, right=right)
            cells.append(Cell(fitted, _style(kind, value)))
        return self._cut(cells)

    def _cut(self, cells: list[Cell]) -> list[Cell]:
        """Drop or shorten the cells that would run past the width: a row never wraps."""
        if self._fits:
            return cells
        kept: list[Cell] = []
        room = self.width
        for index, cell in enumerate(cells):
            gap = COLUMN_GAP if index else 0
            size = cell_width(cell.text)
            if gap + size <= room:
                kept.append(cell)
                room -= gap + size
                continue
            if room - gap > 1:
                kept.append(Cell(fit(cell.text.rstrip(), room - gap), cell.style))
            break
        return kept

    def line(self, cells: list[Cell]) -> str:
        """The cells as one plain line (no colour), trailing spaces dropped."""
        return join_cells(cells) + "\n"


def join_cells(cells: list[Cell]) -> str:
    return (" " * COLUMN_GAP).join([cell.text for cell in cells]).rstrip()


_NUMERIC = frozenset({"int", "seconds"})  # right-aligned; a status reads best at the left


def _table_text(value: Value) -> str:
    if value is None:
        return NONE_CELL
    if isinstance(value, float):
        return f"{value:.3f}"  # milliseconds: what a person reads in a column of timings
    if isinstance(value, tuple):
        return LIST_SEPARATOR.join(cell_safe(item) for item in value)
    if isinstance(value, str):
        return cell_safe(value)
    return value_text(value)


def _style(kind: str, value: Value) -> Style:
    if kind == "status":
        return f"status.{value // 100}xx" if isinstance(value, int) else "failed"
    if value is None:
        return "dim"
    return None
