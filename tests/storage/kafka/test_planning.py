"""The day's offset range: the look-ahead, a fast clock, and an older day replayed."""

from __future__ import annotations

from datetime import date, timedelta

from common.settings import Settings
from jobs.daily.job import run_day
from storage import parquet
from storage.kafka import planning, reading
from tests.jobs.daily.helpers import checkout, expected_of, parquet_figures, produce, utc


def test_plan_covers_exactly_the_records_that_can_hold_the_day(settings: Settings) -> None:
    produce(settings, [checkout("early", utc(2026, 11, 19, 12), [("a", 1, "1")])], partition=0)
    produce(settings, [checkout("in", utc(2026, 11, 20, 12), [("a", 1, "1")])], partition=0)
    produce(settings, [checkout("late", utc(2026, 11, 21, 0, 30), [("a", 1, "1")])], partition=0)
    # The look-ahead: records stamped an hour or more past the cut-off (01:00), enough of them.
    next_day = [
        checkout(f"next{n}", utc(2026, 11, 21, 3, n), [("a", 1, "1")])
        for n in range(settings.daily_lookahead_records)
    ]
    produce(settings, next_day, partition=0)
    consumer = reading.open_consumer(settings)
    try:
        plan = planning.plan_day(consumer, settings, date(2026, 11, 20))
    finally:
        consumer.close()

    first = plan.partitions[0]
    assert (first.start, first.end) == (1, 3)
    assert first.complete
    assert first.case == "records"
    assert first.read_to.startswith("look-ahead: offset 3 is stamped 2026-11-21 03:00 UTC")
    assert [(part.start, part.end, part.complete, part.case) for part in plan.partitions[1:]] == [
        (0, 0, True, "idle"),
        (0, 0, True, "idle"),
    ]
    assert plan.records == 2


def test_one_fast_clock_does_not_truncate_the_day(settings: Settings) -> None:
    day = date(2026, 11, 20)
    on_time = [
        checkout(f"t{n}", utc(2026, 11, 20, 10) + timedelta(minutes=5 * n), [("tea", 1, "2")])
        for n in range(50)
    ]
    fast = checkout("fast", utc(2026, 11, 21, 1, 5), [("tea", 1, "2")])
    late = [
        checkout(f"late{n}", utc(2026, 11, 20, 23, 50), [("cake", 2, "3")], store_id="s02")
        for n in range(10)
    ]
    next_day = [
        checkout(f"n{n}", utc(2026, 11, 21, 7) + timedelta(minutes=n), [("tea", 1, "2")])
        for n in range(20)
    ]
    produce(settings, [*on_time, fast, *late, *next_day], partition=0)

    manifest = run_day(settings, day).manifest

    assert manifest.totals.checkouts == 60
    path = parquet.table_path(settings.data_dir, "daily_item_sales", day)
    assert parquet_figures(path) == expected_of(on_time + late, day, settings.zone)
    first = manifest.partitions[0]
    assert first.end_offset == 61
    assert first.read_to.startswith("look-ahead: offset 61 is stamped 2026-11-21 07:00 UTC")
    assert first.completeness == "records"


def test_an_older_day_replayed_into_a_topic_with_newer_data_is_exact(settings: Settings) -> None:
    newer = [
        checkout(f"new{n}", utc(2026, 11, 25, 9) + timedelta(minutes=n), [("milk", 1, "1")],
                 store_id=f"s{n % 3}")
        for n in range(90)
    ]  # fmt: skip
    older = [
        checkout(f"old{n}", utc(2026, 11, 18, 8) + timedelta(minutes=9 * n),
                 [("bread", 1 + n % 2, "2.40"), (f"sku{n % 4}", 1, "1.10")], store_id=f"s{n % 3}")
        for n in range(46)
    ]  # fmt: skip
    produce(settings, newer)
    produce(settings, older)
    day = date(2026, 11, 18)

    manifest = run_day(settings, day).manifest

    assert manifest.totals.checkouts == 46
    path = parquet.table_path(settings.data_dir, "daily_item_sales", day)
    assert parquet_figures(path) == expected_of(older, day, settings.zone)
    for part in manifest.partitions:
        if part.records:
            assert "out of time order" in part.read_to
