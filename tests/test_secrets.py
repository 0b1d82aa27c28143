"""No secret leaks: a password given in a proxy URL, a proxy variable, a target's
``user:password@`` or a ``-H`` header is sent where it belongs and shown nowhere else: not in a
message, not in any output format, the summary or progress line, and not in the ``--db`` file."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from fetchheads.cli import cli
from fetchheads.credentials import is_secret_header, redact_cut_url, redact_header, redact_url
from tests.support.servers import Handler, ThreadedServer, read_request_head, reply
from tests.test_process import spawn

SECRET = "s3cr3t-Pa55"
StartServer = Callable[..., ThreadedServer]
OK = b"HTTP/1.1 200 OK\r\nServer: scripted\r\n\r\n"


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def gatekeeper(header: bytes, credentials: bytes, *, refusal: bytes) -> Handler:
    """Answer 200 to a request carrying ``header: credentials``, ``refusal`` to any other."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request_head(reader)
        allowed = f"\r\n{header.decode()}: {credentials.decode()}\r\n".encode() in head
        writer.write(OK if allowed else refusal)
        await writer.drain()
        writer.close()

    return handler


def run(
    args: list[str], tmp_path: Path, *, env: dict[str, str] | None = None
) -> tuple[int, str, str, bytes]:
    """Run fetchheads with ``--db`` in ``tmp_path``: exit status, stdout, stderr, and the bytes of
    every file the database left there (the WAL and journal included)."""
    db = tmp_path / "heads.db"
    outcome = CliRunner().invoke(
        cli, ["--db", str(db), *args], env=env, prog_name="fetchheads", catch_exceptions=False
    )
    stored = b"".join(path.read_bytes() for path in sorted(tmp_path.glob("heads.db*")))
    return outcome.exit_code, outcome.stdout, outcome.stderr, stored


def assert_kept_secret(stdout: str, stderr: str, stored: bytes = b"") -> None:
    for where, text in (("stdout", stdout), ("stderr", stderr)):
        assert SECRET not in text, f"{where}: {text}"
        assert base64.b64encode(f"user:{SECRET}".encode()).decode() not in text, where
    assert SECRET.encode() not in stored
    assert base64.b64encode(f"user:{SECRET}".encode()) not in stored


FORMATS = (
    ["--format", "plain", "--progress"],
    ["--format", "jsonl", "--progress"],
    ["--format", "pretty", "--progress"],
)


@pytest.mark.parametrize("output", FORMATS)
def test_a_refusing_proxy_never_shows_its_password(
    output: list[str], refused_port: int, tmp_path: Path
) -> None:
    proxy = f"http://user:{SECRET}@127.0.0.1:{refused_port}"
    code, stdout, stderr, stored = run([*output, "--proxy", proxy, "http://127.0.0.1:9/"], tmp_path)
    assert code == 1
    assert f"proxy 127.0.0.1:{refused_port}: connection refused" in stdout
    assert "1 target, 0 ok, 1 failed (connect 1)" in stderr  # the summary was printed
    assert_kept_secret(stdout, stderr, stored)


@pytest.mark.parametrize("output", FORMATS)
def test_a_proxy_that_wants_credentials_gets_them_and_they_show_nowhere(
    output: list[str], threaded_server: StartServer, tmp_path: Path
) -> None:
    refusal = b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"
    proxy = threaded_server(
        gatekeeper(b"Proxy-Authorization", basic("user", SECRET), refusal=refusal)
    )
    right = f"http://user:{SECRET}@127.0.0.1:{proxy.port}"
    wrong = f"http://user:{SECRET}x@127.0.0.1:{proxy.port}"
    code, stdout, stderr, stored = run([*output, "--proxy", right, "http://127.0.0.1:9/"], tmp_path)
    assert code == 0
    assert "scripted" in stdout  # the origin's answer came through: the proxy let it pass
    assert_kept_secret(stdout, stderr, stored)
    # The tunnel refused (https goes by CONNECT), from the environment, in every spelling.
    for variable in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env = {variable: wrong}
        code, stdout, stderr, stored = run([*output, "https://127.0.0.1:9/"], tmp_path, env=env)
        assert code == 1, variable
        assert "CONNECT answered 407" in stdout
        assert_kept_secret(stdout, stderr, stored)
    # Plain http goes to the proxy as it is; its 407 is the answer.
    code, stdout, stderr, stored = run(
        [*output, "http://127.0.0.1:9/"], tmp_path, env={"http_proxy": wrong}
    )
    assert (code, "Proxy Authentication Required" in stdout) == (0, True)
    assert_kept_secret(stdout, stderr, stored)


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--proxy", f"http://user:{SECRET}@127.0.0.1:99999"], {}, "--proxy: "),
        ([], {"FETCHHEADS_PROXY": f"socks5://user:{SECRET}@127.0.0.1:1"}, "FETCHHEADS_PROXY"),
        ([], {"http_proxy": f"http://user:{SECRET}@127.0.0.1:3128/path"}, "http_proxy: "),
        ([], {"ALL_PROXY": f"user:{SECRET}@bad_host!:1"}, "ALL_PROXY: "),
    ],
)
def test_a_bad_proxy_url_is_a_usage_error_that_hides_the_password(
    args: list[str], env: dict[str, str], named: str, tmp_path: Path
) -> None:
    code, stdout, stderr, stored = run([*args, "http://127.0.0.1:9/"], tmp_path, env=env)
    assert code == 2
    assert named in stderr
    assert "user:***@" in stderr  # which proxy it was is still plain to see
    assert_kept_secret(stdout, stderr, stored)


@pytest.mark.parametrize("output", FORMATS)
def test_a_target_with_user_and_password_sends_basic_auth_and_shows_stars(
    output: list[str], threaded_server: StartServer, refused_port: int, tmp_path: Path
) -> None:
    refusal = b"HTTP/1.1 401 Unauthorized\r\n\r\n"
    server = threaded_server(gatekeeper(b"Authorization", basic("user", SECRET), refusal=refusal))
    good = f"http://user:{SECRET}@127.0.0.1:{server.port}/x"
    failing = f"user:{SECRET}@127.0.0.1:{refused_port}"
    code, stdout, stderr, stored = run([*output, "--order", "input", good, failing], tmp_path)
    assert code == 1  # the refused one
    assert server.requests[0].startswith(b"GET /x HTTP/1.0\r\n")  # user info is not sent as such
    assert "Unauthorized" not in stdout  # the credentials were sent and accepted
    assert f"user:***@127.0.0.1:{server.port}/x" in stdout
    assert f"user:***@127.0.0.1:{refused_port}" in stdout
    assert_kept_secret(stdout, stderr, stored)
    assert f"user:***@127.0.0.1:{server.port}/x".encode() in stored  # recorded by that name


@pytest.mark.parametrize("given", ["file", "arguments"])
def test_workers_send_a_targets_password_as_given_and_show_it_nowhere(
    given: str, threaded_server: StartServer, tmp_path: Path
) -> None:
    # The supervisor of --workers hands each line to a worker: the line as given, not the
    # target's own text, which shows the password as ***, and would send "user:***".
    refusal = b"HTTP/1.1 401 Unauthorized\r\n\r\n"
    server = threaded_server(gatekeeper(b"Authorization", basic("user", SECRET), refusal=refusal))
    targets = [f"http://user:{SECRET}@127.0.0.1:{server.port}/{n}" for n in range(20)]
    targets += [f"user:{SECRET}@127.0.0.1:{server.port}/bare", "bad target"]
    source = tmp_path / "hosts.txt"
    source.write_text("\n".join(targets) + "\n")
    args = ["-i", str(source)]
    if given == "arguments":
        # Spaces around an argument are not part of it: the worker is given the line without
        # them (with them, this one would be longer than the 4096 bytes a line may hold).
        long = f"http://user:{SECRET}@127.0.0.1:{server.port}/{'é' * 2000}"
        args = [*targets, f" {long}" + " " * 60]
    process = spawn("--json", "--progress", "--workers", "2", "-c", "4", *args)
    stdout, stderr = (stream.decode() for stream in process.communicate(timeout=60))
    records = [json.loads(line) for line in stdout.splitlines()]
    fetched = 21 if given == "file" else 22
    assert sorted(r["status"] for r in records if r["status"]) == [200] * fetched  # none refused
    assert sum(r["error"] is not None for r in records) == 1  # the bad line, reported
    assert f"user:***@127.0.0.1:{server.port}/bare" in stdout
    assert "2 workers" in stderr
    assert process.returncode == 1
    assert_kept_secret(stdout, stderr)


@pytest.mark.parametrize(
    "target", [f"http:///user:{SECRET}@127.0.0.1:9/", f"//user:{SECRET}@127.0.0.1:9"]
)
def test_a_slash_too_many_is_no_host_and_hides_the_password(target: str, tmp_path: Path) -> None:
    code, stdout, stderr, stored = run(["--json", target], tmp_path)
    assert code == 1
    assert json.loads(stdout)["error"]["message"] == "no host in target"
    assert "user:***@127.0.0.1:9" in stdout
    assert_kept_secret(stdout, stderr, stored)


def test_a_target_with_a_password_that_is_not_valid_is_an_input_record_without_it(
    tmp_path: Path,
) -> None:
    code, stdout, stderr, stored = run(
        ["--json", f"ftp://user:{SECRET}@127.0.0.1/", f"http://user:{SECRET}@256.0.0.1/"], tmp_path
    )
    assert code == 1
    assert '"kind": "input"' in stdout
    assert_kept_secret(stdout, stderr, stored)


@pytest.mark.parametrize(
    "header",
    [
        f"Authorization Basic {SECRET}",  # no colon: where the name ends is unknown
        f"Auth orization: Bearer {SECRET}",
        SECRET,
        f"Cookie: id={SECRET}\x01",
        f"X-Api-Key: {SECRET}\x7f",
    ],
)
def test_an_invalid_header_is_refused_without_its_value(header: str, tmp_path: Path) -> None:
    for args, env in (
        (["-H", header], None),
        ([], {"FETCHHEADS_HEADER": header}),
    ):
        code, stdout, stderr, stored = run([*args, "http://127.0.0.1:9/"], tmp_path, env=env)
        assert code == 2
        assert "header" in stderr
        assert_kept_secret(stdout, stderr, stored)


def test_the_run_options_in_the_database_keep_no_secret(
    threaded_server: StartServer, tmp_path: Path
) -> None:
    server = threaded_server(reply(OK))
    proxy = threaded_server(reply(OK))
    code, stdout, stderr, stored = run(
        [
            "--json",
            "-H",
            f"Authorization: Bearer {SECRET}",
            "-H",
            f"Cookie: session={SECRET}",
            "-H",
            f"X-Auth-Token: {SECRET}",
            "--proxy",
            f"http://user:{SECRET}@127.0.0.1:{proxy.port}",
            f"http://user:{SECRET}@127.0.0.1:{server.port}/",
        ],
        tmp_path,
    )
    assert code == 0, stderr
    assert SECRET.encode() in proxy.requests[0]  # sent, as asked
    assert_kept_secret(stdout, stderr, stored)
    assert b"Authorization" in stored  # the header names are kept: what the run sent


@pytest.mark.parametrize("separator", ["/", "#", "?"])
def test_a_password_holding_a_url_separator_is_hidden_too(separator: str, tmp_path: Path) -> None:
    """A password typed unencoded with ``/``, ``#`` or ``?`` in it makes an invalid URL, and the
    message that says so must still not show it."""
    password = f"{SECRET}{separator}x"
    code, stdout, stderr, stored = run(["--json", f"http://user:{password}@127.0.0.1:9/"], tmp_path)
    assert code == 1
    assert '"kind": "input"' in stdout
    assert_kept_secret(stdout, stderr, stored)
    env = {"http_proxy": f"http://user:{password}@127.0.0.1:3128"}
    code, stdout, stderr, stored = run(["http://127.0.0.1:9/"], tmp_path, env=env)
    assert code == 2
    assert "http_proxy: " in stderr
    assert_kept_secret(stdout, stderr, stored)


# --- the rules, one by one --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://user:pw@127.0.0.1:3128", "http://user:***@127.0.0.1:3128"),
        ("user:pw@127.0.0.1", "user:***@127.0.0.1"),
        ("http://token@127.0.0.1/", "http://***@127.0.0.1/"),  # a user alone is often a token
        ("http://u:p@ss@127.0.0.1/a", "http://u:***@127.0.0.1/a"),
        ("https://example.social/@name", "https://example.social/@name"),
        ("http://127.0.0.1/?to=a@b", "http://127.0.0.1/?to=a@b"),
        ("127.0.0.1", "127.0.0.1"),
        ("http://u:p/w@127.0.0.1/a", "http://u:***@127.0.0.1/a"),
        ("http://u:p#w@127.0.0.1", "http://u:***@127.0.0.1"),
        ("u:p?w@127.0.0.1", "u:***@127.0.0.1"),
        ("http://u:a/b@c@127.0.0.1/p", "http://u:***@127.0.0.1/p"),
        ("http://127.0.0.1:8080/@name", "http://127.0.0.1:8080/@name"),
        ("@SUM(1)", "@SUM(1)"),  # nothing before the @: nothing to hide
        ("http://@127.0.0.1/", "http://@127.0.0.1/"),
        ("http:///user:pw@127.0.0.1:9/", "http:///user:***@127.0.0.1:9/"),  # a slash too many
        ("//user:pw@127.0.0.1", "//user:***@127.0.0.1"),
    ],
)
def test_redact_url(text: str, shown: str) -> None:
    assert redact_url(text) == shown


@pytest.mark.parametrize(
    ("start", "shown"),
    [
        ("http://user:s3cr3tTTTT", "http://user:***"),  # cut before the @
        ("user:s3cr3t", "user:***"),
        ("https://tokentokentoken", "https://***"),  # a user alone is often a token
        ("http://u:p/w", "http://u:***"),
        ("http://user:pw@127.0.0.1/aaaa", "http://user:***@127.0.0.1/aaaa"),
        ("http://127.0.0.1:8080/aaaa", "http://127.0.0.1:8080/aaaa"),
        ("https://example.social/@na", "https://example.social/@na"),
        ("github_pat_11ABCDEFG0123456789", "***"),  # a token before its cut @host
        # An @ in the start may be the password's own, the authority's beyond the cut.
        ("https://ghp_R3alT0ken@127.0.0.1:9", "https://***"),
        ("https://deploy:P@ssw0rd-Kx9q2L", "https://deploy:***"),
        ("https://ghp_R3alT0ken@127.0.0.1:9/a", "https://***@127.0.0.1:9/a"),  # it ended: shown
        ("[::1]:8080", "[::1]:8080"),
        ("http://[::1]", "http://[::1]"),
        ("http://[admin:Xk9Secret", "http://[admin:***"),  # a user name may begin with [
        ("[ops]:Xk9Secret", "[ops]:***"),
        ("[dead:beef]:1234x", "[dead:***"),  # not an address and port: masked
        ("127.0.0.1:9/x", "127.0.0.1:9/x"),
    ],
)
def test_redact_cut_url(start: str, shown: str) -> None:
    assert redact_cut_url(start) == shown


def test_an_overlong_line_cut_inside_its_password_does_not_show_it(tmp_path: Path) -> None:
    source = tmp_path / "hosts.txt"
    lines = [
        f"http://user:{SECRET * 10}@127.0.0.1:9/" + "a" * 5000,
        f"# http://user:{SECRET}@127.0.0.1:9/" + "0" * 5000,  # a comment, however long: skipped
        f"127.0.0.1:9/x # was http://user:{SECRET}@127.0.0.1:9/" + "0" * 5000,
        "127.0.0.1:8080   # staging " + "0" * 5000,  # cut at its comment: whole, port and all
        f"{SECRET * 10}@127.0.0.1:9/" + "a" * 5000,  # a token as the user, its @ cut off
    ]
    source.write_text("\n".join(lines) + "\n")
    for workers in ("1", "2"):
        code, stdout, stderr, stored = run(
            ["--json", "--workers", workers, "-i", str(source)], tmp_path
        )
        assert code == 1
        records = [json.loads(line) for line in stdout.splitlines()]
        targets = [r["target"] for r in records]
        assert targets == ["http://user:***…", "127.0.0.1:9/x…", "127.0.0.1:8080…", "***…"]
        assert [r["error"]["message"].split(": ")[0] for r in records] == [
            f"{source}:{n}" for n in (1, 3, 4, 5)
        ]
        assert_kept_secret(stdout, stderr, stored)
        assert SECRET[:4] not in stdout


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("Authorization", True),
        ("proxy-authorization", True),
        ("Cookie", True),
        ("X-Auth-Token", True),
        ("X-API-Key", True),
        ("X-Client-Secret", True),
        ("X-Session-Id", True),
        ("Accept-Language", False),
        ("User-Agent", False),
        ("X-Request-Id", False),
    ],
)
def test_which_headers_are_secret(name: str, secret: bool) -> None:
    assert is_secret_header(name) is secret
    shown = redact_header(f"{name}: value")
    assert shown == (f"{name}: ***" if secret else f"{name}: value")
