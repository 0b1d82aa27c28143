"""No output mode lets a server write to the terminal: its control bytes are shown escaped, rich
markup in its text prints literally, and JSON keeps its exact text, correctly escaped.

pretty is rendered to a forced-terminal rich Console, so the only escape sequences allowed in the
output are rich's own SGR styles; everything else the server sent must appear as visible text.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from fetchheads.cli import cli
from fetchheads.errors import ErrorKind
from fetchheads.http.parse import HeadParser
from fetchheads.models import ErrorInfo, Redirect, ResponseHead, Result, TLSInfo
from fetchheads.render.jsonl import format_jsonl
from fetchheads.render.plain import format_plain
from fetchheads.render.pretty import render_result
from fetchheads.render.safe import _TERMINAL_TABLE, terminal_safe
from tests.support.servers import ThreadedServer, read_request_head, reply

SGR = re.compile(r"\x1b\[[0-9;]*m")
"""rich's own styles: Select Graphic Rendition, nothing else."""
FORBIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)
"""C0 except tab and LF (our own line ends), DEL, C1, bidi controls, Unicode line separators."""

EVIL = (
    "\x1b]52;c;SGVsbG8=\x07"  # OSC 52: write the clipboard
    "\x1b[2J\x1b[H"  # clear the screen, home the cursor
    "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # OSC 8 hyperlink
    "\x9b31m"  # C1 CSI
    "\x85"  # C1 NEL
    "\x7f\x08\x0d\x0b\x0c"  # DEL, backspace, CR, VT, FF
    "\u202eevil\u202c\u2066x\u2069\u200f"  # bidi overrides, isolates, marks
    "\u2028"  # line separator
)
MARKUP = "[bold red]x[/] [link=http://evil.example]y[/link] :smile: :warning:"


def hostile_result() -> Result:
    """Server-controlled text in every field that can carry it."""
    return Result(
        target="http://h\x1b[31m.example/",
        url="http://h.example/",
        head=ResponseHead(
            "HTTP/1.1",
            502,
            f"Bad {EVIL} {MARKUP}",
            (("X-Evil", EVIL), ("X-Markup", MARKUP), ("Tab", "a\tb")),
        ),
        error=ErrorInfo(ErrorKind.PROTOCOL, f"closed before the end of the head {EVIL}"),
        redirects=(Redirect("http://h.example/", 301, f"/next{EVIL}"),),
        tls=TLSInfo(
            version="TLSv1.3",
            cipher="TLS_AES_128_GCM_SHA256",
            subject=f"CN={EVIL}",
            issuer=f"O={MARKUP}",
            not_after="2030-01-01T00:00:00Z",
            days_left=1000,
            san=(f"a{EVIL}.example",),
        ),
    )


def render_pretty(result: Result) -> str:
    out = io.StringIO()
    console = Console(
        force_terminal=True,
        color_system="truecolor",
        file=out,
        width=400,
        highlight=False,
        markup=False,
        emoji=False,
    )
    console.print(render_result(result, waterfall=True))
    return out.getvalue()


def assert_terminal_safe(output: str) -> None:
    without_styles = SGR.sub("", output)
    assert "\x1b" not in without_styles, "an escape sequence that is not rich's SGR"
    found = FORBIDDEN.search(without_styles)
    assert found is None, f"control character {found.group()!r} reached the terminal"


def test_pretty_shows_control_bytes_escaped() -> None:
    output = render_pretty(hostile_result())
    assert "\x1b[" in output, "the console was not a terminal: the test would prove nothing"
    assert_terminal_safe(output)
    visible = SGR.sub("", output)
    assert terminal_safe(EVIL) in visible
    assert "\\x1b]52;c;SGVsbG8=\\x07" in visible
    assert "\\u202eevil\\u202c" in visible
    assert "\\x9b31m" in visible


def test_pretty_prints_markup_and_emoji_codes_literally() -> None:
    visible = SGR.sub("", render_pretty(hostile_result()))
    assert MARKUP in visible
    assert "[bold red]x[/]" in visible
    assert "😄" not in visible
    assert "⚠" not in visible


def test_plain_shows_control_bytes_escaped_and_markup_literally() -> None:
    output = format_plain(hostile_result())
    assert_terminal_safe(output)
    assert f"X-Evil: {terminal_safe(EVIL)}" in output
    assert f"X-Markup: {MARKUP}" in output
    assert "Tab: a\tb" in output  # tab is the one control kept
    assert output.count("\n") == len(output.splitlines())  # no line break from the server


def test_jsonl_keeps_the_exact_text_and_escapes_it() -> None:
    line = format_jsonl(hostile_result())
    assert_terminal_safe(line)
    assert line.endswith("\n")
    assert line.count("\n") == 1
    record = json.loads(line)
    assert record["headers"] == [["X-Evil", EVIL], ["X-Markup", MARKUP], ["Tab", "a\tb"]]
    assert record["reason"] == f"Bad {EVIL} {MARKUP}"
    assert record["error"]["message"].endswith(EVIL)


def test_terminal_safe_escapes_exactly_the_listed_characters() -> None:
    for code in [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x061C, 0x200E, 0x202E, 0x2069, 0x2028]:
        char = chr(code)
        if char == "\t":
            continue
        assert terminal_safe(char) != char, hex(code)
        assert FORBIDDEN.search(terminal_safe(char)) is None
    assert terminal_safe("\x1b") == "\\x1b"
    assert terminal_safe("\u202e") == "\\u202e"
    # Invisible, so a line holding one would look like another (a BOM mid-file, a zero-width
    # space in a header value): shown.
    assert terminal_safe("a\ufeffb\u200bc\u2060d") == "a\\ufeffb\\u200bc\\u2060d"
    kept = "tab\there, café, 日本, emoji 😄, [markup], backslash \\"
    assert terminal_safe(kept) == kept


@given(st.text())
def test_terminal_safe_leaves_text_alone_only_when_nothing_in_it_is_escaped(text: str) -> None:
    # terminal_safe skips its translation for printable text: that must never skip an escape.
    assert terminal_safe(text) == text.translate(_TERMINAL_TABLE)
    assert all(not chr(code).isprintable() for code in _TERMINAL_TABLE)


# --- any header bytes: decoded, never a crash, never a control on the terminal ------------------

header_value_bytes = st.binary(max_size=60).map(
    lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"")
)


@settings(max_examples=150, deadline=None)
@given(header_value_bytes, header_value_bytes)
def test_any_header_bytes_render_safely_in_every_format(value: bytes, reason: bytes) -> None:
    parser = HeadParser()
    head = parser.feed(b"HTTP/1.1 200 " + reason + b"\r\nX-Any: " + value + b"\r\n\r\n")
    assert head is not None
    text = head.headers[0][1]
    # UTF-8 where the bytes are valid UTF-8, else Latin-1: the exact bytes are recoverable.
    try:
        assert text == value.strip(b" \t").decode("utf-8")
    except UnicodeDecodeError:
        assert text.encode("latin-1") == value.strip(b" \t")
    result = Result(target="t", url="http://t/", head=head)
    assert_terminal_safe(render_pretty(result))
    assert_terminal_safe(format_plain(result))
    line = format_jsonl(result)
    assert_terminal_safe(line)
    assert json.loads(line)["headers"] == [["X-Any", text]]


# --- end to end: the CLI against a hostile server, every format --------------------------------

HOSTILE_HEAD = (
    b"HTTP/1.1 200 \x1b[2JOK\r\n"
    b"X-Evil: \x1b]52;c;SGVsbG8=\x07\xc2\x9b31m\xe2\x80\xae\r\n"
    b"X-Markup: [bold red]x[/] :smile:\r\n"
    b"X-Latin: caf\xe9\r\n\r\n"
)


@pytest.mark.parametrize("output_format", ["pretty", "plain", "jsonl"])
def test_cli_output_carries_no_escape_from_the_server(
    output_format: str,
    threaded_server: Callable[..., ThreadedServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # pretty believes it writes to a colour terminal
    monkeypatch.delenv("NO_COLOR", raising=False)
    server = threaded_server(reply(HOSTILE_HEAD))
    outcome = CliRunner().invoke(
        cli, ["--format", output_format, "--no-progress", f"127.0.0.1:{server.port}"]
    )
    assert outcome.exit_code == 0, outcome.output
    output = outcome.output
    assert_terminal_safe(output)
    if output_format == "jsonl":
        record = json.loads(output)
        assert record["reason"] == "\x1b[2JOK"
        assert record["headers"] == [
            ["X-Evil", "\x1b]52;c;SGVsbG8=\x07\x9b31m\u202e"],
            ["X-Markup", "[bold red]x[/] :smile:"],
            ["X-Latin", "café"],
        ]
    else:
        visible = SGR.sub("", output)
        assert "\\x1b]52;c;SGVsbG8=\\x07\\x9b31m\\u202e" in visible
        assert "[bold red]x[/] :smile:" in visible
        assert "café" in visible
    if output_format == "pretty":
        assert "\x1b[" in output, "FORCE_COLOR did not make rich style its output"


def test_snapshots_history_diff_and_changes_show_server_text_escaped(
    threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    """Server text stored in the database is as hostile on its way back out."""
    answers = iter([b"\x1b]52;c;AAAA\x07one", b"\x1b[2J\xc2\x9b\xe2\x80\xaetwo"])

    async def changing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 \x1b[5mOK\r\nX-Evil: " + next(answers) + b"\r\n\r\n")
        await writer.drain()
        writer.close()

    server = threaded_server(changing)
    target = f"127.0.0.1:{server.port}"
    db = str(tmp_path / "heads.db")
    runner = CliRunner()
    outputs = []
    for _ in range(2):
        fetched = runner.invoke(cli, ["--format", "plain", "--db", db, "--changes", target])
        assert fetched.exit_code == 0, fetched.output
        outputs.append(fetched.output)
    for command in (["history", "--db", db, target], ["diff", "--db", db, target]):
        shown = runner.invoke(cli, command)
        assert shown.exit_code == 0, shown.output
        outputs.append(shown.output)
    for output in outputs:
        assert_terminal_safe(output)
    assert "\\x1b]52;c;AAAA\\x07one" in outputs[2]  # history shows the change, escaped
    assert "\\x1b[2J\\x9b\\u202etwo" in outputs[3]  # and so does diff


@pytest.mark.parametrize("value", ["a\x7fb", "a\x1bb", "plain", "caf\u00e9\u0085"])
def test_jsonl_escapes_on_the_ascii_fast_path_too(value: str) -> None:
    """DEL is ASCII and json.dumps leaves it raw: the all-ASCII shortcut must still escape it."""
    result = Result(
        target="t", url="http://t/", head=ResponseHead("HTTP/1.1", 200, "OK", (("X", value),))
    )
    line = format_jsonl(result)
    assert_terminal_safe(line)
    assert json.loads(line)["headers"] == [["X", value]]


AUDITED_HEAD = b"HTTP/1.1 200 OK\r\nX-Frame-Options: \x1b]0;pwned\x07 it's\r\n\r\n"
XFO_REASON = "X-Frame-Options '{}' is not DENY or SAMEORIGIN"


@pytest.mark.parametrize("output_format", ["plain", "pretty", "jsonl"])
def test_an_audit_reason_quotes_the_value_as_sent_and_each_format_shows_it_safely(
    output_format: str, threaded_server: Callable[..., ThreadedServer]
) -> None:
    """Not Python's repr (``"\\x1b]0;pwned\\x07 it's"``, in JSON as ``\\\\x1b``): the value in
    quotes as any server text, escaped on a terminal and exact in JSON (``\\u001b``)."""
    server = threaded_server(reply(AUDITED_HEAD))
    target = f"127.0.0.1:{server.port}"
    outcome = CliRunner().invoke(cli, ["--audit", "--format", output_format, "-q", target])
    assert outcome.exit_code == 0, outcome.output
    assert_terminal_safe(outcome.output)
    if output_format == "jsonl":
        assert "\\u001b]0;pwned\\u0007 it's" in outcome.output
        record = json.loads(outcome.output)
        xfo = next(t for t in record["audit"]["tests"] if t["name"] == "x-frame-options")
        assert xfo["reason"] == XFO_REASON.format("\x1b]0;pwned\x07 it's")
        assert record["headers"] == [["X-Frame-Options", "\x1b]0;pwned\x07 it's"]]
    elif output_format == "plain":
        assert (
            f"{target} audit > fail x-frame-options -20: "
            + XFO_REASON.format("\\x1b]0;pwned\\x07 it's")
            in outcome.output.splitlines()
        )
    else:
        visible = SGR.sub("", outcome.output)  # the line wraps after "or"
        assert "• malformed: X-Frame-Options '\\x1b]0;pwned\\x07 it's' is not DENY or\n" in visible
