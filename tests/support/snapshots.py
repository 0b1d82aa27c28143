"""The snapshot tests' server and runners: a site whose headers a test changes between runs, the
command line in-process (CliRunner) and as a real process, and a look into either database."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner

from fetchheads.cli import cli
from fetchheads.snapshots.changes import Snapshot
from tests.support import processes
from tests.support.servers import ThreadedServer, read_request_head


class Site:
    """A server whose headers the test changes between runs; its Date changes on every request."""

    def __init__(self, **headers: str) -> None:
        self.status = "200 OK"
        self.headers = dict(headers)
        self.served = 0
        self.hang_up = False  # close without a word: a protocol error
        self.hold = 0  # hold every answer until this many requests are waiting
        self._released: asyncio.Event | None = None

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        self.served += 1
        if self.served <= self.hold:
            # Make overlap certain, not likely: nobody is answered until everyone is waiting.
            self._released = self._released or asyncio.Event()
            if self.served == self.hold:
                self._released.set()
            await asyncio.wait_for(self._released.wait(), timeout=30)
        if self.hang_up:
            writer.close()
            return
        lines = [f"HTTP/1.1 {self.status}", f"Date: request {self.served}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        writer.close()


def start_site(threaded_server: Callable[..., ThreadedServer]) -> tuple[Site, str]:
    """A ``Site`` (Server test/1, X-Version 1) on a loopback server, and its target."""
    site = Site(Server="test/1", **{"X-Version": "1", "X-Request-Id": "abc"})
    server = threaded_server(site.handler)
    return site, f"127.0.0.1:{server.port}"


def query(db: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` in the snapshot database ``db`` (an SQLite path or a PostgreSQL URL),
    read or written behind fetchheads' back."""
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db) as connection:
            return [tuple(row) for row in connection.execute(sql.encode()).fetchall()]
    file = sqlite3.connect(db)
    try:
        rows = file.execute(sql).fetchall()
        file.commit()  # an UPDATE behind fetchheads' back, as psycopg's block commits it
        return rows
    finally:
        file.close()


def fetchheads(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def run_cli(*args: str, stdout: int = subprocess.PIPE) -> subprocess.Popen[str]:
    """A real fetchheads process (stderr piped; stdout too unless told: a long run's output
    must go elsewhere, or the unread pipe fills and blocks it)."""
    return processes.start(
        [sys.executable, "-m", "fetchheads", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def snap(key: str, fetched_at: str, *headers: tuple[str, str], status: int = 200) -> Snapshot:
    """A stored snapshot of ``key`` (an ``http://`` URL), OK, with ``headers``."""
    return Snapshot(
        key=key,
        target=key.removeprefix("http://").rstrip("/"),
        url=key,
        fetched_at=fetched_at,
        ok=True,
        status=status,
        reason="OK",
        http_version="HTTP/1.1",
        headers=headers,
        has_head=True,
        timing={"total": 0.01},
        tls={"not_after": "2027-01-01T00:00:00Z", "days_left": 30},
    )


def day(n: int) -> str:
    """Midnight of November ``n``, 2026, as ``fetched_at`` is written."""
    return f"2026-11-{n:02d}T00:00:00.000Z"
