"""Issue 14's "done when", end to end on real processes: a list of https hosts on loopback with
different header sets is graded and printed worst first in a table, the run exits 3 under
--fail-under B, and the next cron run reports only the host whose grade changed, "B -> C"."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from tests.support.servers import ThreadedServer, routes
from tests.support.snapshots import run_cli

HOSTS = 60
HSTS = {"Strict-Transport-Security": "max-age=63072000"}
SETS = [  # (headers, grade, score) over https with a verified certificate
    (
        {
            **HSTS,
            "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
        "A+",
        120,
    ),
    ({**HSTS, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}, "B", 75),
    ({**HSTS, "X-Frame-Options": "DENY"}, "B", 70),
    ({"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}, "C", 55),
    ({}, "D", 30),
]
TABLE = ["--format", "table", "--fields", "target,audit.grade,audit.score", "--sort", "audit.score"]


def head(headers: dict[str, str]) -> bytes:
    lines = ["HTTP/1.1 200 OK", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def run(*args: str) -> tuple[int, str, str]:
    process = run_cli(*args)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def test_grade_a_list_worst_first_then_report_only_the_grade_that_changed(
    threaded_server: Callable[..., ThreadedServer],
    server_ssl_context: ssl.SSLContext,
    ca_file: Path,
    tmp_path: Path,
) -> None:
    heads = {f"/h{n}": head(SETS[n % len(SETS)][0]) for n in range(HOSTS)}
    server = threaded_server(routes(heads), ssl_context=server_ssl_context)
    base = f"https://127.0.0.1:{server.port}"
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"{base}/h{n}\n" for n in range(HOSTS)))
    common = ["--db", str(tmp_path / "heads.db"), "--cacert", str(ca_file), "-i", str(hosts)]

    # 1. Grade the list: worst first in a table, exit status 3 under --fail-under B.
    code, out, err = run(*common, "--audit", "--fail-under", "B", *TABLE)
    assert code == 3, err
    assert f"fetchheads: {HOSTS * 2 // 5} targets graded under B (--fail-under)" in err
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["target", "audit.grade", "audit.score"]
    assert len(rows) == HOSTS + 1
    scores = [int(row[2]) for row in rows[1:]]
    assert scores == sorted(scores)
    assert [row[1] for row in rows[1 : HOSTS // 5 + 1]] == ["D"] * (HOSTS // 5)
    assert rows[-1][1:] == ["A+", "120"]
    expected = {f"{base}/h{n}": SETS[n % len(SETS)][1:] for n in range(HOSTS)}
    assert {row[0]: (row[1], int(row[2])) for row in rows[1:]} == expected

    # 2. One host drops HSTS; the cron line prints that host alone, its grade change in words.
    heads["/h1"] = head({k: v for k, v in SETS[1][0].items() if k not in HSTS})
    code, out, err = run(*common, "--audit", "--changes")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"{base}/h1 changed > Strict-Transport-Security: max-age=63072000 -> (none)",
        f"{base}/h1 changed > :audit.grade: B -> C",
        f"{base}/h1 changed > :audit.strict-transport-security: pass "
        "(hsts-implemented-max-age-at-least-six-months) -> fail (hsts-not-implemented)",
    ]

    # 3. The table under --changes lists the changed host alone, with its grade now (the
    # change itself is the plain format's, above).
    heads["/h2"] = head({k: v for k, v in SETS[2][0].items() if k not in HSTS})
    code, out, err = run(*common, "--audit", "--fail-under", "B", "--changes", *TABLE)
    assert code == 3
    assert [line.split() for line in out.splitlines()] == [
        ["target", "audit.grade", "audit.score"],
        [f"{base}/h2", "C", "50"],
    ]
    assert f"fetchheads: {HOSTS * 2 // 5 + 2} targets graded under B (--fail-under)" in err
