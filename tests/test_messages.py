"""Messages a person can act on: one line each however long (cron logs are grepped), the
environment variable named when its value is bad, file names and targets shown safely, and a
summary that counts each target under what happened to it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result

from fetchheads.cli import cli
from tests.support.servers import Handler, ThreadedServer, read_request_head, reply
from tests.test_process import spawn

StartServer = Callable[..., ThreadedServer]


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, args, env=env, prog_name="fetchheads", catch_exceptions=False)


def status_from_path() -> Handler:
    """Answer ``GET /NNN`` with status NNN."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request_head(reader)
        status = head.split(b" ", 2)[1].lstrip(b"/").decode()
        writer.write(f"HTTP/1.1 {status} Scripted\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    return handler


def test_a_long_summary_is_one_line_in_a_pipe(threaded_server: StartServer) -> None:
    server = threaded_server(status_from_path())
    statuses = range(200, 215)  # "200 x1, 201 x1, ...": far past 80 columns
    urls = [f"http://127.0.0.1:{server.port}/{status}" for status in statuses]
    process = spawn("--format", "jsonl", "--progress", *urls, "--no-waterfall")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    summary = stderr.decode().rsplit("\x1b[2K", 1)[-1]  # after the progress line, if any
    assert len(summary.splitlines()) == 1, summary
    assert len(summary) > 120
    assert all(f"{status} x1" in summary for status in statuses)


def test_a_format_taken_for_an_option_says_how_to_ask_for_it() -> None:
    """``--csv`` is no option; click's nearest names (``--failed``, ``--rate`` for ``--table``)
    would send the reader astray: the message names ``--format csv`` instead."""
    for name in ("csv", "table", "prometheus"):
        outcome = invoke([f"--{name}", "127.0.0.1:9"])
        assert outcome.exit_code == 2
        last = outcome.stderr.strip().splitlines()[-1]
        assert last == f"Error: No such option '--{name}': a format is chosen with --format {name}"
    outcome = invoke(["audit", "--db", "x.db", "--csv"])  # audit has no csv: click's words stay
    assert outcome.stderr.strip().splitlines()[-1] == "Error: No such option '--csv'."


def test_a_bad_environment_value_names_its_variable() -> None:
    outcome = invoke(["127.0.0.1:9"], env={"FETCHHEADS_TIMEOUT": "abc"})
    assert outcome.exit_code == 2
    assert (
        "Invalid value for FETCHHEADS_TIMEOUT (--timeout): 'abc' is not a valid float"
        in outcome.stderr
    )
    outcome = invoke(["127.0.0.1:9"], env={"FETCHHEADS_CONCURRENCY": "0"})
    assert "Invalid value for FETCHHEADS_CONCURRENCY (--concurrency): 0 is not in the range" in (
        outcome.stderr
    )
    # A flag's variable: what it takes, in words (click's list began with a stray comma).
    outcome = invoke(["127.0.0.1:9"], env={"FETCHHEADS_INSECURE": "maybe"})
    assert outcome.exit_code == 2
    assert outcome.stderr.splitlines()[-1] == (
        "Error: Invalid value for FETCHHEADS_INSECURE (--insecure): 'maybe' is neither on nor "
        "off: give 1 or 0 (also true/false, yes/no, on/off; empty is off)"
    )
    # --waterfall's own default is on for a few targets: an empty variable leaves it on.
    outcome = invoke(["127.0.0.1:9"], env={"FETCHHEADS_WATERFALL": "maybe"})
    assert outcome.exit_code == 2
    assert outcome.stderr.splitlines()[-1].endswith(
        "'maybe' is neither on nor off: give 1 or 0 (also true/false, yes/no, on/off; empty "
        "leaves the default)"
    )
    # The same value on the command line is named as the option it was given as.
    assert "Invalid value for '-t' / '--timeout'" in invoke(["-t", "abc", "x"]).stderr


def test_a_bad_path_from_the_environment_names_its_variable(tmp_path: Path) -> None:
    # Checked after parsing (a file, a database, a CA bundle): a cron job's FETCHHEADS_DB has no
    # --db on its command line to fix.
    not_pem = tmp_path / "hosts.txt"
    not_pem.write_text("127.0.0.1\n")
    cases = {
        "FETCHHEADS_DB": (str(tmp_path), "Invalid value for FETCHHEADS_DB (--db): "),
        "FETCHHEADS_INPUT": (
            str(tmp_path / "missing.txt"),
            "Invalid value for FETCHHEADS_INPUT (-i/--input): cannot read ",
        ),
        "FETCHHEADS_CACERT": (str(not_pem), "Invalid value for FETCHHEADS_CACERT (--cacert): "),
    }
    for name, (value, expected) in cases.items():
        outcome = invoke(["127.0.0.1:9"], env={name: value})
        assert outcome.exit_code == 2, (name, outcome.stderr)
        assert expected in outcome.stderr, outcome.stderr
    # Given on the command line, the same values are named as the options.
    assert "Invalid value for --db: " in invoke(["--db", str(tmp_path), "127.0.0.1:9"]).stderr


def test_control_characters_in_a_file_name_are_shown_escaped() -> None:
    outcome = invoke(["-i", "bad\x1b[31mname"])
    assert outcome.exit_code == 2
    assert "cannot read bad\\x1b[31mname: No such file or directory" in outcome.stderr
    assert "\x1b" not in outcome.stderr


def test_an_empty_target_is_quoted_not_a_line_starting_with_a_space() -> None:
    outcome = invoke(["--format", "plain", "--order", "input", "", "  "])
    assert outcome.stdout.splitlines() == [
        "'' error > input: empty target",
        "'  ' error > input: empty target",
    ]


def test_a_failed_redirect_chain_counts_under_its_error_not_its_status(
    threaded_server: StartServer,
) -> None:
    loop = threaded_server(reply(b"HTTP/1.1 302 Found\r\nLocation: /\r\n\r\n"))
    outcome = invoke(["--json", "--progress", "-L", f"http://127.0.0.1:{loop.port}/"])
    assert outcome.exit_code == 1
    assert outcome.stderr.startswith("1 target, 0 ok, 1 failed (redirect 1); ")
    assert "302" not in outcome.stderr


def test_a_command_group_given_no_command_shows_its_help_as_lines() -> None:
    outcome = invoke(["db"])
    output = outcome.stdout + outcome.stderr  # click 8.1 prints it to stdout, 8.2+ to stderr
    assert "\\x0a" not in output
    assert "Usage: fetchheads db [OPTIONS] COMMAND [ARGS]..." in output.splitlines()
    assert any(line.lstrip().startswith("copy ") for line in output.splitlines())


def test_results_that_may_have_been_recorded_are_counted_apart() -> None:
    """A batch whose COMMIT's answer was lost (PostgreSQL) is neither lost for sure nor recorded
    for sure: the line says which is which, and the database as given (password masked)."""
    from fetchheads.run.summary import not_recorded

    db = "postgresql://u:***@127.0.0.1/heads"
    assert not_recorded(3, "lost", db) == f"fetchheads: 3 results not recorded: lost (--db {db})"
    assert not_recorded(28, "lost", db, in_doubt=8) == (
        "fetchheads: 20 results not recorded, 8 more may not have been "
        f"(the answer to their COMMIT was lost): lost (--db {db})"
    )
    assert not_recorded(1, "lost", db, in_doubt=1) == (
        "fetchheads: 1 result may not have been recorded "
        f"(the answer to its COMMIT was lost): lost (--db {db})"
    )
