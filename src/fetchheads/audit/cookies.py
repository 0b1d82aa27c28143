"""Cookies: ``src/analyzer/tests/cookies.js`` of the MDN HTTP Observatory, on the final response's
``Set-Cookie`` lines (each line one cookie, never joined).

The Observatory reads the cookies its client's jar kept over every request of the scan; a head
has only the final response's. The verdict is the worst problem found, in the Observatory's order
of badness (``WORSE``), which is not the order of the modifiers.
"""

from __future__ import annotations

import dataclasses

from fetchheads.audit.checks import Outcome

IGNORED = frozenset({"heroku-session-affinity"})
"""The Observatory skips Heroku's load-balancer cookie (mozilla/http-observatory issue 282)."""
SESSION_MARKERS = ("login", "sess")
CSRF_MARKER = "csrf"
SAMESITE_VALUES = frozenset({"strict", "lax", "none"})

WORSE = (
    "cookies-without-secure-flag-but-protected-by-hsts",
    "cookies-without-secure-flag",
    "cookies-session-without-secure-flag-but-protected-by-hsts",
    "cookies-samesite-flag-invalid",
    "cookies-anticsrf-without-samesite-flag",
    "cookies-session-without-httponly-flag",
    "cookies-session-without-secure-flag",
)
_RANK = {result: rank for rank, result in enumerate(WORSE)}

REASONS = {
    "cookies-without-secure-flag-but-protected-by-hsts": "no Secure, but HSTS keeps it off http",
    "cookies-without-secure-flag": "without Secure: it can travel over http",
    "cookies-session-without-secure-flag-but-protected-by-hsts": (
        "a session cookie without Secure, but HSTS keeps it off http"
    ),
    "cookies-samesite-flag-invalid": "SameSite is not Strict, Lax or None (or None without Secure)",
    "cookies-anticsrf-without-samesite-flag": "an anti-CSRF cookie without SameSite",
    "cookies-session-without-httponly-flag": "a session cookie without HttpOnly: scripts read it",
    "cookies-session-without-secure-flag": "a session cookie without Secure: it may go over http",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Cookie:
    name: str
    secure: bool
    http_only: bool
    same_site: str | None  # "strict" | "lax" | "none", None when absent or not one of those
    same_site_invalid: bool  # a SameSite attribute with no value or an unknown one


def parse_set_cookie(line: str) -> Cookie | None:
    """One ``Set-Cookie`` line (RFC 6265 §5.2); ``None`` for a line without ``name=``, which the
    Observatory's cookie jar (tough-cookie, strict mode) drops too."""
    pair, *attributes = line.split(";")
    name, equals, _ = pair.partition("=")
    name = name.strip()
    if not equals or not name:
        return None
    secure = http_only = invalid = False
    same_site: str | None = None
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        key = key.strip().lower()
        if key == "secure":
            secure = True
        elif key == "httponly":
            http_only = True
        elif key == "samesite":
            value = value.strip().lower()
            if value in SAMESITE_VALUES:
                same_site = value
            else:
                invalid = True
    return Cookie(name, secure, http_only, same_site, invalid)


def cookies_check(set_cookies: list[str], hsts: bool) -> tuple[Outcome, int]:
    """The verdict on the ``Set-Cookie`` lines, and how many cookies it judged. ``hsts``: the
    HSTS test passes, so a cookie without Secure cannot leak over http."""
    worst: str | None = None
    where = ""

    def worse(result: str, cookie: str) -> None:
        nonlocal worst, where
        if worst is None or _RANK[result] > _RANK[worst]:
            worst, where = result, cookie

    cookies = []
    for line in set_cookies:
        cookie = parse_set_cookie(line)
        if cookie is None:
            continue
        if cookie.same_site_invalid:
            worse("cookies-samesite-flag-invalid", cookie.name)
        if cookie.name.lower() not in IGNORED:
            cookies.append(cookie)
    if not cookies:
        return ("cookies-not-found", "no cookies set"), 0
    missing_same_site = False
    for cookie in cookies:
        folded = cookie.name.lower()
        session = any(marker in folded for marker in SESSION_MARKERS)
        if not cookie.secure and cookie.same_site == "none":
            worse("cookies-samesite-flag-invalid", cookie.name)  # browsers reject this cookie
        if not cookie.secure:
            worse(
                "cookies-without-secure-flag-but-protected-by-hsts"
                if hsts
                else "cookies-without-secure-flag",
                cookie.name,
            )
        if CSRF_MARKER in folded and cookie.same_site is None:
            worse("cookies-anticsrf-without-samesite-flag", cookie.name)
        if session and not cookie.secure:
            worse(
                "cookies-session-without-secure-flag-but-protected-by-hsts"
                if hsts
                else "cookies-session-without-secure-flag",
                cookie.name,
            )
        if session and not cookie.http_only:
            worse("cookies-session-without-httponly-flag", cookie.name)
        missing_same_site = missing_same_site or cookie.same_site is None
    count = f"{len(cookies)} cookie{'' if len(cookies) == 1 else 's'}"
    if worst is not None:
        return (worst, f"{count}; {where}: {REASONS[worst]}"), len(cookies)
    if missing_same_site:
        return (
            "cookies-secure-with-httponly-sessions",
            f"{count}, all Secure, session cookies HttpOnly; not all set SameSite",
        ), len(cookies)
    return (
        "cookies-secure-with-httponly-sessions-and-samesite",
        f"{count}, all Secure with SameSite, session cookies HttpOnly",
    ), len(cookies)
