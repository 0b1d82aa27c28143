"""changes.py: what --changes reports between two snapshots. Pure."""

from __future__ import annotations

import dataclasses

from fetchheads.changes import (
    DEFAULT_VOLATILE,
    Snapshot,
    compare,
    ignored_names,
    snapshot_key,
    snapshot_of,
)
from fetchheads.errors import ErrorKind
from fetchheads.models import (
    Alert,
    Change,
    ErrorInfo,
    Redirect,
    ResponseHead,
    Result,
)
from fetchheads.render.changes import change_lines


def snap(*headers: tuple[str, str], status: int | None = 200, error: str | None = None) -> Snapshot:
    kind, _, message = (error or "").partition(": ")
    return Snapshot(
        key="http://a/",
        target="a",
        url="http://a/",
        fetched_at="2026-11-25T00:00:00.000Z",
        ok=error is None,
        status=status,
        headers=headers,
        has_head=status is not None,
        error_kind=kind or None,
        error_message=message or None,
    )


def test_identical_heads_have_no_changes() -> None:
    head = (("Server", "nginx"), ("X-Version", "1"))
    assert compare(snap(*head), snap(*head)) == ()


def test_a_changed_value_is_reported_with_both_sides() -> None:
    before = snap(("Server", "nginx"), ("X-Version", "1"))
    after = snap(("Server", "nginx"), ("X-Version", "2"))
    assert compare(before, after) == (Change("X-Version", ("1",), ("2",)),)


def test_added_and_removed_headers_use_an_empty_side() -> None:
    before = snap(("Strict-Transport-Security", "max-age=1"))
    after = snap(("Via", "1.1 cdn"))
    assert compare(before, after) == (
        Change("Via", (), ("1.1 cdn",)),
        Change("Strict-Transport-Security", ("max-age=1",), ()),
    )


def test_names_compare_case_insensitively() -> None:
    assert compare(snap(("server", "nginx")), snap(("Server", "nginx"))) == ()


def test_volatile_headers_are_ignored_and_more_can_be_added() -> None:
    before = snap(("Date", "Mon"), ("X-Request-Id", "1"), ("CF-Ray", "a"), ("Server", "x"))
    after = snap(("Date", "Tue"), ("X-Request-Id", "2"), ("CF-Ray", "b"), ("Server", "y"))
    assert compare(before, after) == (Change("Server", ("x",), ("y",)),)
    assert compare(before, after, ignored_names(["SERVER"])) == ()
    assert {"date", "age", "expires", "set-cookie"} <= DEFAULT_VOLATILE


def test_repeated_values_compare_as_a_multiset_and_show_in_wire_order() -> None:
    before = snap(("Vary", "Accept"), ("Vary", "Cookie"))
    assert compare(before, snap(("Vary", "Cookie"), ("Vary", "Accept"))) == ()
    after = snap(("Vary", "Cookie"), ("Vary", "Accept"), ("Vary", "Accept"))
    assert compare(before, after) == (
        Change("Vary", ("Accept", "Cookie"), ("Cookie", "Accept", "Accept")),
    )


def test_a_status_change_is_named_status() -> None:
    before = snap(("Location", "/a"), status=301)
    after = snap(("Location", "/a"), status=302)
    assert compare(before, after) == (Change(":status", ("301",), ("302",)),)


def test_a_first_snapshot_is_its_status_appearing() -> None:
    assert compare(None, snap(("Server", "nginx"))) == (Change(":status", (), ("200",)),)
    failed = snap(status=None, error="dns: no such host")
    assert compare(None, failed) == (Change(":error", (), ("dns: no such host",)),)


def test_going_down_and_coming_back_report_error_and_status_not_every_header() -> None:
    up = snap(("Server", "nginx"), ("X-Version", "1"))
    down = snap(status=None, error="connect: connection refused")
    assert compare(up, down) == (
        Change(":error", (), ("connect: connection refused",)),
        Change(":status", ("200",), ()),
    )
    assert compare(down, up) == (
        Change(":error", ("connect: connection refused",), ()),
        Change(":status", (), ("200",)),
    )


def test_errors_compare_by_kind_not_message() -> None:
    before = snap(status=None, error="timeout: no complete response head within 10s (connect)")
    after = snap(status=None, error="timeout: no complete response head within 10s (head)")
    assert compare(before, after) == ()
    other = snap(status=None, error="dns: no such host")
    assert compare(before, other)[0].name == ":error"


def result(*headers: tuple[str, str], **fields: object) -> Result:
    head = ResponseHead("HTTP/1.1", 200, "OK", headers)
    return dataclasses.replace(Result(target="a", url="http://a/", head=head), **fields)  # type: ignore[arg-type]


def test_snapshot_of_a_result_keeps_the_head_and_the_error() -> None:
    s = snapshot_of(result(("Server", "nginx")))
    assert (s.key, s.status, s.headers, s.has_head, s.ok) == (
        "http://a/",
        200,
        (("Server", "nginx"),),
        True,
        True,
    )
    failed = snapshot_of(
        Result(target="b", url="http://b/", error=ErrorInfo(ErrorKind.DNS, "no such host"))
    )
    assert (failed.has_head, failed.error, failed.ok) == (False, "dns: no such host", False)


def test_the_key_is_the_url_before_redirects_or_the_text_of_a_bad_line() -> None:
    followed = result(redirects=(Redirect("http://a/", 301, "https://a/"),), url="https://a/")
    assert snapshot_key(followed) == "http://a/"
    bad = Result(target="bad host", url=None, error=ErrorInfo(ErrorKind.INPUT, "space"))
    assert snapshot_key(bad) == "bad host"


def test_records_carry_changes_and_warnings_only_when_asked() -> None:
    plain = result().to_record()
    assert "changes" not in plain
    assert "warnings" not in plain
    record = result(
        changes=(Change(":status", (), ("200",)),), warnings=(Alert("certificate", "soon"),)
    ).to_record()
    assert record["changes"] == [{"name": ":status", "before": [], "after": ["200"]}]
    assert record["warnings"] == [{"kind": "certificate", "message": "soon"}]


def test_plain_change_lines_are_terminal_safe() -> None:
    lines = change_lines("a", [Change("X-Evil", ("\x1b[2J",), ())])
    assert lines == ["a changed > X-Evil: \\x1b[2J -> (none)"]
