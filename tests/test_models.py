"""Record fields computed in models: the ``fetched_at`` text."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from fetchheads.models import format_timestamp

offsets = st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23))
zones = st.none() | st.just(dt.UTC) | st.builds(dt.timezone, offsets)
moments = st.datetimes(
    min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(2200, 1, 1), timezones=zones
)


@given(moments)
def test_a_timestamp_is_the_utc_moment_to_the_millisecond(moment: dt.datetime) -> None:
    expected = moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")[:23] + "Z"
    assert format_timestamp(moment) == expected


def test_milliseconds_are_cut_not_rounded_into_the_next_second() -> None:
    moment = dt.datetime(2026, 11, 25, 19, 12, 17, 999999, tzinfo=dt.UTC)
    assert format_timestamp(moment) == "2026-11-25T19:12:17.999Z"
    east = dt.datetime(2026, 1, 1, 1, 0, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert format_timestamp(east) == "2025-12-31T23:00:00.000Z"
