"""Selecting what is printed: status lists, failures, headers present, missing or matching."""

from __future__ import annotations

import pytest

from fetchheads.models import Result
from fetchheads.render.filters import compile_selector, parse_statuses
from tests.support.results import BARE, HEAD, fetch_head, fetch_refused, input_error
from tests.support.spec import refusal

REDIRECT = b"HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\nSERVER: other\r\n\r\n"
CUT = b"HTTP/1.1 200 OK\r\nServer: cut\r\nX-Half"  # closed before the end of the head


async def results(refused_port: int) -> dict[str, Result]:
    return {
        "ok": await fetch_head(HEAD),
        "404": await fetch_head(BARE),
        "301": await fetch_head(REDIRECT),
        "refused": await fetch_refused(refused_port),
        "cut": await fetch_head(CUT),
        "input": input_error("http://"),
    }


async def selected(refused_port: int, **options: object) -> list[str]:
    selector = compile_selector(**options)  # type: ignore[arg-type]
    return [name for name, result in (await results(refused_port)).items() if selector(result)]


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("200", {200}),
        ("200,404", {200, 404}),
        (" 3xx , 201 ", {*range(300, 400), 201}),
        ("4XX", set(range(400, 500))),
        ("200-204", {200, 201, 202, 203, 204}),
        ("500-500", {500}),
    ],
)
def test_status_lists(text: str, codes: set[int]) -> None:
    assert parse_statuses(text) == codes


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "invalid status '' in --match-status (use codes, classes or ranges"),
        ("20", "invalid status '20'"),
        ("2000", "invalid status '2000'"),
        ("abc", "invalid status 'abc'"),
        ("0xx", "invalid status '0xx'"),
        ("200,", "invalid status ''"),
        ("299-200", "empty status range '299-200' in --match-status (the low code comes first)"),
        ("2xx-3xx", "invalid status '2xx-3xx'"),
    ],
)
def test_bad_status_lists_are_one_line_errors(text: str, says: str) -> None:
    assert says in refusal(lambda: parse_statuses(text))


async def test_nothing_given_selects_everything(refused_port: int) -> None:
    assert compile_selector().selects_everything
    assert await selected(refused_port) == ["ok", "404", "301", "refused", "cut", "input"]


async def test_match_status_keeps_answers_with_those_codes_only(refused_port: int) -> None:
    assert await selected(refused_port, match_status=["2xx"]) == ["ok"]
    assert await selected(refused_port, match_status=["3xx", "404"]) == ["404", "301"]
    # A cut head carries a 200 it never finished: it failed, and is not a 200 answer.
    assert "cut" not in await selected(refused_port, match_status=["200"])


async def test_filter_status_drops_those_codes_and_keeps_failures(refused_port: int) -> None:
    assert await selected(refused_port, filter_status=["404,3xx"]) == [
        "ok",
        "refused",
        "cut",
        "input",
    ]


async def test_failed_keeps_every_kind_of_failure(refused_port: int) -> None:
    assert await selected(refused_port, failed=True) == ["refused", "cut", "input"]


async def test_has_header_by_name_any_case_and_by_regex_on_the_joined_value(
    refused_port: int,
) -> None:
    assert await selected(refused_port, has_headers=["server"]) == ["ok", "301", "cut"]
    assert await selected(refused_port, has_headers=["Server=^scrip"]) == ["ok"]
    assert await selected(refused_port, has_headers=["x-multi=^a, b$"]) == ["ok"]
    assert await selected(refused_port, has_headers=["set-cookie=^theme="]) == []
    assert await selected(refused_port, has_headers=["set-cookie=(?m)^theme="]) == ["ok"]
    assert await selected(refused_port, has_headers=["server", "location"]) == ["301"]


async def test_missing_header_needs_a_head(refused_port: int) -> None:
    assert await selected(refused_port, missing_headers=["Server"]) == ["404"]
    # The cut head has no X-Multi either, but it might have come: only whole heads count.
    assert await selected(refused_port, missing_headers=["x-multi"]) == ["404", "301"]
    assert await selected(refused_port, missing_headers=["x-multi", "location"]) == ["404"]


async def test_options_combine_with_and(refused_port: int) -> None:
    assert await selected(refused_port, match_status=["2xx,3xx"], missing_headers=["x-multi"]) == [
        "301"
    ]
    assert await selected(refused_port, failed=True, has_headers=["server"]) == ["cut"]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"has_headers": ["x=("]}, "invalid regular expression '(' in --has-header"),
        ({"has_headers": ["bad name"]}, "invalid header name 'bad name' in --has-header"),
        ({"missing_headers": [""]}, "invalid header name '' in --missing-header"),
        ({"filter_status": ["6"]}, "invalid status '6' in --filter-status"),
    ],
)
def test_bad_selections_are_refused_before_the_run(
    options: dict[str, list[str]], says: str
) -> None:
    assert says in refusal(lambda: compile_selector(**options))  # type: ignore[arg-type]
