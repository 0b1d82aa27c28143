"""The one frozen configuration of a run, built by ``cli.options.make_config``. Pure.

The choice tuples are the single source for click's choices and for the code that branches on them.
"""

from __future__ import annotations

import dataclasses

from fetchheads import __version__
from fetchheads.connect_to import ConnectTo
from fetchheads.proxy import NO_PROXY_RULES, ProxyRules

FORMATS = ("pretty", "plain", "jsonl", "table", "csv", "tsv", "prometheus")
WRITE_OUT = "write-out"
"""The format ``-w TEMPLATE`` implies (not a ``--format`` choice: the template is the format)."""
ORDERS = ("completion", "input")
METHODS = ("GET", "HEAD")
LOOPS = ("auto", "asyncio", "uvloop")

DEFAULT_CONCURRENCY = 100
DEFAULT_TIMEOUT = 10.0
DEFAULT_USER_AGENT = f"fetchheads/{__version__}"
DEFAULT_MAX_REDIRS = 10
"""curl allows 50 and browsers about 20; real chains (http -> https -> www -> locale) take 2-4."""


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float | None = None  # None: the whole timeout
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()  # extra request headers, from -H
    user_agent: str = DEFAULT_USER_AGENT
    default_scheme: str = "http"
    insecure: bool = False
    cacert: str | None = None
    order: str = "completion"
    loop: str = "auto"
    location: bool = False  # -L: follow redirects
    max_redirs: int = DEFAULT_MAX_REDIRS
    proxies: ProxyRules = NO_PROXY_RULES  # from --proxy/--noproxy and the environment
    connect_to: tuple[ConnectTo, ...] = ()
    retries: int = 0  # --retries: extra attempts after a connect error or a timeout
    rate: float | None = None  # --rate: new connections per second; None = unlimited
    shard: tuple[int, int] | None = None  # --shard K/N as (K, N), K counted from 1
    unique: bool = False  # --unique: a repeated target (the same URL) is fetched once
    ip_version: str = "any"  # -4 / -6
    dns_servers: tuple[str, ...] = ()  # --dns-servers, each "ip" or "ip:port"
    resolve: tuple[str, ...] = ()  # --resolve HOST:PORT:ADDR[,ADDR], validated by the cli
