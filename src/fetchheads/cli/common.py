"""What every command of the command line shares: exit statuses, click's context settings, and
how click's errors are worded."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import click

from fetchheads.render.safe import terminal_safe
from fetchheads.run.process import ExitStatus
from fetchheads.targets import not_utf8, undecodable_byte, undecodable_replaced

__all__ = [
    "BOOL",
    "CONTEXT_SETTINGS",
    "FLOAT",
    "TEXT",
    "Choice",
    "ExitStatus",
    "FloatRange",
    "IntRange",
    "NamesByte",
    "environment_source",
    "finite_float",
    "make_readable",
    "option_group",
    "positive_float",
]

CONTEXT_SETTINGS: dict[str, Any] = {
    "help_option_names": ["-h", "--help"],
    "max_content_width": 100,
}


class NamesByte(click.ParamType):  # type: ignore[type-arg]
    """Mixed into a parameter type: text holding a byte that was not UTF-8 (Python keeps one of an
    argument or a variable as a surrogate escape) is refused by naming the byte, ``byte 0xE9 in
    it is not UTF-8``, before the type quotes the text back in Python's notation (``'\\udce9'``)
    or calls it something it is not. For options whose text is a name, a number or a choice:
    never a file name, which may hold such a byte, nor a target, which becomes an input record."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        self.refuse_undecodable(value, param, ctx)
        return super().convert(value, param, ctx)

    def refuse_undecodable(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> None:
        """The check, for a type whose own ``convert`` comes first."""
        if isinstance(value, str):
            byte = undecodable_byte(value)
            if byte is not None:
                self.fail(not_utf8(byte), param, ctx)


class Text(NamesByte, click.types.StringParamType):
    pass


class Bool(NamesByte, click.types.BoolParamType):
    """A flag's value in its environment variable (``FETCHHEADS_INSECURE=1``). A value it cannot
    read says which it can: click lists them sorted, with the empty string first as a stray
    comma (``Recognized values: , 0, 1, f, ...``), or not at all (click 8.1)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        self.refuse_undecodable(value, param, ctx)
        try:
            return click.types.BoolParamType.convert(self, value, param, ctx)
        except click.BadParameter:
            # Empty is no value: the flag's default, which is off but for --waterfall and
            # --progress (decided by the run: on for a few targets, on a terminal).
            chosen = param is not None and param.default is None
            empty = "empty leaves the default" if chosen else "empty is off"
            self.fail(
                f"{value!r} is neither on nor off: give 1 or 0 (also true/false, yes/no, on/off; "
                f"{empty})",
                param,
                ctx,
            )


class Float(NamesByte, click.types.FloatParamType):
    pass


class Choice(NamesByte, click.Choice):  # type: ignore[type-arg]
    pass


class IntRange(NamesByte, click.IntRange):
    pass


class FloatRange(NamesByte, click.FloatRange):
    pass


TEXT = Text()
BOOL = Bool()
FLOAT = Float()


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


def make_readable(error: click.ClickException) -> None:
    """Word ``error`` for the person who has to act on it, before click prints it: a bad value
    that came from the environment names its variable (``Invalid value for FETCHHEADS_TIMEOUT
    (--timeout): 'abc' is not a valid float.``: the command line shows no ``--timeout`` to
    fix), and control characters of a file name or target are shown escaped, as server text is."""
    # A group given no command (`fetchheads db`) shows its help: our own lines (click 8.2+).
    if isinstance(error, getattr(click.exceptions, "NoArgsIsHelpError", ())):
        return
    # click declares ``message`` Final, but reads it back only when the error is shown.
    # A file name's byte that was not UTF-8 is shown as U+FFFD, so that the line can be written.
    error.message = terminal_safe(undecodable_replaced(error.message))  # type: ignore[misc]
    if isinstance(error, click.NoSuchOption):
        _format_as_option(error)
    if not isinstance(error, click.BadParameter):
        return
    ctx, hint = error.ctx, error.param_hint
    if ctx is None:
        return
    # A value checked after parsing (--db, -i, --cacert) names its option as a string hint.
    param = error.param if hint is None else _option_named(ctx, hint)
    if not isinstance(param, click.Option) or param.name is None:
        return
    if ctx.get_parameter_source(param.name) is not click.core.ParameterSource.ENVIRONMENT:
        return
    shown = max(param.opts, key=len) if hint is None else hint
    error.param_hint = f"{environment_source(param)} ({shown})"


def _format_as_option(error: click.NoSuchOption) -> None:
    """``--csv``, ``--table``, ``--prometheus``: a format's name taken for an option. Say how
    to ask for it, instead of click's nearest options (``--failed``, ``--rate`` for ``--table``)."""
    name = error.option_name.lstrip("-")
    for param in error.ctx.command.params if error.ctx is not None else ():
        if "--format" in param.opts and isinstance(param.type, click.Choice):
            if name in param.type.choices:
                error.message = (  # type: ignore[misc]
                    f"No such option '{error.option_name}': a format is chosen with --format {name}"
                )
                error.possibilities = []  # type: ignore[misc]
            return


def name_environment(message: str, ctx: click.Context | None = None) -> str:
    """``message``, a usage error that names an option (``invalid status '2yy' in
    --match-status``), naming the variable instead where the value came from the environment
    (``in FETCHHEADS_MATCH_STATUS (--match-status)``): the command line shows no option to fix."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return message
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name is None:
            continue
        if ctx.get_parameter_source(param.name) is not click.core.ParameterSource.ENVIRONMENT:
            continue
        option = max(param.opts, key=len)
        if f"in {option}" in message:
            message = message.replace(
                f"in {option}", f"in {environment_source(param)} ({option})", 1
            )
    return message


def _option_named(ctx: click.Context, hint: str | Sequence[str]) -> click.Parameter | None:
    """The option of ``ctx``'s command that a ``param_hint`` such as ``-i/--input`` names."""
    names = set(hint.split("/") if isinstance(hint, str) else hint)
    return next((param for param in ctx.command.params if names <= set(param.opts)), None)


def environment_source(param: click.Parameter) -> str:
    """The environment variable ``param`` took its value from (the first set one)."""
    names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
    return next((name for name in names if os.environ.get(name)), " or ".join(names))
