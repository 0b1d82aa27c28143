"""A real PostgreSQL server for the tests: its own data directory, on 127.0.0.1 only.

``initdb`` + ``pg_ctl`` from the machine's PostgreSQL (on PATH or under /usr/lib/postgresql/*/bin;
the test command installs the Debian package when it is missing), trust authentication for
127.0.0.1 only, no fsync (test data), a Unix socket in the temporary directory rather than the
system's. PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` user
(created by the Debian package), or as ``nobody``, through ``runuser``.

``python -m tests.support.postgres`` starts one and prints its URL, for trying things by hand;
Ctrl-C or SIGTERM stops it and removes its directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.nginx import free_port, wait_for_port

SUPERUSER = "fetchheads"


def find_pg_bin(program: str) -> str:
    found = shutil.which(program)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"), reverse=True):
        return candidate
    raise RuntimeError(
        f"{program} not found: install PostgreSQL's server (apt-get install postgresql)"
    )


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", _server_user(), "--", *argv]


def _server_user() -> str:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root, and no 'postgres' or 'nobody' user to run PostgreSQL as")


class Postgres:
    """One server: ``url`` reaches its ``postgres`` database as the superuser ``fetchheads``;
    ``new_database()`` gives the URL of a fresh, empty database."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"
        self._count = 0
        self._options = ""

    def start(self) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam(_server_user())
            os.chown(self.root, user.pw_uid, user.pw_gid)
        subprocess.run(
            _as_server_user(
                [
                    find_pg_bin("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # Only 127.0.0.1 over TCP: trust for it alone, nothing else accepted.
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        )
        self._options = options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        subprocess.run(
            _as_server_user(
                [
                    find_pg_bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server: ``immediate`` (at the end: the data are thrown away) loses the
        commits not yet on disk (synchronous_commit is off); ``fast`` keeps them."""
        subprocess.run(
            _as_server_user(
                [find_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]
            ),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        self._count += 1
        name = f"t{os.getpid()}_{self._count}_{time.monotonic_ns() % 1_000_000}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def new_role(self, database: str, *grants: str) -> str:
        """A new login role (no password: trust) holding ``grants`` (``SELECT ON runs``,
        ``CREATE ON SCHEMA public``...) in ``database`` (a URL from ``new_database``); the URL
        of that database as that role. Roles belong to the whole server: each name is new."""
        import psycopg

        self._count += 1
        role = f"r{os.getpid()}_{self._count}_{time.monotonic_ns() % 1_000_000}"
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {role} LOGIN".encode())
            for grant in grants:
                conn.execute(f"GRANT {grant} TO {role}".encode())
        return database.replace(f"//{SUPERUSER}@", f"//{role}@", 1)

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is ended, the server is back when it
        returns (with the options it was started with)."""
        self._pg_ctl("-m", "fast", "-w", "restart")

    def resume(self) -> None:
        """Start again a server that ``stop`` stopped."""
        self._pg_ctl("-o", self._options, "-w", "start")
        wait_for_port(self.port)

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_server_user(
                [
                    find_pg_bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "server.log"),
                    *args,
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )


class Relay:
    """A TCP relay on 127.0.0.1 in front of a server: what a network between fetchheads and its
    database can do to it, on loopback. It passes the bytes both ways (``restore``) until it is
    told to cut every connection and then refuse new ones (``refuse``: each is closed at once)
    or hang them (``hang``: accepted, never answered, as by a host that drops packets), or to
    let one ``COMMIT`` through and lose its answer (``lose_commit_answer``). ``attempts``
    counts the connections it accepted."""

    def __init__(self, server_port: int) -> None:
        self._server_port = server_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.attempts = 0
        self.lost = threading.Event()
        """Set once a COMMIT went through with its answer lost."""
        self._mode = "pass"
        self._after: bytes | None = None  # lose_commit_answer's marker, until it is seen
        self._armed = False  # the marker was seen: the next COMMIT's answer is lost
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, database: str) -> str:
        """``database`` (a URL of the server) through the relay."""
        return database.replace(f":{self._server_port}/", f":{self.port}/", 1)

    def restore(self) -> None:
        with self._lock:
            self._mode = "pass"

    def refuse(self) -> None:
        self._cut("refuse")

    def hang(self) -> None:
        self._cut("hang")

    def lose_commit_answer(self, after: bytes) -> None:
        """Once a client has sent ``after`` (``b"COPY snapshots"``), its next ``COMMIT`` goes
        through, the server's answer does not come back, and the relay then refuses."""
        with self._lock:
            self._after = after

    def close(self) -> None:
        self._listener.close()
        self._cut("closed")

    def _cut(self, mode: str) -> None:
        with self._lock:
            self._mode = mode
            cut, self._open = self._open, []
        for sock in cut:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.attempts += 1
                mode = self._mode
                if mode != "refuse":
                    self._open.append(client)
            if mode == "refuse":
                client.close()
            elif mode == "pass":
                server = socket.create_connection(("127.0.0.1", self._server_port))
                with self._lock:
                    self._open.append(server)
                dropped = threading.Event()
                threading.Thread(
                    target=self._pipe, args=(client, server, dropped, True), daemon=True
                ).start()
                threading.Thread(
                    target=self._pipe, args=(server, client, dropped, False), daemon=True
                ).start()

    def _pipe(
        self, source: socket.socket, sink: socket.socket, dropped: threading.Event, up: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if up:
                    self._watch(data, source, sink, dropped)
                if not dropped.is_set() or up:
                    sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _watch(
        self, data: bytes, client: socket.socket, server: socket.socket, dropped: threading.Event
    ) -> None:
        with self._lock:
            if self._after is not None and self._after in data:
                self._after, self._armed = None, True
            elif self._armed and b"COMMIT\x00" in data:
                self._armed = False
                dropped.set()  # from now on, nothing comes back to this client
                self._mode = "refuse"
                threading.Timer(0.5, self._lose, (client, server)).start()

    def _lose(self, client: socket.socket, server: socket.socket) -> None:
        """The COMMIT has reached the server (and been done): the connection goes now."""
        self.lost.set()
        self._cut("refuse")
        for sock in (client, server):
            sock.close()


@contextlib.contextmanager
def running_postgres() -> Iterator[Postgres]:
    with tempfile.TemporaryDirectory(prefix="fetchheads-pg-") as tmp:
        server = Postgres(Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    # SIGTERM (kill, a supervisor, a CI step's timeout) stops the server as Ctrl-C does: its
    # default would end Python at once and leave the server running in a removed directory.
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.suppress(KeyboardInterrupt), running_postgres() as pg:
        print(pg.url, flush=True)
        while True:
            time.sleep(3600)
