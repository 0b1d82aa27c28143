"""changes.py: what --changes reports between two snapshots. Pure."""

from __future__ import annotations

import dataclasses

import pytest

from fetchheads.errors import ErrorKind
from fetchheads.models import (
    Alert,
    Change,
    ErrorInfo,
    Redirect,
    ResponseHead,
    Result,
    TLSInfo,
)
from fetchheads.render.changes import change_lines
from fetchheads.snapshots.changes import (
    DEFAULT_VOLATILE,
    WARNED,
    Snapshot,
    certificate_step,
    compare,
    ignored_names,
    is_news,
    snapshot_key,
    snapshot_of,
)


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


def tls(days_left: int | None) -> TLSInfo:
    return TLSInfo("TLSv1.3", "X", "CN=a", "CN=ca", "2026-12-01T00:00:00Z", days_left)


@pytest.mark.parametrize(
    ("days_left", "warn_days", "step"),
    [
        (30, 30, None),  # not under --warn-days: no warning at all
        (29, 30, 30),
        (7, 30, 30),
        (6, 30, 7),
        (3, 30, 7),
        (2, 30, 3),
        (1, 30, 3),
        (0, 30, 1),  # expires within the day
        (-1, 30, 0),  # expired
        (4, 5, 5),  # steps at or above --warn-days are skipped
        (2, 5, 3),
        (0, 0, None),
        (-3, 0, 0),
        (None, 30, None),
    ],
)
def test_a_certificate_reaches_steps_of_days_left(
    days_left: int | None, warn_days: int, step: int | None
) -> None:
    assert certificate_step(result(tls=tls(days_left)), warn_days) == step
    assert certificate_step(result(tls=tls(days_left)), None) is None


def test_a_warning_is_news_when_it_starts_or_gets_worse() -> None:
    assert is_news(None, 30)  # starts (or the earlier run did not look)
    assert is_news(30, 7)
    assert is_news(1, 0)
    assert not is_news(7, 7)  # the same step: said already
    assert not is_news(3, 7)  # better (a longer certificate, or a larger --warn-days)
    assert not is_news(7, None)  # renewed


def test_a_certificate_warned_for_its_lifetime_or_chain_is_news_once_then_by_days() -> None:
    """--warn-fraction and the intermediate warning have no days threshold of their own: such a
    warning is news when it starts, then again only when the days left cross 7, 3, 1, 0."""
    warned = (Alert("certificate", "certificate expires in 20 days, 25% of its lifetime left"),)
    assert certificate_step(result(tls=tls(20), warnings=warned), None) == WARNED
    assert certificate_step(result(tls=tls(20), warnings=warned), 14) == WARNED
    assert certificate_step(result(tls=tls(5), warnings=warned), None) == 7
    assert certificate_step(result(tls=tls(20)), None) is None  # nothing warned: no step
    assert is_news(None, WARNED)
    assert not is_news(WARNED, WARNED)
    assert is_news(WARNED, 7)


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


def test_pretty_change_lines_show_a_tab_as_backslash_t() -> None:
    """A tab in a changed value is ``\\t`` on both sides of the arrow, as in the rest of the
    pretty view: a terminal widens a tab to its next stop, differently on each side."""
    from rich.console import Console

    from fetchheads.render.pretty import change_lines as pretty_change_lines

    console = Console(width=80, color_system=None, record=True)
    for line in pretty_change_lines((Change("X-Val", ("a\tb2",), ("a\tb3",)),)):
        console.print(line)
    shown = console.export_text()
    assert "X-Val:  a\\tb2  →  a\\tb3" in shown
    assert "\t" not in shown
