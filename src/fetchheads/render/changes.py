"""The text of ``--changes`` and ``--warn-days`` in the plain format, shared by ``history`` and
``diff``. Pure.

``TARGET changed > X-Version: 1 -> 2``: one line per change, the values of a repeated header joined
with ``, `` in wire order, an absent side shown as ``(none)``; a certificate change as the one line
that names it (``TARGET changed > certificate: renewed, expires 2027-03-01 (was 2026-12-01)``);
``TARGET warning > MESSAGE`` for an alert.
"""

from __future__ import annotations

from collections.abc import Iterable

from fetchheads.models import Alert, Change
from fetchheads.render.safe import shown_target, terminal_safe

NONE = "(none)"


def show_values(values: tuple[str, ...]) -> str:
    return terminal_safe(", ".join(values)) if values else NONE


def change_name(change: Change) -> str:
    """The name a change is shown under: a summarized one (``:certificate``) without its colon."""
    name = change.name.removeprefix(":") if change.summary is not None else change.name
    return terminal_safe(name)


def describe_change(change: Change) -> str:
    """``X-Version: 1 -> 2``, or a summarized change's summary; terminal-safe."""
    if change.summary is not None:
        return f"{change_name(change)}: {terminal_safe(change.summary)}"
    name = terminal_safe(change.name)
    return f"{name}: {show_values(change.before)} -> {show_values(change.after)}"


def change_lines(target: str, changes: Iterable[Change]) -> list[str]:
    shown = shown_target(target)
    return [f"{shown} changed > {describe_change(change)}" for change in changes]


def alert_lines(target: str, alerts: Iterable[Alert]) -> list[str]:
    shown = shown_target(target)
    return [f"{shown} warning > {terminal_safe(alert.message)}" for alert in alerts]
