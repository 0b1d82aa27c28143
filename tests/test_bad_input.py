"""Bad input lines through the CLI: each becomes one ``input`` record naming its file and line, the
valid lines around it are still fetched, nothing of it reaches a server, and the run exits 1."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fetchheads.cli import cli
from fetchheads.config import Config
from fetchheads.errors import InputError
from fetchheads.http.request import build_request
from fetchheads.targets import (
    MAX_LINE_CHARS,
    OVERLONG_SHOWN,
    LineSplitter,
    OverlongLine,
    parse_target,
    without_comment,
)
from tests.support.servers import ThreadedServer, reply

HEAD = b"HTTP/1.1 200 OK\r\nServer: good\r\n\r\n"

# (line bytes, a fragment of the message); each is placed between two valid lines.
BAD_LINES: dict[str, tuple[bytes, str]] = {
    "a 1 MB line": (b"x" * 1_000_000, f"line longer than {MAX_LINE_CHARS} bytes"),
    "binary garbage": (b"\x00\xff\xfe\x1b[2J\x9b\x01", "control or space character '\\x00'"),
    "invalid UTF-8 in the host": (b"caf\xe9.example", "byte 0xE9 in target is not UTF-8"),
    "invalid UTF-8 in the path": (b"127.0.0.1/caf\xe9", "byte 0xE9 in target is not UTF-8"),
    "scheme without a host": (b"http://", "no host in target"),
    "port out of range": (b"host:99999", "port 99999 out of range (1-65535)"),
    "unclosed IPv6 bracket": (b"[::1", "unclosed '[' in IPv6 address"),
    "a 300-character label": (b"a" * 300 + b".example", "host label longer than 63 characters"),
    "a path with a space": (b"http://127.0.0.1/a b", "control or space character ' '"),
    "a path with CR (header injection)": (
        b"http://127.0.0.1/a\rX-Injected: 1",
        "control or space character '\\r'",
    ),
    "a zero-width space in the host": ("ex\u200bample.com".encode(), "invisible character U+200B"),
    "an unsupported scheme": (b"ftp://example.com", "unsupported scheme 'ftp'"),
}


def run_lines(
    lines: list[bytes], tmp_path: Path, *, stdin: bool = False
) -> tuple[int, list[dict[str, Any]]]:
    data = b"".join(line + b"\n" for line in lines)
    if stdin:
        outcome = CliRunner().invoke(cli, ["--json", "--order", "input", "-t", "5"], input=data)
    else:
        hosts = tmp_path / "hosts.txt"
        hosts.write_bytes(data)
        outcome = CliRunner().invoke(
            cli, ["--json", "--order", "input", "-t", "5", "-i", str(hosts)]
        )
    return outcome.exit_code, [json.loads(line) for line in outcome.output.splitlines()]


@pytest.mark.parametrize("name", BAD_LINES)
def test_a_bad_line_is_an_input_record_between_fetched_ones(
    name: str, tmp_path: Path, threaded_server: Callable[..., ThreadedServer]
) -> None:
    server = threaded_server(reply(HEAD))
    good = f"127.0.0.1:{server.port}".encode()
    bad, message = BAD_LINES[name]
    exit_code, records = run_lines([b"# hosts", good, bad, good], tmp_path)
    assert exit_code == 1
    assert [r["ok"] for r in records] == [True, False, True]
    assert records[1]["error"] == {
        "kind": "input",
        "message": records[1]["error"]["message"],
    }
    assert records[1]["error"]["message"].startswith(f"{tmp_path / 'hosts.txt'}:3: ")
    assert message in records[1]["error"]["message"]
    assert records[1]["url"] is None
    assert len(records[1]["target"]) <= 201, "a huge line is echoed whole"
    if name == "a 1 MB line":
        # Its start shows no host that has begun: it may be a token before an @ that was cut.
        assert records[1]["target"] == "***…"
    assert len(server.requests) == 2, "the bad line reached the server"


def test_every_bad_form_in_one_file_keeps_its_own_line_number(
    tmp_path: Path, threaded_server: Callable[..., ThreadedServer]
) -> None:
    server = threaded_server(reply(HEAD))
    good = f"127.0.0.1:{server.port}".encode()
    lines = [good]
    for bad, _message in BAD_LINES.values():
        lines += [bad, good]
    exit_code, records = run_lines(lines, tmp_path)
    assert exit_code == 1
    assert len(records) == len(lines)
    for number, (record, line) in enumerate(zip(records, lines, strict=True), start=1):
        if line == good:
            assert record["ok"] is True, record
        else:
            assert record["error"]["kind"] == "input"
            assert record["error"]["message"].startswith(f"{tmp_path / 'hosts.txt'}:{number}: ")
    assert len(server.requests) == len(BAD_LINES) + 1


def test_bad_lines_on_stdin_are_numbered_as_stdin(
    tmp_path: Path, threaded_server: Callable[..., ThreadedServer]
) -> None:
    server = threaded_server(reply(HEAD))
    good = f"127.0.0.1:{server.port}".encode()
    exit_code, records = run_lines([good, b"[::1", b"", b"host:99999", good], tmp_path, stdin=True)
    assert exit_code == 1
    assert [r["error"]["message"] if r["error"] else "ok" for r in records] == [
        "ok",
        "stdin:2: unclosed '[' in IPv6 address",
        "stdin:4: port 99999 out of range (1-65535)",
        "ok",
    ]


def test_an_endless_last_line_without_newline_is_bounded(
    tmp_path: Path, threaded_server: Callable[..., ThreadedServer]
) -> None:
    server = threaded_server(reply(HEAD))
    hosts = tmp_path / "hosts.txt"
    hosts.write_bytes(f"127.0.0.1:{server.port}\n".encode() + b"example.com/" + b"y" * 3_000_000)
    outcome = CliRunner().invoke(cli, ["--json", "--order", "input", "-i", str(hosts)])
    assert outcome.exit_code == 1
    records = [json.loads(line) for line in outcome.output.splitlines()]
    assert records[0]["ok"] is True
    assert records[1]["error"]["message"] == f"{hosts}:2: line longer than {MAX_LINE_CHARS} bytes"
    shown = "example.com/" + "y" * (OVERLONG_SHOWN - len("example.com/"))
    assert records[1]["target"] == shown + "…"  # which line it was


def test_bad_arguments_are_input_records_too(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    server = threaded_server(reply(HEAD))
    good = f"127.0.0.1:{server.port}"
    outcome = CliRunner().invoke(
        cli, ["--format", "plain", "--order", "input", good, "http://", "a\r\nHost: evil"]
    )
    assert outcome.exit_code == 1
    assert outcome.output.splitlines()[2:] == [
        "http:// error > input: no host in target",
        "'a\\x0d\\x0aHost: evil' error > input: control or space character '\\r' in target",
    ]
    assert len(server.requests) == 1


# --- no input can inject into our own request ---------------------------------------------------

target_text = st.text(
    st.characters(codec="utf-8") | st.sampled_from(list(":/[]?#@%. \r\n\t\x00\x85\u202e\u200b")),
    max_size=40,
) | st.builds(
    lambda scheme, host, path: scheme + host + path,
    st.sampled_from(["", "http://", "https://"]),
    st.sampled_from(["example.com", "127.0.0.1:8080", "[::1]:80", "bücher.example"]),
    st.text(max_size=20),
)
REQUEST_LINE = re.compile(rb"GET /[\x21-\x7e]* HTTP/1\.0")
HOST_LINE = re.compile(rb"Host: [\x21-\x7e]+")


@settings(max_examples=200, deadline=None)
@given(target_text)
def test_any_text_is_refused_or_becomes_a_clean_request(text: str) -> None:
    """Whatever a host file holds, the request we send has one request line and one Host line
    of visible ASCII: no CR, LF, space or control byte from the input reaches the wire."""
    try:
        target = parse_target(text)
    except InputError:
        return
    request = build_request(target, Config())
    head, _, rest = request.partition(b"\r\n\r\n")
    assert rest == b""
    lines = head.split(b"\r\n")
    assert REQUEST_LINE.fullmatch(lines[0]), lines[0]
    assert HOST_LINE.fullmatch(lines[1]), lines[1]
    assert all(b"\n" not in line and b"\r" not in line for line in lines)


# --- the line splitter: bounded, and blind to how the bytes were cut ---------------------------

line_bytes = st.one_of(
    st.binary(max_size=30).map(lambda raw: raw.replace(b"\n", b"")),
    st.integers(min_value=MAX_LINE_CHARS - 5, max_value=MAX_LINE_CHARS * 3).map(
        lambda size: b"\xef\xbb\xbf" + b"z" * size  # around the limit, BOM included
    ),
)


def split_lines(data: bytes, cuts: list[int]) -> list[tuple[int, str | OverlongLine]]:
    splitter = LineSplitter()
    edges = sorted({min(cut, len(data)) for cut in cuts})
    out = []
    for begin, end in zip([0, *edges], [*edges, len(data)], strict=True):
        out += splitter.feed(data[begin:end]) if end > begin else []
    return out + splitter.feed(b"")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(line_bytes, max_size=6),
    st.sampled_from([b"\n", b"\r\n"]),
    st.booleans(),
    st.lists(st.integers(min_value=0, max_value=MAX_LINE_CHARS * 20), max_size=8),
)
@example(lines=[b"\x00\t#", b"h:80 # staging"], eol=b"\n", final_eol=False, cuts=[])
def test_lines_are_the_same_however_the_input_is_cut(
    lines: list[bytes], eol: bytes, final_eol: bool, cuts: list[int]
) -> None:
    data = eol.join(lines) + (eol if final_eol and lines else b"")
    whole = split_lines(data, [])
    assert split_lines(data, cuts) == whole
    assert [number for number, _ in whole] == list(range(1, len(whole) + 1))
    for index, ((_, line), raw) in enumerate(zip(whole, lines, strict=False)):
        terminated = index < len(lines) - 1 or final_eol
        if index == 0:  # a BOM is dropped at the start of the input only
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        # The limit is the line's own bytes: neither that BOM nor a CR ending the line counts.
        own = raw if terminated and eol == b"\r\n" else raw.removesuffix(b"\r")
        if len(own) > MAX_LINE_CHARS:
            assert isinstance(line, OverlongLine)
            assert len(line.start) <= OVERLONG_SHOWN
        else:
            # An inline comment (whitespace, then '#') is cut, as in /etc/hosts; bytes that are
            # not UTF-8 are kept as surrogate escapes, for parse_target to refuse by name.
            assert line == without_comment(raw.decode("utf-8", "surrogateescape").strip())


def test_a_target_argument_that_is_not_utf8_is_an_input_record_and_the_run_goes_on(
    threaded_server: Callable[..., ThreadedServer],
) -> None:
    """Python keeps a byte of an argument that is not UTF-8 as a surrogate escape: the target
    is refused by name, shown with U+FFFD, and the next target is fetched."""
    server = threaded_server(reply(HEAD))
    good = f"127.0.0.1:{server.port}/"
    outcome = CliRunner().invoke(
        cli, ["--json", "--order", "input", "-t", "5", f"{good}caf\udce9", good]
    )
    assert outcome.exit_code == 1
    assert outcome.stderr == ""
    first, second = (json.loads(line) for line in outcome.stdout.splitlines())
    assert first["target"] == f"{good}caf\ufffd"
    assert first["error"] == {"kind": "input", "message": "byte 0xE9 in target is not UTF-8"}
    assert second["ok"] is True


def test_unique_passes_on_every_bad_line(tmp_path: Path) -> None:
    """Two bad lines that look alike once their passwords are masked are two errors."""
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("http://u:one@127.0.0.1:99999/\nhttp://u:two@127.0.0.1:99999/\n")
    outcome = CliRunner().invoke(cli, ["--json", "--unique", "-i", str(hosts)])
    records = [json.loads(line) for line in outcome.stdout.splitlines()]
    assert [r["error"]["message"].split(":")[1] for r in records] == ["1", "2"]
    assert all(r["target"] == "http://u:***@127.0.0.1:99999/" for r in records)


def test_an_input_file_whose_name_is_not_utf8_still_gives_valid_json(tmp_path: Path) -> None:
    """Its name is in the message of a bad line: shown with U+FFFD, as a target is."""
    hosts = tmp_path / "hosts\udcff.txt"  # as Python names a file whose name is byte 0xFF
    hosts.write_bytes(b"127.0.0.1:99999\n")
    outcome = CliRunner().invoke(cli, ["--json", "-i", str(hosts)])
    record = json.loads(outcome.stdout_bytes.decode("utf-8"))  # strict: valid UTF-8
    assert "hosts\ufffd.txt:1: port 99999 out of range" in record["error"]["message"]


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--proxy", "http://u:s\udce9cret@127.0.0.1:9"], {}, "--proxy: invalid proxy"),
        ([], {"HTTPS_PROXY": "http://u:s\udce9cret@127.0.0.1:9"}, "HTTPS_PROXY: invalid proxy"),
        (["--db", "postgresql://u:s\udce9cret@127.0.0.1:9/x"], {}, "--db"),
        ([], {"FETCHHEADS_DB": "postgresql://u:s\udce9cret@127.0.0.1:9/x"}, "FETCHHEADS_DB"),
    ],
    ids=["proxy", "proxy-variable", "db", "db-variable"],
)
def test_a_password_byte_that_is_not_utf8_is_a_usage_error_without_the_password(
    threaded_server: Callable[..., ThreadedServer],
    args: list[str],
    env: dict[str, str],
    says: str,
) -> None:
    """A password that could not be sent is refused before the run, by name: not an internal
    error from deep in the request or libpq, and nothing of the password shown."""
    server = threaded_server(reply(HEAD))
    outcome = CliRunner().invoke(
        cli, [*args, "-q", f"https://127.0.0.1:{server.port}/"], env={"NO_PROXY": "", **env}
    )
    assert outcome.exit_code == 2, outcome.output
    last = outcome.stderr.splitlines()[-1]
    assert says in last
    assert "byte 0xE9 in it is not UTF-8" in last
    assert "cret" not in outcome.stderr
    assert server.requests == []


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--noproxy", "caf\udce9.test"], {}, "'--noproxy'"),
        ([], {"FETCHHEADS_NOPROXY": "caf\udce9.test"}, "FETCHHEADS_NOPROXY"),
    ],
    ids=["option", "variable"],
)
def test_a_noproxy_byte_that_is_not_utf8_is_a_usage_error(
    threaded_server: Callable[..., ThreadedServer],
    args: list[str],
    env: dict[str, str],
    says: str,
) -> None:
    """No host name can hold such a byte, so the entry could never match: refused by name, as
    every other option's text is, rather than silently sending the host through the proxy."""
    server = threaded_server(reply(HEAD))
    outcome = CliRunner().invoke(cli, [*args, "-q", f"127.0.0.1:{server.port}"], env=env)
    assert outcome.exit_code == 2, outcome.output
    last = outcome.stderr.splitlines()[-1]
    assert says in last
    assert "byte 0xE9 in it is not UTF-8" in last
    assert server.requests == []


@pytest.mark.parametrize(
    ("encoding", "says"),
    [
        ("utf-16", "UTF-16 (it starts with the byte-order mark FF FE)"),
        ("utf-16-be", "UTF-16 (it starts with the byte-order mark FE FF)"),
        ("utf-32", "UTF-32 (it starts with the byte-order mark FF FE 00 00)"),
        ("utf-32-be", "UTF-32 (it starts with the byte-order mark 00 00 FE FF)"),
    ],
)
def test_a_utf16_or_utf32_file_is_one_record_that_says_so(
    threaded_server: Callable[..., ThreadedServer], tmp_path: Path, encoding: str, says: str
) -> None:
    """Windows PowerShell 5's ``>`` writes UTF-16: one line saying what to do, not one garbled
    error per line, and nothing of it reaches a server. A UTF-32LE mark starts with UTF-16LE's."""
    server = threaded_server(reply(HEAD))
    hosts = tmp_path / "hosts.txt"
    lines = "".join(f"127.0.0.1:{server.port}/{n}\r\n" for n in range(3))
    mark = "\ufeff" if encoding.endswith("-be") else ""  # "utf-16" and "utf-32" write their own
    hosts.write_bytes((mark + lines).encode(encoding))
    outcome = CliRunner().invoke(
        cli, ["--json", "--order", "input", "-i", str(hosts), f"127.0.0.1:{server.port}/x"]
    )
    assert outcome.exit_code == 1
    records = [json.loads(line) for line in outcome.stdout.splitlines()]
    assert len(records) == 2
    assert records[0]["ok"] is True  # the argument is still fetched
    assert records[1]["error"] == {
        "kind": "input",
        "message": f"{hosts} is {says}: save it as UTF-8",
    }
    assert len(server.requests) == 1


class Trickle(io.BytesIO):
    """Standard input whose every read returns the next of ``chunks``, as a pipe may."""

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__()
        self._chunks = chunks

    def read1(self, size: int | None = -1) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""

    def read(self, size: int | None = -1) -> bytes:
        return b"" if size == 0 else self.read1()


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (
            [b"\xff", b"\xfe1\x002\x007\x00\n\x00"],
            "stdin is UTF-16 (it starts with the byte-order mark FF FE): save it as UTF-8",
        ),
        (
            [b"\xff\xfe", b"\x00", b"\x00", "127.0.0.1:9\n".encode("utf-32-le")],
            "stdin is UTF-32 (it starts with the byte-order mark FF FE 00 00): save it as UTF-8",
        ),
        ([b"\xff"], "stdin:1: byte 0xFF in target is not UTF-8"),  # a lone FF is a line
    ],
    ids=["utf-16", "utf-32", "no mark"],
)
def test_a_byte_order_mark_is_found_however_the_reads_cut_it(
    chunks: list[bytes], message: str
) -> None:
    outcome = CliRunner().invoke(cli, ["--json", "-i", "-"], input=Trickle(chunks))
    assert outcome.exit_code == 1
    [record] = [json.loads(line) for line in outcome.stdout.splitlines()]
    assert record["error"] == {"kind": "input", "message": message}


ARGUMENT_BYTES: dict[str, tuple[list[str], dict[str, str], str]] = {
    # id: (arguments, environment, the last line of stderr); "\udce9" is how Python keeps the
    # argument byte 0xE9 (not UTF-8), "\ufffd" how a message shows it where it shows the text.
    "resolve": (
        ["--resolve", "b\udce9.test:80:127.0.0.1"],
        {},
        "Error: Invalid value for '--resolve': byte 0xE9 in it is not UTF-8",
    ),
    "header value": (
        ["-H", "X-Plain: caf\udce9"],
        {},
        "Error: Invalid value for '-H' / '--header': header 'X-Plain' has byte 0xE9 in its value, "
        "which is not UTF-8",
    ),
    "header name": (
        ["-H", "X-Caf\udce9: v"],
        {},
        "Error: Invalid value for '-H' / '--header': header 'X-Caf\ufffd' has byte 0xE9 in its "
        "name, which is not UTF-8",
    ),
    "dns-servers": (
        ["--dns-servers", "127.0.0.\udce9"],
        {},
        "Error: Invalid value for '--dns-servers': byte 0xE9 in it is not UTF-8",
    ),
    "ignore-header": (
        ["--ignore-header", "X-\udce9"],
        {},
        "Error: Invalid value for '--ignore-header': byte 0xE9 in it is not UTF-8",
    ),
    "has-header": (
        ["--has-header", "X-\udce9"],
        {},
        "Error: Invalid value for '--has-header': byte 0xE9 in it is not UTF-8",
    ),
    "fail-under": (
        ["--fail-under", "\udce9"],
        {},
        "Error: Invalid value for '--fail-under': byte 0xE9 in it is not UTF-8",
    ),
    "write-out variable": (
        ["-w", "%{x\udce9}"],
        {},
        "Error: Invalid value for -w/--write-out: byte 0xE9 in write-out variable %{x\ufffd} is "
        "not UTF-8",
    ),
    "fields variable": (
        [],
        {"FETCHHEADS_FIELDS": "status,header:X-\udce9"},
        "Error: Invalid value for FETCHHEADS_FIELDS (--fields): byte 0xE9 in it is not UTF-8",
    ),
    "flag variable": (
        [],
        {"FETCHHEADS_JSON": "\udce9"},
        "Error: Invalid value for FETCHHEADS_JSON (--json): byte 0xE9 in it is not UTF-8",
    ),
    "number": (
        ["-c", "1\udce9"],
        {},
        "Error: Invalid value for '-c' / '--concurrency': byte 0xE9 in it is not UTF-8",
    ),
}


@pytest.mark.parametrize(("args", "env", "says"), ARGUMENT_BYTES.values(), ids=ARGUMENT_BYTES)
def test_an_option_byte_that_is_not_utf8_is_named_as_a_byte(
    args: list[str], env: dict[str, str], says: str
) -> None:
    """Not Python's surrogate notation (``'b\\udce9.test'``), nor a complaint that the text is not
    a grade, a server or a header name: the byte, as a target's is named."""
    outcome = CliRunner().invoke(cli, [*args, "127.0.0.1:9"], env=env)
    assert outcome.exit_code == 2
    assert outcome.stderr.splitlines()[-1] == says


@pytest.mark.parametrize(
    "name", ["header name", "dns-servers", "ignore-header", "has-header", "fail-under"]
)
def test_a_real_argument_byte_is_named_in_a_line_of_utf8(name: str) -> None:
    """The same through a real process given the byte itself (no shell, no locale guessing)."""
    args, _env, says = ARGUMENT_BYTES[name]
    argv = [arg.encode("utf-8", "surrogateescape") for arg in args]
    done = subprocess.run(
        [sys.executable.encode(), b"-m", b"fetchheads", *argv, b"127.0.0.1:9"],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.decode("utf-8").splitlines()[-1] == says  # strict: valid UTF-8


def test_a_file_name_byte_in_a_message_is_shown_as_a_replacement_character(
    tmp_path: Path,
) -> None:
    """A file may be named with such a byte: the message about it shows U+FFFD there."""
    missing = tmp_path / "gone\udce9" / "out.jsonl"
    outcome = CliRunner().invoke(cli, ["-o", str(missing), "127.0.0.1:9"])
    assert outcome.exit_code == 2
    assert outcome.stderr.splitlines()[-1] == (
        f"Error: Invalid value for -o/--output: cannot write {tmp_path}/gone\ufffd/out.jsonl: "
        "No such file or directory"
    )


# Options whose text may hold the byte: a file name may, -w's literal text is printed as given,
# and a --noproxy name that cannot match any host is not an error. -H names it with the header.
_MAY_HOLD_THE_BYTE = {"inputs", "output", "cacert", "db", "write_out", "noproxy", "headers"}


@pytest.mark.parametrize(
    "option",
    [p for p in cli.commands["fetch"].params if isinstance(p, click.Option) and p.expose_value],
    ids=lambda option: option.opts[-1],
)
def test_no_option_or_variable_shows_python_notation_for_a_byte(
    option: click.Option, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every option of the fetch command, given the byte on the command line (or, for a flag,
    in its variable): the message names the byte, or shows the text with U+FFFD."""
    monkeypatch.chdir(tmp_path)  # -o and --db may create a file of that name
    given = "1\udce9"
    if option.is_flag or option.count:
        assert isinstance(option.envvar, str)
        args, env = [], {option.envvar: given}
    else:
        args, env = [option.opts[-1], given], {}
    outcome = CliRunner().invoke(cli, [*args, "127.0.0.1:9"], env=env)
    assert not isinstance(outcome.exception, Exception), outcome.exception
    assert "\\udc" not in outcome.stderr
    if option.name not in _MAY_HOLD_THE_BYTE:
        assert outcome.exit_code == 2
        assert re.search(r" byte 0xE9 in .*not UTF-8$", outcome.stderr.splitlines()[-1])
