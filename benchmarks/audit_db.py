"""How fast ``fetchheads audit --db`` grades a database: N synthetic snapshots (the heads of
``audit_speed.py``) written into a new SQLite file, then the offline audit timed as a process,
end to end (open, batch reads, grading, the table). A sanity figure, not a pass/fail test.

Usage: python benchmarks/audit_db.py [N] [DIR]     (default 100000, a temporary directory)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from audit_speed import synthetic

from fetchheads.snapshots.changes import Snapshot
from fetchheads.snapshots.store import Store

BATCH = 5000


def build(path: str, count: int) -> None:
    with Store.open(path) as store:
        run = store.begin_run("bench", {})
        heads = synthetic(count)
        for start in range(0, count, BATCH):
            store.record(
                run,
                [
                    Snapshot(
                        key=url,
                        target=url,
                        url=url,
                        fetched_at="2026-11-25T19:12:17.123Z",
                        ok=True,
                        status=status,
                        reason="OK",
                        http_version="HTTP/1.1",
                        headers=tuple(headers),
                        has_head=True,
                        timing={},
                        tls={"verified": True} if https else None,
                    )
                    for url, status, headers, https in heads[start : start + BATCH]
                ],
            )
        store.finish_run(run, targets=count, ok=count)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory(dir=sys.argv[2] if len(sys.argv) > 2 else None) as tmp:
        path = str(Path(tmp) / "heads.db")
        build(path, count)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "fetchheads", "audit", "--db", path],
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - start
    rows = len(done.stdout.splitlines()) - 1
    print(f"fetchheads audit --db: {rows} snapshots graded in {elapsed:.2f}s wall")


if __name__ == "__main__":
    main()
