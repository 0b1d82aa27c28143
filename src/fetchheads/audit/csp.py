"""Content-Security-Policy: parse every policy, combine them as a browser does, grade the result.

The checks, their order (the first failing one names the result) and their source sets follow the
Observatory's ``src/analyzer/tests/csp.js``. Where it differs is combining several policies
(several headers, or one header with commas): a browser enforces every policy, so a load is
allowed only when each policy allows it. Here each directive's sources are the *intersection* of
the policies' sources: a source of one policy stays when a source of every other policy allows
at least as much (``https://a.example`` stays under ``https:`` or ``*``; ``'unsafe-inline'`` stays
only when every policy has it). With one policy the intersection is the policy itself.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Sequence

from fetchheads.audit.model import quoted

Sources = tuple[str, ...]
Policy = dict[str, Sources]

DANGEROUSLY_BROAD = frozenset(
    {"ftp:", "http:", "https:", "*", "http://*", "http://*.*", "https://*", "https://*.*"}
)
UNSAFE_INLINE = frozenset({"'unsafe-inline'", "data:"})
BROAD_OR_INLINE = DANGEROUSLY_BROAD | UNSAFE_INLINE
PASSIVE_DIRECTIVES = ("img-src", "media-src")
NOT_ACTIVE = frozenset({*PASSIVE_DIRECTIVES, "script-src"})
NONCE_OR_HASH = ("'sha256-", "'sha384-", "'sha512-", "'nonce-")
ALLOWED_DUPLICATES = frozenset({"report-uri", "report-to"})
SHORTEST_POLICY = len("img-src") - 1
"""The Observatory's floor: a policy shorter than this cannot hold a directive with a source."""

NONE: Sources = ("'none'",)
EVERYTHING: Sources = ("*",)
NETWORK_SCHEMES = frozenset({"http:", "https:", "ws:", "wss:"})
_SCHEME_SOURCE = re.compile(r"[a-z][a-z0-9+.\-]*:\Z")
_HOST_SOURCE = re.compile(
    r"(?:(?P<scheme>[a-z][a-z0-9+.\-]*)://)?(?P<host>\*|(?:\*\.)?[^/:*]+)"
    r"(?::(?P<port>\d+|\*))?(?P<path>/.*)?\Z"
)


class InvalidPolicy(ValueError):
    """A policy the Observatory cannot parse (empty, too short, a repeated directive)."""


@dataclasses.dataclass(frozen=True, slots=True)
class CspOutcome:
    result: str
    reason: str
    frame_ancestors: Sources | None = None  # the combined directive, None when unset or no CSP


def split_policies(values: Sequence[str]) -> list[str]:
    """Each header line, split on commas: CSP3 §2.2 makes ``,`` the policy-list delimiter."""
    return [part.strip() for value in values for part in value.split(",")]


def parse_policy(text: str) -> tuple[Policy, bool]:
    """One serialized policy -> (directive -> sources, saw a repeated report directive).

    Directive names and sources are lower-cased (the Observatory compares them so). A source list
    with no sources is ``'none'``, as an empty ``*-src`` means and as the Observatory stores any
    valueless directive.
    """
    text = text.replace("\r", "").replace("\n", "").strip()
    if len(text) < SHORTEST_POLICY:
        raise InvalidPolicy(f"policy {quoted(text)} is empty or too short")
    policy: Policy = {}
    duplicate = False
    for entry in text.split(";"):
        tokens = entry.lower().split()
        if not tokens:
            continue
        name, sources = tokens[0], tuple(tokens[1:]) or NONE
        if name in policy:
            if name not in ALLOWED_DUPLICATES:
                raise InvalidPolicy(f"directive {name} is repeated")
            duplicate = True
            continue  # the first one counts, as in browsers
        policy[name] = sources
    return policy, duplicate


def _fallback(policy: Policy, name: str) -> Sources | None:
    """The sources a policy applies to fetch directive ``name``; ``None``: it does not restrict."""
    own = policy.get(name)
    if own is not None:
        return own
    if name.endswith("-src") and name != "default-src":
        return policy.get("default-src")
    return None


def _host_parts(source: str) -> tuple[str | None, str, str | None, str | None] | None:
    match = _HOST_SOURCE.match(source)
    if match is None:
        return None
    return match["scheme"], match["host"], match["port"], match["path"]


def covers(narrow: str, broad: str) -> bool:
    """Whether source ``broad`` allows every URL that source ``narrow`` allows (an approximation
    of CSP3 §6.7.2 matching, good enough to intersect two policies)."""
    if narrow == broad:
        return True
    if broad.startswith("'"):  # keywords, nonces and hashes only cover themselves
        return False
    if broad == "*":
        return narrow == "'self'" or narrow in NETWORK_SCHEMES or not _is_scheme_or_keyword(narrow)
    if narrow.startswith("'") or _SCHEME_SOURCE.match(narrow):
        return False
    if _SCHEME_SOURCE.match(broad):
        return narrow.startswith(broad + "//")
    a, b = _host_parts(narrow), _host_parts(broad)
    if a is None or b is None:
        return False
    (a_scheme, a_host, a_port, a_path), (b_scheme, b_host, b_port, b_path) = a, b
    if b_scheme is not None and a_scheme != b_scheme:
        return False
    if b_host != "*":
        if b_host.startswith("*."):
            if not a_host.endswith(b_host[1:]):
                return False
        elif a_host != b_host:
            return False
    if b_port != "*" and a_port != b_port:
        return False
    if b_path:
        if a_path is None:
            return False
        return a_path.startswith(b_path) if b_path.endswith("/") else a_path == b_path
    return True


def _is_scheme_or_keyword(source: str) -> bool:
    return source.startswith("'") or _SCHEME_SOURCE.match(source) is not None


def intersect(first: Sources | None, second: Sources | None) -> Sources | None:
    """What two policies' source lists both allow; ``None`` is a policy that does not restrict."""
    if first is None:
        return second
    if second is None:
        return first
    if first == second:
        return first
    a = [s for s in first if s != "'none'"]
    b = [s for s in second if s != "'none'"]
    kept = [s for s in a if any(covers(s, o) for o in b)]
    kept += [s for s in b if s not in kept and any(covers(s, o) for o in a)]
    return tuple(kept) or NONE


def _has_nonce_or_hash(sources: Sources) -> bool:
    return any(s.startswith(NONCE_OR_HASH) for s in sources)


def _script_sources(policy: Policy) -> tuple[Sources | None, bool]:
    """One policy's effective script sources after nonce/hash and ``'strict-dynamic'``, and
    whether ``'strict-dynamic'`` is in force. Raises ``InvalidPolicy`` for ``'strict-dynamic'``
    without a nonce or hash (the Observatory calls that invalid)."""
    sources = _fallback(policy, "script-src")
    if sources is None:
        return None, False
    nonce = _has_nonce_or_hash(sources)
    if "'strict-dynamic'" in sources:
        if not nonce:
            raise InvalidPolicy("'strict-dynamic' without a nonce or hash")
        # CSP3: with 'strict-dynamic', host and scheme sources, 'self' and 'unsafe-inline' are
        # ignored. The Observatory drops exactly those starting with a broad scheme or "*".
        dropped = [s for s in sources if s in ("'self'", "'unsafe-inline'")]
        dropped += [s for s in sources if any(s.startswith(b) for b in DANGEROUSLY_BROAD)]
        return tuple(s for s in sources if s not in dropped) or NONE, True
    if nonce and "'unsafe-inline'" in sources:
        # CSP2+: a nonce or hash makes 'unsafe-inline' inert (it is there for old browsers).
        return tuple(s for s in sources if s != "'unsafe-inline'"), False
    return sources, False


def _style_sources(policy: Policy) -> Sources | None:
    sources = _fallback(policy, "style-src")
    if sources is not None and _has_nonce_or_hash(sources) and "'unsafe-inline'" in sources:
        return tuple(s for s in sources if s != "'unsafe-inline'")
    return sources


def _combine(policies: list[Policy], pick: Callable[[Policy], Sources | None]) -> Sources | None:
    combined: Sources | None = None
    for policy in policies:
        combined = intersect(combined, pick(policy))
    return combined


def check_csp(enforced: Sequence[str], report_only: Sequence[str], https: bool) -> CspOutcome:
    """Grade the ``Content-Security-Policy`` header lines ``enforced``; ``report_only`` holds the
    ``Content-Security-Policy-Report-Only`` lines; ``https``: the page was served over https."""
    texts = split_policies(enforced)
    try:
        parsed = [parse_policy(text) for text in texts]
        policies = [policy for policy, _ in parsed if policy]
        if not policies:
            if report_only:
                return CspOutcome(
                    "csp-not-implemented-but-reporting-enabled",
                    "only Content-Security-Policy-Report-Only is set: nothing is enforced",
                )
            return CspOutcome("csp-not-implemented", "no Content-Security-Policy header")
        scripts = [_script_sources(policy) for policy in policies]
    except InvalidPolicy as exc:
        return CspOutcome("csp-header-invalid", f"Content-Security-Policy cannot be parsed: {exc}")
    duplicates = any(duplicate for _, duplicate in parsed)

    names: dict[str, None] = {}
    for policy in policies:
        names.update(dict.fromkeys(policy))
    combined: dict[str, Sources] = {}
    for name in names:
        sources = _combine(policies, functools.partial(_fallback, name=name))
        if sources is not None:
            combined[name] = sources
    script_combined: Sources | None = None
    for sources, _ in scripts:
        script_combined = intersect(script_combined, sources)
    script_src = script_combined or EVERYTHING
    object_src = _combine(policies, functools.partial(_fallback, name="object-src")) or EVERYTHING
    style_src = _combine(policies, _style_sources) or EVERYTHING
    default_src = combined.get("default-src", ())
    passive = [s for d in PASSIVE_DIRECTIVES for s in combined.get(d, default_src)]
    active_sources = [
        s for d, srcs in combined.items() if d not in NOT_ACTIVE for s in srcs
    ] + list(script_src)
    frame_ancestors = combined.get("frame-ancestors")

    def insecure(sources: list[str]) -> bool:
        return https and any(s.startswith(("http:", "ftp:")) for s in sources)

    if any(s in BROAD_OR_INLINE for s in script_src) or any(
        s in DANGEROUSLY_BROAD for s in object_src
    ):
        result, reason = (
            "csp-implemented-with-unsafe-inline",
            "script-src or object-src allows 'unsafe-inline', data: or any host, or is unset",
        )
    elif insecure(active_sources):
        result, reason = (
            "csp-implemented-with-insecure-scheme",
            "an https page allows scripts or other active content over http: or ftp:",
        )
    elif "'unsafe-eval'" in script_src or "'unsafe-eval'" in style_src:
        result, reason = "csp-implemented-with-unsafe-eval", "the policy allows 'unsafe-eval'"
    elif insecure(passive):
        result, reason = (
            "csp-implemented-with-insecure-scheme-in-passive-content-only",
            "an https page allows images or media over http:",
        )
    elif any(s in BROAD_OR_INLINE for s in style_src):
        result, reason = (
            "csp-implemented-with-unsafe-inline-in-style-src-only",
            "only style-src allows 'unsafe-inline', data: or broad sources",
        )
    elif combined.get("default-src") == NONE:
        result, reason = (
            "csp-implemented-with-no-unsafe-default-src-none",
            "default-src 'none' and no unsafe sources",
        )
    else:
        result, reason = (
            "csp-implemented-with-no-unsafe",
            "no 'unsafe-inline' or 'unsafe-eval' in scripts, no broad script or object sources",
        )
    if duplicates and result in PASSING:
        result = "csp-implemented-but-duplicate-directives"
        reason += "; but report-uri or report-to is repeated"
    if len(policies) > 1:
        reason += f" ({len(policies)} policies, combined: each must allow a load)"
    return CspOutcome(result, reason, frame_ancestors)


PASSING = frozenset(
    {
        "csp-implemented-with-no-unsafe",
        "csp-implemented-with-no-unsafe-default-src-none",
        "csp-implemented-with-unsafe-inline-in-style-src-only",
        "csp-implemented-with-insecure-scheme-in-passive-content-only",
    }
)
