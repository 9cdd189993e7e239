"""The schedule: one run per local day across DST changes, missed days caught up once, retries
until complete, deadlines, late records restated, and the metrics that show it."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis

from common.days import day_bounds
from common.metrics import MetricsServer
from common.schema import Checkout
from common.settings import Settings
from jobs.daily.manifest import read_manifest
from jobs.daily.scheduler import (
    JOB_ID,
    RETRY_JOB_ID,
    DailyTrigger,
    Scheduler,
    build_scheduler,
    catch_up,
    deadline,
    missed_days,
)
from jobs.daily.status import day_status
from storage import keys, parquet
from tests.helpers import free_port
from tests.jobs.daily.helpers import checkout, expected_of, parquet_figures, produce, seal, utc

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
    retry = scheduler.get_job(RETRY_JOB_ID)
    assert retry.trigger.interval == timedelta(seconds=settings.daily_retry_seconds)
    assert retry.max_instances == 1


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
    assert first[1].manifest.totals.units == 3
    run_ids = {
        day: read_manifest(window.data_dir, day).run_id
        for day in parquet.manifest_days(window.data_dir)
    }  # type: ignore[union-attr]

    assert catch_up(window, now) == []
    assert catch_up(window, now + timedelta(hours=3)) == []
    assert {
        day: read_manifest(window.data_dir, day).run_id
        for day in parquet.manifest_days(window.data_dir)
    } == run_ids  # type: ignore[union-attr]


class Clock:
    """The scheduler's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _store_day(day: date, store: str, every: timedelta) -> list[Checkout]:
    """A store open 07:00-22:00 UTC: a checkout every ``every``."""
    opens = datetime.combine(day, time(7), tzinfo=UTC)
    count = int(timedelta(hours=15) / every)
    return [
        checkout(f"{store}-{day}-{n}", opens + n * every, [(f"sku{n % 4}", 1 + n % 3, "1.50")],
                 store_id=store)
        for n in range(count)
    ]  # fmt: skip


def _cut_off(settings: Settings, day: date) -> datetime:
    return day_bounds(day, settings.zone)[1] + timedelta(seconds=settings.lateness_seconds)


def _sample(daily: Scheduler, name: str, **labels: str) -> float | None:
    return daily.metrics.registry.get_sample_value(name, labels or None)


def test_a_week_of_closed_nights_finalizes_every_day_without_force(settings: Settings) -> None:
    # The first check (00:30) comes before the cut-off: the retries finalize each day.
    week = settings.model_copy(update={"daily_at": time(0, 30), "daily_catchup_days": 8})
    retry = timedelta(seconds=week.daily_retry_seconds)
    idle = timedelta(seconds=week.daily_idle_margin_seconds)
    days = [date(2026, 11, 9) + timedelta(days=n) for n in range(7)]
    # Stores s0 and s1 send to partitions 0 and 1; partition 2 never receives anything.
    traffic = {
        partition: [
            c for day in days for c in _store_day(day, f"s{partition}", timedelta(minutes=20))
        ]
        for partition in (0, 1)
    }
    clock = Clock(datetime.combine(days[0], time(0), tzinfo=UTC))
    daily = Scheduler(week, clock)
    finalized: dict[date, datetime] = {}
    sent = 0
    while clock.now < datetime.combine(days[-1] + timedelta(days=2), time(3), tzinfo=UTC):
        for partition, checkouts in traffic.items():
            due = [
                c for c in checkouts if sent <= c.occurred_at.timestamp() < clock.now.timestamp()
            ]
            if due:
                produce(week, due, partition)
        sent = int(clock.now.timestamp())
        daily.run_pass()
        for day in parquet.manifest_days(week.data_dir):
            if day >= days[0]:  # the days before the week are empty, finalized at once
                finalized.setdefault(day, clock.now)
        today = clock.now.date()
        assert all(day < today for day in finalized), (clock.now, finalized)
        # A pass every retry interval through the night; the days themselves need none.
        night = clock.now.time() < time(3)
        clock.now += (
            retry
            if night
            else datetime.combine(today + timedelta(days=1), time(0), tzinfo=UTC) - clock.now
        )

    assert sorted(finalized) == [*days, days[-1] + timedelta(days=1)]
    for day in days:
        due = _cut_off(week, day) + idle
        assert due <= finalized[day] < due + retry, (day, finalized[day])
        manifest = read_manifest(week.data_dir, day)
        assert manifest is not None
        assert (manifest.complete, manifest.forced, manifest.revision) == (True, False, 1)
        assert [part.completeness for part in manifest.partitions] == ["idle"] * 3
        path = parquet.table_path(week.data_dir, "daily_item_sales", day)
        both = traffic[0] + traffic[1]
        assert parquet_figures(path) == expected_of(both, day, week.zone)
    assert (_sample(daily, "kassa_daily_runs_total", outcome="incomplete") or 0) >= len(days)
    assert _sample(daily, "kassa_daily_days_incomplete") == 0
    assert _sample(daily, "kassa_daily_runs_total", outcome="forced") == 0


def test_late_records_of_a_finalized_day_are_restated_by_the_next_pass(
    settings: Settings, redis_client: redis.Redis
) -> None:
    window = settings.model_copy(update={"daily_catchup_days": 1})
    day, next_day = date(2026, 11, 16), date(2026, 11, 17)
    on_time = _store_day(day, "s0", timedelta(hours=1))
    produce(window, on_time, partition=0)
    clock = Clock(utc(2026, 11, 17, 2, 30))
    daily = Scheduler(window, clock)
    assert day in [result.day for result in daily.run_pass()]
    assert day_status(window.data_dir, day).state == "complete"

    # A register offline since 21:30 sends its checkouts at noon, amid the next day's traffic.
    morning, afternoon = (
        _store_day(next_day, "s0", timedelta(hours=1))[:5],
        _store_day(next_day, "s0", timedelta(hours=1))[5:],
    )
    late = [
        checkout(f"late{n}", utc(2026, 11, 16, 21, 30 + n), [("cake", 2, "4.10")]) for n in range(5)
    ]
    produce(window, morning + late + afternoon, partition=0)
    clock.now = utc(2026, 11, 18, 2, 30)
    assert [result.day for result in daily.run_pass()] == [next_day, day]

    manifest = read_manifest(window.data_dir, day)
    assert manifest is not None
    assert manifest.revision == 2
    assert manifest.revision_reason == "late records: 5 found by the run(s) of 2026-11-17"
    found = read_manifest(window.data_dir, next_day)
    assert found is not None
    assert found.late_records["2026-11-16"].records == 5
    expected = expected_of(on_time + late, day, window.zone)
    assert parquet_figures(parquet.table_path(window.data_dir, "daily_item_sales", day)) == expected
    ranking = redis_client.zrange(
        keys.day_key(window.key_space, "daily", day, "units"), 0, -1, withscores=True
    )
    assert {sku.decode(): int(units) for sku, units in ranking} == {
        sku: row[0] for sku, row in expected.items()
    }
    assert redis_client.hget(keys.manifest_key(window.key_space, day), "revision") == b"2"
    assert day_status(window.data_dir, day).state == "restated"
    assert _sample(daily, "kassa_daily_late_records_total") == 5
    assert _sample(daily, "kassa_daily_days", state="restated") == 1
    assert daily.run_pass() == []


def test_a_day_past_its_deadline_is_forced_then_revisited_once_complete(settings: Settings) -> None:
    window = settings.model_copy(update={"daily_catchup_days": 0})
    day = date(2026, 11, 16)
    sales = _store_day(day, "s0", timedelta(hours=1))
    # A register clock hours ahead: its record keeps partition 0 from looking idle.
    ahead = checkout("ahead", utc(2026, 11, 17, 13), [("tea", 1, "1")])
    produce(window, [*sales, ahead], partition=0)
    clock = Clock(utc(2026, 11, 17, 2, 30))
    daily = Scheduler(window, clock)
    server = MetricsServer(daily.metrics, free_port())
    server.start()
    try:
        assert daily.run_pass() == []
        assert _sample(daily, "kassa_daily_days_incomplete") == 1
        assert day_status(window.data_dir, day).state == "missing"
        clock.now = deadline(window, day) - timedelta(minutes=10)
        assert daily.run_pass() == []

        clock.now = deadline(window, day)
        assert [result.day for result in daily.run_pass()] == [day]
        forced = read_manifest(window.data_dir, day)
        assert forced is not None
        assert (forced.forced, forced.complete, forced.revision) == (True, False, 1)
        assert forced.revision_reason.startswith("deadline 2026-11-17T12:00:00+00:00 passed")
        assert forced.totals.checkouts == len(sales)
        assert day_status(window.data_dir, day).state == "forced"
        assert _sample(daily, "kassa_daily_days_forced") == 1
        metrics = _get(server.port, "/metrics")
        assert "kassa_daily_days_forced 1.0" in metrics
        assert 'kassa_daily_runs_total{outcome="forced"} 1.0' in metrics
        health = json.loads(_get(server.port, "/healthz"))
        assert health["last_finalized_day"] == "2026-11-16"
        assert health["seconds_since_last_success"] == 0

        clock.now = utc(2026, 11, 17, 13, 40)
        assert [result.day for result in daily.run_pass()] == [day]
        revisited = read_manifest(window.data_dir, day)
        assert revisited is not None
        assert (revisited.forced, revisited.complete, revisited.revision) == (
            False,
            True,
            2,
        )
        assert revisited.revision_reason == "forced day revisited: every partition is complete now"
        assert _sample(daily, "kassa_daily_days_forced") == 0
        assert _sample(daily, "kassa_daily_seconds_since_last_success") == 0
        clock.now += timedelta(minutes=5)
        assert _sample(daily, "kassa_daily_seconds_since_last_success") == 300
    finally:
        server.stop()


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        body: bytes = response.read()
    return body.decode()
