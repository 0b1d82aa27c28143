"""The speed-and-scale part of the command line (docs/scale.md): ``--resolve``,
``--dns-servers``, ``-4``/``-6``, ``--rate``, ``--retries`` and ``--shard``, validated here into
``Config`` fields; and ``--workers``."""

from __future__ import annotations

from typing import Any

import click

from fetchheads.cli.common import FLOAT, TEXT, IntRange, option_group, positive_float
from fetchheads.errors import InputError
from fetchheads.fetch.resolve import parse_dns_server, parse_resolve


def scale_options(command: Any) -> Any:
    """The fetch command's DNS, pacing, retry and sharding options."""
    options = (
        click.option(
            "--resolve",
            "resolve",
            multiple=True,
            metavar="HOST:PORT:ADDR[,ADDR]",
            callback=_resolve_entries,
            help="Connect to ADDR for HOST:PORT without asking DNS (curl's meaning); repeatable. "
            "E.g. --resolve example.com:443:127.0.0.1",
        ),
        click.option(
            "--dns-servers",
            type=TEXT,
            metavar="ADDR[,ADDR]",
            default=None,
            callback=_dns_servers,
            help="Resolve names with these DNS servers (ip or ip:port, [v6]:port) through c-ares "
            "instead of the system resolver. E.g. --dns-servers 9.9.9.9,1.1.1.1",
        ),
        click.option(
            "-4",
            "--ipv4",
            is_flag=True,
            expose_value=False,
            callback=_family("4"),
            envvar="FETCHHEADS_IPV4",  # as every other option has (expose_value=False skips it)
            help="Use IPv4 addresses only.",
        ),
        click.option(
            "-6",
            "--ipv6",
            is_flag=True,
            expose_value=False,
            callback=_family("6"),
            envvar="FETCHHEADS_IPV6",  # as every other option has (expose_value=False skips it)
            help="Use IPv6 addresses only.",
        ),
        click.option(
            "--rate",
            type=FLOAT,
            default=None,
            callback=positive_float,
            metavar="N",
            help="At most N new connections per second, evenly spaced.  [default: no limit]",
        ),
        click.option(
            "--retries",
            type=IntRange(min=0, max=100),
            metavar="N",
            default=0,
            show_default=True,
            help="Try again after a connect error or a timeout (never after an answer), waiting "
            "0.2 s, 0.4 s, 0.8 s ... with jitter; each attempt has its own --timeout.",
        ),
        click.option(
            "--shard",
            type=TEXT,
            metavar="K/N",
            default=None,
            callback=_shard,
            help="Only the targets of shard K of N (K from 1 to N), by a stable hash of the "
            "target's URL: N machines each running one shard together fetch the list once. "
            "E.g. --shard 1/4",
        ),
        click.option(
            "--workers",
            type=TEXT,
            metavar="N|auto",
            default="auto",
            show_default=True,
            callback=_workers,
            help="Processes (one event loop each) to spread the run over. auto: one per CPU core "
            "(at most one per 25 of -c) when targets come from a file or stdin and the output is "
            "lines (plain, jsonl, csv, tsv, table, -w); runs with pretty, prometheus, --db, "
            "--warn-*, --order input, --sort, --rate or the progress bar use one.",
        ),
    )
    return option_group(*options)(command)


def _family(version: str) -> Any:
    """The callback of -4 or -6, which both set ``ip_version``. Both on the command line (or
    both in the environment) contradict each other: a usage error, not "the last one wins". One on
    the command line and the other in the environment: the command line wins."""

    def callback(ctx: click.Context, param: click.Parameter, given: bool) -> None:
        ctx.params.setdefault("ip_version", "any")
        if not given:
            return
        assert param.name is not None
        source = ctx.get_parameter_source(param.name)
        chosen = ctx.meta.get("fetchheads.ip_version")
        if chosen is not None and chosen[0] != version:
            if chosen[1] == source:
                raise click.UsageError("-4/--ipv4 and -6/--ipv6 contradict each other: give one")
            return  # command-line parameters are handled first: the earlier one stands
        ctx.meta["fetchheads.ip_version"] = (version, source)
        ctx.params["ip_version"] = version

    return callback


def _resolve_entries(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    for value in values:
        try:
            parse_resolve(value)
        except InputError as exc:
            raise click.BadParameter(str(exc)) from None
    return values


def _dns_servers(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    try:
        servers = tuple(parse_dns_server(part) for part in value.split(",") if part.strip())
    except InputError as exc:
        raise click.BadParameter(str(exc)) from None
    if not servers:
        raise click.BadParameter("give at least one server address")
    return servers


def _shard(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    shard, slash, shards = value.partition("/")
    if not (slash and value.isascii() and shard.isdigit() and shards.isdigit()):
        raise click.BadParameter(f"expected K/N such as 1/4, got {value!r}")
    k, n = int(shard), int(shards)
    if not 1 <= k <= n:
        raise click.BadParameter(f"K must be between 1 and N, got {value!r}")
    return k, n


MAX_WORKERS = 64


def _workers(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    """``auto`` -> None (decided once the output is known); else a count from 1 to 64."""
    value = value.strip()
    if value.lower() == "auto":
        return None
    # isascii: "²" is a digit to isdigit() but not to int()
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_WORKERS:
        raise click.BadParameter(f"expected 1 to {MAX_WORKERS} or auto, got {value!r}")
    return int(value)
