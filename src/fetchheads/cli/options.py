"""The fetch command's options, grouped by concern, and the one place they become a ``Config``.

``fetch_options`` stacks every group in the order ``--help`` shows them. An option that sets a
``Config`` field has that field's name as its destination: the command takes its own options
(what to read, how to show it, snapshots, workers) as typed parameters, and the rest, collected
by ``**``, go to ``make_config`` whole. So each option is spelled twice (its decorator and either
its ``Config`` field or the command's parameter), never a third time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import click
from click.core import ParameterSource

from fetchheads import __version__
from fetchheads.cli.answers import answer_options
from fetchheads.cli.audit import audit_options
from fetchheads.cli.common import (
    FLOAT,
    TEXT,
    Choice,
    IntRange,
    Text,
    environment_source,
    option_group,
    positive_float,
)
from fetchheads.cli.scale import scale_options
from fetchheads.cli.snapshots import snapshot_options
from fetchheads.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_REDIRS,
    DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT,
    FORMATS,
    LOOPS,
    METHODS,
    ORDERS,
    Config,
)
from fetchheads.connect_to import ConnectTo, parse_connect_to
from fetchheads.errors import InputError
from fetchheads.http.request import check_header_value, parse_header_option
from fetchheads.proxy import ProxyRules, proxy_rules
from fetchheads.targets import SCHEMES


class MethodType(Text):
    """A request method, any case in, upper case out; the choices named as they are sent (click's
    case-insensitive Choice names them in lower case)."""

    name = "method"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        self.refuse_undecodable(value, param, ctx)
        method = str(value).upper()
        if method not in METHODS:
            self.fail(f"{value!r} is not one of {', '.join(METHODS)}.", param, ctx)
        return method


class HeaderType(click.types.StringParamType):
    """``'Name: value'`` text; from the environment, one header per line (values hold spaces)."""

    name = "header"

    def split_envvar_value(self, rv: str) -> list[str]:
        return [line for line in rv.splitlines() if line.strip()]


def _headers(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    try:
        return tuple(parse_header_option(value) for value in values)
    except InputError as exc:
        raise click.BadParameter(str(exc)) from None


def _user_agent(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        check_header_value("User-Agent", value)
    except InputError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _connect_to(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[ConnectTo, ...]:
    try:
        return tuple(parse_connect_to(value) for value in values)
    except InputError as exc:
        raise click.BadParameter(str(exc)) from None


input_options = option_group(
    # Where targets come from besides the arguments.
    click.option(
        "-i",
        "--input",
        "inputs",
        multiple=True,
        metavar="FILE",
        type=click.Path(allow_dash=True),  # a directory is refused with the other reasons
        help="Read targets from FILE, one per line ('-' for stdin); repeatable. "
        "With no TARGET and no --input, stdin is read when it is not a terminal.",
    ),
)


limit_options = option_group(
    # How many targets at once, and how long each may take.
    click.option(
        "-c",
        "--concurrency",
        type=IntRange(min=1, max=100_000),
        default=DEFAULT_CONCURRENCY,
        show_default=True,
        metavar="N",
        help="Targets in flight at once.",
    ),
    click.option(
        "-t",
        "--timeout",
        type=FLOAT,
        default=DEFAULT_TIMEOUT,
        show_default=True,
        callback=positive_float,
        help="Seconds for each target: DNS, connect, TLS and the whole head.",
    ),
    click.option(
        "--connect-timeout",
        type=FLOAT,
        default=None,
        callback=positive_float,
        help="Tighter bound in seconds on DNS+connect+TLS alone.  [default: the timeout]",
    ),
)


output_options = option_group(
    # What the output looks like and in which order it comes.
    click.option(
        "--format",
        "output_format",
        type=Choice(FORMATS),
        default=None,
        help="Output format (docs/output.md).  [default: on a terminal the table for a list "
        "read from files or stdin, pretty for targets given as arguments; plain otherwise]",
    ),
    click.option("--json", "json_flag", is_flag=True, help="Same as --format jsonl."),
    click.option(
        "--order",
        type=Choice(ORDERS),
        default="completion",
        show_default=True,
        help="Print each target as it finishes, or in input order.",
    ),
)


request_options = option_group(
    # What is sent.
    click.option(
        "-X",
        "--method",
        type=MethodType(),
        metavar=f"[{'|'.join(METHODS)}]",
        default="GET",
        show_default=True,
        help="Request method.",
    ),
    click.option(
        "-H",
        "--header",
        "headers",
        multiple=True,
        type=HeaderType(),
        metavar="'NAME: VALUE'",
        callback=_headers,
        help="Extra request header, repeatable. Replaces a default header of the same name; "
        "'Name:' with no value removes it.",
    ),
    click.option(
        "-A",
        "--user-agent",
        default=DEFAULT_USER_AGENT,
        show_default=True,
        callback=_user_agent,
        help="User-Agent header.",
    ),
    click.option(
        "--scheme",
        "default_scheme",
        type=Choice(SCHEMES),
        default="http",
        show_default=True,
        help="Scheme for targets given without one (a bare host:443 is always https).",
    ),
)


tls_options = option_group(
    # How certificates are checked.
    click.option("-k", "--insecure", is_flag=True, help="Do not verify TLS certificates."),
    click.option(
        "--cacert",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help="Trust the CA certificates in this PEM file instead of the system store.",
    ),
)


redirect_options = option_group(
    # Following redirects.
    click.option(
        "-L",
        "--location",
        is_flag=True,
        help="Follow redirects (301, 302, 303, 307, 308) and show every hop. "
        "-t covers the whole chain.",
    ),
    click.option(
        "--max-redirs",
        type=IntRange(min=0, max=1000),
        default=DEFAULT_MAX_REDIRS,
        show_default=True,
        metavar="N",
        help="With -L: fail with kind 'redirect' after N hops.",
    ),
)


route_options = option_group(
    # Which way connections go: proxies and --connect-to.
    click.option(
        "--proxy",
        metavar="URL",
        default=None,
        help="Use this HTTP proxy, e.g. http://user:pass@127.0.0.1:3128 (port 1080 if none); "
        "https goes through a CONNECT tunnel. '' disables the proxy environment variables.  "
        "[default: https_proxy, http_proxy, all_proxy as curl reads them]",
    ),
    click.option(
        "--noproxy",
        metavar="LIST",
        type=TEXT,
        default=None,
        help="Hosts that go direct, e.g. 'localhost,.internal,10.0.0.0/8' ('*' for all); "
        "replaces no_proxy/NO_PROXY.",
    ),
    click.option(
        "--connect-to",
        "connect_to",
        type=TEXT,
        multiple=True,
        metavar="HOST:PORT:CHOST:CPORT",
        callback=_connect_to,
        help="Connect to CHOST:CPORT for requests to HOST:PORT, still sending HOST as Host and SNI "
        "(curl's meaning; empty fields match any / keep the same). Repeatable. "
        "Example: --connect-to example.com:443:127.0.0.1:8443",
    ),
)


terminal_options = option_group(
    # The terminal view and the event loop.
    click.option(
        "--waterfall/--no-waterfall",
        default=None,
        help="Timing bars (dns, connect, tls, first byte) in the pretty output.  "
        "[default: on for up to 3 targets given as arguments]",
    ),
    click.option(
        "--progress/--no-progress",
        default=None,
        help="Progress bar and summary on stderr.  [default: on when stderr is a terminal]",
    ),
    click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary."),
    click.option(
        "--loop",
        "loop",
        type=Choice(LOOPS),
        default="auto",
        show_default=True,
        help="Event loop: uvloop where installed (auto), or the standard asyncio loop.",
    ),
)


fetch_options = option_group(
    input_options,
    limit_options,
    output_options,
    answer_options,
    request_options,
    tls_options,
    redirect_options,
    route_options,
    terminal_options,
    snapshot_options,
    audit_options,
    scale_options,
    click.version_option(__version__, "--version", prog_name="fetchheads"),
)
"""Every option of the fetch command, in the order of its --help."""


def make_config(
    fields: Mapping[str, Any], *, concurrency: int, proxy: str | None, noproxy: str | None
) -> Config:
    """The run's ``Config``: ``fields`` are the values of the options named after its fields,
    ``concurrency`` is ``-c`` as lowered to fit the open-file limit, and the proxy rules come
    from --proxy, --noproxy and the environment."""
    return Config(concurrency=concurrency, proxies=_proxy_rules(proxy, noproxy), **fields)


def _proxy_rules(proxy: str | None, noproxy: str | None) -> ProxyRules:
    ctx = click.get_current_context(silent=True)
    # click drops an empty environment value, but FETCHHEADS_PROXY='' means what --proxy ''
    # means (no proxy, whatever *_proxy says), as FETCHHEADS_NOPROXY='' means --noproxy ''.
    if proxy is None and os.environ.get("FETCHHEADS_PROXY") == "":
        proxy = ""
    if noproxy is None and os.environ.get("FETCHHEADS_NOPROXY") == "":
        noproxy = ""
    option = "--proxy"
    if ctx is not None and ctx.get_parameter_source("proxy") is ParameterSource.ENVIRONMENT:
        param = next(param for param in ctx.command.params if param.name == "proxy")
        option = f"{environment_source(param)} (--proxy)"
    try:
        return proxy_rules(os.environ, proxy=proxy, noproxy=noproxy, option=option)
    except InputError as exc:
        hint = " (--proxy '' ignores the proxy environment)" if proxy is None else ""
        raise click.UsageError(f"{exc}{hint}") from None
