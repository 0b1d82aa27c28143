"""The text of ``--changes`` and ``--warn-days`` in the plain format, shared by ``history`` and
``diff``. Pure.

``TARGET changed > X-Version: 1 -> 2``: one line per change, the values of a repeated header joined
with ``, `` in wire order, an absent side shown as ``(none)``; ``TARGET warning > MESSAGE`` for an
alert.
"""

from __future__ import annotations

from collections.abc import Iterable

from fetchheads.models import Alert, Change
from fetchheads.render.safe import shown_target, terminal_safe

NONE = "(none)"


def show_values(values: tuple[str, ...]) -> str:
    return terminal_safe(", ".join(values)) if values else NONE


def describe_change(change: Change) -> str:
    """``X-Version: 1 -> 2``, terminal-safe."""
    name = terminal_safe(change.name)
    return f"{name}: {show_values(change.before)} -> {show_values(change.after)}"


def change_lines(target: str, changes: Iterable[Change]) -> list[str]:
    shown = shown_target(target)
    return [f"{shown} changed > {describe_change(change)}" for change in changes]


def alert_lines(target: str, alerts: Iterable[Alert]) -> list[str]:
    shown = shown_target(target)
    return [f"{shown} warning > {terminal_safe(alert.message)}" for alert in alerts]
