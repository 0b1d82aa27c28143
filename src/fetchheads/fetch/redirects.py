"""Following redirects (``-L``): where a ``Location`` leads, when to stop, and the hop loop.

Each hop is a whole fetch of the next URL by the ``fetch`` function it is given (``fetch_one`` in a
run), so this module never touches a socket; it imports no asyncio either, only awaits.

Deadline: ``-t`` bounds the whole chain. Each hop gets what is left of it (``timeout`` minus the
time the earlier hops took: their ``timing.total``, and with ``--retries`` their earlier attempts
and the backoff after each, ``RETRIED``), so a slow first hop leaves less to the later ones.
Every attempt of a hop gets the hop's share, so a chain takes at most about ``(N + 1) x -t`` with
``--retries N``, as one target does. Waiting for a ``--rate`` turn is no part of it
(``fetch_one`` waits before each attempt's own clock starts). ``--connect-timeout`` still bounds
each hop's connection.

Request headers: ``-H`` headers go to every hop, except ``Authorization``, ``Cookie`` and ``Host``,
which are sent only while the hop has the scheme, host and port the user asked for (what curl does
without ``--location-trusted``): a redirect must not carry credentials to another origin. The
target's own ``user:password@`` follows the same rule.
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
from collections.abc import Awaitable, Callable

from fetchheads.config import Config
from fetchheads.credentials import redact_url
from fetchheads.errors import ErrorKind, InputError
from fetchheads.models import ErrorInfo, Redirect, ResponseHead, Result, Target
from fetchheads.targets import parse_target

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
"""The statuses whose ``Location`` is followed (RFC 9110 §15.4; 300 and 304 are not redirects to
follow, 305 and 306 are deprecated)."""

ORIGIN_ONLY_HEADERS = frozenset({"authorization", "cookie", "host"})

FetchWith = Callable[[Target, Config], Awaitable[Result]]
"""``fetch(target, config)``: one complete fetch, honouring ``config.timeout`` as its deadline."""

RETRIED: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar(
    "RETRIED", default=None
)
"""Where ``fetch.one`` notes, for the hop of a chain it is fetching, the seconds each attempt it
retried took with the backoff after it: ``follow`` charges them to the chain's ``-t``, as it does
the last attempt (``timing.total``). A ``--rate`` wait is in neither."""


def redirect_location(head: ResponseHead | None) -> str | None:
    """The ``Location`` to follow, or ``None`` when ``head`` is not a redirect to follow."""
    if head is None or head.status not in REDIRECT_STATUSES:
        return None
    location = head.get("Location")
    if location is None or not location.strip():
        return None  # a 3xx without a Location is just a response, as in curl and browsers
    return location.strip()


def resolve_location(current: Target, location: str) -> Target:
    """The target a ``Location`` value leads to, resolved against the URL that answered
    (RFC 3986 §5.2: absolute, scheme-relative ``//host/p``, ``/path``, ``path``, ``?query``).

    The result keeps the user's ``text`` and input ``line``: records are about what the user typed.
    Raises ``InputError`` when the new URL is not one fetchheads can fetch (another scheme, a bad
    host, control characters). Spaces are percent-encoded first, as browsers do.
    """
    import urllib.parse  # only -L pays for the import

    try:
        absolute = urllib.parse.urljoin(current.url, location.replace(" ", "%20"))
    except ValueError:
        # urllib's own words quote the host part, password and all: not repeated here.
        raise InputError("not a URL: its host part cannot be read") from None
    if not absolute.lower().startswith(("http://", "https://")):
        scheme = absolute.split(":", 1)[0] if ":" in absolute else absolute
        raise InputError(f"unsupported scheme {scheme!r}")
    target = parse_target(absolute)
    return dataclasses.replace(target, text=current.text)


def _origin(target: Target) -> tuple[str, str, int]:
    return (target.scheme, target.host, target.port)


def hop_config(config: Config, first: Target, hop: Target, timeout: float) -> Config:
    """The configuration for one hop: its share of the deadline, and no credentials for a hop
    that left the first target's origin."""
    headers = config.headers
    if _origin(hop) != _origin(first):
        headers = tuple((n, v) for n, v in headers if n.lower() not in ORIGIN_ONLY_HEADERS)
    return dataclasses.replace(config, timeout=timeout, headers=headers)


async def follow(
    target: Target,
    fetch: FetchWith,
    config: Config,
) -> Result:
    """Fetch ``target`` and follow its redirects, at most ``config.max_redirs`` of them.

    Always returns one ``Result`` for the whole chain: ``target`` as the user typed it, ``url``,
    head, timing, address and TLS of the last hop, ``redirects`` listing every hop followed, and
    ``fetched_at`` of the first. A loop, one hop too many or a ``Location`` that cannot be followed
    end the chain with kind ``redirect``, keeping the redirect response that could not be followed.
    """
    spent = 0.0  # by the hops so far: their attempts and retry backoffs, not their --rate waits
    hops: list[Redirect] = []
    visited = {target.url}
    current = target
    first: Result | None = None
    while True:
        # The first hop has all of -t, and its timeout names the -t the user gave. Later hops:
        # whole milliseconds, rounded down: the chain never exceeds -t, and a timeout message
        # reads "within 2.5s", not "within 2.49987s".
        if not hops:
            remaining = config.timeout
        else:
            remaining = math.floor((config.timeout - spent) * 1000) / 1000
        if remaining <= 0:
            # Only reachable between hops: the last hop finished just as the budget ran out.
            return _chain(
                Result(target=target.text, url=current.url),
                first,
                hops,
                ErrorInfo(
                    ErrorKind.TIMEOUT,
                    f"no complete response head within {config.timeout:g}s: "
                    f"the time ran out after {_redirects(len(hops))}",
                ),
            )
        retried: list[float] = []
        token = RETRIED.set(retried)
        try:
            result = await fetch(current, hop_config(config, target, current, remaining))
        finally:
            RETRIED.reset(token)
        first = first or result
        # The hop's last attempt, and its earlier attempts with the backoff after each (--retries)
        spent += (result.timing.total or 0.0) + sum(retried)
        if result.error is not None:
            error = result.error
            if error.kind is ErrorKind.TIMEOUT and hops:
                # The hop's message names its own share; say whose share it was.
                message = f"{error.message}: the rest of -t {config.timeout:g}s after "
                error = ErrorInfo(error.kind, message + _redirects(len(hops)))
            return _chain(result, first, hops, error)
        location = redirect_location(result.head)
        if location is None:
            return _chain(result, first, hops, None)
        assert result.head is not None
        try:
            following = resolve_location(current, location)
        except InputError as exc:
            message = f"cannot follow Location {redact_url(location)!r}: {exc}"
            return _chain(result, first, hops, ErrorInfo(ErrorKind.REDIRECT, message))
        if following.authorization is None and _origin(following) == _origin(target):
            # The target's user:password@ goes on to its own origin, never to another (curl).
            following = dataclasses.replace(following, authorization=target.authorization)
        if len(hops) >= config.max_redirs:
            many = "redirect" if config.max_redirs == 1 else "redirects"
            message = f"more than {config.max_redirs} {many} (--max-redirs {config.max_redirs})"
            return _chain(result, first, hops, ErrorInfo(ErrorKind.REDIRECT, message))
        if following.url in visited:
            # The hop that closes the loop is listed, but its response is the chain's result:
            # its timing is the result's own, which -w and Prometheus would otherwise add twice.
            hops.append(Redirect(current.url, result.head.status, following.url, head=result.head))
            message = f"redirect loop: {following.url} was already visited"
            return _chain(result, first, hops, ErrorInfo(ErrorKind.REDIRECT, message))
        hops.append(
            Redirect(
                current.url,
                result.head.status,
                following.url,
                timing=result.timing,
                head=result.head,
            )
        )
        visited.add(following.url)
        current = following


def _redirects(count: int) -> str:
    return f"{count} redirect{'' if count == 1 else 's'}"


def _chain(
    last: Result, first: Result | None, hops: list[Redirect], error: ErrorInfo | None
) -> Result:
    return dataclasses.replace(
        last,
        error=error,
        redirects=tuple(hops),
        fetched_at=(first or last).fetched_at,
    )


def following(fetch: FetchWith, config: Config) -> Callable[[Target], Awaitable[Result]]:
    """``fetch`` wrapped so that each target's redirects are followed (what ``-L`` plugs in)."""

    async def fetch_following(target: Target) -> Result:
        return await follow(target, fetch, config)

    return fetch_following
