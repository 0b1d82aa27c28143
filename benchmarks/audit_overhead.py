"""What ``--audit`` adds to a live run: ``python benchmarks/audit_overhead.py [--targets N]``.

The same list of loopback targets (``delay_server.py`` with no delay, answering a head with a
typical set of security headers: CSP, HSTS, a cookie ...) fetched by the whole command, in one
process (``--workers 1``), written to a file as the table the issue 14 command prints: without
``--audit``, with it, and with it sorted worst first (``--sort audit.score``). The variants take
turns in each round; prints each one's median wall time, its ratio to the run without the audit,
its CPU time (user + system) and ratio, and its largest resident set (``wait4``: what a sorted
run holds shows there).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ["--format", "table", "--fields", "target,status,audit.grade,audit.score"]
VARIANTS = {
    "no audit": [],
    "--audit": ["--audit"],
    "--audit --sort": ["--audit", "--sort", "audit.score"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("-c", "--concurrency", type=int, default=100)
    args = parser.parse_args()
    # Byte-compiled first, as an installed fetchheads is: PYTHONDONTWRITEBYTECODE (set on some
    # machines) would otherwise charge every run the compiling of every module it imports.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "delay_server.py"),
            str(port),
            "0",
            "1",
            "secure",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpus: dict[str, list[float]] = {name: [] for name in VARIANTS}
    rss = dict.fromkeys(VARIANTS, 0)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        with tempfile.TemporaryDirectory() as tmp:
            hosts = os.path.join(tmp, "hosts.txt")
            with open(hosts, "w") as file:
                file.writelines(f"127.0.0.1:{port}/page{n}\n" for n in range(args.targets))
            env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "80"}
            for _ in range(args.rounds):
                for name, options in VARIANTS.items():
                    out = os.path.join(tmp, "out.txt")
                    argv = [sys.executable, "-m", "fetchheads", "-q", "--workers", "1"]
                    argv += ["-c", str(args.concurrency), "-i", hosts, "-o", out, *TABLE, *options]
                    start = time.perf_counter()
                    child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
                    _, status, usage = os.wait4(child.pid, 0)
                    walls[name].append(time.perf_counter() - start)
                    cpus[name].append(usage.ru_utime + usage.ru_stime)
                    code = os.waitstatus_to_exitcode(status)
                    if code != 0:
                        raise SystemExit(f"{name}: exit status {code}")
                    with open(out, "rb") as written:
                        rows = sum(1 for _ in written) - 1
                    if rows != args.targets:
                        raise SystemExit(f"{name}: {rows} rows, not {args.targets}")
                    rss[name] = max(rss[name], usage.ru_maxrss)
    finally:
        server.terminate()
        server.wait()
    base = statistics.median(walls["no audit"])
    base_cpu = statistics.median(cpus["no audit"])
    print(f"{args.targets} loopback targets, -c {args.concurrency}, --workers 1, table to -o FILE,")
    print(f"{args.rounds} rounds taking turns, medians")
    print(
        f"{'run':<16} {'seconds':>8} {'vs no audit':>11} {'CPU s':>7} {'vs no audit':>11} "
        f"{'max RSS MiB':>12}"
    )
    for name, times in walls.items():
        wall = statistics.median(times)
        cpu = statistics.median(cpus[name])
        print(
            f"{name:<16} {wall:>8.3f} {wall / base:>10.3f}x {cpu:>7.3f} {cpu / base_cpu:>10.3f}x "
            f"{rss[name] / 1024:>12.1f}"
        )


if __name__ == "__main__":
    main()
