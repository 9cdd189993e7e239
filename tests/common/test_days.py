"""A business day is the local calendar day in the configured zone: 23 or 25 h on DST days."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.days import business_day, business_day_of_ms, day_bounds, parse_day
from common.errors import DayOutOfRange, InvalidDay

LONDON = ZoneInfo("Europe/London")
ZONES = st.sampled_from(
    [ZoneInfo(name) for name in ("UTC", "Europe/London", "America/New_York", "Asia/Tokyo",
                                 "Australia/Lord_Howe", "Pacific/Chatham")]
)  # fmt: skip
DAYS = st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31))


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 6, 1), 24)],
)
def test_london_days_last_23_24_or_25_hours(day: date, hours: int) -> None:
    start, end = day_bounds(day, LONDON)
    assert end - start == timedelta(hours=hours)


def test_bounds_are_local_midnights_as_utc_instants() -> None:
    start, end = day_bounds(date(2026, 7, 1), LONDON)
    assert start == datetime(2026, 6, 30, 23, 0, tzinfo=UTC)
    assert end == datetime(2026, 7, 1, 23, 0, tzinfo=UTC)


@given(DAYS, ZONES)
def test_consecutive_days_tile_time(day: date, zone: ZoneInfo) -> None:
    _, end = day_bounds(day, zone)
    next_start, _ = day_bounds(day + timedelta(days=1), zone)
    assert end == next_start


@given(st.datetimes(min_value=datetime(1990, 1, 2), max_value=datetime(2090, 12, 30),
                    timezones=st.just(UTC)), ZONES)  # fmt: skip
def test_every_instant_lies_in_the_bounds_of_its_business_day(
    instant: datetime, zone: ZoneInfo
) -> None:
    day = business_day(instant, zone)
    start, end = day_bounds(day, zone)
    assert start <= instant < end


@given(st.integers(min_value=0, max_value=4_000_000_000_000), ZONES)
def test_kafka_timestamps_fall_on_the_same_day_as_their_instant(
    timestamp_ms: int, zone: ZoneInfo
) -> None:
    instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=timestamp_ms)
    assert business_day_of_ms(timestamp_ms, zone) == business_day(instant, zone)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        business_day(datetime(2026, 1, 1), LONDON)


def test_a_day_that_is_not_a_date_names_the_format() -> None:
    with pytest.raises(InvalidDay, match=r"'21/11/2026' is not a date; write it as YYYY-MM-DD"):
        parse_day("21/11/2026")
    assert parse_day("2026-11-21") == date(2026, 11, 21)


BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    "compute",
    [
        lambda: business_day(datetime(9999, 12, 31, 23, 30, tzinfo=UTC), BERLIN),
        lambda: business_day(datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), BERLIN),
        lambda: day_bounds(date(9999, 12, 31), BERLIN),
        lambda: day_bounds(date(1, 1, 1), BERLIN),
        lambda: business_day_of_ms(2**62, BERLIN),
        lambda: business_day_of_ms(-(2**62), BERLIN),
    ],
    ids=["after-9999", "before-year-1", "last-day", "first-day", "ms-high", "ms-low"],
)
def test_days_beyond_pythons_dates_are_a_clear_error_not_an_overflow(
    compute: Callable[[], object],
) -> None:
    with pytest.raises(DayOutOfRange, match="outside the business days kassa can compute"):
        compute()
