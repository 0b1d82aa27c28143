"""Start-up: a plain or JSON Lines run imports only what it uses (every run pays for imports)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import processes

LOADED_ON_DEMAND = (
    "sqlite3",  # --db
    "fetchheads.snapshots.store",
    "psycopg",  # --db postgresql://...
    "fetchheads.snapshots.store_postgres",
    "aiodns",  # --dns-servers
    "ipaddress",  # --resolve, --noproxy, IPv6 or unusual targets
    "rich",  # the pretty view, the progress line and the summary
    "rich.table",
    "fetchheads.render.pretty",
    "hashlib",  # --shard
    "urllib.parse",  # --proxy, -L
    "unicodedata",  # non-ASCII targets
    "cryptography",  # the first https certificate
    "tempfile",  # -o FILE of a whole format (prometheus)
    "random",  # --retries
    "fetchheads.render.fields",  # --fields, the column formats, -w, --sort, the filters
    "fetchheads.render.filters",  # --match-status and the other filters
    "fetchheads.render.sort",  # --sort
    "fetchheads.render.writeout",  # -w
    "difflib",  # a misspelt field's suggestion
    "fetchheads.certificates",  # https targets, --warn-days
    "fetchheads.snapshots.lookback",  # history, diff
    "fetchheads.render.history",
)


def test_importing_the_command_line_leaves_the_optional_parts_unloaded() -> None:
    probe = (
        "import sys, fetchheads.cli\n"
        f"print(' '.join(m for m in {LOADED_ON_DEMAND!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []


INTERRUPT_DURING_IMPORT = """
import os, signal, sys


class Interrupt:
    # Ctrl-C lands while click is being imported, i.e. while fetchheads is still starting
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None


sys.meta_path.insert(0, Interrupt())
"""


def test_ctrl_c_while_still_starting_ends_quietly(tmp_path: Path) -> None:
    """The ``fetchheads`` command (``__main__.run``) and ``python -m fetchheads``: a Ctrl-C in
    the middle of the start-up imports is exit 130 and no traceback, as a moment later."""
    (tmp_path / "sitecustomize.py").write_text(INTERRUPT_DURING_IMPORT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
    }
    for argv in (
        [sys.executable, "-m", "fetchheads", "127.0.0.1:1"],
        [sys.executable, "-c", "from fetchheads.__main__ import run; run()", "127.0.0.1:1"],
    ):
        done = processes.start(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = done.communicate(timeout=30)
        assert (done.returncode, out, err) == (130, b"", b"")
