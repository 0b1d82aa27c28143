"""A real HTTP proxy (Debian's tinyproxy) on loopback, in the foreground, with a generated config.

``scripts/test`` installs tinyproxy when it is missing, so the proxy tests never skip in CI; on a
machine without it the fixture fails with the install command instead of skipping.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path

from tests.support.nginx import find_program, free_port, stop_process, wait_for_port

TINYPROXY_CANDIDATES = ("tinyproxy", "/usr/bin/tinyproxy", "/usr/sbin/tinyproxy")


def find_tinyproxy() -> str:
    return find_program(TINYPROXY_CANDIDATES, "tinyproxy")


class Tinyproxy:
    """tinyproxy on 127.0.0.1:``port``, accepting only 127.0.0.1, tunnelling (CONNECT) only to
    ``connect_ports``. Its log (LogLevel Connect: one line per request) is ``log_text()``."""

    def __init__(self, workdir: Path, *, connect_ports: Iterable[int]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log = workdir / "tinyproxy.log"
        self._connect_ports = tuple(connect_ports)
        self._process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        connect = "\n".join(f"ConnectPort {port}" for port in self._connect_ports)
        return f"""
Port {self.port}
Listen 127.0.0.1
Timeout 30
LogFile "{self.log}"
LogLevel Connect
PidFile "{self.workdir / "tinyproxy.pid"}"
MaxClients 100
Allow 127.0.0.1
DisableViaHeader Yes
{connect}
"""

    def start(self) -> Tinyproxy:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "tinyproxy.conf"
        conf.write_text(self.config())
        self._process = subprocess.Popen(
            [find_tinyproxy(), "-d", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"tinyproxy did not start: {self.log_text()}") from None
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self._process is None:
            return
        stop_process(self._process, signal.SIGTERM)
        self._process = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
