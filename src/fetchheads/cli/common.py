"""What every command of the command line shares: exit statuses and click's context settings."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any

import click


class ExitStatus(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    WARNING = 3
    INTERRUPTED = 130
    BROKEN_PIPE = 141
    TERMINATED = 143


CONTEXT_SETTINGS: dict[str, Any] = {
    "help_option_names": ["-h", "--help"],
    "max_content_width": 100,
}


def positive_float(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A click callback: the option, when given, must be a finite number greater than 0 (click's
    float takes 'nan' and 'inf', which no deadline or rate can use)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter("must be a finite number greater than 0")
    return value


def finite_float(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A click callback for a ``FloatRange``, which lets 'nan' and 'inf' through."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter("must be a finite number")
    return value


Decorator = Callable[[Any], Any]


def option_group(*decorators: Decorator) -> Decorator:
    """One decorator applying ``decorators`` so that they appear in ``--help`` in this order."""

    def apply(command: Any) -> Any:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply
