"""The terminal format: one block per target, status coloured by class, headers aligned.

Server text reaches rich only inside ``Text`` objects (never markup), after ``terminal_safe``, so
``[bold]`` or ``:smile:`` from a server prints as those characters and no escape byte gets through.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from fetchheads.models import Result
from fetchheads.render.safe import terminal_safe

NAME_COLUMN_MAX = 32
"""Names longer than this do not widen the column for every other header."""


def status_style(status: int) -> str:
    return {1: "blue", 2: "bold green", 3: "bold cyan", 4: "bold yellow", 5: "bold red"}.get(
        status // 100, "bold magenta"
    )


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.0f} ms"


def render_result(result: Result) -> RenderableType:
    title = Text(terminal_safe(result.target), style="bold")
    head = result.head
    if head is not None:
        title.append("  ")
        title.append(
            f"{head.status} {terminal_safe(head.reason)}".rstrip(), status_style(head.status)
        )
        title.append(f"  {head.http_version}", style="dim")
    if result.address:
        title.append(f"  {result.address}", style="dim")
    if result.timing.total is not None:
        title.append(f"  {_ms(result.timing.total)}", style="dim")
    parts: list[RenderableType] = [title]
    if head is not None and head.headers:
        width = min(max(len(name) for name, _ in head.headers) + 1, NAME_COLUMN_MAX)
        for name, value in head.headers:
            line = Text("  ")
            line.append(f"{terminal_safe(name) + ':':<{width}}", style="cyan")
            line.append("  ")
            line.append(terminal_safe(value))
            parts.append(line)
    if result.tls is not None and result.tls.not_after is not None:
        tls = result.tls
        line = Text("  TLS ", style="dim")
        line.append(f"{tls.version or ''} {tls.cipher or ''}  ".lstrip())
        line.append(
            f"expires {tls.not_after} ({tls.days_left} days)", style=_days_style(tls.days_left)
        )
        if tls.issuer:
            line.append(f"  issuer {terminal_safe(tls.issuer)}", style="dim")
        parts.append(line)
    if result.error is not None:
        error = Text("  ✗ ", style="bold red")
        error.append(f"{result.error.kind}: ", style="bold red")
        error.append(terminal_safe(result.error.message))
        parts.append(error)
    parts.append(Text(""))
    return Group(*parts)


def _days_style(days: int | None) -> str:
    if days is None or days < 0:
        return "bold red"
    return "yellow" if days < 14 else "green"
