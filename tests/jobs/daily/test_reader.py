"""The day's offset range and what happens when the broker goes away mid-read."""

from __future__ import annotations

from datetime import date

import pytest

from common.settings import Settings
from common.topics import ensure_topics
from jobs.daily import reader
from jobs.daily.exceptions import ReadError
from services.kafka import KafkaServer
from tests.jobs.daily.support import checkout, produce, seal, utc


def test_plan_covers_exactly_the_records_that_can_hold_the_day(settings: Settings) -> None:
    produce(settings, [checkout("early", utc(2026, 11, 19, 12), [("a", 1, "1")])], partition=0)
    produce(settings, [checkout("in", utc(2026, 11, 20, 12), [("a", 1, "1")])], partition=0)
    produce(settings, [checkout("late", utc(2026, 11, 21, 0, 30), [("a", 1, "1")])], partition=0)
    seal(settings, utc(2026, 11, 21, 3), partitions=[0])
    consumer = reader.open_consumer(settings)
    try:
        plan = reader.plan_day(consumer, settings, date(2026, 11, 20))
    finally:
        consumer.close()

    first = plan.partitions[0]
    assert (first.start, first.end) == (1, 3)
    assert first.complete
    assert [(part.start, part.end, part.complete) for part in plan.partitions[1:]] == [
        (0, 0, True),
        (0, 0, True),
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
