"""https: verification on by default, --cacert, -k, and the TLS facts a record carries."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trustme
from click.testing import CliRunner

from fetchheads.cli import cli
from fetchheads.config import Config
from fetchheads.errors import ErrorKind
from fetchheads.fetch.connection import describe_tls_alert
from fetchheads.fetch.one import fetch_one, make_ssl_context
from fetchheads.models import ErrorInfo, Result
from fetchheads.render.writeout import compile_write_out
from fetchheads.targets import parse_target
from tests.conftest import make_context
from tests.support.servers import LoopbackServer, ThreadedServer, reply

HEAD = b"HTTP/1.1 200 OK\r\nServer: tls-test\r\n\r\n"


def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


async def tls_fetch(
    context: ssl.SSLContext, config: Config, *, host: str = "localhost", scheme: str = "https://"
) -> Result:
    async with LoopbackServer(reply(HEAD), ssl_context=context) as server:
        target = parse_target(f"{scheme}{host}:{server.port}/")
        return await fetch_one(target, make_context(config))


async def test_trusted_with_cacert_gives_the_tls_facts(
    server_ssl_context: ssl.SSLContext, ca_file: Path
) -> None:
    result = await tls_fetch(server_ssl_context, Config(timeout=5, cacert=str(ca_file)))
    assert result.ok, result.error
    assert result.head is not None
    assert result.head.get("Server") == "tls-test"
    tls = result.tls
    assert tls is not None
    assert tls.version in ("TLSv1.2", "TLSv1.3")
    assert tls.cipher
    assert tls.subject is not None
    assert tls.subject.startswith("O=trustme")
    assert tls.issuer is not None
    assert "Testing CA" in tls.issuer
    assert tls.san == ("localhost", "127.0.0.1", "::1")
    # trustme's default certificates run to the year 3000.
    assert tls.not_after == "3000-01-01T00:00:00Z"
    assert tls.days_left is not None
    assert tls.days_left > 300_000
    timing = result.timing
    assert timing.connect is not None
    assert timing.tls is not None
    assert timing.ttfb is not None
    assert timing.connect <= timing.tls <= timing.ttfb
    record = result.to_record()
    # The original keys first, in their order, then those certificate decoding added.
    assert list(record["tls"]) == [
        "version",
        "cipher",
        "subject",
        "issuer",
        "not_after",
        "days_left",
        "san",
        "not_before",
        "serial",
        "fingerprint_sha256",
        "spki_sha256",
        "key",
        "signature_algorithm",
        "lifetime_days",
        "life_left",
        "verified",
        "self_signed",
        "chain",
        "chain_earliest_expiry",
    ]


async def test_days_left_counts_whole_days_to_expiry(ca: trustme.CA, ca_file: Path) -> None:
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30, hours=12)).replace(microsecond=0)
    cert = ca.issue_cert("localhost", not_after=expires)
    result = await tls_fetch(server_context(cert), Config(timeout=5, cacert=str(ca_file)))
    assert result.ok, result.error
    assert result.tls is not None
    assert result.tls.days_left == 30
    assert result.tls.not_after == expires.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_an_untrusted_certificate_is_kind_tls_and_says_verification(
    server_ssl_context: ssl.SSLContext,
) -> None:
    result = await tls_fetch(server_ssl_context, Config(timeout=5))  # system store only
    assert not result.ok
    assert result.error is not None
    assert result.error.kind == ErrorKind.TLS, result.error
    assert result.error.message.startswith("certificate verification failed")
    assert result.head is None
    # A second look without verification fills in the certificate the server presented.
    assert result.tls is not None
    assert result.tls.verified is False
    assert result.tls.san == ("localhost", "127.0.0.1", "::1")
    assert result.timing.connect is not None
    assert result.timing.tls is None


async def test_insecure_skips_verification_but_still_reports_the_protocol(
    server_ssl_context: ssl.SSLContext,
) -> None:
    result = await tls_fetch(server_ssl_context, Config(timeout=5, insecure=True))
    assert result.ok, result.error
    assert result.tls is not None
    assert result.tls.version in ("TLSv1.2", "TLSv1.3")
    assert result.tls.cipher


async def test_a_wrong_host_name_is_kind_tls(ca: trustme.CA, ca_file: Path) -> None:
    cert = ca.issue_cert("other.example")
    result = await tls_fetch(server_context(cert), Config(timeout=5, cacert=str(ca_file)))
    assert result.error is not None
    assert result.error.kind == ErrorKind.TLS, result.error
    assert "certificate verification failed" in result.error.message
    assert "localhost" in result.error.message  # says which name did not match


async def test_an_expired_certificate_is_kind_tls_and_says_expired(
    ca: trustme.CA, ca_file: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    cert = ca.issue_cert(
        "localhost", not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
    )
    result = await tls_fetch(server_context(cert), Config(timeout=5, cacert=str(ca_file)))
    assert result.error is not None
    assert result.error.kind == ErrorKind.TLS, result.error
    assert "expired" in result.error.message


async def test_an_ip_literal_verifies_against_the_ip_san_entry(
    server_ssl_context: ssl.SSLContext, ca_file: Path
) -> None:
    result = await tls_fetch(
        server_ssl_context, Config(timeout=5, cacert=str(ca_file)), host="127.0.0.1"
    )
    assert result.ok, result.error
    assert result.timing.dns is None


async def test_a_second_look_that_runs_out_of_time_leaves_the_verification_error(
    server_ssl_context: ssl.SSLContext,
) -> None:
    """The look at a rejected certificate is a second connection within the target's deadline;
    when that one never answers, the first handshake's verdict is what the record says."""
    connections = 0

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()

    async with LoopbackServer(reply(HEAD), ssl_context=server_ssl_context) as upstream:

        async def first_through_then_silent(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            nonlocal connections
            connections += 1
            if connections > 1:  # the look: its handshake gets no answer
                await asyncio.sleep(3600)
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream.port)
            try:
                await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
            finally:
                up_writer.transport.abort()

        async with LoopbackServer(first_through_then_silent) as front:
            target = parse_target(f"https://localhost:{front.port}/")
            result = await fetch_one(target, make_context(Config(timeout=1)))
    assert connections == 2
    assert result.error is not None
    assert result.error.kind == ErrorKind.TLS  # not "timeout": the look's time ran out, not ours
    assert result.error.message == (
        "certificate verification failed: unable to get local issuer certificate: "
        "give --cacert FILE, or -k to look anyway"
    )
    assert result.tls is None


# --- TLS failures after the handshake --------------------------------------------------------------


class AfterHandshake:
    """A blocking TLS server on 127.0.0.1 whose TLS fails after the handshake, in a thread:
    ``"client certificate"`` requires one (TLS 1.3 says so with an alert once the handshake is
    done), ``"bad record"`` reads the request, sends ``prefix`` and then a record that does not
    decrypt. Either way it then waits for the client to leave, so that no reset races its
    alert. ``connections`` counts the connections accepted."""

    def __init__(self, context: ssl.SSLContext, mode: str, prefix: bytes = b"") -> None:
        self.context = context
        self.mode = mode
        self.prefix = prefix
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> AfterHandshake:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
        self._listener.close()
        self._thread.join(5)

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self._listener.accept()
                self.connections += 1
                with connection:
                    connection.settimeout(5)
                    with contextlib.suppress(OSError):
                        self._handle(connection)

    def _handle(self, connection: socket.socket) -> None:
        tls = self.context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        # The socket underneath, for bytes that are not TLS and for waiting past a failure.
        with tls, socket.socket(fileno=os.dup(tls.fileno())) as raw:
            try:
                tls.do_handshake()
            except ssl.SSLError:  # no client certificate: the alert is on its way
                _wait_for_the_client(raw)
                return
            data = b""
            while b"\r\n\r\n" not in data and (chunk := tls.recv(4096)):
                data += chunk
            if self.prefix:
                tls.sendall(self.prefix)
                time.sleep(0.2)  # the prefix read on its own, before the bad record
            raw.sendall(b"\x17\x03\x03\x00\x20" + bytes(32))  # not sealed: a bad MAC
            _wait_for_the_client(raw)


def _wait_for_the_client(connection: socket.socket) -> None:
    while connection.recv(65536):
        pass


def client_certificate_context(ca: trustme.CA, server_cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    server_cert.configure_cert(context)
    context.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(context)
    return context


async def test_a_required_client_certificate_is_kind_tls_in_plain_words_and_not_retried(
    ca: trustme.CA, server_cert: trustme.LeafCert, ca_file: Path
) -> None:
    with AfterHandshake(client_certificate_context(ca, server_cert), "client certificate") as srv:
        target = parse_target(f"https://localhost:{srv.port}/")
        config = Config(timeout=5, cacert=str(ca_file), retries=2)
        result = await fetch_one(target, make_context(config))
    assert result.error == ErrorInfo(
        ErrorKind.TLS, "after the handshake: the server requires a client certificate"
    )
    assert srv.connections == 1  # asking again would be refused again
    assert result.tls is not None  # the handshake itself went through
    assert compile_write_out("%{exitcode}").render(result) == "56"  # curl's receive error


def test_a_required_client_certificate_through_the_cli(
    ca: trustme.CA, server_cert: trustme.LeafCert, ca_file: Path
) -> None:
    """On the CLI's own loop (uvloop): one line, no OpenSSL decoration, exit code 56 as curl."""
    with AfterHandshake(client_certificate_context(ca, server_cert), "client certificate") as srv:
        url = f"https://localhost:{srv.port}/"
        outcome = CliRunner().invoke(
            cli,
            ["--cacert", str(ca_file), "--retries", "2", "-w", "%{exitcode} %{errormsg}\\n", url],
        )
    assert outcome.exit_code == 1
    assert outcome.stdout.splitlines()[-1] == (
        "56 after the handshake: the server requires a client certificate"
    )
    assert srv.connections == 1


async def test_a_bad_record_after_the_handshake_is_kind_tls_without_openssl_decoration(
    server_ssl_context: ssl.SSLContext, ca_file: Path
) -> None:
    with AfterHandshake(server_ssl_context, "bad record") as server:
        target = parse_target(f"https://localhost:{server.port}/")
        result = await fetch_one(target, make_context(Config(timeout=5, cacert=str(ca_file))))
    assert result.error is not None
    assert result.error.kind == ErrorKind.TLS, result.error
    assert result.error.message.startswith("after the handshake: ")
    assert "[SSL" not in result.error.message
    assert "_ssl.c" not in result.error.message
    assert server.connections == 1


async def test_a_bad_record_in_the_middle_of_the_head_keeps_what_arrived(
    server_ssl_context: ssl.SSLContext, ca_file: Path
) -> None:
    prefix = b"HTTP/1.1 200 OK\r\nServer: half\r\n"
    with AfterHandshake(server_ssl_context, "bad record", prefix) as server:
        target = parse_target(f"https://localhost:{server.port}/")
        result = await fetch_one(target, make_context(Config(timeout=5, cacert=str(ca_file))))
    assert result.error is not None
    assert result.error.kind == ErrorKind.TLS, result.error
    assert result.error.message.startswith("after the handshake, in the middle of the head: ")
    assert "_ssl.c" not in result.error.message
    assert result.head is not None
    assert result.head.status == 200
    assert result.head.get("Server") == "half"


def test_tls_alert_words_drop_pythons_decoration() -> None:
    error = ssl.SSLError(1, "[SSL: SOME_REASON] some reason words (_ssl.c:2580)")
    error.reason = "SOME_REASON"
    assert describe_tls_alert(error) == "some reason words"
    required = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert (_ssl.c:1)")
    required.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert describe_tls_alert(required) == "the server requires a client certificate"


def _alert_server(description: int) -> Callable[..., Awaitable[None]]:
    """A server that answers the ClientHello with one fatal TLS alert (RFC 8446 §6)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.write(bytes([21, 3, 1, 0, 2, 2, description]))  # alert record, fatal
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    return handler


def test_a_server_without_a_tls_version_in_common_is_said_in_words(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    """A server speaking only TLS 1.0 or 1.1 answers a TLS 1.2+ hello with protocol_version."""
    server = threaded_server(_alert_server(70))
    url = f"https://127.0.0.1:{server.port}/"
    outcome = CliRunner().invoke(cli, ["-w", "%{errormsg}\\n", url])
    assert outcome.exit_code == 1
    assert outcome.stdout == (
        "handshake failed: TLSV1_ALERT_PROTOCOL_VERSION: no TLS version in common: the server"
        " may speak only TLS 1.0 or 1.1, which fetchheads does not offer\n"
    )


def test_a_tls_1_2_server_requiring_a_client_certificate_is_said_in_words(
    ca: trustme.CA, server_cert: trustme.LeafCert, ca_file: Path
) -> None:
    """Under TLS 1.2 the refusal comes inside the handshake, as a bare handshake_failure."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    server_cert.configure_cert(context)
    context.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(context)
    with AfterHandshake(context, "client certificate") as server:
        url = f"https://127.0.0.1:{server.port}/"
        outcome = CliRunner().invoke(cli, ["--cacert", str(ca_file), "-w", "%{errormsg}\\n", url])
    assert outcome.exit_code == 1
    assert outcome.stdout == (
        "handshake failed: SSLV3_ALERT_HANDSHAKE_FAILURE: the server refused the handshake: it"
        " may require a client certificate (fetchheads sends none) or share no cipher with"
        " fetchheads\n"
    )


def test_verification_is_the_same_on_every_python() -> None:
    """Python 3.13's default context adds OpenSSL's strict X.509 checks, which refuse certificates
    that curl and Python 3.11 and 3.12 accept (an intermediate without an Authority Key
    Identifier), and trusts a partial chain, which 3.11 and 3.12 do not: fetchheads sets both as
    curl has them, so a site verifies or not whatever Python runs it."""
    context = make_ssl_context(Config())
    wanted = ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
    assert context.verify_flags & wanted == ssl.VERIFY_X509_PARTIAL_CHAIN
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
