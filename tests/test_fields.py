"""The field vocabulary: names, typed values of real results, headers joined, the registry."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from fetchheads.errors import ErrorKind
from fetchheads.models import Result
from fetchheads.render.fields import (
    BUILTIN,
    Family,
    Field,
    SpecError,
    compile_fields,
    value_text,
)
from tests.support.results import BARE, HEAD, fetch_head, fetch_refused, fetch_tls, input_error
from tests.support.spec import refusal


def values(result: Result, spec: str) -> list[object]:
    return [field.get(result) for field in compile_fields(spec, BUILTIN)]


async def test_the_fields_of_a_real_response_are_typed() -> None:
    result = await fetch_head(HEAD)
    assert values(result, "status, reason, http_version, ok, header_count, redirects") == [
        200,
        "OK",
        "HTTP/1.1",
        True,
        10,
        0,
    ]
    assert values(result, "target,url,final_url,address") == [
        result.target,
        result.url,
        result.url,
        "127.0.0.1",
    ]
    assert (
        values(result, "error.kind,error.message,tls.version,cert.days_left,cert.san") == [None] * 5
    )
    _dns, connect, tls, ttfb, total = values(
        result, "time.dns,time.connect,time.tls,time.ttfb,time.total"
    )
    assert tls is None  # plain http: no handshake
    assert isinstance(connect, float)
    assert isinstance(ttfb, float)
    assert isinstance(total, float)
    assert connect <= ttfb <= total


async def test_a_repeated_header_is_joined_as_rfc_9110_joins_it_whatever_the_case() -> None:
    result = await fetch_head(HEAD)
    assert values(result, "header:x-multi,header:X-MULTI,header:Server") == [
        "a, b",
        "a, b",
        "scripted",
    ]


async def test_set_cookie_stays_one_value_per_cookie() -> None:
    result = await fetch_head(HEAD)
    assert values(result, "header:set-cookie") == [
        ("id=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT", "theme=dark")
    ]


async def test_a_host_without_the_header_gives_none_not_an_empty_string() -> None:
    bare = await fetch_head(BARE)
    assert values(bare, "status,header:server,header:set-cookie,http_version") == [
        404,
        None,
        None,
        "HTTP/1.0",
    ]
    empty = await fetch_head(b"HTTP/1.1 200 OK\r\nX-Empty:\r\n\r\n")
    assert values(empty, "header:x-empty") == [""]


async def test_a_failure_has_its_error_and_no_status(refused_port: int) -> None:
    result = await fetch_refused(refused_port)
    assert values(result, "ok,status,error.kind,header:server,header_count") == [
        False,
        None,
        "connect",
        None,
        None,
    ]
    message = values(result, "error.message")[0]
    assert isinstance(message, str)
    assert message
    bad = input_error("http://exa mple.com")
    assert values(bad, "target,url,error.kind") == [
        "http://exa mple.com",
        None,
        str(ErrorKind.INPUT),
    ]


async def test_https_gives_the_certificate_fields(
    server_ssl_context: ssl.SSLContext, ca_file: Path
) -> None:
    result = await fetch_tls(server_ssl_context, str(ca_file))
    version, cipher, days, not_after, issuer, subject, san, tls_time = values(
        result,
        "tls.version,tls.cipher,cert.days_left,cert.not_after,cert.issuer,cert.subject,"
        "cert.san,time.tls",
    )
    assert isinstance(version, str)
    assert version.startswith("TLSv1.")
    assert isinstance(cipher, str)
    assert cipher
    assert isinstance(days, int)
    assert days > 300
    assert isinstance(not_after, str)
    assert not_after.endswith("Z")
    assert isinstance(issuer, str)
    assert "trustme" in issuer
    assert san == ("localhost", "127.0.0.1", "::1")
    assert subject is None or isinstance(subject, str)
    assert isinstance(tls_time, float)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("stauts", "unknown field 'stauts' (did you mean status?)"),
        (
            "time.totl",
            "unknown field 'time.totl' (did you mean time.total, time.tls or time.ttfb?)",
        ),
        ("content-type", "unknown field 'content-type' (a header is header:content-type)"),
        ("zzz.qqq", "unknown field 'zzz.qqq'"),
    ],
)
def test_an_unknown_field_is_one_short_line_with_the_nearest_names(name: str, says: str) -> None:
    message = refusal(lambda: compile_fields(f"status,{name}", BUILTIN))
    assert message == f"{says}; docs/fields.md lists every field"


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("", "no fields given"),
        (" , ", "no fields given"),
        ("status,,url", "empty field name"),
        ("header:", "invalid header name ''"),
        ("header:x y", "invalid header name 'x y'"),
        ("header:a\x1bb", "invalid header name"),
    ],
)
def test_bad_field_lists_are_refused_with_a_reason(spec: str, says: str) -> None:
    assert says in refusal(lambda: compile_fields(spec, BUILTIN))


def test_spaces_around_names_are_allowed_and_repeats_kept() -> None:
    fields = compile_fields(" status , status,header:Server", BUILTIN)
    assert [field.name for field in fields] == ["status", "status", "header:Server"]


async def test_another_module_can_add_fields_without_changing_the_builtins() -> None:
    grade = Field("probe.grade", "text", lambda r: "A" if r.ok else "F", width=2)
    family = Family("x-", lambda name: Field(f"x-{name}", "text", lambda r: name))
    extended = BUILTIN.extended([grade], [family])
    result = await fetch_head(HEAD)
    assert values(result, "status") == [200]
    assert [f.get(result) for f in compile_fields("probe.grade,x-yz,status", extended)] == [
        "A",
        "yz",
        200,
    ]
    with pytest.raises(SpecError, match=r"unknown field 'probe\.grade'"):
        compile_fields("probe.grade", BUILTIN)
    with pytest.raises(ValueError, match="already defined: status"):
        BUILTIN.extended([Field("status", "int", lambda r: 0)])
    assert ("probe.grade", "") in extended.describe()


@pytest.mark.parametrize(
    ("value", "none", "text"),
    [
        (None, "", ""),
        (None, "-", "-"),
        (200, "", "200"),
        (-3, "", "-3"),
        (True, "", "true"),
        (False, "", "false"),
        (0.0312, "", "0.031200"),
        ("nginx", "", "nginx"),
        (("a=1", "b=2"), "", "a=1\nb=2"),
    ],
)
def test_value_text(value: object, none: str, text: str) -> None:
    assert value_text(value, none=none) == text  # type: ignore[arg-type]


def test_every_builtin_field_has_help() -> None:
    assert all(help_text for name, help_text in BUILTIN.describe()), BUILTIN.describe()
