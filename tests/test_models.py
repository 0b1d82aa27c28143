"""models: the ``fetched_at`` text, the per-target types frozen, and their cheaper builders."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fetchheads.errors import ErrorKind
from fetchheads.models import (
    ErrorInfo,
    ResponseHead,
    Result,
    Target,
    Timing,
    build_head,
    build_result,
    build_target,
    build_timing,
    builder,
    format_timestamp,
)

offsets = st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23))
aware_zones: st.SearchStrategy[dt.tzinfo] = st.just(dt.UTC) | st.builds(dt.timezone, offsets)
earliest, latest = dt.datetime(1900, 1, 2), dt.datetime(2200, 1, 1)
# Naive moments (taken as local time) and aware ones in any offset.
moments = st.datetimes(earliest, latest) | st.datetimes(earliest, latest, timezones=aware_zones)


@given(moments)
def test_a_timestamp_is_the_utc_moment_to_the_millisecond(moment: dt.datetime) -> None:
    expected = moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")[:23] + "Z"
    assert format_timestamp(moment) == expected


@given(
    st.datetimes(earliest, latest, timezones=aware_zones),
    st.lists(st.integers(-2_500_000, 2_500_000), min_size=1, max_size=8),
)
def test_timestamps_close_together_are_each_their_own(
    moment: dt.datetime, steps_us: list[int]
) -> None:
    # A run's timestamps come a few microseconds to a few seconds apart, in and out of order
    # (the second of the one before is remembered): each is still its own moment's.
    for step in steps_us:
        moment += dt.timedelta(microseconds=step)
        expected = moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")[:23] + "Z"
        assert format_timestamp(moment) == expected


def test_the_first_microsecond_of_a_second_is_that_second() -> None:
    before = dt.datetime(2026, 12, 5, 3, 59, 59, 999999, tzinfo=dt.UTC)
    assert format_timestamp(before) == "2026-12-05T03:59:59.999Z"
    assert format_timestamp(before + dt.timedelta(microseconds=1)) == "2026-12-05T04:00:00.000Z"
    assert format_timestamp(before) == "2026-12-05T03:59:59.999Z"


def test_the_last_second_a_datetime_has_is_written_too() -> None:
    last = dt.datetime.max.replace(tzinfo=dt.UTC)
    assert format_timestamp(last) == "9999-12-31T23:59:59.999Z"
    assert format_timestamp(last.replace(microsecond=0)) == "9999-12-31T23:59:59.000Z"


def test_milliseconds_are_cut_not_rounded_into_the_next_second() -> None:
    moment = dt.datetime(2026, 11, 25, 19, 12, 17, 999999, tzinfo=dt.UTC)
    assert format_timestamp(moment) == "2026-11-25T19:12:17.999Z"
    east = dt.datetime(2026, 1, 1, 1, 0, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert format_timestamp(east) == "2025-12-31T23:00:00.000Z"


def test_the_per_target_types_stay_frozen() -> None:
    result = Result(target="t", url=None, timing=Timing(total=1.0))
    assert result.fetched_at.tzinfo is dt.UTC
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.target = "u"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.timing.total = 2.0  # type: ignore[misc]


def test_a_built_instance_is_the_frozen_type_itself() -> None:
    moment = dt.datetime(2026, 11, 25, 19, 12, 17, tzinfo=dt.UTC)
    head = build_head("HTTP/1.1", 200, "OK", (("Server", "x"),))
    assert type(head) is ResponseHead
    assert head == ResponseHead("HTTP/1.1", 200, "OK", (("Server", "x"),))
    timing = build_timing(connect=0.5, total=1.0)
    assert type(timing) is Timing
    assert timing == Timing(None, 0.5, None, None, 1.0)
    target = build_target(text="a", scheme="http", host="a", port=80)
    assert target == Target("a", "http", "a", 80, "/", None)
    result = build_result(target="a", url="http://a/", head=head, timing=timing, fetched_at=moment)
    assert type(result) is Result
    assert result == Result("a", "http://a/", head, None, None, timing, fetched_at=moment)
    assert hash(result) == hash(Result("a", "http://a/", head, timing=timing, fetched_at=moment))
    assert repr(result).startswith("Result(target='a', url='http://a/', head=ResponseHead(")
    assert dataclasses.replace(result, url=None).url is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.url = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        head.status = 404  # type: ignore[misc]


def test_a_builder_takes_what_the_class_takes_and_refuses_the_same() -> None:
    fresh = build_result(target="t", url=None)
    assert fresh.fetched_at.tzinfo is dt.UTC  # the default factory, called per instance
    assert (fresh.timing, fresh.redirects, fresh.audit) == (Timing(), (), None)
    with pytest.raises(TypeError) as built:
        build_result(url=None)  # type: ignore[call-arg]
    with pytest.raises(TypeError) as plain:
        Result(url=None)  # type: ignore[call-arg]
    assert str(built.value) == str(plain.value)
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        build_timing(nope=1.0)  # type: ignore[call-arg]


def test_a_builder_refuses_a_class_it_could_get_wrong() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Later:
        value: int
        derived: int = dataclasses.field(init=False, default=0)

    @dataclasses.dataclass(slots=True)
    class Mutable:
        value: int

    @dataclasses.dataclass(frozen=True)
    class Unslotted:
        value: int

    for cls in (Later, Mutable, Unslotted):
        with pytest.raises(TypeError):
            builder(cls)
    assert builder(ErrorInfo)(ErrorKind.PROTOCOL, "x") == ErrorInfo(ErrorKind.PROTOCOL, "x")
