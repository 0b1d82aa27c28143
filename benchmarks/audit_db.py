"""How fast ``fetchheads audit --db`` grades a database: N synthetic snapshots (the heads of
``audit_speed.py``) written into a new SQLite file, then the offline audit timed as a process,
end to end (open, batch reads, grading, the table). A sanity figure, not a pass/fail test.

Usage: python benchmarks/audit_db.py [N] [DIR]     (default 100000, a temporary directory)
       python benchmarks/audit_db.py --verify SRC [N]

``--verify SRC`` proves a change keeps every grade: it grades the same N snapshots with the
fetchheads whose package is in SRC (``/work/main/src``, a checkout's ``src`` from before the
change) and with this one, ``fetchheads audit --db --format jsonl`` each, and compares every
record; it also grades the N heads in this process with ``audit`` (cached) and with
``reference_audit`` (no cache) and compares those.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from audit_speed import synthetic

from fetchheads.audit import Exchange, audit
from fetchheads.audit.grader import reference_audit
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


def audit_jsonl(path: str, src: str | None = None) -> tuple[list[str], float]:
    """``fetchheads audit --db PATH --format jsonl``'s lines, and its wall time."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "fetchheads", "audit", "--db", path, "--format", "jsonl"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return done.stdout.splitlines(), time.perf_counter() - start


def verify(src: str, count: int) -> int:
    heads = synthetic(count)
    differ = 0
    for url, status, headers, https in heads:
        exchange = Exchange(url, status, tuple(headers), True if https else None)
        differ += audit(exchange).to_record() != reference_audit(exchange).to_record()
    print(f"in process: {count} heads, {differ} audits differ from reference_audit")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "heads.db")
        build(path, count)
        before, before_s = audit_jsonl(path, src)
        after, after_s = audit_jsonl(path)
    changed = sum(a != b for a, b in zip(before, after, strict=False))
    changed += abs(len(before) - len(after))
    print(
        f"fetchheads audit --db: {len(before)} records from {src} ({before_s:.2f}s),"
        f" {len(after)} from this tree ({after_s:.2f}s): {changed} differ"
    )
    return 1 if differ or changed or len(after) != count else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0].replace("\n", " "),
        usage="%(prog)s [N] [DIR] | %(prog)s --verify SRC [N]",
    )
    parser.add_argument("count", nargs="?", type=int, default=100_000, metavar="N")
    parser.add_argument("dir", nargs="?", default=None, metavar="DIR")
    parser.add_argument("--verify", metavar="SRC", help="compare every grade with SRC's fetchheads")
    args = parser.parse_args()
    if args.verify is not None:
        sys.exit(verify(args.verify, args.count))
    count = args.count
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
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
