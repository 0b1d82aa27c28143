"""The README is the front door: it must stay in step with the code it documents."""

from __future__ import annotations

import itertools
import os
import re
import shlex
from pathlib import Path

import click
import pytest

from fetchheads.cli import cli
from fetchheads.cli.common import ExitStatus
from fetchheads.errors import ErrorKind
from fetchheads.models import Result
from fetchheads.targets import iter_lines, parse_target

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text of the ``## title`` section, up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def table_first_cells(text: str) -> list[str]:
    return [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]


def test_quick_start_and_tests_commands_are_verbatim() -> None:
    assert "```\npip install .\nfetchheads www.example.com\n```" in section("Quick start")
    assert "```\npip install -e '.[test]' && pytest\n```" in section("Tests")


def fetch_options() -> list[click.Option]:
    assert isinstance(cli, click.Group)
    command = cli.commands["fetch"]
    return [p for p in command.params if isinstance(p, click.Option)]


@pytest.mark.parametrize("option", fetch_options(), ids=lambda option: option.opts[-1])
def test_every_option_has_a_row_in_the_options_table(option: click.Option) -> None:
    rows = table_first_cells(section("Options"))
    flags = [*option.opts, *option.secondary_opts]
    assert any(all(f"{flag}" in row for flag in flags) for row in rows), (
        f"README's Options table has no row for {' / '.join(flags)}"
    )


def test_the_options_table_lists_no_option_that_does_not_exist() -> None:
    known = {flag for option in fetch_options() for flag in (*option.opts, *option.secondary_opts)}
    known |= {"-h", "--help"}  # click adds the help option outside the command's params
    for row in table_first_cells(section("Options"))[1:]:
        for flag in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", row):
            assert flag in known, f"README documents {flag}, which fetchheads does not have"


def test_every_error_kind_is_documented() -> None:
    documented = {cell.strip("`") for cell in table_first_cells(section("Error kinds"))[1:]}
    assert documented == {str(kind) for kind in ErrorKind}


def test_every_exit_status_is_documented() -> None:
    documented = set(table_first_cells(section("Exit status"))[1:])
    assert documented == {str(int(status)) for status in ExitStatus}


def test_every_record_key_is_documented() -> None:
    keys = set(Result(target="x", url=None).to_record())
    cells = " ".join(table_first_cells(section("Output")))
    documented = set(re.findall(r"`(\w+)`", cells))
    assert keys <= documented, f"undocumented record keys: {sorted(keys - documented)}"


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_example_host_list_holds_only_valid_targets() -> None:
    lines = (EXAMPLES / "hosts.txt").read_text(encoding="utf-8").splitlines()
    targets = [text for _, text in iter_lines(lines)]
    assert targets, "examples/hosts.txt has no active target"
    for text in targets:
        target = parse_target(text)
        assert target.host in ("127.0.0.1", "localhost"), f"{text}: examples must stay on loopback"
    commented = " ".join(line for line in lines if line.startswith("# "))
    for host in ("www.sina.com.cn", "www.sohu.com", "www.163.com"):
        assert f"# {host}" in commented


def test_every_crontab_line_is_a_valid_fetchheads_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # cron's shell expands ~; the database the watch line creates is there for the prune line.
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "heads.db").touch()
    jobs = [
        line
        for line in (EXAMPLES / "crontab").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert jobs
    for job in jobs:
        words = [os.path.expanduser(word) for word in shlex.split(job)]
        assert len(words) > 6, job
        command = words[5:]
        assert command[0] == "fetchheads", job
        args = list(itertools.takewhile(lambda word: word not in ("|", "||", "&&", ";"), command))
        if args[1] in cli.commands:  # e.g. fetchheads prune
            other = cli.commands[args[1]]
            with other.make_context("fetchheads", args[2:], resilient_parsing=False) as ctx:
                assert ctx.params["db"], job
            continue
        fetch = cli.commands["fetch"]
        with fetch.make_context("fetchheads", args[1:], resilient_parsing=False) as ctx:
            assert ctx.params["inputs"], job  # every fetch job reads a host file
