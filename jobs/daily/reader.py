"""A business day's offset range from Kafka, read with a plain assigned consumer.

The reader never joins a consumer group and never commits: it locates the day with
``offsets_for_times`` and reads exactly that range, partition after partition (so the order of
records, and hence every output, is the same on every run). librdkafka prefetches the next
fetches on its own threads while Python decodes the previous batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from common.days import day_bounds
from common.settings import Settings
from jobs.daily.exceptions import KafkaReadError, ReadError

logger = logging.getLogger(__name__)

CONSUME_BATCH: Final = 10_000
CONSUME_TIMEOUT: Final = 0.2
STALL_SECONDS: Final = 30.0
_READER_GROUP: Final = "kassa-daily-reader-never-joins"


@dataclass(frozen=True)
class PartitionRange:
    """The offsets ``[start, end)`` of one partition that can hold the day's records."""

    partition: int
    start: int
    end: int
    low: int
    high: int
    complete: bool
    reason: str

    @property
    def records(self) -> int:
        """Records (offsets) in the range."""
        return self.end - self.start


@dataclass(frozen=True)
class DayRange:
    """Where a business day lies in the topic, and whether it is complete."""

    day: date
    topic: str
    start: datetime
    end: datetime
    grace: timedelta
    lateness: timedelta
    partitions: tuple[PartitionRange, ...]

    @property
    def complete(self) -> bool:
        """Every partition has a record past ``end + lateness`` or holds nothing of the day."""
        return all(part.complete for part in self.partitions)

    @property
    def behind(self) -> list[tuple[int, str]]:
        """The partitions that are not complete, with the reason."""
        return [(part.partition, part.reason) for part in self.partitions if not part.complete]

    @property
    def records(self) -> int:
        """Records in the whole range."""
        return sum(part.records for part in self.partitions)


def open_consumer(settings: Settings) -> Consumer:
    """A consumer for assigned reads: no group membership, no commits, large fetches."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": _READER_GROUP,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.max.bytes": 64 * 1024 * 1024,
        "max.partition.fetch.bytes": 32 * 1024 * 1024,
        "fetch.min.bytes": 1024 * 1024,
        "fetch.wait.max.ms": 50,
        "queued.max.messages.kbytes": 64 * 1024,
        "queued.min.messages": 100_000,
        # librdkafka holds back a new connection for half of this after the bootstrap
        # connection is replaced by the broker's own (50 ms at the default 100 ms).
        "reconnect.backoff.ms": 10,
    }
    return Consumer(config)


def plan_day(consumer: Consumer, settings: Settings, day: date, timeout: float = 30.0) -> DayRange:
    """Locate ``day`` in every partition of ``settings.topic`` (see :class:`DayRange`)."""
    start, end = day_bounds(day, settings.zone)
    grace = timedelta(seconds=settings.daily_grace_seconds)
    lateness = timedelta(seconds=settings.lateness_seconds)
    topic = settings.topic
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise KafkaReadError(settings.kafka_bootstrap, exc) from None
    if metadata is None or metadata.error is not None or not metadata.partitions:
        msg = f"topic {topic!r} does not exist; create it with 'kassa topics create'"
        raise ReadError(msg)
    numbers = sorted(metadata.partitions)
    first_ms = int((start - grace).timestamp() * 1000)
    last_ms = int((end + lateness).timestamp() * 1000)
    try:
        firsts = consumer.offsets_for_times(
            [TopicPartition(topic, p, first_ms) for p in numbers], timeout=timeout
        )
        lasts = consumer.offsets_for_times(
            [TopicPartition(topic, p, last_ms) for p in numbers], timeout=timeout
        )
        marks = [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)
            for p in numbers
        ]
    except KafkaException as exc:
        msg = f"cannot look up the offsets of {day} in topic {topic!r}: {exc}"
        raise ReadError(msg) from None
    parts = []
    for number, first, last, (low, high) in zip(numbers, firsts, lasts, marks, strict=True):
        begin = first.offset if first.offset >= 0 else high
        finish = last.offset if last.offset >= 0 else high
        if last.offset >= 0:
            complete, reason = True, f"has records from {end + lateness:%Y-%m-%d %H:%M} UTC on"
        elif first.offset < 0:
            complete, reason = True, "holds no record of the day or later (end of log)"
        else:
            complete = False
            reason = (
                f"no record at or after {end + lateness:%Y-%m-%d %H:%M} UTC "
                f"(day end + {lateness}) yet; log ends at offset {high}"
            )
        if begin == low and low > 0:
            logger.warning(
                "partition %d of %s starts at offset %d inside the range of %s: "
                "retention may have deleted part of the day",
                number,
                topic,
                low,
                day,
            )
        parts.append(PartitionRange(number, begin, finish, low, high, complete, reason))
    return DayRange(day, topic, start, end, grace, lateness, tuple(parts))


def read_partition(
    consumer: Consumer,
    topic: str,
    part: PartitionRange,
    chunk_messages: int,
    stall_seconds: float | None = None,
) -> Generator[list[bytes | None], None, None]:
    """The values of ``part``'s range, in offset order, in chunks of ``chunk_messages``.

    Chunk boundaries depend only on the range, never on fetch timing. Raises
    :class:`ReadError` when no record arrives for ``stall_seconds`` (default
    :data:`STALL_SECONDS`), e.g. because the broker went away.
    """
    stall = STALL_SECONDS if stall_seconds is None else stall_seconds
    if part.records <= 0:
        return
    consumer.assign([TopicPartition(topic, part.partition, part.start)])
    pending: list[bytes | None] = []
    last_progress = time.monotonic()
    try:
        position = part.start
        while position < part.end:
            wanted = min(CONSUME_BATCH, part.end - position)
            messages = consumer.consume(wanted, timeout=CONSUME_TIMEOUT)
            values, position = _values_before(messages, part, position)
            if values:
                last_progress = time.monotonic()
                pending.extend(values)
                while len(pending) >= chunk_messages:
                    yield pending[:chunk_messages]
                    pending = pending[chunk_messages:]
            elif time.monotonic() - last_progress > stall:
                msg = (
                    f"no progress reading partition {part.partition} of {topic!r} at offset "
                    f"{position} (range ends at {part.end}) for {stall:.0f} s; "
                    "is the broker up?"
                )
                raise ReadError(msg)
        if pending:
            yield pending
    finally:
        consumer.unassign()


def _values_before(
    messages: list[Message], part: PartitionRange, position: int
) -> tuple[list[bytes | None], int]:
    """The values of ``messages`` with offsets below ``part.end``, and the next position."""
    values: list[bytes | None] = []
    for message in messages:
        if message.partition() != part.partition:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                position = max(position, message.offset())
                continue
            msg = f"error reading partition {part.partition}: {error}"
            raise ReadError(msg)
        offset = message.offset()
        if offset >= part.end:
            return values, part.end
        values.append(message.value())
        position = offset + 1
    return values, position
