"""What --db and --changes cost a run: fetchheads against itself without a database, as ratios;
and how many rows per second each backend takes, beside the fetch rate.

    python benchmarks/snapshots.py [TARGETS] [ROUNDS]      (defaults: 10000 targets, 3 rounds)

A loopback server (its own process) answers every request with a small fixed head; fetchheads
fetches TARGETS distinct URLs from it, -c 200, JSON Lines to /dev/null, in three modes, rounds
interleaved so a busy machine slows all three alike:

    plain     no database (the peer)
    db        --db, a new file: every result written, one row each
    changes   --db --changes against a database holding one earlier run (nothing changed, so
              nothing is printed, but every target's previous snapshot is read and compared)

    pg-db, pg-changes   the same two into a PostgreSQL database (a throwaway server on loopback,
              from tests/support/postgres.py; skipped when psycopg or initdb is missing)

It prints the median wall time and CPU time (user+sys of the fetchheads process) of each mode and
their ratios to plain, then the store alone: rows per second that ``Store.record`` writes in the
recorder's batches (BATCH_ROWS), plain and with --changes' read of each predecessor, into each
backend, next to the rate plain fetches targets. Recording must stay far above the fetch rate: it
runs on its own thread, and it is never what limits a run while it is. Loopback only.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support.postgres

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


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A new database on a throwaway loopback server, or None when that cannot be had."""
    try:
        import psycopg  # noqa: F401
        from tests.support.postgres import find_pg_bin, running_postgres

        find_pg_bin("initdb")
    except (ImportError, RuntimeError) as exc:
        print(f"PostgreSQL modes skipped: {exc}", file=sys.stderr)
        yield None
        return
    with running_postgres() as server:
        yield server.url.rsplit("/", 1)[0]


def store_rate(location: str, rows: int, previous: bool) -> float:
    """Rows per second ``Store.record`` writes in the recorder's batches."""
    from fetchheads.snapshots.changes import Snapshot
    from fetchheads.snapshots.recorder import BATCH_ROWS
    from fetchheads.snapshots.store import Store

    headers = (("Server", "bench"), ("Content-Type", "text/html"), ("X-Version", "1"))
    snapshots = [
        Snapshot(
            key=f"http://127.0.0.1:8080/{n}",
            target=f"127.0.0.1:8080/{n}",
            url=f"http://127.0.0.1:8080/{n}",
            fetched_at="2026-11-25T19:12:17.123Z",
            ok=True,
            status=200,
            reason="OK",
            http_version="HTTP/1.1",
            headers=headers,
            has_head=True,
            timing={"connect": 0.001, "ttfb": 0.002, "total": 0.002},
            address="127.0.0.1",
        )
        for n in range(rows)
    ]
    with Store.open(location) as store:
        run = store.begin_run("bench", {})
        started = time.perf_counter()
        for start in range(0, rows, BATCH_ROWS):
            store.record(run, snapshots[start : start + BATCH_ROWS], previous=previous)
        return rows / (time.perf_counter() - started)


def new_database(server: str, name: str) -> str:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"'.encode())
    return f"{server}/{name}"


def main() -> None:
    targets = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    fetchheads = shutil.which("fetchheads", path=str(Path(sys.executable).parent)) or "fetchheads"
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    rates: list[tuple[str, float, float]] = []
    with ExitStack() as stack:
        pg = stack.enter_context(postgres_database())
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            hosts = Path(tmp) / "hosts.txt"
            hosts.write_text("".join(f"127.0.0.1:{port}/{n}\n" for n in range(targets)))
            base = ["-q", "-c", "200", "--format", "jsonl", "-i", str(hosts)]
            modes = ["plain", "db", "changes"] + (["pg-db", "pg-changes"] if pg else [])
            times: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
            for round_ in range(rounds):
                times["plain"].append(run(fetchheads, base))
                times["db"].append(run(fetchheads, [*base, "--db", f"{tmp}/new{round_}.db"]))
                seeded = f"{tmp}/seeded{round_}.db"
                run(fetchheads, [*base, "--db", seeded])
                times["changes"].append(run(fetchheads, [*base, "--db", seeded, "--changes"]))
                if pg:
                    fresh = new_database(pg, f"new{round_}")
                    times["pg-db"].append(run(fetchheads, [*base, "--db", fresh]))
                    seeded = new_database(pg, f"seeded{round_}")
                    run(fetchheads, [*base, "--db", seeded])
                    times["pg-changes"].append(
                        run(fetchheads, [*base, "--db", seeded, "--changes"])
                    )
            backends = [("sqlite", f"{tmp}/rate.db")]
            if pg:
                backends.append(("postgres", new_database(pg, "rate")))
            for name, location in backends:
                rates.append((name, store_rate(location, targets, False), 0.0))
                rates[-1] = (name, rates[-1][1], store_rate(location, targets, True))
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
            f"{mode:10} wall {wall:6.2f} s  x{wall / plain_wall:4.2f}   "
            f"cpu {cpu:6.2f} s  x{cpu / plain_cpu:4.2f}"
        )
    fetch_rate = targets / plain_wall
    print(f"fetch rate (plain): {fetch_rate:9.0f} targets/s")
    for name, plain_rows, compared_rows in rates:
        print(
            f"store {name:8}  record {plain_rows:9.0f} rows/s (x{plain_rows / fetch_rate:5.1f} "
            f"the fetch rate)   with --changes {compared_rows:9.0f} rows/s "
            f"(x{compared_rows / fetch_rate:5.1f})"
        )


if __name__ == "__main__":
    main()
