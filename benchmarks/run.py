"""fetchheads against its peers on loopback: ``python benchmarks/run.py --regimes all``.

Starts nginx on 127.0.0.1 (``apt-get install nginx-light`` when it is missing; http, and https
with a test CA's certificate), writes N distinct URLs, and runs every tool on that same list,
alternating the order each round, ``--rounds`` times. Regimes (``--regimes http,https,latency``):

* http      10,000 URLs (``--targets``) at ``-c 100``: every peer below.
* https     3,000 URLs (``--https-targets``), certificates verified against the test CA
            (``--cacert``): fetchheads, fetchheads-1 and curl.
* latency   5,000 URLs (``--latency-targets``) to benchmarks/delay_server.c (compiled here; the
            Python delay_server.py without a C compiler), which answers every request ``--delay``
            (200 ms) late from several processes on one port, at ``-c 1000``
            and ``-c 5000`` (``--latency-concurrency``): what counts is how many targets stay in
            flight. Each tool's ideal, its start-up (the same command on an empty list) plus
            ceil(N / in flight) x delay, is printed beside it; curl keeps at most 300 in flight
            whatever ``--parallel-max`` says. ``floor`` (benchmarks/peer_floor.py: a bare uvloop
            protocol that only connects, writes and waits for the blank line) shows how near the
            ideal this machine and server let any Python client come, and ``floor-2`` the same
            client in as many processes as fetchheads has workers (2 on 2 cores, the list dealt
            out between them), the reference for fetchheads with its workers. A warning names
            every run during which the kernel dropped connections from a full accept queue
            (each then waits a second for its SYN to be retried).

The tools:

* fetchheads   ``fetchheads --json -q -c C -i urls.txt > out`` (``--workers auto``: one process
               per core), and ``fetchheads-1``, the same with ``--workers 1`` (one process)
* curl         ``curl --parallel --parallel-max C --http1.0 -sS -D - -K urls.curl`` (bodies to
               /dev/null): one connection per URL as fetchheads makes, not keep-alive reuse
* aiohttp      benchmarks/peer_aiohttp.py (a task per URL, connector limit C, force_close)
* streams      benchmarks/peer_streams.py (the naive task-per-URL asyncio streams script), on
               the asyncio loop and on uvloop

and prints, per tool, the median wall time, targets/s, peak RSS (``os.wait4``) and CPU time, and
fetchheads/curl in wall time and CPU. Every tool's output is checked to hold N response heads: a
tool that got fewer in any round is marked failed in the table, not given a time (a tool that
skipped work would look fast). A peer whose Python package is not installed (aiohttp: the bench
extra, ``pip install -e '.[bench]'``) is left out before timing, with one line saying so.

``--dns`` adds the DNS case: N_DNS names through a loopback DNS server that answers after 100 ms,
``--dns-servers`` at ``-c 200``. ``--memory N`` adds two runs of N targets streamed on stdin
(with workers and with one process): the peak RSS of the largest process and the peak summed
PSS of them all. Loopback only: nothing here leaves 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.nginx import find_nginx, free_port, wait_for_port  # noqa: E402

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
error_log {w}/error.log crit;
pid {w}/nginx.pid;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {w}/tmp;
    proxy_temp_path {w}/tmp;
    fastcgi_temp_path {w}/tmp;
    uwsgi_temp_path {w}/tmp;
    scgi_temp_path {w}/tmp;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {w}/www;
    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl backlog=4096;
        ssl_certificate {w}/cert.pem;
        ssl_certificate_key {w}/key.pem;
        root {w}/www;
    }}
}}
"""


def ensure_nginx() -> str:
    try:
        return find_nginx()
    except RuntimeError:
        print("nginx missing: apt-get install nginx-light", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
        # nginx-light is gone from the newest releases (Debian 13): nginx there, as scripts/test.
        if subprocess.run([*install, "nginx-light"], check=False, env=env).returncode != 0:
            subprocess.run([*install, "nginx"], check=True, env=env)
        return find_nginx()


def start_nginx(workdir: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """nginx on 127.0.0.1: http on the first port, https (a trustme CA's certificate for
    127.0.0.1, the CA in ``workdir/ca.pem``) on the second."""
    import trustme  # the test extra; only the benchmark's https server needs it

    (workdir / "tmp").mkdir()
    (workdir / "www").mkdir()
    (workdir / "www" / "index.html").write_text("hello from nginx\n")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
    leaf = ca.issue_cert("127.0.0.1")
    leaf.private_key_pem.write_to_path(str(workdir / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
    port, tls_port = free_port(), free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(w=workdir, port=port, tls_port=tls_port))
    process = subprocess.Popen(
        [ensure_nginx(), "-c", str(conf), "-p", str(workdir), "-e", str(workdir / "error.log")]
    )
    wait_for_port(port)
    wait_for_port(tls_port)
    return process, port, tls_port


GNU_TIME = shutil.which("time", path="/usr/bin:/bin")
"""GNU time, through which every tool is started when it is installed: a process's peak RSS as
the kernel reports it (``wait4``) includes its parent's at the moment it was forked and exec'd,
so a tool started straight from this script (~35 MiB of Python) would never show less than that.
Started from GNU time (~2 MiB), a tool's own peak is what is measured."""


def measure(
    argv: list[str], *, stdin: object = None, stdout: Path, tree: list[float] | None = None
) -> tuple[float, float, float]:
    """Run ``argv``; return (wall seconds, peak RSS MiB, CPU seconds). CPU counts the process and
    the workers it forked and waited for; peak RSS is ``wait4``'s: the largest single process
    (through GNU time where installed, see ``GNU_TIME``). With ``tree``, the peak of the whole
    process tree's summed PSS (sampled every 50 ms) is appended to it: fetchheads with workers is
    several processes."""
    rss_file = stdout.with_suffix(".rss")
    err_file = stdout.with_suffix(".err")
    if GNU_TIME is not None:
        argv = [GNU_TIME, "-q", "-f", "%M", "-o", str(rss_file), *argv]
    with open(stdout, "wb") as out, open(err_file, "wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err)  # type: ignore[arg-type]
        sampler = None
        if tree is not None:
            peak = [0.0]
            sampler = threading.Thread(target=_sample_tree, args=(process, peak), daemon=True)
            sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if sampler is not None:
            assert tree is not None
            sampler.join()
            tree.append(peak[0])
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        raise SystemExit(f"{argv[0]} exited {process.returncode}")
    rss = usage.ru_maxrss / 1024
    if GNU_TIME is not None:
        rss = int(rss_file.read_text().split()[-1]) / 1024
    return wall, rss, usage.ru_utime + usage.ru_stime


def _tree_rss(pid: int) -> int:
    """Proportional set size, kB, of ``pid`` and its descendants: each page shared between them
    (the copy-on-write pages of forked workers) counted once in all, not once in each."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(child) for child in f.read().split()]
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return total
    return total + sum(_tree_rss(child) for child in children)


def _sample_tree(process: subprocess.Popen[bytes], peak: list[float]) -> None:
    while True:  # until the process has ended (the main thread reaps it)
        peak[0] = max(peak[0], _tree_rss(process.pid) / 1024)
        time.sleep(0.05)
        # The main thread reaps with wait4; this only notices the end: a zombie, or gone (reaped
        # at any moment, even between two looks, so one look, its absence caught).
        try:
            with open(f"/proc/{process.pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return
        except FileNotFoundError:
            return


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listening socket's accept queue was
    full (``TcpExt ListenOverflows``): each such client retries its SYN a whole second later, a
    stall that would be charged to the tool. Machine-wide (other work counts too); 0 where
    unreadable."""
    try:
        with open("/proc/net/netstat") as f:
            names, values = (line.split() for line in f if line.startswith("TcpExt:"))
    except (OSError, ValueError):
        return 0
    return int(dict(zip(names, values, strict=True)).get("ListenOverflows", 0))


def count_heads(path: Path) -> int:
    """200 responses in a tool's output: JSON records with status 200, or ``HTTP/x 200`` lines
    (not any line with "200" somewhere in it: a port, a URL or a timing would count a failure).
    A status line may end right after the code (aiohttp's ``HTTP/1.1 200``, no reason)."""
    with open(path, "rb") as f:
        return sum(
            1
            for line in f
            if (line.startswith(b'{"target"') and b'"status": 200,' in line)
            or (line.startswith(b"HTTP/") and line.split(None, 2)[1:2] == [b"200"])
        )


def machine() -> str:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0]
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split()
    return (
        f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, Python "
        f"{platform.python_version()}, curl {curl[1]}, load average {load:.2f} at start"
    )


def compile_bytecode() -> None:
    """Compile fetchheads' modules to bytecode before any run, as ``pip install`` does.

    An editable install (``pip install -e``) leaves that to the first import, and where
    ``PYTHONDONTWRITEBYTECODE`` is set (as on the machine of docs/performance.md) no import ever
    writes it: every run would compile each module from source again, ~0.1 s of start-up that an
    installed fetchheads never pays. ``compileall`` writes the bytecode whatever that variable
    says; the interpreter only reads it."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("fetchheads")
    for location in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(location, quiet=1)


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 65536):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


PEERS = "fetchheads,fetchheads-1,curl,aiohttp,streams,streams-uvloop"
REGIMES = ("http", "https", "latency")
CURL_PARALLEL_MAX = 300
"""curl clamps ``--parallel-max`` to 300: above that it keeps 300 transfers in flight."""


NEEDS = {
    "aiohttp": ("aiohttp", "pip install -e '.[bench]'"),
    "streams-uvloop": ("uvloop", "pip install uvloop"),
    "floor": ("uvloop", "pip install uvloop"),
}
"""The peers that need a Python package fetchheads itself may run without: (module, install)."""


def runnable(commands: dict[str, list[str]]) -> dict[str, list[str]]:
    """``commands`` without the peers that cannot run here, each left out with one line that
    says how to install what it needs (timed, it would fail at once, every round)."""
    kept = {}
    for tool, argv in commands.items():
        need = NEEDS.get(tool) or NEEDS.get(tool.rsplit("-", 1)[0])  # floor-2 needs floor's
        if need is not None and importlib.util.find_spec(need[0]) is None:
            module, install = need
            print(f"{tool}: left out, {module} is not installed ({install})", flush=True)
        else:
            kept[tool] = argv
    return kept


def last_line(path: Path) -> str:
    """The last line a tool wrote to stderr (why it failed), or ``""``."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def fetchheads_argv(python: str, c: int, urls: Path, *extra: str) -> list[str]:
    return [python, "-m", "fetchheads", "--json", "-q", "-c", str(c), *extra, "-i", str(urls)]


def curl_argv(c: int, config: Path, *extra: str) -> list[str]:
    parallel = str(min(c, CURL_PARALLEL_MAX))
    return ["curl", "--parallel", "--parallel-max", parallel, "--http1.0", "-sS", "-D", "-",
            *extra, "-K", str(config)]  # fmt: skip


def write_lists(work: Path, name: str, urls: list[str]) -> tuple[Path, Path]:
    """The same URLs as a fetchheads input file and a curl config (bodies to /dev/null)."""
    listing = work / f"{name}.txt"
    listing.write_text("".join(f"{url}\n" for url in urls))
    config = work / f"{name}.curl"
    config.write_text("".join(f'url = "{url}"\noutput = "/dev/null"\n' for url in urls))
    return listing, config


def compare(
    title: str,
    commands: dict[str, list[str]],
    *,
    targets: int,
    rounds: int,
    work: Path,
    ideal: dict[str, float] | None = None,
) -> None:
    """Run every command ``rounds`` times, alternating the order each round; print the medians
    (and, for a latency-bound regime, each tool's ideal time and how far it is from it) and
    fetchheads/curl per round. A tool that got fewer than ``targets`` heads in any round is
    marked failed, not timed; a peer that cannot run here is left out before the first round."""
    print(f"\n## {title}", flush=True)
    commands = runnable(commands)
    tools = list(commands)
    samples: dict[str, list[tuple[float, float, float]]] = {t: [] for t in tools}
    heads: dict[str, list[int]] = {t: [] for t in tools}
    for round_ in range(rounds):
        order = tools[round_ % len(tools) :] + tools[: round_ % len(tools)]
        for tool in order:
            out = work / f"{tool}.out"
            overflows = listen_overflows()
            sample = measure(commands[tool], stdout=out)
            overflows = listen_overflows() - overflows
            got = count_heads(out)
            heads[tool].append(got)
            if got != targets:  # a tool that skipped work would look fast
                why = last_line(out.with_suffix(".err"))
                print(
                    f"warning: {tool} got {got} of {targets} heads" + (f": {why}" if why else ""),
                    flush=True,
                )
            if overflows:
                print(
                    f"warning: {overflows} connections overflowed an accept queue during "
                    f"{tool} (each retried 1 s later)",
                    flush=True,
                )
            samples[tool].append(sample)
        print(
            f"round {round_ + 1}/{rounds}: "
            + ", ".join(
                f"{t} {samples[t][-1][0]:.2f}s" if heads[t][-1] == targets else f"{t} failed"
                for t in tools
            ),
            flush=True,
        )
    head = "| tool | wall s | targets/s | peak RSS MiB | CPU s |"
    rule = "|---|---:|---:|---:|---:|"
    if ideal is not None:
        head += " ideal s | wall/ideal |"
        rule += "---:|---:|"
    print(f"\n{targets} targets, median of {rounds} rounds\n{head}\n{rule}")
    medians = {}
    for tool in tools:
        short = [got for got in heads[tool] if got != targets]
        if short:
            row = (
                f"| {tool} | failed: {min(short):,} of {targets:,} heads "
                f"({len(short)} of {rounds} rounds) | | | |"
            )
            print(row + (" | |" if ideal is not None else ""))
            continue
        wall = statistics.median(s[0] for s in samples[tool])
        rss = max(s[1] for s in samples[tool])
        cpu = statistics.median(s[2] for s in samples[tool])
        medians[tool] = (wall, cpu)
        row = f"| {tool} | {wall:.2f} | {targets / wall:,.0f} | {rss:.1f} | {cpu:.2f} |"
        if ideal is not None:
            row += f" {ideal[tool]:.2f} | {wall / ideal[tool]:.2f} |"
        print(row)
    for name in ("fetchheads", "fetchheads-1"):
        if name in medians and "curl" in medians:
            ratios = [f[0] / k[0] for f, k in zip(samples[name], samples["curl"], strict=True)]
            print(
                f"{name}/curl: wall {medians[name][0] / medians['curl'][0]:.2f}, "
                f"CPU {medians[name][1] / medians['curl'][1]:.2f} (medians); wall per round: "
                + ", ".join(f"{r:.2f}" for r in ratios)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--concurrency", "-c", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tools", default=PEERS, help="for the http regime")
    parser.add_argument(
        "--regimes",
        default="http",
        help=f"comma-separated, of {', '.join(REGIMES)}; 'all' for every one (default: http)",
    )
    parser.add_argument("--https-targets", type=int, default=3_000)
    parser.add_argument("--latency-targets", type=int, default=5_000)
    parser.add_argument("--latency-concurrency", default="1000,5000", metavar="C[,C]")
    parser.add_argument("--delay", type=float, default=0.2, help="latency regime, seconds")
    parser.add_argument("--dns", type=int, default=0, metavar="N_DNS", help="names, e.g. 1000")
    parser.add_argument("--memory", type=int, default=0, metavar="N", help="e.g. 1000000")
    args = parser.parse_args()
    regimes = REGIMES if args.regimes == "all" else tuple(args.regimes.split(","))
    unknown = set(regimes) - set(REGIMES)
    if unknown:
        parser.error(f"unknown regime {', '.join(sorted(unknown))}: choose from {REGIMES}")
    raise_nofile()
    compile_bytecode()
    python = sys.executable
    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="fetchheads-bench-") as tmp:
        work = Path(tmp)
        nginx, port, tls_port = start_nginx(work)
        try:
            print(f"machine: {machine()}")
            print(
                f"nginx: 1 worker, worker_connections 16384, access_log off, backlog 4096; "
                f"RLIMIT_NOFILE {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}"
            )
            if "http" in regimes:
                urls, curl_cfg = write_lists(
                    work, "http", [f"http://127.0.0.1:{port}/?i={i}" for i in range(args.targets)]
                )
                c = args.concurrency
                every = {
                    "fetchheads": fetchheads_argv(python, c, urls),
                    "fetchheads-1": fetchheads_argv(python, c, urls, "--workers", "1"),
                    "curl": curl_argv(c, curl_cfg),
                    "aiohttp": [python, str(here / "peer_aiohttp.py"), str(urls), str(c)],
                    "streams": [python, str(here / "peer_streams.py"), str(urls), str(c)],
                    "streams-uvloop": [
                        python,
                        str(here / "peer_streams.py"),
                        str(urls),
                        str(c),
                        "uvloop",
                    ],
                }
                unknown_tools = [t for t in args.tools.split(",") if t and t not in every]
                if unknown_tools:
                    parser.error(f"unknown tool {', '.join(unknown_tools)}: choose from {PEERS}")
                chosen = {t: every[t] for t in args.tools.split(",") if t}
                compare(
                    f"http: nginx on loopback, -c {c}",
                    chosen,
                    targets=args.targets,
                    rounds=args.rounds,
                    work=work,
                )
            if "https" in regimes:
                https_case(work, tls_port, args)
            if "latency" in regimes:
                latency_case(work, args)
            if args.dns:
                dns_case(work, port, args.dns)
            if args.memory:
                for workers in (["--workers", "auto"], ["--workers", "1"]):
                    memory_case(port, args.memory, args.concurrency, workers)
        finally:
            nginx.terminate()
            nginx.wait()


def startup(argv: list[str], urls: Path, curl_cfg: Path, work: Path) -> float:
    """Median wall time of ``argv`` on an empty list (of five runs): the part of a run that no
    concurrency can shorten. curl is given one URL that is refused at once, as it wants one."""
    empty = work / "empty.txt"
    empty.write_text("")
    refused = work / "refused.curl"
    refused.write_text('url = "http://127.0.0.1:1/"\noutput = "/dev/null"\n')
    argv = [
        str(empty) if arg == str(urls) else str(refused) if arg == str(curl_cfg) else arg
        for arg in argv
    ]
    walls = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def https_case(work: Path, tls_port: int, args: argparse.Namespace) -> None:
    """https to the same nginx, certificate verified against the test CA by every tool."""
    n, c = args.https_targets, args.concurrency
    urls, curl_cfg = write_lists(
        work, "https", [f"https://127.0.0.1:{tls_port}/?i={i}" for i in range(n)]
    )
    ca = str(work / "ca.pem")
    python = sys.executable
    commands = {
        "fetchheads": fetchheads_argv(python, c, urls, "--cacert", ca),
        "fetchheads-1": fetchheads_argv(python, c, urls, "--cacert", ca, "--workers", "1"),
        "curl": curl_argv(c, curl_cfg, "--cacert", ca),
    }
    compare(
        f"https: nginx on loopback, test CA, -c {c}",
        commands,
        targets=n,
        rounds=args.rounds,
        work=work,
    )


def delay_server(work: Path) -> tuple[list[str], str]:
    """The delay server's command (before PORT DELAY PROCESSES) and its name: benchmarks/
    delay_server.c compiled here with cc -O2, which spends a few µs of CPU a connection where the
    Python one (uvloop) spends ~75 µs that a 2-core machine takes from the client measured; the
    Python one where no C compiler is at hand."""
    here = Path(__file__).resolve().parent
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is not None:
        binary = work / "delay_server"
        built = subprocess.run(
            [compiler, "-O2", "-o", str(binary), str(here / "delay_server.c")],
            capture_output=True,
            text=True,
            check=False,
        )
        if built.returncode == 0:
            return [str(binary)], "C delay server"
        print(f"warning: delay_server.c did not compile: {built.stderr.strip()[:200]}")
    return [sys.executable, str(here / "delay_server.py")], "Python delay server"


def latency_case(work: Path, args: argparse.Namespace) -> None:
    """Every answer ``--delay`` late, from a server of several processes on one port: what counts
    is how many targets a tool keeps in flight. The ideal is the tool's start-up plus
    ceil(N / in flight) x delay."""
    port = free_port()
    processes = max(2, os.cpu_count() or 2)
    server_argv, server_name = delay_server(work)
    server = subprocess.Popen(
        [*server_argv, str(port), str(args.delay), str(processes)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("the delay server did not start")
        n = args.latency_targets
        urls, curl_cfg = write_lists(
            work, "latency", [f"http://127.0.0.1:{port}/?i={i}" for i in range(n)]
        )
        python = sys.executable
        floor = Path(__file__).with_name("peer_floor.py")
        for c in (int(value) for value in args.latency_concurrency.split(",")):
            commands = {
                "fetchheads": fetchheads_argv(python, c, urls),
                "fetchheads-1": fetchheads_argv(python, c, urls, "--workers", "1"),
                "curl": curl_argv(c, curl_cfg),
                "floor": [python, str(floor), str(urls), str(c)],
            }
            workers = auto_workers(c)
            if workers > 1:  # the floor with as many processes as fetchheads' workers
                commands[f"floor-{workers}"] = [*commands["floor"], str(workers)]
            in_flight = {"curl": min(c, CURL_PARALLEL_MAX)}
            ideal = {
                t: startup(commands[t], urls, curl_cfg, work)
                + math.ceil(n / in_flight.get(t, c)) * args.delay
                for t in commands
            }
            compare(
                f"latency: every answer {args.delay * 1000:.0f} ms late ({server_name}, "
                f"{processes} processes), -c {c} (curl: --parallel-max {in_flight['curl']})",
                commands,
                targets=n,
                rounds=args.rounds,
                work=work,
                ideal=ideal,
            )
    finally:
        server.terminate()
        server.wait()


def auto_workers(concurrency: int) -> int:
    """How many workers ``--workers auto`` forks for a list in a file at ``-c concurrency``:
    one per usable core, at most one per 25 connections (docs/scale.md)."""
    from fetchheads.run.plan import AUTO_CONNECTIONS_PER_WORKER
    from fetchheads.run.process import usable_cores

    return max(1, min(usable_cores(), concurrency // AUTO_CONNECTIONS_PER_WORKER))


def dns_case(work: Path, port: int, names: int) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.dns", "bench.test", "0.1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        dns_port = int(server.stdout.readline())
        urls = work / "dns-urls.txt"
        urls.write_text("".join(f"http://h{i}.bench.test:{port}/\n" for i in range(names)))
        out = work / "dns.out"
        wall, rss, cpu = measure(
            [
                sys.executable,
                "-m",
                "fetchheads",
                "--json",
                "-q",
                "-c",
                "200",
                "--dns-servers",
                f"127.0.0.1:{dns_port}",
                "-i",
                str(urls),
            ],
            stdout=out,
        )
        got = count_heads(out)
        print(
            f"\nDNS: {names} names, every answer 100 ms late, --dns-servers, -c 200: "
            f"{wall:.2f} s ({got} ok), peak RSS {rss:.1f} MiB, CPU {cpu:.2f} s"
        )
    finally:
        server.terminate()
        server.wait()


def memory_case(port: int, count: int, concurrency: int, workers: list[str]) -> None:
    """``count`` targets generated on the fly into fetchheads' stdin; output to /dev/null."""
    feeder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nw = sys.stdout.write\n"
            f"for i in range({count}): w('http://127.0.0.1:{port}/?m=%d\\n' % i)",
        ],
        stdout=subprocess.PIPE,
    )
    devnull = Path(os.devnull)
    tree: list[float] = []
    wall, rss, cpu = measure(
        [sys.executable, "-m", "fetchheads", "--json", "-q", "-c", str(concurrency), *workers],
        stdin=feeder.stdout,
        stdout=devnull,
        tree=tree,
    )
    assert feeder.stdout is not None
    feeder.stdout.close()
    feeder.wait()
    print(
        f"\nmemory: {count:,} targets on stdin, -c {concurrency} {' '.join(workers)}: "
        f"{wall:.1f} s ({count / wall:,.0f}/s), peak RSS {rss:.1f} MiB (largest process), "
        f"{tree[0]:.1f} MiB (PSS of all processes, summed), CPU {cpu:.1f} s"
    )


if __name__ == "__main__":
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed: apt-get install curl")
    main()
