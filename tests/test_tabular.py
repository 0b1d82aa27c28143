"""CSV, TSV and the table, read back the way their users read them."""

from __future__ import annotations

import csv
import dataclasses
import io
import ssl
from pathlib import Path

import pytest
from rich.console import Console

from fetchheads.models import Result
from fetchheads.render.fields import BUILTIN, compile_fields
from fetchheads.render.table_view import styled_row
from fetchheads.render.tabular import (
    CsvFormat,
    TableLayout,
    TsvFormat,
    cell_width,
    fit,
    spreadsheet_safe,
    tsv_cell,
)
from tests.support.results import BARE, HEAD, fetch_head, fetch_refused, fetch_tls

SPEC = "target,status,header:server,header:x-multi,header:set-cookie,header:x-formula,header:x-evil,time.total,error.kind"


async def three_results(refused_port: int) -> list[Result]:
    return [await fetch_head(HEAD), await fetch_head(BARE), await fetch_refused(refused_port)]


async def test_csv_reads_back_one_row_per_target_with_formulas_neutralised(
    refused_port: int,
) -> None:
    fmt = CsvFormat(compile_fields(SPEC, BUILTIN))
    results = await three_results(refused_port)
    text = fmt.header() + "".join(fmt.row(r) for r in results)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == SPEC.split(",")
    assert len(rows) == 4
    full, bare, failed = (dict(zip(rows[0], row, strict=True)) for row in rows[1:])
    assert full["status"] == "200"
    assert bare["status"] == "404"
    assert failed["status"] == ""
    assert full["header:server"] == "scripted"
    assert bare["header:server"] == ""
    assert full["header:x-multi"] == "a, b"
    assert full["header:set-cookie"] == "id=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT\ntheme=dark"
    assert full["header:x-formula"] == '\'=HYPERLINK("http://evil.invalid","click")'
    assert full["header:x-evil"] == "a\\x1b]52;c;cHduZWQ=\\x07b\\x1b[2Jc"
    assert "\x1b" not in text
    assert "\x07" not in text
    assert failed["error.kind"] == "connect"
    assert full["error.kind"] == ""
    assert float(full["time.total"]) > 0
    assert len(full["time.total"].split(".")[1]) == 6


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_start_owasp_lists_is_prefixed(start: str) -> None:
    assert spreadsheet_safe(start + "1+1") == "'" + start + "1+1"
    assert spreadsheet_safe("a" + start) == "a" + start


async def test_numbers_are_never_prefixed_even_negative(
    server_ssl_context: ssl.SSLContext, ca_file: Path
) -> None:
    result = await fetch_tls(server_ssl_context, str(ca_file))
    assert result.tls is not None
    expired = dataclasses.replace(result, tls=dataclasses.replace(result.tls, days_left=-3))
    fmt = CsvFormat(compile_fields("cert.days_left,cert.san", BUILTIN))
    row = next(csv.reader(io.StringIO(fmt.row(expired), newline="")))
    assert row == ["-3", "localhost\n127.0.0.1\n::1"]
    tsv = TsvFormat(compile_fields("cert.days_left,cert.san", BUILTIN)).row(expired)
    assert tsv == "-3\tlocalhost\\n127.0.0.1\\n::1\n"


async def test_tsv_is_one_line_per_target_and_one_column_per_field(refused_port: int) -> None:
    fields = compile_fields(SPEC, BUILTIN)
    fmt = TsvFormat(fields)
    results = await three_results(refused_port)
    lines = [fmt.header(), *(fmt.row(r) for r in results)]
    for line in lines:
        assert line.endswith("\n")
        assert line.count("\n") == 1
        assert len(line[:-1].split("\t")) == len(fields)
    full = dict(zip(SPEC.split(","), lines[1][:-1].split("\t"), strict=True))
    assert full["header:set-cookie"] == "id=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT\\ntheme=dark"
    assert full["header:x-formula"].startswith("'=")
    assert "\x1b" not in "".join(lines)


async def test_tsv_escapes_tabs_backslashes_and_newlines_unambiguously() -> None:
    result = await fetch_head(b"HTTP/1.1 200 OK\r\nX-T: a\tb\\x1b c\r\n\r\n")
    row = TsvFormat(compile_fields("header:x-t", BUILTIN)).row(result)
    assert row == "a\\tb\\\\x1b c\n"  # a literal backslash-x stays distinct from an escaped ESC


def test_tsv_lists_keep_a_newline_inside_an_item_apart_from_the_separator() -> None:
    # Two certificate names, one with a newline in it: two items, not three.
    cell = tsv_cell(("a\x1b[31mb.example", "c\nd.example"))
    assert cell == "a\\x1b[31mb.example\\nc\\x0ad.example"
    assert cell.split("\\n") == ["a\\x1b[31mb.example", "c\\x0ad.example"]


def test_tsv_guards_a_cell_that_begins_with_a_tab_as_csv_does() -> None:
    assert tsv_cell("\t=1+1") == "'\\t=1+1"
    assert tsv_cell("-x") == "'-x"


async def test_table_rows_never_pass_the_width_and_cut_with_an_ellipsis(refused_port: int) -> None:
    results = await three_results(refused_port)
    fields = compile_fields("status,target,header:set-cookie,header:x-evil,time.total", BUILTIN)
    for width in (20, 40, 80, 132):
        layout = TableLayout(fields, width)
        for cells in [layout.header(), *(layout.row(r) for r in results)]:
            line = layout.line(cells)
            assert cell_width(line.rstrip("\n")) <= width
            assert line.count("\n") == 1
            assert "\x1b" not in line
    layout = TableLayout(fields, 80)
    full = layout.line(layout.row(results[0]))
    assert full.startswith("200     127.0.0.1:")  # "status" is wider than any code
    assert "…" in full  # the cookies do not fit their column
    failed = layout.line(layout.row(results[2]))
    assert failed.startswith("-       127.0.0.1:")  # no status: a dash


def test_header_columns_too_narrow_for_their_name_are_titled_by_the_header_alone() -> None:
    names = ["server", "content-type", "cache-control", "strict-transport-security", "x-frame"]
    fields = compile_fields("target,status," + ",".join(f"header:{n}" for n in names), BUILTIN)
    layout = TableLayout(fields, 80)
    titles = layout.line(layout.header()).split()
    assert titles[:2] == ["target", "status"]
    for name, title in zip(names, titles[2:], strict=True):
        assert name.startswith(title.rstrip("…")), title  # the header's own name, not 'header:…'
    wide = TableLayout(fields, 300)
    assert "header:server" in wide.line(wide.header())  # the whole name where it fits


def test_the_columns_a_narrow_table_leaves_out_are_named() -> None:
    fields = compile_fields(
        "target,status,header:set-cookie,time.total,redirects,cert.days_left", BUILTIN
    )
    assert TableLayout(fields, 40).left_out() == ("redirects", "cert.days_left")
    assert TableLayout(fields, 200).left_out() == ()


def test_a_huge_width_gives_text_columns_a_bounded_share() -> None:
    """COLUMNS=99999999 must not pad each row with a hundred million spaces."""
    layout = TableLayout(compile_fields("target,header:server,status", BUILTIN), 99_999_999)
    assert max(layout.widths) <= 1000


def test_a_table_too_narrow_for_its_columns_says_which_are_left_out() -> None:
    from click.testing import CliRunner

    from fetchheads.cli import cli
    from fetchheads.run.plan import Environment

    fields = "target,status,header:set-cookie,time.total,redirects,cert.days_left"
    result = CliRunner().invoke(
        cli,
        ["--format", "table", "--fields", fields, "127.0.0.1:1"],
        obj=Environment(width=40),
    )
    assert result.stderr.splitlines()[0] == (
        "fetchheads: the table is 40 columns wide; cut short or left out: redirects, "
        "cert.days_left (choose fewer --fields, widen the terminal, or use --format tsv)"
    )


async def test_table_styles_status_by_class_and_rich_shows_server_text_literally(
    refused_port: int,
) -> None:
    results = await three_results(refused_port)
    layout = TableLayout(compile_fields("status,header:x-markup,reason", BUILTIN), 60)
    assert [layout.row(r)[0].style for r in results] == ["status.2xx", "status.4xx", "failed"]
    console = Console(file=io.StringIO(), width=60, force_terminal=True, color_system="standard")
    console.print(styled_row(layout.row(results[0])))
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    plain = Console(file=io.StringIO(), width=60, color_system=None)
    plain.print(styled_row(layout.row(results[0])))
    assert plain.file.getvalue().rstrip("\n") == layout.line(layout.row(results[0])).rstrip("\n")  # type: ignore[attr-defined]
    assert "[bold red]not markup[/]" in plain.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[1;32m200" in shown  # the 200 is bold green, as in the pretty view


@pytest.mark.parametrize(
    ("text", "width", "right", "fitted"),
    [
        ("abc", 5, False, "abc  "),
        ("abc", 5, True, "  abc"),
        ("abcdef", 4, False, "abc…"),
        ("日本語テキスト", 6, False, "日本… "),  # wide characters take two cells
        ("abc", 0, False, ""),
    ],
)
def test_fit(text: str, width: int, right: bool, fitted: str) -> None:
    assert fit(text, width, right=right) == fitted
    assert cell_width(fitted) == width


def test_tabs_and_combining_marks_keep_a_row_within_the_width() -> None:
    """A tab is shown as \\t (a terminal would widen it); a combining mark takes no cell."""
    from fetchheads.models import ResponseHead

    head = ResponseHead(
        "HTTP/1.1", 200, "O\tK", (("Server", "e\u0301" * 30), ("X-Tab", "a\tb\tc" * 10))
    )
    result = Result(target="127.0.0.1:1", url="http://127.0.0.1:1/", head=head)
    layout = TableLayout(
        compile_fields("target,status,reason,header:x-tab,header:server", BUILTIN), 100
    )
    line = layout.line(layout.row(result)).rstrip("\n")
    assert "\t" not in line
    assert "O\\tK" in line
    assert cell_width(line) <= 100
    assert cell_width("e\u0301" * 30) == 30
    assert cell_width("soft\u00adhyphen") == 11  # a soft hyphen takes a cell, as terminals give it
    assert cell_width("zero\u200bwidth") == 9


def test_tsv_guards_a_list_whose_first_item_begins_with_a_tab() -> None:
    assert tsv_cell(("\tx", "y")) == "'\\tx\\ny"
