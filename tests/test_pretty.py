"""render/pretty.py on a narrow terminal: long targets, values and messages wrap inside their
block with a hanging indent, header values keep one column, and a cut-short head looks failed."""

from __future__ import annotations

import io
import itertools

from rich.cells import cell_len
from rich.console import Console

from fetchheads.errors import ErrorKind
from fetchheads.models import ErrorInfo, ResponseHead, Result, Timing, TLSInfo
from fetchheads.render.pretty import line_breaks, render_result

COOKIE = "session=" + "a" * 150 + "; Path=/; HttpOnly"
LONG_NAME = "X-A-Very-Long-Header-Name-From-Some-Framework"
HEAD = ResponseHead(
    "HTTP/1.1",
    200,
    "OK",
    (
        ("Server", "nginx"),
        ("Set-Cookie", COOKIE),
        (LONG_NAME, "1"),
        ("Content-Type", "text/html; charset=utf-8 and enough further words to pass the edge"),
    ),
)
TARGET = "http://very-long-host-name.example.com/a/really/long/path/that/goes/on/and/on?query=1"
MESSAGE = "connection closed before the blank line that ends the head, after 1234 bytes of it"


def render(result: Result, *, color: bool = False) -> list[str]:
    out = io.StringIO()
    console = Console(
        file=out,
        width=80,
        force_terminal=color,
        color_system="standard" if color else None,
        highlight=False,
        markup=False,
        emoji=False,
    )
    console.print(render_result(result))
    return out.getvalue().splitlines()


def cut_short() -> Result:
    return Result(
        target=TARGET,
        url=TARGET,
        head=HEAD,
        error=ErrorInfo(ErrorKind.PROTOCOL, MESSAGE),
        address="127.0.0.1",
        timing=Timing(total=0.01),
    )


def test_at_80_columns_nothing_runs_back_to_column_0() -> None:
    lines = render(cut_short())
    assert all(cell_len(line) <= 80 for line in lines)
    assert lines[0].startswith("http://")
    # Every line after the title's first is indented: the block reads as one block.
    assert all(line.startswith("  ") for line in lines[1:] if line)
    joined = " ".join(line.strip() for line in lines)
    assert "".join(line.strip() for line in lines).count("a" * 150) == 1  # the cookie, whole
    assert "on/and/on?query=1" in "".join(lines[:2]).replace(" ", "")
    assert "after 1234 bytes of it" in joined


def test_header_values_keep_their_column_when_they_wrap() -> None:
    lines = render(Result(target="h", url="http://h/", head=HEAD))
    column = lines[1].index("nginx")
    cookie = next(n for n, line in enumerate(lines) if "Set-Cookie:" in line)
    assert lines[cookie].index("session=") == column  # folded in place, not moved down
    continuation = lines[cookie + 1]
    assert continuation[:column].strip() == ""
    assert continuation[column] == "a"
    # A name too long for the column has a line of its own; its value sits in the column.
    named = next(n for n, line in enumerate(lines) if LONG_NAME in line)
    assert lines[named].strip() == f"{LONG_NAME}:"
    assert lines[named + 1].index("1") == column
    typed = next(n for n, line in enumerate(lines) if "Content-Type:" in line)
    assert lines[typed].index("text/html") == column
    assert lines[typed + 1].index(lines[typed + 1].strip()) == column  # words wrap in column


def test_a_message_wraps_under_itself() -> None:
    lines = render(cut_short())
    error = next(n for n, line in enumerate(lines) if "✗ protocol:" in line)
    assert lines[error + 1].startswith("    ")
    assert lines[error + 1][4] != " "


def test_a_head_cut_short_is_not_shown_as_a_success() -> None:
    title = "".join(render(cut_short(), color=True)[:2])
    assert "(incomplete)" in title
    assert "\x1b[1;32m200 OK" not in title  # not the green of a 2xx
    assert "\x1b[1;31m200 OK" in title
    fine = "".join(render(Result(target="h", url="http://h/", head=HEAD), color=True)[:1])
    assert "\x1b[1;32m200 OK" in fine
    assert "incomplete" not in fine


def test_line_breaks_fit_every_width_and_keep_short_words_whole() -> None:
    text = "text/html; charset=utf-8 " + "x" * 70 + " and some more words, 中文字符 too"
    for width in range(2, 90):  # (a 2-cell character cannot fit 1 cell)
        starts = [0, *line_breaks(text, width), len(text)]
        lines = [text[a:b].rstrip() for a, b in itertools.pairwise(starts)]
        assert "".join(text[a:b] for a, b in itertools.pairwise(starts)) == text
        assert all(cell_len(line) <= width for line in lines)
        if width >= 40:
            assert "char" + "\n" not in "\n".join(lines)  # "charset" not split at 40+
            assert all(not line.startswith("ore") for line in lines)


def test_a_certificate_expiring_tomorrow_says_1_day() -> None:
    tls = TLSInfo("TLSv1.3", "AES", "CN=h", "CN=ca", not_after="2027-01-01T00:00:00Z", days_left=1)
    lines = render(Result(target="h", url="https://h/", head=HEAD, tls=tls))
    assert any(line.strip() == "expires 2027-01-01T00:00:00Z (1 day)" for line in lines)


def test_at_80_columns_the_certificate_lines_keep_their_indent_and_hashes_whole() -> None:
    fingerprint, spki = "ab" * 32, "cd" * 32
    tls = TLSInfo(
        "TLSv1.3", "TLS_AES_256_GCM_SHA384", "CN=h", "CN=ca",
        not_after="2027-01-01T00:00:00Z", days_left=19, lifetime_days=9855.0, life_left=0.002,
        fingerprint_sha256=fingerprint, spki_sha256=spki, verified=True, chain=(),
    )  # fmt: skip
    lines = render(Result(target="h", url="https://h/", head=HEAD, tls=tls))
    assert all(cell_len(line) <= 80 for line in lines)
    assert all(line.startswith("  ") for line in lines[1:] if line)  # nothing at column 0
    assert any(line.strip() == f"sha256 {fingerprint}" for line in lines)
    assert any(line.strip() == f"spki {spki}" for line in lines)  # one line: copied whole
    assert "0% of its 9855-day lifetime left" in " ".join(line.strip() for line in lines)


def test_a_value_that_fits_beside_its_name_stays_on_one_line() -> None:
    # The name column takes the first line's left part, not a share of the value's room: a Date
    # of 29 characters beside a 26-character name fits 80 columns whole.
    date = "Wed, 25 Nov 2026 21:11:41 GMT"
    head = ResponseHead("HTTP/1.1", 200, "OK", (("Strict-Transport-Security", "x"), ("Date", date)))
    lines = render(Result(target="h", url="http://h/", head=head))
    assert any(line.rstrip().endswith(date) and "Date:" in line for line in lines)
    assert len(lines) == 4  # title, two headers, the blank line after the block


def test_line_breaks_give_the_first_line_its_own_width() -> None:
    text = "Date:        Wed, 25 Nov 2026 21:11:41 GMT"
    assert line_breaks(text, 20, first=80) == []
    starts = [0, *line_breaks(text, 20, first=30), len(text)]
    lines = [text[a:b].rstrip() for a, b in itertools.pairwise(starts)]
    assert cell_len(lines[0]) <= 30
    assert all(cell_len(line) <= 20 for line in lines[1:])


def test_a_tab_in_server_text_is_shown_as_an_escape_and_nothing_is_cut_off() -> None:
    """A terminal widens a tab to its next stop, past the width the line was broken for: the
    tail of the value would be cut off unseen. Shown as \\t, every character stays."""
    value = "a\tb" + "\tx" * 60
    result = Result(
        target="127.0.0.1:8080",
        url="http://127.0.0.1:8080/",
        head=ResponseHead("HTTP/1.1", 200, "O\tK", (("X-Tab", value),)),
    )
    lines = render(result)
    shown = "".join(line.strip() for line in lines)
    assert "\t" not in "\n".join(lines)
    assert shown.count("\\tx") == 60
    assert "200 O\\tK" in lines[0]
    assert all(cell_len(line) <= 80 for line in lines)
