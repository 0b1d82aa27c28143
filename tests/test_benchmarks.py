"""benchmarks/run.py reads its own runs right: a peer that cannot run here is left out with the
command that installs it, and a tool that got fewer heads than targets is marked failed instead
of tabulated as a (very fast) time."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.servers import ThreadedServer, read_request_head

ROOT = Path(__file__).resolve().parent.parent


def bench_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def heads(count: int) -> list[str]:
    """A stand-in tool that prints ``count`` response heads."""
    return [sys.executable, "-c", f"print('HTTP/1.1 200 OK\\n' * {count})"]


def test_a_tool_short_of_heads_is_marked_failed_not_timed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = bench_run()
    broken = [sys.executable, "-c", "raise ModuleNotFoundError(\"No module named 'aiohttp'\")"]
    run.compare("t", {"good": heads(3), "broken": broken}, targets=3, rounds=2, work=tmp_path)
    out = capsys.readouterr().out
    assert "| broken | failed: 0 of 3 heads (2 of 2 rounds) | | | |" in out
    assert "warning: broken got 0 of 3 heads: ModuleNotFoundError: No module named 'aiohttp'" in out
    assert "round 1/2: good " in out
    assert ", broken failed" in out
    assert "| good | 0." in out  # timed


def test_a_peer_whose_package_is_missing_is_left_out_before_timing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = bench_run()
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name == "aiohttp" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)  # as where aiohttp is missing
    never = [sys.executable, "-c", "raise SystemExit(99)"]  # run, it would stop the benchmark
    run.compare("t", {"aiohttp": never, "good": heads(2)}, targets=2, rounds=1, work=tmp_path)
    out = capsys.readouterr().out
    assert "| aiohttp |" not in out
    assert "aiohttp: left out, aiohttp is not installed (pip install -e '.[bench]')" in out
    assert "| good | " in out


def test_the_floor_in_two_processes_fetches_every_url_once(
    threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    async def echo_path(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = (await read_request_head(reader)).split(b" ")[1]
        writer.write(b"HTTP/1.0 200 OK\r\nX-Path: " + path + b"\r\n\r\n")
        await writer.drain()
        writer.close()

    server = threaded_server(echo_path)
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"http://127.0.0.1:{server.port}/{n}\n" for n in range(30)))
    floor = ROOT / "benchmarks" / "peer_floor.py"
    done = subprocess.run(
        [sys.executable, str(floor), str(urls), "4", "2"], capture_output=True, timeout=60
    )
    assert done.returncode == 0
    paths = [int(n) for n in re.findall(rb"X-Path: /(\d+)\r\n\r\n", done.stdout)]
    assert sorted(paths) == list(range(30))  # each URL once
    # Each process prints its heads at its end: one block of the even URLs, one of the odd.
    blocks = [{n % 2 for n in paths[:15]}, {n % 2 for n in paths[15:]}]
    assert blocks in ([{0}, {1}], [{1}, {0}])


def test_the_floor_in_two_processes_is_left_out_with_the_floor(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = bench_run()
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name == "uvloop" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    kept = run.runnable({"floor-2": ["floor"], "fetchheads-1": ["fetchheads"]})
    assert list(kept) == ["fetchheads-1"]
    assert "floor-2: left out, uvloop is not installed" in capsys.readouterr().out
