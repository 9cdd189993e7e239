"""Reading a range: chunks of a fixed size, and a broker that goes away."""

from __future__ import annotations

from collections.abc import Generator
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.settings import Settings
from services.kafka import KafkaServer
from storage.kafka import planning, reading
from storage.kafka.exceptions import ReadError
from storage.kafka.topics import ensure_topics
from tests.jobs.daily.helpers import checkout, produce, seal, utc


def test_a_broker_that_goes_away_before_the_read_is_a_read_error(
    settings: Settings, private_kafka: KafkaServer
) -> None:
    private = settings.model_copy(update={"kafka_bootstrap": private_kafka.bootstrap})
    ensure_topics(private)
    sales = [checkout(f"t{n}", utc(2026, 11, 20, 12), [("a", 1, "1")]) for n in range(50)]
    produce(private, sales, partition=0)
    seal(private, utc(2026, 11, 22), partitions=[0])
    consumer = reading.open_consumer(private)
    try:
        plan = planning.plan_day(consumer, private, date(2026, 11, 20))
        private_kafka.stop()
        chunks = reading.read_day(consumer, plan, 10, stall_seconds=3)
        with pytest.raises(ReadError, match="no progress reading partition 0") as failed:
            next(chunks)
        assert failed.value.exit_code == 4
        assert "is the broker up?" in str(failed.value)
    finally:
        consumer.close()


def _batches(batches: list[list[int]]) -> Generator[list[int], None, None]:
    yield from batches


@given(st.lists(st.lists(st.integers(), max_size=30), max_size=10), st.integers(1, 12))
def test_chunks_depend_only_on_the_values_not_on_their_batches(
    batches: list[list[int]], size: int
) -> None:
    values = [value for batch in batches for value in batch]

    chunks = list(reading.rechunked(_batches(batches), size))

    assert chunks == [values[at : at + size] for at in range(0, len(values), size)]


def test_closing_the_chunks_closes_the_batches() -> None:
    closed: list[bool] = []

    def batches() -> Generator[list[int], None, None]:
        try:
            yield from ([1, 2], [3, 4], [5, 6])
        finally:
            closed.append(True)

    chunks = reading.rechunked(batches(), 3)
    assert next(chunks) == [1, 2, 3]
    chunks.close()
    assert closed == [True]
