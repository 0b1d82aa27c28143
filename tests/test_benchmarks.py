"""benchmarks/run.py reads its own runs right: a peer that cannot run here is left out with the
command that installs it, and a tool that got fewer heads than targets is marked failed instead
of tabulated as a (very fast) time."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

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
