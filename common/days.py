"""Business days: the one place where a calendar day becomes an interval of instants.

A business day is the local calendar day in the configured time zone, so it is 23 or 25
hours long on the days daylight saving time starts or ends. Near the ends of Python's dates
(years 1 and 9999) a day or its bounds may not exist as a ``datetime``: every function here
raises :class:`~common.errors.DayOutOfRange` then, never ``OverflowError``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from common.errors import DayOutOfRange, InvalidDay, InvalidDayRange


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants ``[start, end)`` of ``day`` in ``zone``, as aware UTC datetimes."""
    try:
        start = datetime.combine(day, datetime.min.time(), tzinfo=zone)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)
    except OverflowError:
        raise DayOutOfRange(day, str(zone)) from None


def business_day(instant: datetime, zone: ZoneInfo) -> date:
    """The business day in ``zone`` that an aware ``instant`` falls on."""
    if instant.tzinfo is None:
        msg = f"naive datetime {instant.isoformat()} has no time zone; pass an aware datetime"
        raise ValueError(msg)
    try:
        return instant.astimezone(zone).date()
    except OverflowError:
        raise DayOutOfRange(instant.isoformat(), str(zone)) from None


def business_day_of_ms(timestamp_ms: int, zone: ZoneInfo) -> date:
    """The business day in ``zone`` of a Kafka timestamp (milliseconds since the epoch)."""
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000, tz=zone).date()
    except (OverflowError, ValueError, OSError):
        raise DayOutOfRange(f"Kafka timestamp {timestamp_ms} ms", str(zone)) from None


def parse_day(text: str) -> date:
    """A ``YYYY-MM-DD`` day given on the command line, or :class:`InvalidDay` saying so."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidDay(text) from None


def check_day_order(first: date, last: date) -> None:
    """Refuse a range of days ``first`` to ``last`` that ends before it starts."""
    if first > last:
        raise InvalidDayRange(first, last)


def yesterday(now: datetime, zone: ZoneInfo) -> date:
    """The business day before the one ``now`` falls on."""
    try:
        return business_day(now, zone) - timedelta(days=1)
    except OverflowError:
        raise DayOutOfRange(now.isoformat(), str(zone)) from None
