"""The table's colours: ``render.tabular`` cells as a rich ``Text``, status coloured by class.

The cells are already sanitised and cut to their columns; this only maps their style names to
the colours the pretty view uses, so a 404 looks the same in both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from rich.color import ColorSystem
from rich.style import Style
from rich.text import Text

from fetchheads.render.pretty import status_style
from fetchheads.render.tabular import COLUMN_GAP, Cell

_STYLES = {
    "header": "bold",
    "failed": "bold red",
    "dim": "dim",
    **{f"status.{n}xx": status_style(n * 100) for n in range(10)},
}


def styled_row(cells: list[Cell]) -> Text:
    """One table row as ``Text`` (server text never read as markup: it is plain ``Text``)."""
    line = Text(no_wrap=True, overflow="crop")
    for index, cell in enumerate(cells):
        if index:
            line.append(" " * COLUMN_GAP)
        line.append(cell.text, style=_STYLES.get(cell.style or "", ""))
    line.rstrip()
    return line


def ansi_line(cells: list[Cell]) -> str:
    """One table row as a line with ANSI colours (a streaming sink writes text, not ``Text``):
    the same styles as ``styled_row``, trailing spaces dropped."""
    parts: list[str] = []
    for index, cell in enumerate(cells):
        if index:
            parts.append(" " * COLUMN_GAP)
        text = cell.text if index < len(cells) - 1 else cell.text.rstrip()
        parts.append(_render(cell.style or "")(text))
    return "".join(parts).rstrip(" ") + "\n"


@functools.cache
def _render(style: str) -> Callable[[str], str]:
    name = _STYLES.get(style, "")
    if not name:
        return str
    rich_style = Style.parse(name)
    return functools.partial(rich_style.render, color_system=ColorSystem.STANDARD)
