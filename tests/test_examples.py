"""The scale-out examples run as a user would run them: examples/parallel.sh through GNU parallel
(with ``ssh`` standing in for the machines), and the Kubernetes Job's command once per completion
index. Either way the shards' JSON Lines must add up to the whole list, each target once."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.postgres import Postgres
from tests.support.servers import ThreadedServer, reply, silent
from tests.support.snapshots import Site, query
from tests.test_process import wait_until

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HEAD = b"HTTP/1.1 200 OK\r\nServer: scripted\r\n\r\n"
StartServer = Callable[..., ThreadedServer]

FAKE_SSH = """#!/usr/bin/env bash
# ssh HOST COMMAND run here: the options are dropped, the host is logged, stdin passes through.
while [ "${1:-}" = "-o" ]; do shift 2; done
echo "$1" >> "$SSH_LOG"
shift
exec bash -c "$*"
"""


def _bin_dir(tmp_path: Path, scripts: dict[str, str]) -> str:
    """A PATH with ``scripts`` first, then this interpreter's bin (where ``fetchheads`` is)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in scripts.items():
        script = bin_dir / name
        script.write_text(text)
        script.chmod(0o755)
    fetchheads = shutil.which("fetchheads", path=str(Path(sys.executable).parent))
    assert fetchheads is not None, "fetchheads is not installed next to this Python"
    return os.pathsep.join([str(bin_dir), str(Path(fetchheads).parent), os.environ["PATH"]])


def _hosts(tmp_path: Path, port: int, count: int) -> tuple[Path, list[str]]:
    urls = [f"http://127.0.0.1:{port}/{n}" for n in range(count)]
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("\n".join(urls) + "\n")
    return hosts, urls


def test_parallel_sh_runs_one_shard_per_machine_and_they_add_up(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    assert shutil.which("parallel") is not None, "GNU parallel is needed (scripts/test installs it)"
    server = threaded_server(reply(HEAD))
    hosts, urls = _hosts(tmp_path, server.port, 90)
    log = tmp_path / "ssh.log"
    env = {
        **os.environ,
        "PATH": _bin_dir(tmp_path, {"ssh": FAKE_SSH}),
        "SSH_LOG": str(log),
        "FETCHHEADS_OPTS": "-c 10",
        "HOME": str(tmp_path),  # GNU parallel keeps its state under ~/.parallel
    }
    result = subprocess.run(
        ["bash", str(EXAMPLES / "parallel.sh"), str(hosts), "web1", "web2", "web3"],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["url"] for r in records) == sorted(urls)  # each target once, none lost
    assert all(r["ok"] for r in records)
    assert sorted(log.read_text().split()) == ["web1", "web2", "web3"]


def _job_command(example: str = "kubernetes-job.yaml") -> tuple[str, int]:
    """The container's command of a Kubernetes example (a Job, or a CronJob's job template), and
    its shard count."""
    text = (EXAMPLES / example).read_text()

    def number(pattern: str) -> int:
        match = re.search(pattern, text)
        assert match is not None, pattern
        return int(match.group(1))

    completions = number(r"completions: (\d+)")
    shards = number(r'name: SHARDS\s+value: "(\d+)"')
    assert completions == number(r"parallelism: (\d+)") == shards
    # The container's command: the folded (>-) block under args, joined as YAML joins it.
    block = text.split("- >-\n", 1)[1].split("volumeMounts:", 1)[0]
    assert "name: SHARDS" in text
    command = " ".join(line.strip() for line in block.splitlines() if line.strip())
    assert "JOB_COMPLETION_INDEX" in command
    return command, shards


def _pod_env(tmp_path: Path, index: int, shards: int) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": _bin_dir(tmp_path, {"pip": "#!/bin/sh\nexit 0\n"}),  # the image's pip install
        "SHARDS": str(shards),
        "JOB_COMPLETION_INDEX": str(index),
    }


def test_the_kubernetes_job_command_shards_by_completion_index(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    command, shards = _job_command()
    server = threaded_server(reply(HEAD))
    hosts, urls = _hosts(tmp_path, server.port, 80)
    # A target that fails is a record like any other, not a failed pod: Kubernetes would run
    # the pod again (backoffLimit), fetching its shard twice into the logs, and fail the Job.
    refused = "http://127.0.0.1:1/"
    with hosts.open("a") as f:
        f.write(refused + "\n")
    command = command.replace("/targets/hosts.txt", str(hosts))
    records = []
    for index in range(shards):
        pod = subprocess.run(
            ["sh", "-c", command],
            env=_pod_env(tmp_path, index, shards),
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert pod.returncode == 0, pod.stderr.decode()
        shard = [json.loads(line) for line in pod.stdout.splitlines()]
        assert shard, f"pod {index} fetched nothing"
        records.extend(shard)
    assert sorted(r["url"] for r in records) == sorted([*urls, refused])
    assert [r["url"] for r in records if not r["ok"]] == [refused]
    # A run that could not do its job still fails the pod (here a usage error: shard 1 of 0).
    pod = subprocess.run(
        ["sh", "-c", command], env=_pod_env(tmp_path, 0, 0), capture_output=True, check=False
    )
    assert pod.returncode == 2, pod.stderr.decode()


def test_the_kubernetes_job_command_passes_sigterm_on(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    """Deleting the Job sends SIGTERM to the container's first process, the shell: fetchheads
    must get it (and print what it finished), not be left running until SIGKILL."""
    command, _ = _job_command()
    stuck = threaded_server(silent())
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"http://127.0.0.1:{stuck.port}/\n")
    command = command.replace("/targets/hosts.txt", str(hosts)).replace("-c 500", "-c 1 -t 60")
    pod = processes.start(
        ["sh", "-c", command],
        env=_pod_env(tmp_path, 0, 1),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_until(lambda: len(stuck.requests) == 1, "the request to the silent server")
    pod.send_signal(signal.SIGTERM)
    try:
        pod.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("SIGTERM to the pod's shell did not end fetchheads")
    assert pod.returncode == 143


def test_the_systemd_unit_names_fetchheads_by_an_absolute_path_and_runs(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    """systemd does not search the PATH of the user's shell: ExecStart must name fetchheads by
    its absolute path, and the unit says how to find it. With that path and the specifiers filled
    in, the command runs as the timer would run it."""
    unit = (EXAMPLES / "fetchheads-watch.service").read_text(encoding="utf-8")
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    program, *args = exec_start.removeprefix("ExecStart=").split()
    assert program.startswith("/"), exec_start
    assert Path(program).name == "fetchheads"
    assert "command -v fetchheads" in unit
    server = threaded_server(reply(HEAD))
    hosts, _ = _hosts(tmp_path, server.port, 3)
    (tmp_path / "config" / "fetchheads").mkdir(parents=True)
    hosts.rename(tmp_path / "config" / "fetchheads" / "hosts.txt")
    (tmp_path / "state" / "fetchheads").mkdir(parents=True)  # StateDirectory= makes it
    filled = [
        arg.replace("%S", str(tmp_path / "state")).replace("%E", str(tmp_path / "config"))
        for arg in args
    ]
    fetchheads = shutil.which("fetchheads", path=str(Path(sys.executable).parent))
    assert fetchheads is not None
    run = subprocess.run([fetchheads, *filled], capture_output=True, timeout=60, check=False)
    assert (run.returncode, run.stdout, run.stderr) == (0, b"", b"")  # the baseline: silent
    assert (tmp_path / "state" / "fetchheads" / "heads.db").stat().st_size > 0


def test_the_kubernetes_cronjob_shards_write_one_history_into_postgres(
    threaded_server: StartServer, tmp_path: Path, postgres: Postgres
) -> None:
    """examples/kubernetes-cronjob.yaml: every pod starts empty, yet with FETCHHEADS_DB (from
    the Secret) naming one PostgreSQL database, three schedules of N pods report the one header
    changed before the third, once, in the log of the pod whose shard holds it."""
    text = (EXAMPLES / "kubernetes-cronjob.yaml").read_text()
    assert "kind: CronJob" in text
    assert re.search(r"name: FETCHHEADS_DB[^\n]*\n\s+valueFrom:\n\s+secretKeyRef:", text)
    command, shards = _job_command("kubernetes-cronjob.yaml")
    assert "--changes" in command
    site = Site(Server="test/1", **{"X-Version": "1"})
    watched = threaded_server(site.handler)
    # The first schedule's pods run at once, as Kubernetes starts them: none is answered before
    # all have asked, so none finishes before another starts (each records a silent baseline).
    crowd = Site(Server="test/1")
    crowd.hold = 30
    hosts, urls = _hosts(tmp_path, threaded_server(crowd.handler).port, 30)
    with hosts.open("a") as f:
        f.write(f"http://127.0.0.1:{watched.port}/\n")
    command = command.replace("/targets/hosts.txt", str(hosts))
    db = postgres.new_database()
    envs = [{**_pod_env(tmp_path, index, shards), "FETCHHEADS_DB": db} for index in range(shards)]
    logs = []
    for schedule in range(3):
        if schedule == 2:
            site.headers["X-Version"] = "2"
        pods = [
            processes.start(
                ["sh", "-c", command],
                env=envs[index],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for index in range(shards)
        ]
        done = [(pod.wait(timeout=120), *pod.communicate()) for pod in pods]
        assert [(code, err) for code, _, err in done] == [(0, "")] * shards
        logs.append([out for _, out, _ in done])
    assert logs[0] == logs[1] == [""] * shards
    changed = [out for out in logs[2] if out]
    assert changed == [f"http://127.0.0.1:{watched.port}/ changed > X-Version: 1 -> 2\n"]
    assert query(db, "SELECT count(*), count(DISTINCT run_id) FROM snapshots") == [
        (3 * (len(urls) + 1), 3 * shards)
    ]
