"""What --db and --changes cost a run: fetchheads against itself without a database, as ratios.

    python benchmarks/snapshots.py [TARGETS] [ROUNDS]      (defaults: 10000 targets, 3 rounds)

A loopback server (its own process) answers every request with a small fixed head; fetchheads
fetches TARGETS distinct URLs from it, -c 200, JSON Lines to /dev/null, in three modes, rounds
interleaved so a busy machine slows all three alike:

    plain     no database (the peer)
    db        --db, a new file: every result written, one row each
    changes   --db --changes against a database holding one earlier run (nothing changed, so
              nothing is printed, but every target's previous snapshot is read and compared)

It prints the median wall time and CPU time (user+sys of the fetchheads process) of each mode and
their ratios to plain. Loopback only; nothing leaves the machine.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = r"""
import asyncio, sys
HEAD = (b"HTTP/1.1 200 OK\r\nServer: bench\r\nContent-Type: text/html\r\n"
        b"Cache-Control: max-age=60\r\nVary: Accept-Encoding\r\nX-Version: 1\r\n\r\n")
async def handle(reader, writer):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await reader.read(4096)
        if not chunk:
            break
        data += chunk
    writer.write(HEAD)
    try:
        await writer.drain()
    except ConnectionError:
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def run(fetchheads: str, args: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([fetchheads, *args], stdout=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    targets = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    fetchheads = shutil.which("fetchheads", path=str(Path(sys.executable).parent)) or "fetchheads"
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with tempfile.TemporaryDirectory() as tmp:
            hosts = Path(tmp) / "hosts.txt"
            hosts.write_text("".join(f"127.0.0.1:{port}/{n}\n" for n in range(targets)))
            base = ["-q", "-c", "200", "--format", "jsonl", "-i", str(hosts)]
            times: dict[str, list[tuple[float, float]]] = {"plain": [], "db": [], "changes": []}
            for round_ in range(rounds):
                times["plain"].append(run(fetchheads, base))
                times["db"].append(run(fetchheads, [*base, "--db", f"{tmp}/new{round_}.db"]))
                seeded = f"{tmp}/seeded{round_}.db"
                run(fetchheads, [*base, "--db", seeded])
                times["changes"].append(run(fetchheads, [*base, "--db", seeded, "--changes"]))
    finally:
        server.terminate()
        server.wait()
    plain_wall = statistics.median(w for w, _ in times["plain"])
    plain_cpu = statistics.median(c for _, c in times["plain"])
    print(f"{targets} targets, {rounds} rounds, medians")
    for mode, samples in times.items():
        wall = statistics.median(w for w, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        print(
            f"{mode:8} wall {wall:6.2f} s  x{wall / plain_wall:4.2f}   "
            f"cpu {cpu:6.2f} s  x{cpu / plain_cpu:4.2f}"
        )


if __name__ == "__main__":
    main()
