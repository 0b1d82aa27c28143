"""The cost of each output format per result, against ``--json``: ``python benchmarks/formats.py``.

Fetches a few real heads from a loopback server (a typical 12-header answer, a 404, a refused
port), repeats them as N results with distinct targets, and times each formatter over all of
them: ``format_jsonl`` (the ``--json`` line), CSV, TSV, the table row, a write-out template and
the selector, with the fields a user would ask for. Prints the median µs per result of
``--rounds`` rounds and the ratio to ``format_jsonl``. Pure CPU: no output is written anywhere.

``--end-to-end``: the whole command instead, ``fetchheads -i LIST -o FILE`` over ``--targets``
loopback targets (``delay_server.py`` with no delay) with ``--json``, ``--format csv``,
``--format table`` and ``-w``, the formats taking turns in each round; prints the median wall
time, its ratio to ``--json`` and the largest resident set of each (``wait4``), which stays flat
with ``-o`` whatever the number of targets.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from fetchheads.config import Config  # noqa: E402
from fetchheads.fetch.one import FetchContext, fetch_one, make_ssl_context  # noqa: E402
from fetchheads.fetch.resolve import Resolver  # noqa: E402
from fetchheads.models import Result  # noqa: E402
from fetchheads.render.fields import BUILTIN, compile_fields  # noqa: E402
from fetchheads.render.filters import compile_selector  # noqa: E402
from fetchheads.render.jsonl import format_jsonl  # noqa: E402
from fetchheads.render.prometheus import PrometheusTextfile  # noqa: E402
from fetchheads.render.tabular import CsvFormat, TableLayout, TsvFormat  # noqa: E402
from fetchheads.render.writeout import compile_write_out  # noqa: E402
from fetchheads.targets import parse_target  # noqa: E402

TYPICAL = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 25 Nov 2025 19:12:17 GMT\r\n"
    b"Content-Type: text/html; charset=utf-8\r\nContent-Length: 612\r\n"
    b"Last-Modified: Tue, 11 Apr 2023 01:45:34 GMT\r\nConnection: close\r\n"
    b'ETag: "6434bbbe-264"\r\nCache-Control: max-age=600\r\nX-Frame-Options: SAMEORIGIN\r\n'
    b"Set-Cookie: sid=abc123; Path=/; HttpOnly\r\nSet-Cookie: lang=en; Path=/\r\n"
    b"Accept-Ranges: bytes\r\n\r\n"
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nServer: nginx/1.22.1\r\nContent-Length: 153\r\n\r\n"
FIELDS = "target,status,header:server,header:content-type,time.total,error.kind"
TEMPLATE = "%{http_code} %{time_total} %header{server} %{url_effective}\\n"


async def sample_results() -> list[Result]:
    answers = [TYPICAL, TYPICAL, TYPICAL, NOT_FOUND]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answers.pop(0))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = Config(timeout=5.0)
    ctx = FetchContext(config=config, ssl_context=make_ssl_context(config), resolver=Resolver())
    with socket.socket() as closed:  # a bound, not listening port: refused
        closed.bind(("127.0.0.1", 0))
        refused = closed.getsockname()[1]
        results = [
            await fetch_one(parse_target(f"127.0.0.1:{port}/page{i}"), ctx) for i in range(4)
        ]
        results.append(await fetch_one(parse_target(f"127.0.0.1:{refused}"), ctx))
    server.close()
    await server.wait_closed()
    return results


def per_result(format_one: Callable[[Result], object], results: list[Result], rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        for result in results:
            format_one(result)
        timings.append((time.perf_counter() - start) / len(results))
    return statistics.median(timings) * 1e6


END_TO_END = {
    "--json": ["--json"],
    "--format csv": ["--format", "csv", "--fields", FIELDS],
    "--format table": ["--format", "table", "--fields", FIELDS],
    "-w": ["-w", TEMPLATE],
}


def end_to_end(targets: int, rounds: int, concurrency: int) -> None:
    """Each format's whole run over the same loopback list, interleaved; medians."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "delay_server.py"), str(port), "0", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        with tempfile.TemporaryDirectory() as tmp:
            hosts = os.path.join(tmp, "hosts.txt")
            with open(hosts, "w") as file:
                file.writelines(f"127.0.0.1:{port}/page{n}\n" for n in range(targets))
            walls: dict[str, list[float]] = {name: [] for name in END_TO_END}
            rss: dict[str, int] = dict.fromkeys(END_TO_END, 0)
            env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
            for _ in range(rounds):
                for name, options in END_TO_END.items():
                    out = os.path.join(tmp, "out")
                    argv = [sys.executable, "-m", "fetchheads", "-q", "-c", str(concurrency)]
                    argv += ["-i", hosts, "-o", out, "--workers", "1", *options]
                    start = time.perf_counter()
                    child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
                    _, status, usage = os.wait4(child.pid, 0)
                    walls[name].append(time.perf_counter() - start)
                    child.returncode = os.waitstatus_to_exitcode(status)
                    if child.returncode != 0:
                        raise SystemExit(f"{name}: exit status {child.returncode}")
                    rss[name] = max(rss[name], usage.ru_maxrss)
    finally:
        server.terminate()
        server.wait()
    base = statistics.median(walls["--json"])
    print(f"{targets} loopback targets, -c {concurrency}, -o FILE, {rounds} rounds, medians")
    print(f"{'format':<16} {'seconds':>8} {'vs --json':>9} {'max RSS MiB':>12}")
    for name, times in walls.items():
        wall = statistics.median(times)
        print(f"{name:<16} {wall:>8.3f} {wall / base:>8.3f}x {rss[name] / 1024:>12.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--end-to-end", action="store_true", help="time whole runs")
    parser.add_argument("-c", "--concurrency", type=int, default=200)
    args = parser.parse_args()
    if args.end_to_end:
        end_to_end(args.targets, args.rounds, args.concurrency)
        return
    samples = asyncio.run(sample_results())
    results = [
        dataclasses.replace(r, target=f"{r.target}-{i}")
        for i in range(args.targets // len(samples))
        for r in samples
    ]
    fields = compile_fields(FIELDS, BUILTIN)
    csv_format, tsv_format = CsvFormat(fields), TsvFormat(fields)
    layout = TableLayout(fields, 100)
    write_out = compile_write_out(TEMPLATE)
    selector = compile_selector(match_status=["2xx"], has_headers=["server=nginx"])
    textfile = PrometheusTextfile()
    cases: dict[str, Callable[[Result], object]] = {
        "jsonl (--json)": format_jsonl,
        "csv": csv_format.row,
        "tsv": tsv_format.row,
        "table (plain line)": lambda r: layout.line(layout.row(r)),
        "write-out": write_out.render,
        "selector": selector,
        "prometheus add()": textfile.add,
    }
    base = per_result(format_jsonl, results, args.rounds)
    print(f"{len(results)} results ({len(samples)} kinds), fields {FIELDS!r}, -w {TEMPLATE!r}")
    print(f"{'format':<20} {'µs/result':>10} {'vs jsonl':>9}")
    for name, format_one in cases.items():
        cost = base if format_one is format_jsonl else per_result(format_one, results, args.rounds)
        print(f"{name:<20} {cost:>10.2f} {cost / base:>8.2f}x")
    start = time.perf_counter()
    textfile.render()
    print(f"prometheus render(): {(time.perf_counter() - start) * 1e3:.1f} ms for {len(textfile)}")


if __name__ == "__main__":
    main()
