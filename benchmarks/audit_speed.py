"""How fast the audit grades heads: N synthetic heads (mixed, realistic header sets), graded
with ``fetchheads.audit.grade``, timed on the wall clock. A sanity figure, not a pass/fail test.

Usage: python benchmarks/audit_speed.py [N]     (default 100000)
"""

from __future__ import annotations

import argparse
import random
import time

from fetchheads.audit import grade
from fetchheads.models import Redirect

POLICIES = [
    "default-src 'none'; script-src 'self' 'nonce-{n}' 'unsafe-inline'; style-src 'self';"
    " img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "default-src 'self'; script-src 'self' 'unsafe-eval' https://cdn{n}.example.com;"
    " object-src 'none'",
    "upgrade-insecure-requests",
    "default-src https:; script-src https: 'unsafe-inline'; img-src http: https: data:",
]
EXTRAS = [
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("Server", "nginx/1.25.{n}"),
    ("X-Powered-By", "PHP/8.{n}"),
    ("Set-Cookie", "sessionid={n}; Path=/; Secure; HttpOnly; SameSite=Lax"),
    ("Set-Cookie", "pref={n}; Path=/"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("X-XSS-Protection", "1; mode=block"),
]
COMMON = [
    ("Date", "Wed, 25 Nov 2026 19:12:17 GMT"),
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-cache"),
    ("Vary", "Accept-Encoding"),
]


def synthetic(count: int, seed: int = 14) -> list[tuple[str, int, list[tuple[str, str]], bool]]:
    rng = random.Random(seed)
    heads = []
    for n in range(count):
        headers = list(COMMON)
        if rng.random() < 0.6:
            headers.append(("Content-Security-Policy", rng.choice(POLICIES).format(n=n % 97)))
        headers += [(k, v.format(n=n % 89)) for k, v in EXTRAS if rng.random() < 0.5]
        https = rng.random() < 0.8
        heads.append((f"{'https' if https else 'http'}://h{n}.example/", 200, headers, https))
    return heads


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0].replace("\n", " ")
    )
    parser.add_argument("count", nargs="?", type=int, default=100_000, metavar="N")
    count = parser.parse_args().count
    heads = synthetic(count)
    hop = (Redirect("http://h.example/", 301, "https://h.example/"),)
    start, cpu = time.perf_counter(), time.process_time()
    grades: dict[str, int] = {}
    for url, status, headers, https in heads:
        audit = grade(
            url,
            status,
            headers,
            tls_verified=True if https else None,
            redirects=hop if https else (),
        )
        grades[audit.grade or "-"] = grades.get(audit.grade or "-", 0) + 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    # CPU time too: on a shared machine the wall clock counts the other processes' turns.
    print(
        f"{count} heads graded in {elapsed:.2f}s wall, {cpu:.2f}s CPU:"
        f" {cpu / count * 1e6:.1f} µs of CPU a head"
    )
    print("grades:", dict(sorted(grades.items())))


if __name__ == "__main__":
    main()
