"""A real nginx on loopback, configured per test session in a temporary directory.

``scripts/test`` installs nginx when it is missing, so the integration tier never skips in CI; on a
developer machine without nginx the fixture fails with the install command instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx", "/usr/local/sbin/nginx")


def find_program(candidates: tuple[str, ...], package: str) -> str:
    """The first of ``candidates`` on PATH or executable; fails with the install command."""
    for candidate in candidates:
        path = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if path:
            return path
    raise RuntimeError(
        f"{candidates[0]} not found: apt-get install {package} (scripts/test does this)"
    )


def find_nginx() -> str:
    return find_program(NGINX_CANDIDATES, "nginx-light")


def stop_process(process: subprocess.Popen[bytes], stop_signal: signal.Signals) -> None:
    """Ask ``process`` to stop with ``stop_signal``; kill it if it has not stopped within 10 s."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(stop_signal)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class Nginx:
    """nginx serving ``root`` over http on ``port`` and https on ``tls_port``.

    ``server_blocks`` is extra nginx configuration text placed inside the http block (tests add
    locations there by passing ``extra_locations``, applied to both servers).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        cert_file: Path,
        key_file: Path,
        extra_locations: str = "",
        extra_http: str = "",
    ) -> None:
        self.workdir = workdir
        self.root = workdir / "www"
        self.port = free_port()
        self.tls_port = free_port()
        self._cert = cert_file
        self._key = key_file
        self._extra_locations = extra_locations
        self._extra_http = extra_http
        self._process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        locations = f"""
            location / {{ add_header X-Fetchheads-Test "root" always; }}
            location = /redirect {{ return 301 /; }}
            location = /to-https {{ return 302 https://localhost:{self.tls_port}/; }}
            location = /to-http {{ return 301 http://127.0.0.1:{self.port}/; }}
            location = /loop {{ return 301 /loop; }}
            location = /ping {{ return 307 /pong; }}
            location = /pong {{ return 308 /ping; }}
            location = /teapot {{ add_header X-Teapot "yes" always; return 418; }}
            location = /cookies {{
                add_header Set-Cookie "a=1" always;
                add_header Set-Cookie "b=2" always;
                return 204;
            }}
            {self._extra_locations}
        """
        w = self.workdir
        return f"""
daemon off;
master_process off;
worker_processes 1;
error_log {w}/error.log warn;
pid {w}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log {w}/access.log;
    client_body_temp_path {w}/tmp/body;
    proxy_temp_path {w}/tmp/proxy;
    fastcgi_temp_path {w}/tmp/fastcgi;
    uwsgi_temp_path {w}/tmp/uwsgi;
    scgi_temp_path {w}/tmp/scgi;
    default_type text/html;
    server_tokens on;
    {self._extra_http}
    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;
        root {self.root};
        {locations}
    }}
    server {{
        listen 127.0.0.1:{self.tls_port} ssl;
        server_name localhost;
        ssl_certificate {self._cert};
        ssl_certificate_key {self._key};
        root {self.root};
        {locations}
    }}
}}
"""

    def start(self) -> Nginx:
        (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "index.html").write_text("<h1>hello from nginx</h1>\n")
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.config())
        self._process = subprocess.Popen(
            [
                find_nginx(),
                "-c",
                str(conf),
                "-p",
                str(self.workdir),
                "-e",
                str(self.workdir / "error.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(self.port)
            wait_for_port(self.tls_port)
        except RuntimeError:
            self.stop()
            log = (
                (self.workdir / "error.log").read_text()
                if (self.workdir / "error.log").exists()
                else ""
            )
            raise RuntimeError(f"nginx did not start: {log}") from None
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        stop_process(self._process, signal.SIGQUIT)
        if self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None

    def url(self, path: str = "/", *, tls: bool = False) -> str:
        if tls:
            return f"https://localhost:{self.tls_port}{path}"
        return f"http://127.0.0.1:{self.port}{path}"
