"""Start-up: a plain or JSON Lines run imports only what it uses (every run pays for imports)."""

from __future__ import annotations

import subprocess
import sys

LOADED_ON_DEMAND = (
    "sqlite3",  # --db
    "fetchheads.store",
    "aiodns",  # --dns-servers
    "ipaddress",  # --resolve, --noproxy, IPv6 or unusual targets
    "rich",  # the pretty view, the progress line and the summary
    "rich.table",
    "fetchheads.render.pretty",
    "hashlib",  # --shard
    "urllib.parse",  # --proxy, -L
    "unicodedata",  # non-ASCII targets
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
