"""Instructions a target costs each client, counted by valgrind: the noise-free view of one core.

``python benchmarks/instructions.py [--targets 2000]``: nginx on loopback (as in ``run.py``), then
each client under ``valgrind --tool=callgrind``, once on an empty list and once on N targets:
the difference over N is the user-space instructions one target costs it, start-up left out.
Wall times on a 2-core machine move by 10-20% from one run to the next; these counts move by
well under 1% (they do not depend on what else the machine is doing), so a change to the
per-target path can be seen here long before it shows in ``run.py``. What they leave out is
what the kernel does for a target (connect, write, read, close: about as much for every client)
and how fast the instructions run: C code runs more of them a nanosecond than the Python
interpreter does, so the same count costs Python more time.

The clients, each on the same list, ``-c 100``:

* ``curl``: ``curl --parallel``, as ``run.py`` runs it;
* ``floor``: ``peer_floor.py``, the least a Python client on uvloop can do (connect, write,
  wait for the blank line, abort);
* ``floor+work``: ``peer_floor_work.py``, the floor doing fetchheads' own pure steps per target
  (read the target, parse the head, build the result, write its JSON Lines record);
* ``fetchheads-1``: ``fetchheads --workers 1 --json``, one process.

``PYTHONPATH=OTHER/src python benchmarks/instructions.py`` counts another checkout's fetchheads
(a change before and after it lands, say): every client is started with this environment.

And, with no network at all, fetchheads' pure steps alone in a loop over the same nginx head,
each step left out in turn to price it: what a compiled version of one step could save at most.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from run import compile_bytecode, curl_argv, raise_nofile, start_nginx, write_lists

HERE = Path(__file__).resolve().parent

PURE = """
import sys, time
from fetchheads.http.parse import HeadParser
from fetchheads.models import build_result, build_timing, utc_now
from fetchheads.render.jsonl import format_jsonl
from fetchheads.targets import parse_target

urls = [line.strip() for line in open(sys.argv[1])]
raw = open(sys.argv[3], "rb").read()
leave_out = sys.argv[4]
target0, head0 = parse_target(urls[0]), HeadParser().feed(raw)
out = []
for url in urls[: int(sys.argv[2])]:
    target = target0 if leave_out == "target" else parse_target(url)
    fetched_at = utc_now()
    start = time.perf_counter()
    authority = target.authority
    request = f"GET {target.path} HTTP/1.0\\r\\nHost: {authority}\\r\\n\\r\\n".encode()
    head = head0 if leave_out == "parse" else HeadParser().feed(raw)
    timing = build_timing(None, 0.0001, None, 0.0002, time.perf_counter() - start)
    result = build_result(
        target.text, target.url_at(authority), head, None, target.host, timing, None, (),
        fetched_at,
    )
    out.append(result if leave_out == "record" else format_jsonl(result).encode())
"""
STEPS = {
    "parse_target": "target",
    "the head parser": "parse",
    "the JSON Lines record": "record",
}


def callgrind(argv: list[str], work: Path) -> int:
    """User-space instructions of one run of ``argv`` (its output thrown away)."""
    out = work / "callgrind.out"
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    text = out.read_text(errors="replace")
    match = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if match is None:
        raise SystemExit(f"instructions.py: no count from callgrind for {argv[0]}")
    out.unlink()
    return int(match.group(1))


def per_target(argvs: tuple[list[str], list[str]], targets: int, work: Path) -> float:
    """(instructions on N targets - on none) / N: start-up left out."""
    empty, full = (callgrind(argv, work) for argv in argvs)
    return (full - empty) / targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--concurrency", "-c", type=int, default=100)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("instructions.py: needs valgrind (Debian: apt-get install valgrind)")
    if shutil.which("curl") is None:
        raise SystemExit("instructions.py: needs curl")
    raise_nofile()
    compile_bytecode()
    python, c, n = sys.executable, str(args.concurrency), args.targets
    with tempfile.TemporaryDirectory(prefix="fetchheads-instructions-") as tmp:
        work = Path(tmp)
        nginx, port, _tls = start_nginx(work)
        try:
            urls = [f"http://127.0.0.1:{port}/?{i}" for i in range(n)]
            lists = {name: write_lists(work, name, chosen) for name, chosen in
                     (("none", []), ("all", urls))}  # fmt: skip

            def clients(name: str) -> dict[str, list[str]]:
                listing, config = lists[name]
                return {
                    "curl": curl_argv(args.concurrency, config),
                    "floor": [python, str(HERE / "peer_floor.py"), str(listing), c],
                    "floor+work": [python, str(HERE / "peer_floor_work.py"), str(listing), c],
                    "fetchheads-1": [python, "-m", "fetchheads", "--json", "-q", "-c", c,
                                     "--workers", "1", "-i", str(listing)],
                }  # fmt: skip

            print(f"instructions a target, user space, {n} loopback http targets, -c {c}")
            counts: dict[str, float] = {}
            for name in clients("all"):
                argvs = (clients("none")[name], clients("all")[name])
                counts[name] = count = per_target(argvs, n, work)
                print(f"  {name:<14} {count:>9,.0f}   {count / counts['curl']:.2f}x curl")
            head = subprocess.run(
                ["curl", "-sS", "-i", "--http1.0", urls[0]], capture_output=True, check=True
            ).stdout
        finally:
            nginx.terminate()
            nginx.wait()
        head_file = work / "head"
        head_file.write_bytes(head)
        script = work / "pure.py"
        script.write_text(PURE)
        listing = str(lists["all"][0])

        def pure(leave_out: str, count: int) -> list[str]:
            return [python, str(script), listing, str(count), str(head_file), leave_out]

        every = per_target((pure("", 0), pure("", n)), n, work)
        print(f"fetchheads' pure steps alone, no network: {every:,.0f} a target, of which")
        for step, leave_out in STEPS.items():
            without = per_target((pure(leave_out, 0), pure(leave_out, n)), n, work)
            print(f"  {step:<22} {every - without:>9,.0f}")


if __name__ == "__main__":
    main()
