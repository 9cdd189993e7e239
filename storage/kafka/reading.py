"""Reading an offset range of the sales topic with a plain assigned consumer.

The reader never joins a consumer group and never commits. :class:`PartitionSource` holds
the one consume loop: it reads one partition's range ``[start, stop)`` in batches as librdkafka
hands them over (its own threads prefetch the next fetches while Python works on the last),
and stops with a :class:`~storage.kafka.exceptions.ReadError` when nothing arrives for a
while. Planning reads records' timestamps with it (:meth:`PartitionSource.stamps`), the daily
job a day's values (:func:`read_day`), partition after partition, so the order of records,
and hence every output, is the same on every run. :func:`rechunked` is the one place that
cuts values into chunks of a fixed size.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from common.settings import Settings
from storage.kafka.access import denied, is_refusal
from storage.kafka.config import client_config, with_token
from storage.kafka.exceptions import ReadError

if TYPE_CHECKING:
    from storage.kafka.planning import DayRange, LateRecords

CONSUME_BATCH: Final = 10_000
CONSUME_TIMEOUT: Final = 0.2
STALL_SECONDS: Final = 30.0
READER_GROUP: Final = "kassa-daily-reader-never-joins"
"""The group id of the daily reader's consumer: it never joins nor commits, but librdkafka
looks up its coordinator (a secured cluster's ``kassa`` user needs DESCRIBE on it)."""

T = TypeVar("T")


def open_consumer(settings: Settings) -> Consumer:
    """A consumer for assigned reads: no group membership, no commits, large fetches."""
    config: dict[str, Any] = client_config(
        settings,
        {
            "group.id": READER_GROUP,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 32 * 1024 * 1024,
            "fetch.min.bytes": 1024 * 1024,
            # A fetch at the end of a range waits this long for data that will not come, and
            # the next assignment's fetch queues behind it: planning reads a few records from
            # every partition twice, so it costs about 12 such waits.
            "fetch.wait.max.ms": 10,
            "queued.max.messages.kbytes": 64 * 1024,
            "queued.min.messages": 100_000,
            # librdkafka holds back a new connection for half of this after the bootstrap
            # connection is replaced by the broker's own (50 ms at the default 100 ms).
            "reconnect.backoff.ms": 10,
        },
    )
    return with_token(Consumer(config))


@dataclass(frozen=True)
class PartitionSource:
    """One partition of ``topic``, read by ``consumer`` (assigned to it for each read).

    A read raises :class:`ReadError` when no record arrives for ``stall_seconds``, e.g.
    because the broker went away.
    """

    consumer: Consumer
    topic: str
    partition: int
    stall_seconds: float = STALL_SECONDS

    def messages(self, start: int, stop: int) -> Generator[list[Message], None, None]:
        """The records of ``[start, stop)``, in offset order, in batches as consumed (never
        empty). The consumer is assigned the partition while the generator runs."""
        if start >= stop:
            return
        self.consumer.assign([TopicPartition(self.topic, self.partition, start)])
        try:
            position = start
            last_progress = time.monotonic()
            while position < stop:
                wanted = min(CONSUME_BATCH, stop - position)
                consumed = self.consumer.consume(wanted, timeout=CONSUME_TIMEOUT)
                records, position = self._in_range(consumed, position, stop)
                if records:
                    last_progress = time.monotonic()
                    yield records
                elif time.monotonic() - last_progress > self.stall_seconds:
                    msg = (
                        f"no progress reading partition {self.partition} of {self.topic!r} at "
                        f"offset {position} (range ends at {stop}) for "
                        f"{self.stall_seconds:.0f} s; is the broker up?"
                    )
                    raise ReadError(msg)
        finally:
            self.consumer.unassign()

    def _refused(self, error: KafkaError) -> tuple[str, str]:
        """The ACL a refused read lacked: the reader's group is looked up, never joined."""
        if error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
            return "DESCRIBE", f"group {READER_GROUP!r}"
        return "READ", f"topic {self.topic!r}"

    def _in_range(
        self, consumed: list[Message], position: int, stop: int
    ) -> tuple[list[Message], int]:
        """The records among ``consumed`` below ``stop``, and the position after them; raises
        on any error but the end of the partition."""
        records: list[Message] = []
        for message in consumed:
            if message.partition() != self.partition:
                continue
            error = message.error()
            if error is not None:
                if is_refusal(error):
                    operation, resource = self._refused(error)
                    raise denied(operation, resource, error.name())
                if error.code() != KafkaError._PARTITION_EOF:
                    msg = f"error reading partition {self.partition}: {error}"
                    raise ReadError(msg)
                position = max(position, message.offset())
                continue
            offset = message.offset()
            if offset >= stop:
                return records, stop
            records.append(message)
            position = offset + 1
        return records, position

    def stamps(self, start: int, stop: int) -> Generator[tuple[int, int], None, None]:
        """``(offset, timestamp in ms)`` of the records in ``[start, stop)``, in order."""
        with closing(self.messages(start, stop)) as batches:
            for records in batches:
                for message in records:
                    yield message.offset(), message.timestamp()[1]

    def values(
        self, start: int, stop: int, late: LateRecords | None = None
    ) -> Generator[list[bytes | None], None, None]:
        """The values of the records in ``[start, stop)``, in batches as consumed; records
        stamped before ``late.before_ms`` are shown to ``late``."""
        with closing(self.messages(start, stop)) as batches:
            for records in batches:
                if late is not None:
                    _show_late(late, self.partition, records)
                yield [message.value() for message in records]


def _show_late(late: LateRecords, partition: int, records: list[Message]) -> None:
    """Show ``late`` the records stamped before ``late.before_ms``."""
    before_ms = late.before_ms
    for message in records:
        timestamp_ms = message.timestamp()[1]
        if timestamp_ms < before_ms:
            late.check(partition, message.offset(), timestamp_ms)


def read_day(
    consumer: Consumer,
    plan: DayRange,
    chunk_messages: int,
    *,
    late: LateRecords | None = None,
    stall_seconds: float = STALL_SECONDS,
) -> Generator[list[bytes | None], None, None]:
    """The values of ``plan``'s ranges, partition after partition, in offset order, in
    chunks of ``chunk_messages``.

    A partition's last values are topped up from the next partition, so a day has no small
    chunk per partition (each chunk has a fixed cost). Records stamped before
    ``late.before_ms`` are shown to ``late`` (:class:`~storage.kafka.planning.LateRecords`).
    Raises :class:`ReadError` when no record arrives for ``stall_seconds``.
    """
    return rechunked(_day_values(consumer, plan, late, stall_seconds), chunk_messages)


def _day_values(
    consumer: Consumer, plan: DayRange, late: LateRecords | None, stall_seconds: float
) -> Generator[list[bytes | None], None, None]:
    for part in plan.partitions:
        source = PartitionSource(consumer, plan.topic, part.partition, stall_seconds)
        yield from source.values(part.start, part.end, late)


def rechunked(batches: Generator[list[T], None, None], size: int) -> Generator[list[T], None, None]:
    """The items of ``batches`` in chunks of ``size`` (the last one may be shorter).

    Chunk boundaries depend only on the items, never on how they were batched (e.g. by fetch
    timing). Closing the returned generator closes ``batches``.
    """
    pending: list[T] = []
    with closing(batches):
        for items in batches:
            if not pending and len(items) == size:
                yield items
                continue
            pending.extend(items)
            while len(pending) >= size:
                yield pending[:size]
                pending = pending[size:]
    if pending:
        yield pending
