"""The progress line on stderr: there while a long run works, gone after, never in stdout."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from rich.console import Console

import fetchheads.render.output
from fetchheads.cli import cli
from fetchheads.errors import ErrorKind
from fetchheads.models import ErrorInfo, ResponseHead, Result
from fetchheads.render.output import ProgressLine
from fetchheads.run.plan import Environment
from fetchheads.run.summary import Summary
from tests.support.servers import ThreadedServer, reply

ERASE = "\r\x1b[2K"
HEAD = b"HTTP/1.1 200 OK\r\nServer: scripted\r\n\r\n"


@pytest.fixture
def no_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The line appears at once, so short test runs show it."""
    monkeypatch.setattr(fetchheads.render.output, "PROGRESS_DELAY", 0.0)
    monkeypatch.setattr(fetchheads.render.output, "PROGRESS_REFRESH", 0.01)


def terminal() -> tuple[Console, io.StringIO]:
    file = io.StringIO()
    return Console(file=file, force_terminal=True, width=80, color_system=None), file


def ok(target: str) -> Result:
    return Result(target=target, url=f"http://{target}/", head=ResponseHead("HTTP/1.1", 200, "OK"))


def failed(target: str) -> Result:
    return Result(target=target, url=None, error=ErrorInfo(ErrorKind.TIMEOUT, "slow"))


def test_the_line_counts_done_ok_failed_and_rate() -> None:
    summary = Summary()
    for result in (ok("a"), ok("b"), failed("c")):
        summary.add(result)
    assert summary.progress(read=10, elapsed=2.0) == "3/10 done  2 ok  1 failed  1.5/s  2 s"
    assert summary.progress(read=10, elapsed=0.1).endswith("  30/s  0 s")
    # Thousands are grouped: the line is read at a glance.
    big = Summary(targets=12_345, ok=12_000)
    assert big.progress(read=20_000, elapsed=10.0).startswith("12,345/20,000 done  12,000 ok  345")


async def test_the_line_appears_redraws_and_erases_itself(no_delay: None) -> None:
    console, file = terminal()
    summary = Summary()
    line = ProgressLine(console, summary)
    line.read = 5
    line.start()
    summary.add(ok("a"))
    await asyncio.sleep(0.05)
    drawn = file.getvalue()
    assert drawn.startswith(ERASE)
    assert "1/5 done  1 ok  0 failed" in drawn
    assert "\n" not in drawn  # one line, redrawn in place
    line.clear()
    assert file.getvalue().endswith(ERASE)
    line.restore()
    assert file.getvalue().rsplit(ERASE, 1)[1].strip().endswith("s")
    line.stop()
    assert file.getvalue().endswith(ERASE)  # transient: nothing is left behind
    before = file.getvalue()
    await asyncio.sleep(0.05)
    assert file.getvalue() == before  # and it stays gone


async def test_a_short_run_never_shows_the_line() -> None:
    console, file = terminal()
    line = ProgressLine(console, Summary())
    line.start()
    await asyncio.sleep(0)
    line.stop()
    assert file.getvalue() == ""


async def test_the_line_fits_a_narrow_terminal(no_delay: None) -> None:
    file = io.StringIO()
    console = Console(file=file, force_terminal=True, width=40, color_system=None)
    line = ProgressLine(console, Summary(targets=123_456, ok=100_000))
    line.read = 999_999
    line.start()
    await asyncio.sleep(0.03)
    line.stop()
    drawings = [part for part in file.getvalue().split(ERASE) if part]
    assert drawings
    assert all(len(part) < 40 for part in drawings)


def run_cli(
    args: list[str], obj: Environment | None = None, env: dict[str, str] | None = None
) -> tuple[str, str, int]:
    result = CliRunner().invoke(cli, args, obj=obj, env=env, catch_exceptions=False)
    return result.stdout, result.stderr, result.exit_code


def test_forced_progress_leaves_stdout_exactly_as_it_was(
    threaded_server: Callable[..., ThreadedServer], no_delay: None
) -> None:
    server = threaded_server(reply(HEAD, delay=0.1))
    targets = [f"127.0.0.1:{server.port}/{n}" for n in range(6)]
    base = ["--format", "plain", "--order", "input", "-c", "2", *targets]
    plain_out, plain_err, _ = run_cli(base)
    out, err, code = run_cli(["--progress", *base], obj=Environment(stderr_isatty=True))
    assert code == 0
    assert out == plain_out  # not one byte of the progress line in stdout
    assert plain_err == ""
    assert "/6 done" in err
    last = err.rsplit(ERASE, 1)[1]
    assert last.startswith("6 targets, 6 ok; 200 x6; ")  # erased before the summary


@pytest.mark.parametrize(
    ("stderr_isatty", "term"), [(False, "xterm"), (True, "dumb")], ids=["a file", "TERM=dumb"]
)
def test_forced_progress_where_nothing_can_be_redrawn_is_the_summary_alone(
    threaded_server: Callable[..., ThreadedServer], no_delay: None, stderr_isatty: bool, term: str
) -> None:
    """stderr in a file (a cron log) or on a dumb terminal: no redraws, one summary line."""
    server = threaded_server(reply(HEAD, delay=0.1))
    targets = [f"127.0.0.1:{server.port}/{n}" for n in range(6)]
    args = ["--progress", "--format", "plain", "-c", "2", *targets]
    _, err, code = run_cli(args, obj=Environment(stderr_isatty=stderr_isatty), env={"TERM": term})
    assert code == 0
    assert "\x1b" not in err
    assert "\r" not in err
    assert "done" not in err
    assert err.startswith("6 targets, 6 ok; 200 x6; ")
    assert err.count("\n") == 1


def test_progress_on_the_command_line_wins_over_quiet_in_the_environment(
    threaded_server: Callable[..., ThreadedServer], no_delay: None
) -> None:
    server = threaded_server(reply(HEAD))
    target = f"127.0.0.1:{server.port}"
    _, err, _ = run_cli(["--progress", target], env={"FETCHHEADS_QUIET": "1"})
    assert err.startswith("1 target, 1 ok; 200 x1; ")
    _, quiet_err, _ = run_cli([target], env={"FETCHHEADS_QUIET": "1", "FETCHHEADS_PROGRESS": "1"})
    assert quiet_err == ""  # both from the environment: -q, as before
    _, both_err, _ = run_cli(["--progress", "-q", target])
    assert both_err == ""  # both on the command line: -q, as before


def test_quiet_silences_the_progress_line(
    threaded_server: Callable[..., ThreadedServer], no_delay: None
) -> None:
    server = threaded_server(reply(HEAD, delay=0.1))
    out, err, _ = run_cli(["--progress", "-q", "-c", "1", *[f"127.0.0.1:{server.port}"] * 3])
    assert err == ""
    assert len(out.splitlines()) == 6


def test_plain_and_jsonl_show_no_line_unless_forced(
    threaded_server: Callable[..., ThreadedServer], no_delay: None
) -> None:
    # stderr is a terminal here, stdout a pipe: the summary is shown, the bar is not.
    server = threaded_server(reply(HEAD, delay=0.1))
    args = ["--json", "-c", "1", *[f"127.0.0.1:{server.port}"] * 3]
    err = CliRunner().invoke(cli, args, obj=Environment(stderr_isatty=True)).stderr
    assert "done" not in err
    assert err.startswith("3 targets, 3 ok")


def test_no_line_while_targets_are_typed_at_the_terminal(
    threaded_server: Callable[..., ThreadedServer], no_delay: None
) -> None:
    # Everything is a terminal, and stdin is read (-i -): the line would be drawn over the typing.
    terminal = Environment(stdin_isatty=True, stdout_isatty=True, stderr_isatty=True)
    server = threaded_server(reply(HEAD, delay=0.1))
    typed = f"127.0.0.1:{server.port}\n" * 3
    result = CliRunner().invoke(
        cli, ["-i", "-", "-c", "1"], input=typed, obj=terminal, catch_exceptions=False
    )
    assert "done" not in result.stderr
    assert result.stderr.startswith("3 targets, 3 ok")
    forced = CliRunner().invoke(
        cli, ["--progress", "-i", "-", "-c", "1"], input=typed, obj=terminal
    )
    assert "/3 done" in forced.stderr  # --progress still means it
