"""The completeness rule of one partition for one day, on a supermarket night."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from storage.kafka.completeness import judge_partition
from tests.jobs.daily.helpers import utc

CUT_OFF = utc(2026, 11, 21, 1)
IDLE = timedelta(minutes=30)


@pytest.mark.parametrize(
    ("now", "confirmed_at", "newest_at", "case"),
    [
        # The supermarket night of the docstring: last record 21:58, cut-off 01:00.
        (utc(2026, 11, 21, 0, 55), None, utc(2026, 11, 20, 21, 58), "open"),
        (utc(2026, 11, 21, 1, 10), None, utc(2026, 11, 20, 21, 58), "waiting"),
        (utc(2026, 11, 21, 1, 30), None, utc(2026, 11, 20, 21, 58), "idle"),
        (utc(2026, 11, 21, 1, 30), None, None, "idle"),
        # A fast register's record stamped 01:05 (sent 00:35) is newer than 01:00 at 01:30.
        (utc(2026, 11, 21, 1, 30), None, utc(2026, 11, 21, 1, 5), "waiting"),
        (utc(2026, 11, 21, 1, 35), None, utc(2026, 11, 21, 1, 5), "idle"),
        (utc(2026, 11, 21, 2, 5), utc(2026, 11, 21, 2, 1), utc(2026, 11, 21, 2, 4), "records"),
        # A confirmed record stamped in the future proves nothing; nor does any before 01:00.
        (utc(2026, 11, 21, 2, 5), utc(2026, 11, 21, 3), utc(2026, 11, 21, 3), "waiting"),
        (utc(2026, 11, 21, 0, 59), utc(2026, 11, 21, 0, 30), None, "open"),
    ],
)
def test_completeness_rule_on_a_supermarket_night(
    now: datetime, confirmed_at: datetime | None, newest_at: datetime | None, case: str
) -> None:
    verdict = judge_partition(now, CUT_OFF, IDLE, confirmed_at, newest_at)
    assert verdict.case == case
    assert verdict.complete is (case in {"records", "idle"})
