"""--sort as a user meets it: real fetchheads processes against loopback servers whose header
sets grade differently, the rows printed worst first, ties broken by the next field, unknown
values last, in one process and under --workers 2, to stdout and to -o FILE."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from fetchheads.models import ResponseHead, Result
from fetchheads.render.fields import BUILTIN, SpecError
from fetchheads.render.sort import compile_sort
from tests.support.servers import ThreadedServer, routes
from tests.support.snapshots import fetchheads, run_cli

CSP = "default-src 'none'; frame-ancestors 'none'"


def head(status: str = "200 OK", **headers: str) -> bytes:
    lines = [
        f"HTTP/1.1 {status}",
        *(f"{name.replace('_', '-')}: {v}" for name, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# path -> (head, its grade and score over http, as the Observatory's rules give them)
HEADS = {
    "/bare": head(),  # F 10
    "/nosniff": head(X_Content_Type_Options="nosniff"),  # F 15
    "/deny": head(X_Frame_Options="DENY"),  # D 30
    "/deny-too": head(X_Frame_Options="DENY"),  # D 30: a tie with /deny
    "/csp": head(Content_Security_Policy=CSP),  # C 55
    "/full": head(
        Content_Security_Policy=CSP,
        X_Content_Type_Options="nosniff",
        X_Frame_Options="DENY",
        Referrer_Policy="no-referrer",
    ),  # C+ 60
    "/oops": head("500 Oops"),  # not graded
}


@pytest.fixture
def hosts(
    threaded_server: Callable[..., ThreadedServer], refused_port: int, tmp_path: Path
) -> tuple[Path, str]:
    """A list file of every path above and a refused port, in an order no sort gives."""
    server = threaded_server(routes(HEADS))
    base = f"http://127.0.0.1:{server.port}"
    order = ["/csp", "/oops", "/deny-too", "/bare", "/full", "/deny", "/nosniff"]
    path = tmp_path / "hosts.txt"
    path.write_text(
        "\n".join(
            [*(base + p for p in order[:3]), f"127.0.0.1:{refused_port}"]
            + [base + p for p in order[3:]]
        )
        + "\n"
    )
    return path, base


def run(*args: str) -> tuple[int, str, str]:
    """A real fetchheads process to its end: (status, stdout, stderr)."""
    process = run_cli(*args)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def column(text: str, name: str) -> list[str]:
    return [row[name] for row in csv.DictReader(io.StringIO(text))]


def paths(targets: list[str], base: str) -> list[str]:
    return [t.removeprefix(base) if t.startswith(base) else "refused" for t in targets]


WORST_FIRST = ["/bare", "/nosniff", "/deny", "/deny-too", "/csp", "/full"]


def test_table_worst_first_with_ties_broken_and_unknown_last(hosts: tuple[Path, str]) -> None:
    file, base = hosts
    code, out, err = run(
        "--audit",
        "--format",
        "table",
        "--fields",
        "target,audit.grade,audit.score,status",
        "--sort",
        "audit.score,target",
        "-i",
        str(file),
    )
    assert code == 1, err  # the refused port
    lines = out.splitlines()
    assert lines[0].split() == ["target", "audit.grade", "audit.score", "status"]
    rows = [line.split() for line in lines[1:]]
    # Graded rows by score, the tie (/deny, /deny-too) by target; the 500 (not graded) and the
    # refused target (no head) last, as their order on the next field (target) has them.
    assert paths([r[0] for r in rows], base) == [*WORST_FIRST, "refused", "/oops"]
    assert [r[1] for r in rows[:6]] == ["F", "F", "D", "D", "C", "C+"]
    assert [r[2] for r in rows[:6]] == ["10", "15", "30", "30", "55", "60"]
    assert rows[6][1:] == ["-", "-", "-"]
    assert rows[7][1:] == ["-", "-", "500"]


def test_descending_grade_and_status_keep_unknown_last(hosts: tuple[Path, str]) -> None:
    file, base = hosts
    # audit.grade sorts A+ first; -audit.grade worst first (F before D), never by its letters.
    code, out, _ = run(
        "--audit", "--format", "csv", "--fields", "target,audit.grade", "--sort", "-audit.grade",
        "--sort", "-target", "-i", str(file),
    )  # fmt: skip
    assert code == 1
    assert paths(column(out, "target"), base) == [
        "/nosniff", "/bare", "/deny-too", "/deny", "/csp", "/full", "/oops", "refused",
    ]  # fmt: skip
    code, out, _ = run(
        "--audit", "--format", "csv", "--fields", "target,audit.grade", "--sort",
        "audit.grade,target", "-i", str(file),
    )  # fmt: skip
    assert paths(column(out, "target"), base)[:6] == ["/full", "/csp", "/deny", "/deny-too",
                                                      "/bare", "/nosniff"]  # fmt: skip
    code, out, _ = run(
        "--format", "csv", "--fields", "target,status", "--sort", "-status,target", "-i", str(file)
    )
    statuses = column(out, "status")
    assert statuses == ["500", *["200"] * 6, ""]  # largest first; the failure still last


def test_workers_and_output_file_sort_the_same(hosts: tuple[Path, str], tmp_path: Path) -> None:
    file, base = hosts
    args = ["--audit", "--fields", "target,audit.score", "--sort", "audit.score,target"]
    code, out, _ = run(*args, "--format", "csv", "-i", str(file))
    assert code == 1
    report = tmp_path / "report.csv"
    code, out2, err = run(*args, "--workers", "2", "--progress", "-o", str(report), "-i", str(file))
    assert code == 1
    assert out2 == ""
    assert report.read_text() == out  # header row once, then the same order
    assert paths(column(out, "target"), base)[:6] == WORST_FIRST
    assert "8 targets" in err  # the summary still comes
    assert "workers" not in err  # a sorted run is one process (docs/scale.md)


def test_plain_jsonl_and_write_out_are_sorted_whole(hosts: tuple[Path, str]) -> None:
    file, base = hosts
    code, out, _ = run(
        "--audit", "--format", "plain", "--sort", "audit.score,target", "-i", str(file)
    )
    assert code == 1
    # A plain record is several lines: each target's lines stay together, in score order.
    firsts: list[str] = []
    for line in out.splitlines():
        target = line.split(" ", 1)[0]
        if not firsts or firsts[-1] != target:
            firsts.append(target)
    assert paths(firsts, base)[:6] == WORST_FIRST
    assert len(firsts) == 8
    code, out, _ = run(
        "--audit", "-w", "%{audit.score}\n", "--sort", "-audit.score", "-i", str(file)
    )
    assert out.splitlines() == ["60", "55", "30", "30", "15", "10", "", ""]
    _, out, _ = run("--json", "--sort", "-status", "--match-status", "2xx", "-i", str(file))
    assert len(out.splitlines()) == 6  # the filters choose what is held and printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sort", "sever"], "--sort: unknown field 'sever' (a header is header:sever); docs/"),
        (["--sort", "status,,target"], "Invalid value for --sort: empty field name"),
        (["--sort", "-"], "Invalid value for --sort: empty field name"),
        (["--sort", "status", "--format", "pretty"], "--sort orders the line formats"),
        (["--sort", "status", "--format", "prometheus"], "not --format prometheus"),
        (["--sort", "status", "--order", "input"], "so --order input would be ignored"),
    ],
)
def test_bad_sort_is_a_usage_error(args: list[str], message: str) -> None:
    code, out, err = fetchheads(*args, "127.0.0.1:9")
    assert code == 2
    assert message in err
    assert out == ""


def test_unknown_and_empty_sort_last_both_ways_and_ties_keep_their_order() -> None:
    def result(target: str, value: str | None) -> Result:
        headers = () if value is None else (("X-V", value),)
        head = ResponseHead("HTTP/1.1", 200, "OK", headers)
        return Result(target, f"http://{target}/", head=head)

    rows = [("a", "2"), ("b", None), ("c", ""), ("d", "1"), ("e", "2")]
    results = [result(t, v) for t, v in rows]
    for spec, expected in [
        ("header:x-v", ["d", "a", "e", "b", "c"]),  # the tie (a, e) in the order they came
        ("-header:x-v", ["a", "e", "d", "b", "c"]),  # not reversed: ties keep it too
    ]:
        order = compile_sort([spec], BUILTIN)
        assert order is not None
        held = [(order.key(r), r.target) for r in results]
        assert order.sort(held) == expected
    assert compile_sort([], BUILTIN) is None
    with pytest.raises(SpecError):
        compile_sort(["header:"], BUILTIN)


@pytest.mark.parametrize(
    ("args", "env", "sorted_output"),
    [
        (["--sort", "-target"], {"FETCHHEADS_ORDER": "input"}, True),  # typed --sort wins
        (["--order", "input"], {"FETCHHEADS_SORT": "-target"}, False),  # typed --order wins
    ],
    ids=["sort-typed", "order-typed"],
)
def test_the_typed_one_of_sort_and_input_order_wins_over_the_environment(
    threaded_server: Callable[..., ThreadedServer],
    args: list[str],
    env: dict[str, str],
    sorted_output: bool,
) -> None:
    server = threaded_server(routes(HEADS))
    names = ["deny", "bare", "csp"]  # neither sorted nor reversed
    targets = [f"127.0.0.1:{server.port}/{name}" for name in names]
    code, out, err = fetchheads(*args, "-q", "-w", "%{target}\\n", *targets, env=env)
    assert (code, err) == (0, "")
    expected = sorted(targets, reverse=True) if sorted_output else targets
    assert out.splitlines() == expected
