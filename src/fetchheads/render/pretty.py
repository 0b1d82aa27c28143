"""The terminal format: one block per target, status coloured by class, headers aligned.

Server text reaches rich only inside ``Text`` objects (never markup), after ``cell_safe``, so
``[bold]`` or ``:smile:`` from a server prints as those characters and no escape byte gets through.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from rich.cells import cell_len, get_character_cell_size
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.text import Text

from fetchheads.models import Alert, Change, Result, Timing, TLSInfo, utc_now
from fetchheads.render.audit import audit_of, describe_check, headline, listed
from fetchheads.render.changes import change_name, show_values
from fetchheads.render.safe import cell_safe
from fetchheads.wording import days_left_words, lifetime_words

NAME_COLUMN_MAX = 32
"""Names longer than this do not widen the column for every other header: such a name has a line
of its own, and its value starts on the next line, in the column."""
MIN_WRAP_WIDTH = 20
"""On a terminal narrower than indent + this, continuation lines give up the indent."""


class Hanging:
    """``text`` wrapped to the terminal with continuation lines indented by ``indent`` cells, so a
    long URL, header value or message stays inside its block instead of running back to column
    0. Long words (cookies, tokens) are folded; nothing is cut off."""

    def __init__(self, text: Text, indent: int) -> None:
        self.text = text
        self.indent = indent

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        indent = self.indent if options.max_width - self.indent >= MIN_WRAP_WIDTH else 0
        # The first line has the whole width; only the continuation lines give up the indent.
        breaks = line_breaks(
            self.text.plain, max(options.max_width - indent, 1), first=max(options.max_width, 1)
        )
        lines = self.text.divide(breaks)
        for line in lines:
            line.rstrip()
        joined = Text("\n" + " " * indent).join(lines)
        joined.no_wrap = True  # already wrapped: every line fits
        yield joined


def line_breaks(text: str, width: int, *, first: int | None = None) -> list[int]:
    """Where to start new lines so that no line of ``text`` is wider than ``width`` cells (the
    first line: ``first`` cells, default ``width``): at spaces where possible; a word too long for
    the room left is folded where it stands (rich would first move it to a line of its own,
    leaving a header name alone beside a blank)."""
    rest = width
    width = rest if first is None else first
    breaks: list[int] = []
    column = 0
    start = 0
    while start < len(text):
        if breaks:
            width = rest
        end = start
        if text[start] == " ":
            while end < len(text) and text[end] == " ":
                end += 1
            column += end - start
            if column > width:  # the spaces end the line (rstrip drops them)
                breaks.append(end)
                column = 0
            start = end
            continue
        while end < len(text) and text[end] != " ":
            end += 1
        cells = cell_len(text[start:end])
        if column + cells <= width:
            column += cells
        elif cells <= rest - MIN_WRAP_WIDTH // 2 or (cells <= rest and column == 0):
            breaks.append(start)  # a short word moves down whole
            column = cells
        else:
            for at in range(start, end):
                size = get_character_cell_size(text[at])
                if column + size > width and column > 0:
                    breaks.append(at)
                    column = 0
                    width = rest
                column += size
        start = end
    return breaks


def status_style(status: int) -> str:
    return {1: "blue", 2: "bold green", 3: "bold cyan", 4: "bold yellow", 5: "bold red"}.get(
        status // 100, "bold magenta"
    )


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return ""
    # Loopback phases take well under a millisecond: "0 ms" would hide them.
    return f"{seconds * 1000:.1f} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"


WATERFALL_WIDTH = 32
"""Cells of the widest bar: the whole time of the target."""
MAX_NAMES_SHOWN = 6
"""Certificate names listed before ``+N more`` (CDN certificates carry hundreds)."""


def render_result(result: Result, *, waterfall: bool = False) -> RenderableType:
    """One target's block. ``waterfall`` adds the timing bars (for one or a few targets)."""
    title = Text(cell_safe(result.target), style="bold")
    head = result.head
    if head is not None:
        title.append("  ")
        # A head cut short by an error is no success, whatever its status line said.
        failure = result.error
        title.append(
            f"{head.status} {cell_safe(head.reason)}".rstrip(),
            status_style(head.status) if failure is None else "bold red",
        )
        if failure is not None:
            cut = failure.kind == "protocol"  # the head ended before its blank line
            title.append("  (incomplete)" if cut else "  (failed)", style="bold red")
        title.append(f"  {head.http_version}", style="dim")
    if result.address:
        title.append(f"  {result.address}", style="dim")
    if result.timing.total is not None:
        title.append(f"  {_ms(result.timing.total)}", style="dim")
    parts: list[RenderableType] = [Hanging(title, 2)]
    if result.changes is not None:  # --changes: what changed, not the whole head
        return Group(*parts, *change_lines(result.changes), *alert_lines(result.warnings), Text(""))
    parts.extend(_redirect_lines(result))
    if head is not None and head.headers:
        parts.extend(header_lines(head.headers))
    if result.tls is not None:
        rejected = result.error is not None and result.error.kind == "tls"
        parts.extend(tls_lines(result.tls, rejected=rejected, now=result.fetched_at))
    if waterfall:
        parts.append(Waterfall(result.timing, last_hop=bool(result.redirects)))
    parts.extend(audit_block(result))
    parts.extend(alert_lines(result.warnings))
    if result.error is not None:
        error = Text("  ✗ ", style="bold red")
        error.append(f"{result.error.kind}: ", style="bold red")
        error.append(cell_safe(result.error.message))
        parts.append(Hanging(error, 4))
    parts.append(Text(""))
    return Group(*parts)


def header_lines(headers: tuple[tuple[str, str], ...]) -> list[RenderableType]:
    """``  Name:  value``, the values in one column (continuation lines too). A name too long
    for the column gets a line of its own, its value below in the column."""
    names = [cell_safe(name) + ":" for name, _ in headers]
    fitting = [cell_len(name) for name in names if cell_len(name) <= NAME_COLUMN_MAX]
    width = max(fitting, default=0)
    lines: list[RenderableType] = []
    for name, (_, value) in zip(names, headers, strict=True):
        line = Text("  ")
        if cell_len(name) > width:
            line.append(name, style="cyan")
            lines.append(Hanging(line, 4))
            line = Text(" " * (width + 4))
        else:
            line.append(name + " " * (width - cell_len(name)), style="cyan")
            line.append("  ")
        line.append(cell_safe(value))
        lines.append(Hanging(line, width + 4))
    return lines


def _redirect_lines(result: Result) -> list[RenderableType]:
    """``↪ 301 http://a/ → https://a/`` for each hop followed with ``-L``, first hop first."""
    lines: list[RenderableType] = []
    for hop in result.redirects:
        line = Text("  ↪ ", style="dim")
        line.append(str(hop.status), status_style(hop.status))
        line.append(f" {cell_safe(hop.url)}")
        line.append(" → ", style="dim")
        line.append(cell_safe(hop.location))
        lines.append(Hanging(line, 4))
    return lines


def tls_lines(
    tls: TLSInfo, *, rejected: bool = False, now: dt.datetime | None = None
) -> list[RenderableType]:
    """The TLS facts: protocol and cipher, whether the certificate was verified, its expiry and
    lifetime, issuer, subject, names, key and fingerprints, and the chain the server sent.
    ``rejected``: verification failed (the error line says why), so no "not verified" line.
    ``now``: when the target was fetched, for how long ago an expired certificate ended."""
    first = Text("  TLS  ", style="dim")
    first.append(" ".join(part for part in (tls.version, tls.cipher) if part) or "?")
    lines: list[RenderableType] = [first]
    if not tls.verified and not rejected:
        lines.append(Text("       certificate not verified (-k)", style="yellow"))
    if tls.not_after is None:
        lines.append(Text("       certificate not readable: no names or dates", style="dim"))
        return lines
    expiry = Text("       expires ", style="dim")
    days = "?" if tls.days_left is None else days_left_words(tls.days_left)
    if tls.days_left is not None and tls.days_left < 0:
        from fetchheads.certificates import expired_ago  # an expired certificate only

        days = f"EXPIRED {expired_ago(tls.not_after, now or utc_now())}"
    if tls.life_left is not None and tls.lifetime_days is not None:
        lifetime = lifetime_words(tls.lifetime_days, tls.not_before, tls.not_after)
        days += f"; {tls.life_left:.0%} of its {lifetime} lifetime left"
    expiry.append(f"{tls.not_after} ({days})", style=_days_style(tls.days_left))
    lines.append(Hanging(expiry, 7))
    issuer = f"{tls.issuer} (self-signed)" if tls.self_signed else tls.issuer
    for label, value in (
        ("issuer", issuer),
        ("subject", tls.subject),
        ("key", ", ".join(part for part in (tls.key, tls.signature_algorithm) if part)),
        ("serial", tls.serial),
        ("sha256", tls.fingerprint_sha256),
        ("spki", tls.spki_sha256),  # sha256 too; "spki sha256 " would push the hash past 80
    ):
        if value:
            line = Text(f"       {label} ", style="dim")
            line.append(cell_safe(value))
            lines.append(Hanging(line, 7))
    if tls.san:
        shown = ", ".join(cell_safe(name) for name in tls.san[:MAX_NAMES_SHOWN])
        more = len(tls.san) - MAX_NAMES_SHOWN
        line = Text("       names ", style="dim")
        line.append(shown)
        if more > 0:
            line.append(f" +{more} more", style="dim")
        lines.append(Hanging(line, 7))
    lines.extend(_chain_lines(tls, tls.not_after))
    return lines


def _chain_lines(tls: TLSInfo, leaf_end: str) -> list[RenderableType]:
    """``chain SUBJECT, expires DATE`` for each certificate the server sent after its own; red
    when it expires before the certificate itself."""
    if tls.chain is None:
        return [Text("       chain not known: this Python cannot show it (3.13 can)", style="dim")]
    lines: list[RenderableType] = []
    for cert in tls.chain[1:]:
        line = Text("       chain ", style="dim")
        line.append(cell_safe(cert.subject or "?"))
        line.append(", expires ", style="dim")
        early = cert.not_after is not None and cert.not_after < leaf_end
        line.append(cert.not_after or "?", style="bold red" if early else "")
        lines.append(Hanging(line, 7))
    return lines


def waterfall_phases(timing: Timing) -> list[tuple[str, float, float]]:
    """``(name, start, end)`` in seconds from the target's start, for each phase that happened.

    ``Timing`` holds the moment each phase ended; a phase starts where the one before it ended.
    "first byte" is the server's wait: from the request (after TLS, or connect) to the first byte.
    """
    phases = []
    edge = 0.0
    for name, end in (
        ("dns", timing.dns),
        ("connect", timing.connect),
        ("tls", timing.tls),
        ("first byte", timing.ttfb),
    ):
        if end is None:
            continue
        phases.append((name, edge, end))
        edge = end
    return phases


WATERFALL_MIN_WIDTH = 8
"""Fewer cells than this for the bars (a terminal under 30 columns): no waterfall at all."""
_WATERFALL_LABELS = 2 + 11 + 1 + 8  # the indent, the phase name, a space, the duration


class Waterfall:
    """The waterfall, its bars as wide as the terminal allows (``WATERFALL_WIDTH`` at most), so
    that no row wraps; left out on a terminal too narrow for ``WATERFALL_MIN_WIDTH`` cells."""

    def __init__(self, timing: Timing, *, last_hop: bool = False) -> None:
        self.timing = timing
        self.last_hop = last_hop

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        width = min(WATERFALL_WIDTH, options.max_width - _WATERFALL_LABELS)
        if width < WATERFALL_MIN_WIDTH:
            return
        bars = waterfall_lines(self.timing, width)
        if bars and self.last_hop:
            yield Text("  timing of the last hop:", style="dim")
        yield from bars


def waterfall_lines(timing: Timing, width: int = WATERFALL_WIDTH) -> list[Text]:
    """httpstat's picture as bars: each phase one row, placed on a common time axis scaled to
    ``total``, with its own duration; then the total."""
    total = timing.total
    if total is None:
        return []
    scale = width / total if total > 0 else 0.0
    lines = []
    for name, start, end in waterfall_phases(timing):
        first = min(int(start * scale), width - 1)
        last = max(first + 1, min(round(end * scale), width))
        line = Text(f"  {name:<11}", style="dim")
        line.append(" " * first)
        line.append("█" * (last - first), style=_PHASE_STYLES[name])
        line.append(" " * (width - last))
        line.append(f" {_ms(end - start):>8}")
        lines.append(line)
    if lines:
        line = Text(f"  {'total':<11}", style="dim")
        line.append("─" * width, style="dim")
        line.append(f" {_ms(total):>8}", style="bold")
        lines.append(line)
    return lines


_PHASE_STYLES = {"dns": "cyan", "connect": "green", "tls": "magenta", "first byte": "yellow"}


def _days_style(days: int | None) -> str:
    if days is None or days < 0:
        return "bold red"
    return "yellow" if days < 14 else "green"


def change_lines(changes: tuple[Change, ...]) -> list[RenderableType]:
    """``  X-Version:  1  →  2``: before in red, after in green, an absent side dim; a summarized
    change (``certificate:  renewed, expires ...``) in yellow."""
    lines: list[RenderableType] = []
    for change in changes:
        line = Text("  ")
        line.append(f"{cell_safe(change_name(change))}:", style="cyan")
        line.append("  ")
        if change.summary is not None:
            line.append(cell_safe(change.summary), style="yellow")
            lines.append(Hanging(line, 4))
            continue
        before, after = (cell_safe(show_values(side)) for side in (change.before, change.after))
        line.append(before, style="red" if change.before else "dim")
        line.append("  →  ", style="dim")
        line.append(after, style="green" if change.after else "dim")
        lines.append(Hanging(line, 4))
    return lines


GRADE_STYLES = {"A": "bold green", "B": "green", "C": "yellow", "D": "bold yellow", "F": "bold red"}


def audit_block(result: Result) -> list[RenderableType]:
    """``  audit  B  score 70  ...``, then each failing test (``✗``), each passed test that costs
    points (``✓`` with its modifier) and each finding, one line each."""
    audit = audit_of(result)
    if audit is None:
        return []
    line = Text("  audit  ", style="dim")
    if audit.graded and audit.grade is not None:
        line.append(audit.grade, style=GRADE_STYLES.get(audit.grade[0], "bold"))
        line.append(f"  score {audit.score}", style="bold")
        line.append(f"  rules {audit.rules_version}", style="dim")
    else:
        line.append(cell_safe(headline(audit)), style="dim")
    lines: list[RenderableType] = [Hanging(line, 4)]
    for verdict, check in listed(audit):
        text = Text("    ✗ ", style="red") if verdict == "fail" else Text("    ✓ ", style="yellow")
        text.append(cell_safe(describe_check(check)))
        lines.append(Hanging(text, 6))
    for finding in audit.findings:
        text = Text(f"    • {finding.kind}: ", style="yellow")
        text.append(cell_safe(finding.message))
        lines.append(Hanging(text, 6))
    return lines


def alert_lines(alerts: tuple[Alert, ...] | None) -> list[RenderableType]:
    return [
        Hanging(Text("  ⚠ " + cell_safe(alert.message), style="bold yellow"), 4)
        for alert in alerts or ()
    ]
