"""models: the ``fetched_at`` text, and the per-target types frozen."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fetchheads.models import Result, Timing, format_timestamp

offsets = st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23))
aware_zones: st.SearchStrategy[dt.tzinfo] = st.just(dt.UTC) | st.builds(dt.timezone, offsets)
earliest, latest = dt.datetime(1900, 1, 2), dt.datetime(2200, 1, 1)
# Naive moments (taken as local time) and aware ones in any offset.
moments = st.datetimes(earliest, latest) | st.datetimes(earliest, latest, timezones=aware_zones)


@given(moments)
def test_a_timestamp_is_the_utc_moment_to_the_millisecond(moment: dt.datetime) -> None:
    expected = moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")[:23] + "Z"
    assert format_timestamp(moment) == expected


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
