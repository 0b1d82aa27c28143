"""The house rules of docs/architecture.md, checked from the source: pure modules stay pure, one click importer.

Imports are read from the syntax tree, inside functions too, and followed through fetchheads' own
modules, so a pure module cannot reach asyncio by importing a helper that does.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

import fetchheads

PACKAGE = Path(fetchheads.__file__).resolve().parent
IO_MODULES = frozenset({"asyncio", "socket", "click", "rich", "sqlite3"})
PURE = (
    "fetchheads.targets",
    "fetchheads.http.request",
    "fetchheads.http.parse",
    "fetchheads.http.parse_whole",
    "fetchheads.models",
    "fetchheads.config",
    "fetchheads.errors",
    "fetchheads.wording",
    "fetchheads.hostport",
    "fetchheads.certificates",
    "fetchheads.snapshots.changes",
    "fetchheads.snapshots.renewals",
    "fetchheads.snapshots.lookback",
    "fetchheads.proxy",
    "fetchheads.connect_to",
    "fetchheads.credentials",
    "fetchheads.fetch.redirects",
    "fetchheads.run.summary",
    "fetchheads.render.plain",
    "fetchheads.render.jsonl",
    "fetchheads.render.safe",
    "fetchheads.render.changes",
    "fetchheads.render.history",
    "fetchheads.render.fields",
    "fetchheads.render.sort",
    "fetchheads.render.tabular",
    "fetchheads.render.writeout",
    "fetchheads.render.prometheus",
    "fetchheads.render.filters",
    "fetchheads.audit",
    "fetchheads.audit.model",
    "fetchheads.audit.rules",
    "fetchheads.audit.csp",
    "fetchheads.audit.cookies",
    "fetchheads.audit.checks",
    "fetchheads.audit.findings",
    "fetchheads.audit.grader",
    "fetchheads.grades",
    "fetchheads.render.audit",
    "fetchheads.render.audit_report",
    "fetchheads.snapshots.graded",
)


def source_of(module: str) -> Path | None:
    parts = module.split(".")[1:]
    base = PACKAGE.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def all_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(("fetchheads", *parts)))
    return names


@cache
def direct_imports(module: str, *, runtime: bool = False) -> frozenset[str]:
    """What ``module`` imports; with ``runtime``, not counting ``if TYPE_CHECKING:`` blocks (which
    name a type for mypy and load nothing)."""
    path = source_of(module)
    assert path is not None, module
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for statement in node.body
        for inner in ast.walk(statement)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if runtime and id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # ``from fetchheads import config`` imports the submodule fetchheads.config.
            found.update(
                f"{base}.{alias.name}"
                for alias in node.names
                if source_of(f"{base}.{alias.name}") is not None
            )
    return frozenset(found)


def reachable(module: str, *, runtime: bool = False) -> set[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current.split(".")[0] == "fetchheads" and source_of(current) is not None:
            todo.extend(direct_imports(current, runtime=runtime))
    return seen


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_never_reach_io(module: str) -> None:
    assert source_of(module) is not None, f"{module} is gone: update PURE"
    loaded = reachable(module, runtime=True)
    offenders = {name for name in loaded if name.split(".")[0] in IO_MODULES}
    assert not offenders, f"{module} reaches {sorted(offenders)}"


def test_only_the_cli_package_imports_click() -> None:
    importers = [
        module
        for module in all_modules()
        if any(name.split(".")[0] == "click" for name in direct_imports(module))
    ]
    assert importers
    assert all(m == "fetchheads.cli" or m.startswith("fetchheads.cli.") for m in importers), (
        importers
    )


def test_nothing_imports_the_cli_but_the_entry_point() -> None:
    importers = [
        module
        for module in all_modules()
        if not module.startswith("fetchheads.cli")
        and any(
            n == "fetchheads.cli" or n.startswith("fetchheads.cli.") for n in direct_imports(module)
        )
    ]
    assert importers == ["fetchheads.__main__"]


LAYERS = (
    ("fetchheads.__main__",),
    ("fetchheads.cli",),  # click commands: parse, build the plan, hand over
    ("fetchheads.run",),  # the plan run in one process or several: inputs, pool, supervisor
    ("fetchheads.render",),  # formats and sinks, the history views of snapshots
    ("fetchheads.snapshots",),  # the database, recording, comparing, looking back
    ("fetchheads.fetch",),  # one target over the network
    ("fetchheads.http",),  # request bytes out, response heads in: sans-IO
    ("fetchheads.audit",),  # grading a head: pure
    ("fetchheads",),  # the ground floor: targets, models, errors, config, proxy, connect_to
)
"""Top to bottom: a module imports from its own layer and the ones below, never from above."""


def layer_of(module: str) -> int:
    return next(
        n
        for n, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    )


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{module} -> {name}"
        for module in all_modules()
        for name in direct_imports(module)
        if name.split(".")[0] == "fetchheads"
        and source_of(name) is not None
        and layer_of(name) < layer_of(module)
    ]
    assert upward == []


def test_only_the_run_itself_knows_of_workers() -> None:
    # A run is one process's (run.single) whatever runs it: only the dispatcher in
    # fetchheads.run chooses the supervisor, and nothing else imports it.
    importers = {
        module
        for module in all_modules()
        if not module.startswith("fetchheads.run.supervisor")
        and any(name.startswith("fetchheads.run.supervisor") for name in direct_imports(module))
    }
    assert importers == {"fetchheads.run"}


def test_the_checker_sees_imports_inside_functions_and_through_helpers() -> None:
    assert "uvloop" in direct_imports("fetchheads.run.process")  # imported inside a function
    assert "sqlite3" in reachable("fetchheads.cli")  # through the snapshot store
    # A type named for mypy only loads nothing: lookback names the Store, and stays pure.
    assert "fetchheads.snapshots.store" in direct_imports("fetchheads.snapshots.lookback")
    assert "fetchheads.snapshots.store" not in reachable(
        "fetchheads.snapshots.lookback", runtime=True
    )
    assert layer_of("fetchheads.cli.options") < layer_of("fetchheads.run.single")


def test_only_the_postgresql_backend_imports_psycopg() -> None:
    importers = [
        module
        for module in all_modules()
        if any(name.split(".")[0] == "psycopg" for name in direct_imports(module))
    ]
    assert importers == ["fetchheads.snapshots.store_postgres"]


ARCHITECTURE = PACKAGE.parent.parent / "docs" / "architecture.md"
ENTRY = re.compile(r"(?P<indent> {0,8})(?P<name>[a-z_]+)(?P<package>/?) {2,}\S")
"""A line of the layers tree that names a module: at most four levels in, then two spaces and
its description (a wrapped description is indented further, an arrow has none)."""


def documented_modules() -> dict[str, str]:
    """The modules the tree of docs/architecture.md's "Layers" names, each with its description
    (wrapped lines joined); a ``name/`` line stands for the package's ``__init__``, and
    ``fetchheads/`` for the modules at the top of the package."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    tree = text.split("## Layers\n", 1)[1].split("```", 2)[1]
    described: dict[str, str] = {}
    packages: dict[int, str] = {}  # indentation level -> the package named at it
    current = ""
    for line in tree.splitlines():
        entry = ENTRY.match(line)
        if entry is None:
            if current and line.strip().lstrip("|").strip():
                described[current] += " " + line.strip().lstrip("|").strip()
            continue
        level = len(entry["indent"]) // 2
        parent = packages.get(level - 1, "fetchheads") if level else "fetchheads"
        name = entry["name"]
        if entry["package"]:
            package = "fetchheads" if name == "fetchheads" else f"{parent}.{name}"
            packages[level] = package
            current = package
        else:
            current = f"{parent}.{name}"
        assert current not in described, f"{current} is listed twice"
        described[current] = line[entry.end() - 1 :]
    return described


def test_the_architecture_page_lists_every_module_as_it_is() -> None:
    documented = documented_modules()
    missing = sorted(set(all_modules()) - set(documented))
    stale = sorted(set(documented) - set(all_modules()))
    assert (missing, stale) == ([], []), "docs/architecture.md: (not listed, no such module)"
    marked_pure = {
        module
        for module, description in documented.items()
        if "(pure)" in description or module.startswith("fetchheads.audit.")
    }
    assert sorted(marked_pure) == sorted(set(PURE) - {"fetchheads.audit"})
