"""Shared fixtures: scripted loopback servers, TLS certificates (trustme), a real nginx, a real
PostgreSQL, and ``db``: a new snapshot database of each backend."""

from __future__ import annotations

import dataclasses
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import settings

from fetchheads.config import Config
from fetchheads.fetch import one as fetch_one_module
from fetchheads.fetch.one import FetchContext, make_ssl_context
from fetchheads.fetch.resolve import Resolver
from tests.support import processes
from tests.support.nginx import Nginx
from tests.support.postgres import Postgres, running_postgres
from tests.support.servers import Handler, ThreadedServer
from tests.support.tinyproxy import Tinyproxy

# No test is timed (speed is measured in benchmarks/): hypothesis's 200 ms deadline per example
# failed test_jsonl_fast on a fresh clone whose two cores were busy.
settings.register_profile("fetchheads", deadline=None)
settings.load_profile("fetchheads")

PROXY_VARIABLES = (
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
)


@pytest.fixture(autouse=True)
def _reap_children() -> Iterator[None]:
    try:
        yield
    finally:
        processes.reap()


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to loopback servers directly unless they set a proxy themselves: a developer's
    or CI's proxy variables must not route them elsewhere."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1", "::1")


@pytest.fixture(scope="session")
def server_ssl_context(server_cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    return context


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def make_context(config: Config | None = None) -> FetchContext:
    config = config or Config(timeout=5.0)
    return FetchContext(config=config, ssl_context=make_ssl_context(config), resolver=Resolver())


@dataclasses.dataclass(frozen=True)
class Route:
    """The way a plain-http target to an IP literal is fetched, chosen as a user chooses it: by
    the run's options (``config``, as ``Config`` takes them)."""

    name: str
    config: Mapping[str, object] = dataclasses.field(default_factory=dict)

    def context(self, **config: object) -> FetchContext:
        """``make_context`` with this route's options; ``config`` as ``Config`` takes it, the
        timeout 5 s unless given."""
        return make_context(Config(**{"timeout": 5.0, **self.config, **config}))  # type: ignore[arg-type]


ROUTES = {
    # No option: connect and exchange run inline in fetch.one._attempt (its fast path).
    "inline": Route("inline"),
    # --connect-timeout, far beyond any -t of a test: the same target goes through the steps every
    # other target takes (_fetch_head: open_connection, connect, exchange).
    "steps": Route("steps", {"connect_timeout": 600.0}),
}


@pytest.fixture(params=list(ROUTES))
def route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Route]:
    """Each route in turn, for the behaviours both must show alike (errors, partial heads,
    timings, the abort after the head). An https target has one path whatever the route.

    Checks that each route went where it says: should the inline path come to take
    ``--connect-timeout`` too, or stop taking IP literals, a test here would cover one path twice,
    and fails instead."""
    chosen = ROUTES[request.param]
    stepped: list[str] = []  # the scheme of each target that went through _fetch_head
    fetch_head = fetch_one_module._fetch_head

    async def counted(target: Any, *args: Any) -> Any:
        stepped.append(target.scheme)
        return await fetch_head(target, *args)

    monkeypatch.setattr(fetch_one_module, "_fetch_head", counted)
    yield chosen
    if chosen.name == "steps":
        assert stepped, "no target took the stepwise path"
    else:
        assert "http" not in stepped, "a plain-http target left the inline path"


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def threaded_server() -> Iterator[Callable[..., ThreadedServer]]:
    """``threaded_server(handler, ssl_context=None)`` -> a started server, stopped at teardown."""
    started: list[ThreadedServer] = []

    def start(handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> ThreadedServer:
        server = ThreadedServer(handler, ssl_context=ssl_context).start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def nginx(
    tmp_path_factory: pytest.TempPathFactory, server_cert: trustme.LeafCert
) -> Iterator[Nginx]:
    """A real nginx on loopback for the integration tier (http and https, trustme certificate)."""
    workdir = tmp_path_factory.mktemp("nginx")
    cert = workdir / "cert.pem"
    key = workdir / "key.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    for extra in server_cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert), append=True)
    server_cert.private_key_pem.write_to_path(str(key))
    server = Nginx(workdir, cert_file=cert, key_file=key).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tinyproxy(tmp_path_factory: pytest.TempPathFactory, nginx: Nginx) -> Iterator[Tinyproxy]:
    """A real HTTP proxy on loopback that may tunnel (CONNECT) to nginx's TLS port only."""
    proxy = Tinyproxy(tmp_path_factory.mktemp("tinyproxy"), connect_ports=[nginx.tls_port]).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL on 127.0.0.1 for the whole session (initdb + pg_ctl, its own directory)."""
    with running_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty snapshot database: an SQLite file path, or the URL of a new PostgreSQL
    database. Tests taking it run against both backends."""
    if request.param == "sqlite":
        return str(tmp_path / "heads.db")
    server: Postgres = request.getfixturevalue("postgres")
    return server.new_database()
