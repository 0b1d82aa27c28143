"""The seed's greppable format: ``TARGET header > LINE``, ``TARGET error > KIND: message``.

With ``-L`` each hop followed comes first, as ``TARGET redirect > STATUS URL -> LOCATION``, so
``grep ' redirect > '`` lists every chain and ``grep ' header > '`` still sees only final heads.

Under ``--changes`` a result shows only ``TARGET changed > ...`` lines; ``--warn-days`` adds
``TARGET warning > ...`` (``render.changes``). ``--audit`` adds ``TARGET audit > ...`` lines after
the head (``render.audit``).
"""

from __future__ import annotations

from fetchheads.models import Result
from fetchheads.render.audit import audit_lines
from fetchheads.render.changes import alert_lines, change_lines
from fetchheads.render.safe import shown_target, terminal_safe


def format_plain(result: Result) -> str:
    """All lines for one result, each ending in a newline."""
    if result.changes is not None:
        lines = change_lines(result.target, result.changes)
        lines.extend(alert_lines(result.target, result.warnings or ()))
        return "".join(line + "\n" for line in lines)
    target = shown_target(result.target)
    lines = []
    for hop in result.redirects:
        url, location = terminal_safe(hop.url), terminal_safe(hop.location)
        lines.append(f"{target} redirect > {hop.status} {url} -> {location}")
    head = result.head
    if head is not None:
        prefix = f"{target} header > "
        lines.append(prefix + terminal_safe(head.status_line))
        lines.extend(prefix + terminal_safe(f"{name}: {value}") for name, value in head.headers)
    if result.error is not None:
        message = terminal_safe(result.error.message)
        lines.append(f"{target} error > {result.error.kind}: {message}")
    lines.extend(audit_lines(result))
    lines.extend(alert_lines(result.target, result.warnings or ()))
    return "".join(line + "\n" for line in lines)
