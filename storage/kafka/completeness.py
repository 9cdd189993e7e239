"""The completeness rule: whether a partition of the sales topic holds the whole of a day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Completeness:
    """Whether one partition is complete for a day, which case applied and why."""

    complete: bool
    case: str
    """``records`` (a confirmed record past the cut-off), ``idle`` (quiet since before the
    cut-off), ``open`` (the cut-off is still ahead) or ``waiting``."""
    reason: str


def judge_partition(
    now: datetime,
    cut_off: datetime,
    idle_margin: timedelta,
    confirmed_at: datetime | None,
    newest_at: datetime | None,
) -> Completeness:
    """The completeness rule of one partition for one day (the only place it is decided).

    ``cut_off`` is the day's end plus the lateness; ``confirmed_at`` the stamp of the record
    that ended the partition's range by the look-ahead rule
    (:func:`storage.kafka.planning.plan_day`), if one did; ``newest_at`` the newest stamp
    among the partition's last records (``None``: empty log).

    1. ``open``: ``now`` is before the cut-off. Today and future days are never complete.
    2. ``records``: a record confirmed past the cut-off that is not stamped in the future.
    3. ``idle``: ``now`` is at least ``idle_margin`` past the cut-off and the partition's
       newest record is at least ``idle_margin`` old: nothing arrived in that time.
    4. ``waiting`` otherwise: records of the day may still come.

    A supermarket night (day D in UTC, lateness 1 h, idle margin 30 min, look-ahead 1 h):
    the stores close at 22:00, the last record is stamped D 21:58, the next one D+1 07:01.
    At 00:55 the day is ``open`` (the cut-off is 01:00); at 01:10 ``waiting``; from 01:30 on
    ``idle`` (the newest record, 21:58, is older than 01:00). Had a register with a clock
    30 min fast sent a record stamped 01:05 at 00:35, it would not end the range (it is not
    1 h past the cut-off) and the records of D that arrive after it are read. A partition of
    24-hour stores is complete by ``records`` once a record stamped 02:00 or later and the
    look-ahead records after it are in the log.
    """
    if now < cut_off:
        return Completeness(
            False,
            "open",
            f"the day is still open: {now:%Y-%m-%d %H:%M} UTC is before the cut-off "
            f"{cut_off:%Y-%m-%d %H:%M} UTC (day end + lateness)",
        )
    if confirmed_at is not None and confirmed_at <= now:
        return Completeness(
            True, "records", f"has records from {confirmed_at:%Y-%m-%d %H:%M} UTC on"
        )
    if now >= cut_off + idle_margin and (newest_at is None or newest_at <= now - idle_margin):
        newest = "empty" if newest_at is None else f"newest record {newest_at:%Y-%m-%d %H:%M} UTC"
        return Completeness(
            True, "idle", f"idle ({newest}, nothing newer for {idle_margin} past the cut-off)"
        )
    newest = "none" if newest_at is None else f"{newest_at:%Y-%m-%d %H:%M} UTC"
    return Completeness(
        False,
        "waiting",
        f"no record confirmed past the cut-off {cut_off:%Y-%m-%d %H:%M} UTC (day end + "
        f"lateness) and not idle for {idle_margin} (newest record {newest})",
    )
