"""The day's offset range: completeness, the look-ahead, replays, and a broker that goes away."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from common.settings import Settings
from jobs.daily import reader
from jobs.daily.exceptions import ReadError
from jobs.daily.job import run_day
from services.kafka import KafkaServer
from storage import parquet
from storage.kafka.topics import ensure_topics
from tests.jobs.daily.helpers import checkout, expected_of, parquet_figures, produce, seal, utc


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
    consumer = reader.open_consumer(settings)
    try:
        plan = reader.plan_day(consumer, settings, date(2026, 11, 20))
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


def test_a_broker_that_goes_away_before_the_read_is_a_read_error(
    settings: Settings, private_kafka: KafkaServer
) -> None:
    private = settings.model_copy(update={"kafka_bootstrap": private_kafka.bootstrap})
    ensure_topics(private)
    sales = [checkout(f"t{n}", utc(2026, 11, 20, 12), [("a", 1, "1")]) for n in range(50)]
    produce(private, sales, partition=0)
    seal(private, utc(2026, 11, 22), partitions=[0])
    consumer = reader.open_consumer(private)
    try:
        plan = reader.plan_day(consumer, private, date(2026, 11, 20))
        private_kafka.stop()
        chunks = reader.read_partition(consumer, private.topic, plan.partitions[0], 10, 3)
        with pytest.raises(ReadError, match="no progress reading partition 0") as failed:
            next(chunks)
        assert failed.value.exit_code == 4
        assert "is the broker up?" in str(failed.value)
    finally:
        consumer.close()


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
    verdict = reader.judge_partition(now, CUT_OFF, IDLE, confirmed_at, newest_at)
    assert verdict.case == case
    assert verdict.complete is (case in {"records", "idle"})


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
