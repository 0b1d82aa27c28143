"""The docs are the contract: README, docs/ and the code they describe must stay in step.

docs/options.md is generated from the click definitions (``python scripts/options_doc.py``): a
test here fails when an option is added, renamed or reworded without regenerating it.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import shlex
import tomllib
from pathlib import Path
from types import ModuleType

import click
import pytest

from fetchheads.cli import cli
from fetchheads.cli.common import ExitStatus
from fetchheads.errors import ErrorKind
from fetchheads.models import Result
from fetchheads.targets import LineSplitter, parse_target

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def section(text: str, title: str) -> str:
    """The text of the ``## title`` section of ``text``, up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no '## {title}' section"
    return match.group(1)


def table_first_cells(text: str) -> list[str]:
    return [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]


def options_doc() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "options_doc", ROOT / "scripts" / "options_doc.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the README: the front door -----------------------------------------------------------------


def test_the_readme_is_a_short_front_door() -> None:
    assert len(README.splitlines()) <= 250


def test_install_and_test_commands_are_verbatim() -> None:
    install = "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/fetchheads --version"
    assert f"```\n{install}\n```" in section(README, "Install")
    assert "```\n./scripts/test\n```" in section(README, "Tests")
    assert (ROOT / "scripts" / "test").stat().st_mode & 0o111, "scripts/test is not executable"


def test_the_readme_links_every_docs_page() -> None:
    pages = {path.name for path in DOCS.glob("*.md")} - {"index.md"}
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", README))
    assert pages <= linked, f"README links none of {sorted(pages - linked)}"


def test_the_docs_index_lists_every_page() -> None:
    pages = {path.name for path in DOCS.glob("*.md")} - {"index.md"}
    listed = set(re.findall(r"\]\(([\w-]+\.md)\)", page("index.md")))
    assert pages <= listed, f"docs/index.md lists none of {sorted(pages - listed)}"


MARKDOWN = sorted([*DOCS.glob("*.md"), *ROOT.glob("*.md")])


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda path: path.name)
def test_every_relative_link_leads_somewhere(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", link) or link.startswith("#"):
            continue
        target = (path.parent / link.split("#")[0]).resolve()
        assert target.exists(), f"{path.name} links {link}, which does not exist"


def test_nothing_cites_a_contract_outside_the_repository() -> None:
    outside = ("DESIGN" + ".md", "STYLE" + ".md", ".." + "/shared")
    skip = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in skip and not d.endswith(".egg-info")]
        for filename in filenames:
            path = Path(dirpath) / filename
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            for name in outside:
                assert name not in text, f"{path.relative_to(ROOT)} cites {name}: point to docs/"


def test_the_license_is_the_one_pyproject_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert declared["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "fetchheads developers" in text


# --- options.md: generated from the code --------------------------------------------------------


def test_the_options_page_is_generated_from_the_code() -> None:
    assert page("options.md") == options_doc().render(), (
        "docs/options.md is out of date: run python scripts/options_doc.py"
    )


def all_options() -> list[tuple[str, click.Option]]:
    assert isinstance(cli, click.Group)
    found = []
    for name, command in cli.commands.items():
        with click.Context(command, info_name=name, **command.context_settings) as ctx:
            found += [(name, p) for p in command.get_params(ctx) if isinstance(p, click.Option)]
    return found


@pytest.mark.parametrize(
    ("command", "option"),
    all_options(),
    ids=lambda value: value.opts[-1] if isinstance(value, click.Option) else value,
)
def test_every_option_has_a_row_with_its_environment_variable(
    command: str, option: click.Option
) -> None:
    title = "fetchheads" if command == "fetch" else f"fetchheads {command}"
    text = section(page("options.md"), f"`{title}`")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    flags = [*option.opts, *option.secondary_opts]
    row = next((r for r in rows if all(flag in r.split("|")[1] for flag in flags)), None)
    assert row is not None, f"docs/options.md has no row for {title} {' / '.join(flags)}"
    if option.envvar:
        assert f"`{option.envvar}`" in row, f"{flags[-1]}: {option.envvar} is not documented"


@pytest.mark.parametrize(
    ("command", "option"),
    all_options(),
    ids=lambda value: value.opts[-1] if isinstance(value, click.Option) else value,
)
def test_every_option_row_says_what_help_says_of_its_range_and_whether_it_is_required(
    command: str, option: click.Option
) -> None:
    # --help ends an option's text with [default: ...; env var: ...; 1<=x<=100000; required]:
    # the page has a column for the first two, and must say the others in its row too.
    group = cli.commands[command]
    title = "fetchheads" if command == "fetch" else f"fetchheads {command}"
    with click.Context(group, info_name=title, **group.context_settings) as ctx:
        record = option.get_help_record(ctx)
    assert record is not None
    extra = re.search(r"\s\[([^\[\]]*)\]$", record[1])
    notes = [
        note
        for note in (extra[1].split("; ") if extra else [])
        if not note.startswith(("default: ", "env var: "))
    ]
    rows = section(page("options.md"), f"`{title}`").splitlines()
    flags = [*option.opts, *option.secondary_opts]
    row = next(
        r
        for r in rows
        if r.startswith("| ") and set(flags) <= set(re.findall(r"-[-\w]+", r.split("|")[1]))
    )
    for note in notes:
        assert note in row, f"{title} {flags[-1]}: --help says [{note}], docs/options.md does not"


def test_every_fetch_option_has_an_environment_variable() -> None:
    # The promise docs/options.md makes: FETCHHEADS_ and the long option name.
    for command, option in all_options():
        if command != "fetch" or {"--help", "--version"} & set(option.opts):
            continue
        longest = max(option.opts, key=len)
        assert option.envvar == f"FETCHHEADS_{longest.lstrip('-').upper().replace('-', '_')}"


# --- the rest of the contract -------------------------------------------------------------------


def test_every_error_kind_is_documented() -> None:
    cells = table_first_cells(section(page("errors.md"), "Error kinds"))[1:]
    assert {cell.strip("`") for cell in cells} == {str(kind) for kind in ErrorKind}


def test_every_exit_status_is_documented() -> None:
    documented = set(table_first_cells(section(page("errors.md"), "Exit status"))[1:])
    assert documented == {str(int(status)) for status in ExitStatus}


def test_every_record_key_is_documented() -> None:
    keys = set(Result(target="x", url=None).to_record())
    cells = " ".join(table_first_cells(section(page("output.md"), "jsonl: the JSON record")))
    documented = set(re.findall(r"`(\w+)`", cells))
    assert keys <= documented, f"undocumented record keys: {sorted(keys - documented)}"


def test_the_limits_page_states_the_parser_limits() -> None:
    from fetchheads.http import parse

    rows = {
        cells[1].strip().strip("`"): cells[2].strip()
        for line in page("limits.md").splitlines()
        if line.startswith("| `MAX_") and (cells := line.split("|"))
    }
    assert set(rows) == {"MAX_STATUS_LINE", "MAX_LINE", "MAX_HEAD", "MAX_HEADERS", "MAX_INTERIM"}
    for name, value in rows.items():
        match = re.match(r"(\d+)( KiB)?", value)
        assert match, f"docs/limits.md: {name} has no number"
        number = int(match.group(1)) * (1024 if match.group(2) else 1)
        assert number == getattr(parse, name), f"docs/limits.md: {name} is {value}"


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_example_host_list_holds_only_valid_targets() -> None:
    data = (EXAMPLES / "hosts.txt").read_bytes()
    lines = data.decode().splitlines()
    splitter = LineSplitter()  # as fetchheads reads a file: blank lines and comments skipped
    read = [text for _, text in splitter.feed(data) + splitter.feed(b"")]
    targets = [text for text in read if isinstance(text, str) and text and text[0] != "#"]
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
        # cron's PATH is short: the example names fetchheads by its full path
        assert os.path.isabs(command[0]), job
        assert os.path.basename(command[0]) == "fetchheads", job
        args = list(itertools.takewhile(lambda word: word not in ("|", "||", "&&", ";"), command))
        if args[1] in cli.commands:  # e.g. fetchheads prune
            other = cli.commands[args[1]]
            with other.make_context("fetchheads", args[2:], resilient_parsing=False) as ctx:
                assert ctx.params["db"], job
            continue
        fetch = cli.commands["fetch"]
        with fetch.make_context("fetchheads", args[1:], resilient_parsing=False) as ctx:
            assert ctx.params["inputs"], job  # every fetch job reads a host file
