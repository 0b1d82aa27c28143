"""The command line as a user drives it: formats, inputs, order, exit codes, help."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import fetchheads.cli
import fetchheads.fetch.one
import fetchheads.run.single
from fetchheads import __version__
from fetchheads.cli import cli
from fetchheads.cli.options import make_config
from fetchheads.config import Config
from fetchheads.run.plan import Environment
from tests.support.records import RECORD_KEYS
from tests.support.servers import ThreadedServer, reply

HEAD = b"HTTP/1.1 200 OK\r\nServer: scripted\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nbody"

StartServer = Callable[..., ThreadedServer]


def invoke(
    args: list[str], *, input: str | bytes | None = None, env: dict[str, str] | None = None
) -> Result:
    return CliRunner().invoke(
        cli, args, input=input, env=env, prog_name="fetchheads", catch_exceptions=False
    )


def records(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def target(threaded_server: StartServer) -> str:
    return f"127.0.0.1:{threaded_server(reply(HEAD)).port}"


@pytest.fixture
def refused(refused_port: int) -> str:
    return f"127.0.0.1:{refused_port}"


# --- formats ---------------------------------------------------------------------------------------


def test_plain_is_the_seed_format_for_heads_and_failures(target: str, refused: str) -> None:
    result = invoke(["--format", "plain", "--order", "input", target, refused, "bad host"])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{target} header > HTTP/1.1 200 OK",
        f"{target} header > Server: scripted",
        f"{target} header > Set-Cookie: a=1",
        f"{target} header > Set-Cookie: b=2",
        f"{refused} error > connect: {refused}: connection refused",
        # Quoted: the target is still the line's first field, for cut and awk.
        "'bad host' error > input: control or space character ' ' in target",
    ]
    assert result.stderr == ""  # no summary when stderr is not a terminal


def test_plain_is_the_default_when_stdout_is_not_a_terminal(target: str) -> None:
    result = invoke([target])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"{target} header > HTTP/1.1 200 OK\n")


def test_jsonl_records_always_carry_every_key(target: str, refused: str) -> None:
    result = invoke(["--format", "jsonl", "--order", "input", target, refused, "ftp://x"])
    assert result.exit_code == 1
    ok, failed, bad = records(result)
    for record in (ok, failed, bad):
        assert set(record) == set(RECORD_KEYS)
    assert ok["ok"] is True
    assert (ok["status"], ok["reason"], ok["http_version"]) == (200, "OK", "HTTP/1.1")
    assert ok["headers"] == [["Server", "scripted"], ["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"]]
    assert ok["url"] == f"http://{target}/"
    assert ok["error"] is None
    assert ok["address"] == "127.0.0.1"
    assert ok["tls"] is None
    assert ok["redirects"] == []
    assert isinstance(ok["fetched_at"], str)
    assert ok["fetched_at"].endswith("Z")
    assert failed["ok"] is False
    assert failed["status"] is None
    assert failed["headers"] == []
    assert failed["error"] == {"kind": "connect", "message": f"{refused}: connection refused"}
    assert bad["url"] is None
    assert bad["error"] == {
        "kind": "input",
        "message": "unsupported scheme 'ftp' (use http or https)",
    }
    assert set(ok["timing"]) == {"dns", "connect", "tls", "ttfb", "total"}


def test_json_flag_is_format_jsonl(target: str) -> None:
    [record] = records(invoke(["--json", target]))
    assert set(record) == set(RECORD_KEYS)
    assert record["status"] == 200


def test_pretty_prints_a_readable_block_per_target(target: str, refused: str) -> None:
    result = invoke(["--format", "pretty", "--order", "input", target, refused])
    assert result.exit_code == 1
    ok_block, failed_block = (block.splitlines() for block in result.stdout.split("\n\n")[:2])
    assert ok_block[0].startswith(f"{target}  200 OK  HTTP/1.1  127.0.0.1  ")
    assert ok_block[0].endswith(" ms")
    assert ok_block[1:4] == [  # names aligned in a column, values after them
        "  Server:      scripted",
        "  Set-Cookie:  a=1",
        "  Set-Cookie:  b=2",
    ]
    assert failed_block[0].startswith(f"{refused}  127.0.0.1  ")
    assert f"  ✗ connect: {refused}: connection refused" in failed_block
    assert "\x1b[" not in result.stdout  # no colour codes when stdout is not a terminal


def test_the_summary_goes_to_stderr_when_forced_and_quiet_silences_it(
    target: str, refused: str
) -> None:
    result = invoke(["--progress", target, refused])
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 5  # stdout holds only the results
    assert "2 targets, 1 ok, 1 failed (connect 1); 200 x1; " in result.stderr
    quiet = invoke(["--progress", "-q", target, refused])
    assert quiet.stderr == ""


# --- inputs ----------------------------------------------------------------------------------------


def test_targets_are_read_from_stdin_when_none_are_given(target: str) -> None:
    result = invoke(["--json"], input=f"# my hosts\n\n{target}\n  {target}/x  \n")
    assert result.exit_code == 0
    assert sorted(r["url"] for r in records(result)) == [f"http://{target}/", f"http://{target}/x"]


def test_empty_stdin_is_an_empty_successful_run() -> None:
    result = invoke(["--json"], input="# nothing to do\n\n")
    assert result.exit_code == 0
    assert result.stdout == ""


def test_a_host_file_with_comments_blank_lines_and_a_bad_line(target: str, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_bytes(
        b"\xef\xbb\xbf# production\r\n"
        + f"{target}\r\n".encode()
        + b"\r\n"
        + b"   # indented comment\n"
        + b"exa mple.com\n"
        + f"http://{target}/health  # behind the balancer\n".encode()
        + f"http://{target}/app#fragment\n".encode()
    )
    result = invoke(["--json", "--order", "input", "-i", str(hosts)])
    assert result.exit_code == 1
    first, bad, last, fragment = records(result)
    assert first["url"] == f"http://{target}/"
    assert bad["target"] == "exa mple.com"
    assert bad["error"] == {
        "kind": "input",
        "message": f"{hosts}:5: control or space character ' ' in target",
    }
    assert last["url"] == f"http://{target}/health"
    assert last["ok"] is True
    assert (fragment["url"], fragment["ok"]) == (f"http://{target}/app", True)


def test_several_inputs_are_read_in_order(target: str, tmp_path: Path) -> None:
    one = tmp_path / "one.txt"
    two = tmp_path / "two.txt"
    one.write_text(f"{target}/one\n")
    two.write_text(f"{target}/two-a\n{target}/two-b")  # no final newline
    result = invoke(
        ["--json", "--order", "input", "-i", str(one), "-i", str(two), "-i", "-", f"{target}/arg"],
        input=f"{target}/stdin\n",
    )
    assert result.exit_code == 0
    assert [r["url"] for r in records(result)] == [
        f"http://{target}/arg",
        f"http://{target}/one",
        f"http://{target}/two-a",
        f"http://{target}/two-b",
        f"http://{target}/stdin",
    ]


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/mem fails to read on Linux only")
def test_an_input_that_fails_to_read_is_a_record_and_the_run_goes_on(target: str) -> None:
    result = invoke(["--json", "--order", "input", "-i", "/proc/self/mem", target])
    assert result.exit_code == 1
    fetched, unreadable = records(result)  # arguments come before -i files
    assert unreadable["target"] == "/proc/self/mem"
    assert unreadable["error"] == {
        "kind": "input",
        "message": "cannot read /proc/self/mem: Input/output error",
    }
    assert fetched["ok"] is True
    assert result.stderr == ""  # not an internal error


def test_order_input_holds_fast_results_until_their_turn(threaded_server: StartServer) -> None:
    delays = [0.4, 0.0, 0.2, 0.0]
    targets = [f"127.0.0.1:{threaded_server(reply(HEAD, delay=d)).port}" for d in delays]
    in_order = invoke(["--json", "--order", "input", *targets])
    assert [r["target"] for r in records(in_order)] == targets
    as_done = invoke(["--json", *targets])
    assert sorted(r["target"] for r in records(as_done)) == sorted(targets)
    assert records(as_done)[-1]["target"] == targets[0]  # the slowest prints last


# --- request options ------------------------------------------------------------------------------


def test_request_options_reach_the_server(threaded_server: StartServer) -> None:
    server = threaded_server(reply(HEAD))
    result = invoke(
        [
            "-X",
            "head",
            "-A",
            "probe/1",
            "-H",
            "Accept-Language: zh",
            "-H",
            "Accept:",
            f"127.0.0.1:{server.port}/p",
        ]
    )
    assert result.exit_code == 0
    assert server.requests == [
        f"HEAD /p HTTP/1.0\r\nHost: 127.0.0.1:{server.port}\r\n".encode()
        + b"User-Agent: probe/1\r\nConnection: close\r\nAccept-Language: zh\r\n\r\n"
    ]


def test_https_with_cacert_and_insecure(
    threaded_server: StartServer, server_ssl_context: ssl.SSLContext, ca_file: Path
) -> None:
    server = threaded_server(reply(HEAD), ssl_context=server_ssl_context)
    url = f"https://localhost:{server.port}/"
    [trusted] = records(invoke(["--json", "--cacert", str(ca_file), url]))
    assert trusted["ok"] is True
    assert trusted["tls"]["san"] == ["localhost", "127.0.0.1", "::1"]
    untrusted = invoke(["--json", url])
    assert untrusted.exit_code == 1
    assert records(untrusted)[0]["error"]["kind"] == "tls"
    assert invoke(["--json", "-k", url]).exit_code == 0
    bare = invoke(["--json", "--scheme", "https", "-k", f"localhost:{server.port}"])
    assert records(bare)[0]["url"] == url


# --- exit codes and usage errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "0", "example.com"], "Invalid value for '-c' / '--concurrency'"),
        (["-t", "-1", "example.com"], "Invalid value for '-t' / '--timeout'"),
        (["-t", "0", "example.com"], "must be a finite number greater than 0"),
        (["-t", "nan", "example.com"], "must be a finite number greater than 0"),
        (["-t", "inf", "example.com"], "must be a finite number greater than 0"),
        (["--connect-timeout", "nan", "example.com"], "must be a finite number greater than 0"),
        (["--connect-timeout", "-1", "example.com"], "must be a finite number greater than 0"),
        (["--rate", "inf", "example.com"], "must be a finite number greater than 0"),
        (["--format", "xml", "example.com"], "Invalid value for '--format'"),
        (["-H", "X-A: 1\r\nX-B: 2", "example.com"], "Invalid value for '-H' / '--header'"),
        (["-H", "no colon", "example.com"], "header must be 'Name: value'"),
        (["-H", "a b: 1", "example.com"], "header 'a ***' has an invalid name: before the ':'"),
        (["-H", ": 1", "example.com"], "header must be 'Name: value', got ': ***'"),
        (["-A", "ua\nInjected: 1", "example.com"], "Invalid value for '-A' / '--user-agent'"),
        (["--cacert", "/no/such/ca.pem", "example.com"], "does not exist"),
        (["-i", "/no/such/hosts.txt"], "cannot read /no/such/hosts.txt: No such file or"),
        (["-i", "/"], "Invalid value for -i/--input: cannot read /: Is a directory"),
        (["--no-such-option"], "--no-such-option"),
        (["--json", "--format", "plain", "example.com"], "contradicts --format plain"),
        (["--format", "pretty", "--json", "example.com"], "contradicts --format pretty"),
    ],
)
def test_usage_errors_exit_2_with_clicks_message(args: list[str], message: str) -> None:
    result = invoke(args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Usage: fetchheads [OPTIONS] [TARGET]..." in result.stderr
    assert "Try 'fetchheads --help' for help." in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"127.0.0.1\n", "holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)"),
        (b"", "holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)"),
        (b"\x30\x82\x01\x0a" + bytes(266), "holds no PEM certificate: it looks like DER"),
        (
            b"-----BEGIN CERTIFICATE-----\nabc!!\n-----END CERTIFICATE-----\n",
            "holds a PEM certificate that cannot be read",
        ),
    ],
    ids=["text", "empty", "der", "damaged-pem"],
)
def test_a_cacert_that_is_no_pem_certificate_is_one_clear_line_and_exit_2(
    tmp_path: Path, target: str, content: bytes, says: str
) -> None:
    cacert = tmp_path / "ca.crt"
    cacert.write_bytes(content)
    result = invoke(["--cacert", str(cacert), target])
    assert (result.exit_code, result.stdout) == (2, "")
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"Error: Invalid value for --cacert: {cacert} {says}")
    assert "_ssl.c" not in result.stderr
    assert "[X509" not in result.stderr


def test_a_der_cacert_is_told_how_to_convert_it(tmp_path: Path, target: str, ca_file: Path) -> None:
    der = tmp_path / "ca.der"
    der.write_bytes(ssl.PEM_cert_to_DER_cert(ca_file.read_text()))
    result = invoke(["--cacert", str(der), target])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: Invalid value for --cacert: {der} holds no PEM certificate: it looks like DER; "
        f"convert it with 'openssl x509 -inform der -in {der} -out ca.pem'"
    )


@pytest.mark.parametrize("password", [None, b"secret"])
def test_a_pkcs12_cacert_is_told_apart_from_der_and_how_to_convert_it(
    tmp_path: Path, target: str, ca_file: Path, password: bytes | None
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    certificate = x509.load_pem_x509_certificate(ca_file.read_bytes())
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    bundle = tmp_path / "ca.p12"
    bundle.write_bytes(
        pkcs12.serialize_key_and_certificates(b"ca", None, certificate, None, encryption)
    )
    result = invoke(["--cacert", str(bundle), target])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == (
        f"Error: Invalid value for --cacert: {bundle} holds no PEM certificate: it is a PKCS#12 "
        f"bundle; take its certificates out with 'openssl pkcs12 -in {bundle} -nokeys -out "
        "ca.pem'"
    )


def test_json_agrees_with_format_jsonl_and_overrides_the_environment(target: str) -> None:
    for args, env in (
        (["--json", "--format", "jsonl"], None),
        (["--json"], {"FETCHHEADS_FORMAT": "plain"}),
    ):
        result = invoke([*args, target], env=env)
        assert result.exit_code == 0
        assert records(result)[0]["status"] == 200
    plain = invoke(["--format", "plain", target], env={"FETCHHEADS_JSON": "1"})
    assert plain.exit_code == 0
    assert plain.stdout.startswith(f"{target} header > HTTP/1.1 200 OK\n")


def test_a_bug_inside_the_run_is_one_line_naming_the_exception(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug in the fetcher")

    # The run fetches through FetchContext.fetch (fetch_one, bound).
    monkeypatch.setattr(fetchheads.fetch.one.FetchContext, "fetch", broken)
    monkeypatch.setattr(sys, "argv", ["fetchheads", "--loop", "asyncio", target])
    monkeypatch.delenv("FETCHHEADS_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit:
        fetchheads.cli.main()
    assert exit.value.code == 1
    assert capsys.readouterr().err == (
        "fetchheads: internal error: ZeroDivisionError: a bug in the fetcher "
        "(FETCHHEADS_DEBUG=1 shows the traceback)\n"
    )


def test_no_targets_on_a_terminal_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, [], obj=Environment(stdin_isatty=True))
    assert result.exit_code == 2
    assert "no targets" in result.stderr
    assert "fetchheads www.example.com" in result.stderr


def test_exit_0_only_when_every_target_answered(target: str, refused: str) -> None:
    assert invoke([target, target]).exit_code == 0
    assert invoke([target, refused]).exit_code == 1
    assert invoke([target, "exa mple"]).exit_code == 1  # an input error counts as a failure


def test_options_can_come_from_the_environment(threaded_server: StartServer) -> None:
    server = threaded_server(reply(HEAD))
    env = {"FETCHHEADS_FORMAT": "jsonl", "FETCHHEADS_HEADER": "X-A: 1\nX-B: two words"}
    result = invoke([f"127.0.0.1:{server.port}"], env=env)
    assert records(result)[0]["status"] == 200
    assert server.requests[0].endswith(b"X-A: 1\r\nX-B: two words\r\n\r\n")


# --- version and help -------------------------------------------------------------------------


def test_version() -> None:
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"fetchheads, version {__version__}\n"


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_lists_the_options_and_ends_with_examples(flag: str) -> None:
    result = invoke([flag])
    assert result.exit_code == 0
    text = result.stdout
    assert text.startswith("Usage: fetchheads [OPTIONS] [TARGET]...")
    for option in ("--input", "--concurrency", "--timeout", "--format", "--json", "--order"):
        assert option in text
    assert "-X, --method [GET|HEAD]" in text  # as they are sent, not click's lower case
    before, examples = text.rstrip().rsplit("Examples:", 1)
    # The other commands are named just above the examples, indented like them.
    assert "\n  Other commands: audit, db, diff, history, prune " in before
    assert "prune (see 'fetchheads COMMAND --help')." in " ".join(before.split())
    assert "fetchheads www.sina.com.cn www.sohu.com" in examples
    assert "fetchheads --json" in examples


@pytest.mark.parametrize("command", ["fetch", "history", "diff", "prune", "audit"])
def test_every_option_help_is_sentences_and_every_metavar_plain(command: str) -> None:
    # One voice in --help: each option's text ends with a full stop (before click's "[default:
    # ...]"), or with an example to copy; no click type names such as 'INTEGER RANGE'.
    for param in cli.commands[command].params:
        if not isinstance(param, click.Option) or param.help is None:
            continue
        text = param.help.split("  [default:")[0]
        example = re.search(r"(E\.g\.|Example:) --[\w-]+ \S+$", text)
        assert text.endswith(".") or example, param.opts
    out = invoke([command, "--help"]).stdout
    assert "INTEGER" not in out
    assert "RANGE" not in out


def test_python_dash_m_runs_the_cli() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "fetchheads", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"fetchheads, version {__version__}\n"


CONFIG_FIELDS = frozenset(field.name for field in dataclasses.fields(Config))


def test_every_config_field_is_set_by_some_option(tmp_path: Path) -> None:
    # make_config is the one place options become a Config: a field no option reaches (or an
    # option that never reaches its field) would keep the default here.
    cacert = tmp_path / "ca.pem"
    cacert.write_text("")
    args = [
        *("-c", "7", "-t", "3", "--connect-timeout", "1", "-X", "HEAD", "-H", "X-A: 1"),
        *("-A", "ua/1", "--scheme", "https", "-k", "--cacert", str(cacert), "--order", "input"),
        *("--loop", "asyncio", "-L", "--max-redirs", "3", "--proxy", "http://127.0.0.1:3128"),
        *("--connect-to", "a:80:b:81", "--retries", "2", "--rate", "5", "--shard", "1/2", "-4"),
        *("--dns-servers", "127.0.0.1", "--resolve", "a:80:127.0.0.1", "--unique", "example.com"),
    ]
    params = cli.commands["fetch"].make_context("fetch", args).params
    # As the command does: the options named after a Config field go to make_config whole.
    fields = {name: params[name] for name in CONFIG_FIELDS - {"concurrency"} if name in params}
    config = make_config(
        fields, concurrency=params["concurrency"], proxy=params["proxy"], noproxy=params["noproxy"]
    )
    default = Config()
    unset = [
        field.name
        for field in dataclasses.fields(Config)
        if getattr(config, field.name) == getattr(default, field.name)
    ]
    assert unset == []


def test_an_unsupported_method_is_named_against_the_choices_as_sent() -> None:
    result = CliRunner().invoke(cli, ["-X", "POST", "127.0.0.1"])
    assert result.exit_code == 2
    assert "'POST' is not one of GET, HEAD." in result.output
    assert CliRunner().invoke(cli, ["-X", "head", "--help"]).exit_code == 0


@pytest.mark.parametrize("command", ["history", "diff", "prune", "db", "audit"])
def test_a_command_after_options_is_a_usage_error_not_a_host(command: str, tmp_path: Path) -> None:
    """``fetchheads --db heads.db history HOST`` read 'history' as a target and asked the
    system resolver for it: a usage error that says where commands go."""
    db = tmp_path / "heads.db"
    result = CliRunner().invoke(cli, ["--db", str(db), command, "127.0.0.1:1"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: {command!r} is a command, and a command comes first: 'fetchheads {command} "
        f"[OPTIONS] ...' (to fetch a host named {command}: 'fetchheads fetch {command}')"
    )
    assert not db.exists()
