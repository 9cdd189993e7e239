"""The schedule: one run per local day across both DST changes; missed days caught up once."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from common.settings import Settings
from jobs.daily.scheduler import JOB_ID, DailyTrigger, build_scheduler, catch_up, missed_days
from storage import parquet
from tests.jobs.daily.support import checkout, produce, seal, utc

LONDON = ZoneInfo("Europe/London")


def _fire_times(trigger: DailyTrigger, start: datetime, count: int) -> list[datetime]:
    times: list[datetime] = []
    previous = None
    now = start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None
        times.append(fire)
        previous = now = fire
    return times


@pytest.mark.parametrize(
    ("at", "spring", "autumn"),
    [
        # 02:30 exists once on both days.
        (time(2, 30), "2026-03-29T01:30:00+00:00", "2026-10-25T02:30:00+00:00"),
        # 01:30 does not exist on 29 March (runs at 02:30 BST) and exists twice on
        # 25 October (runs once, at the first one, 01:30 BST).
        (time(1, 30), "2026-03-29T01:30:00+00:00", "2026-10-25T00:30:00+00:00"),
    ],
)
def test_one_fire_per_local_day_across_both_dst_changes(at: time, spring: str, autumn: str) -> None:
    trigger = DailyTrigger(at, LONDON)
    for start, change in (
        (datetime(2026, 3, 27, 12, tzinfo=LONDON), spring),
        (datetime(2026, 10, 23, 12, tzinfo=LONDON), autumn),
    ):
        times = _fire_times(trigger, start, 5)
        local_days = [fire.astimezone(LONDON).date() for fire in times]
        assert local_days == [start.date() + timedelta(days=n) for n in range(1, 6)]
        assert datetime.fromisoformat(change) in [fire.astimezone(UTC) for fire in times]
        for fire in times:
            if fire.astimezone(LONDON).date() != datetime.fromisoformat(change).date():
                assert fire.astimezone(LONDON).time() == at


def test_scheduler_job_is_coalesced_single_instance_with_misfire_grace(settings: Settings) -> None:
    scheduler = build_scheduler(settings.model_copy(update={"daily_misfire_grace_seconds": 900}))
    job = scheduler.get_job(JOB_ID)
    assert job.coalesce is True
    assert job.max_instances == 1
    assert job.misfire_grace_time == 900
    assert isinstance(job.trigger, DailyTrigger)


def test_a_missed_day_is_caught_up_exactly_once(settings: Settings) -> None:
    window = settings.model_copy(update={"daily_catchup_days": 2})
    now = utc(2026, 11, 21, 2, 30)
    produce(window, [checkout("x", utc(2026, 11, 19, 15), [("cake", 3, "4.20")])])
    seal(window, utc(2026, 11, 21, 1, 30))

    assert missed_days(window, now) == [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)]
    first = catch_up(window, now)
    assert [result.day for result in first] == [
        date(2026, 11, 18),
        date(2026, 11, 19),
        date(2026, 11, 20),
    ]
    assert first[1].manifest["totals"]["units"] == 3
    run_ids = {
        day: parquet.read_manifest(window.data_dir, day)["run_id"]
        for day in parquet.manifest_days(window.data_dir)
    }  # type: ignore[index]

    assert catch_up(window, now) == []
    assert catch_up(window, now + timedelta(hours=3)) == []
    assert {
        day: parquet.read_manifest(window.data_dir, day)["run_id"]
        for day in parquet.manifest_days(window.data_dir)
    } == run_ids  # type: ignore[index]
