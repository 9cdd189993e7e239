"""``kassa dead-letters``: what the dead-letter topic holds, and putting dead letters back.

The dead letters *pending* are those of the dead-letter topic from the committed offsets of
the replay's consumer group (:attr:`~common.settings.Settings.replay_group`; the topic's
start before the first replay) to its end. :func:`list_dead_letters` counts them by reason
and business day (of their ``occurred_at``, when they have one) and shows a few of each
reason.

:func:`replay` judges each pending dead letter again by the current settings
(:func:`common.schema.decode_checkout`, the rule both jobs apply) and re-produces those it
accepts to the sales topic with their original key, and their ``occurred_at`` as timestamp
(the producers' contract: the stream job and the daily job see them as the producer's own
records). Dead letters it still refuses, or that ``--reason``/``--from``/``--to`` leave out,
are appended to the dead-letter topic again (the reason headers brought up to date), so they
stay pending. All of it happens **exactly once**: a Kafka transaction of a transactional
producer (:attr:`~common.settings.Settings.replay_transactional_id`) holds the re-produced
records, the re-appended ones and the consumer group's new offsets
(``send_offsets_to_transaction``), and commits them together, a batch at a time. A replay
that dies (``kill -9``) leaves its open transaction to be aborted by the next one
(``init_transactions`` fences it), which starts at the last committed offsets; the jobs read
only committed records (librdkafka's default ``read_committed``). A transaction that would
replay nothing is aborted, so a second replay with nothing new to accept changes nothing.

Replayed records of a day the daily job already finalized are late records of that day: the
next run of a later day finds them and the scheduler restates the day
(:mod:`jobs.daily.revisions`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Final

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from common.days import business_day
from common.errors import InvalidCheckout, KassaError
from common.schema import decode_checkout, occurred_at_of, record_timestamp_ms
from common.settings import Settings
from jobs.stream.dead_letters import DETAIL_HEADER, REASON_HEADER, TRUNCATED_HEADER, Header
from jobs.stream.exceptions import ReplayError
from storage.kafka.config import PARTITIONER, client_config, with_token

logger = logging.getLogger(__name__)

BATCH: Final = 1000
"""Dead letters per transaction (a transaction that replays nothing grows until one does)."""
EXAMPLES: Final = 3
"""Dead letters :func:`list_dead_letters` shows per reason."""
TRUNCATED: Final = "truncated"
"""The reason a dead letter cut to fit (``kassa.truncated``) is never replayed for."""
_POLL_SECONDS: Final = 1.0
_STALL_SECONDS: Final = 30.0


@dataclass(frozen=True, slots=True)
class Example:
    """One pending dead letter, shown by :func:`list_dead_letters`."""

    partition: int
    offset: int
    day: date | None
    detail: str
    value: str
    """The start of the value, as text."""


@dataclass
class Listing:
    """The pending dead letters: counts by reason and day, a few examples per reason."""

    counts: Counter[tuple[str, date | None]] = field(default_factory=Counter)
    examples: dict[str, list[Example]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """How many dead letters are pending."""
        return sum(self.counts.values())


@dataclass
class Replayed:
    """What one replay did."""

    replayed: Counter[date] = field(default_factory=Counter)
    """Records re-produced to the sales topic, by business day."""
    refused: Counter[str] = field(default_factory=Counter)
    """Dead letters still refused (left pending), by their reason now."""
    skipped: int = 0
    """Dead letters ``--reason``/``--from``/``--to`` left out (left pending)."""
    transactions: int = 0


@dataclass(frozen=True, slots=True)
class Selection:
    """Which pending dead letters a replay tries: of ``reason`` (any if ``None``), of days
    ``first`` to ``last`` (inclusive; open ends if ``None``)."""

    reason: str | None = None
    first: date | None = None
    last: date | None = None

    def takes(self, reason: str, day: date | None) -> bool:
        """Whether a dead letter of ``reason`` and ``day`` is tried."""
        if self.reason is not None and reason != self.reason:
            return False
        if self.first is None and self.last is None:
            return True
        if day is None:
            return False
        return (self.first or date.min) <= day <= (self.last or date.max)


def list_dead_letters(settings: Settings, examples: int = EXAMPLES) -> Listing:
    """The pending dead letters (see the module docstring); reads, commits nothing."""
    listing = Listing()
    consumer = _consumer(settings)
    try:
        ends = _pending(consumer, settings)
        for message in _read(consumer, ends):
            reason, day = _reason(message), _day(message, settings)
            listing.counts[(reason, day)] += 1
            shown = listing.examples.setdefault(reason, [])
            if len(shown) < examples:
                shown.append(_example(message, day))
    finally:
        consumer.close()
    return listing


def replay(
    settings: Settings,
    selection: Selection = Selection(),
    *,
    batch: int = BATCH,
    now: datetime | None = None,
    on_commit: Callable[[Replayed], None] | None = None,
) -> Replayed:
    """Re-produce the pending dead letters that the current settings accept, exactly once
    (see the module docstring); ``on_commit`` is told after each committed transaction."""
    report = Replayed()
    clock = now or datetime.now(UTC)
    consumer = _consumer(settings)
    producer = _producer(settings)
    try:
        producer.init_transactions()  # fences a replay still running, aborts what one left
        ends = _pending(consumer, settings)
        open_transaction = Replayed()
        pending = 0
        done: dict[int, int] = {}
        """Partition -> the offset after the last dead letter judged."""
        producer.begin_transaction()
        for message in _read(consumer, ends):
            _judge(settings, selection, producer, message, clock, open_transaction)
            done[message.partition()] = message.offset() + 1
            pending += 1
            if pending >= batch and open_transaction.replayed:
                _commit(producer, consumer, settings, done, report, open_transaction)
                if on_commit is not None:
                    on_commit(report)
                open_transaction, pending = Replayed(), 0
                producer.begin_transaction()
        if open_transaction.replayed:
            _commit(producer, consumer, settings, done, report, open_transaction)
            if on_commit is not None:
                on_commit(report)
        else:
            producer.abort_transaction()
            report.refused += open_transaction.refused
            report.skipped += open_transaction.skipped
    except KafkaException as exc:
        raise ReplayError(settings.dead_letter_topic, settings.topic, exc.args[0]) from None
    finally:
        consumer.close()
    return report


def _judge(  # noqa: PLR0917 - private: one dead letter and where it goes
    settings: Settings,
    selection: Selection,
    producer: Producer,
    message: Message,
    now: datetime,
    report: Replayed,
) -> None:
    """Re-produce ``message`` to the sales topic if it is now valid, else re-append it."""
    reason, value = _reason(message), message.value() or b""
    if not selection.takes(reason, _day(message, settings)):
        report.skipped += 1
        _append(producer, settings, message)
        return
    if _header(message, TRUNCATED_HEADER) is not None:
        report.refused[TRUNCATED] += 1
        _append(producer, settings, message)
        return
    try:
        checkout = decode_checkout(value, settings.limits, now)
    except InvalidCheckout as exc:
        report.refused[exc.reason.value] += 1
        _append(producer, settings, message, (exc.reason.value, exc.detail))
        return
    producer.produce(
        settings.topic,
        value=value,
        key=message.key(),
        timestamp=record_timestamp_ms(checkout),
    )
    producer.poll(0)
    report.replayed[business_day(checkout.occurred_at, settings.zone)] += 1


def _append(
    producer: Producer,
    settings: Settings,
    message: Message,
    judged: tuple[str, str] | None = None,
) -> None:
    """``message`` again at the end of the dead-letter topic (``judged``: its new reason
    and detail)."""
    headers: list[Header] = list(message.headers() or [])
    if judged is not None:
        reason, detail = judged
        kept = [h for h in headers if h[0] not in {REASON_HEADER, DETAIL_HEADER}]
        headers = [*kept, (REASON_HEADER, reason.encode()), (DETAIL_HEADER, detail.encode())]
    producer.produce(
        settings.dead_letter_topic, value=message.value(), key=message.key(), headers=headers
    )
    producer.poll(0)


def _commit(  # noqa: PLR0917 - private
    producer: Producer,
    consumer: Consumer,
    settings: Settings,
    offsets: dict[int, int],
    report: Replayed,
    done: Replayed,
) -> None:
    """Commit the open transaction with the group's new ``offsets`` (partition -> next
    offset); add ``done`` to ``report``."""
    topic = settings.dead_letter_topic
    positions = [TopicPartition(topic, p, offset) for p, offset in sorted(offsets.items())]
    producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata())
    producer.commit_transaction()
    report.replayed += done.replayed
    report.refused += done.refused
    report.skipped += done.skipped
    report.transactions += 1
    logger.info(
        "replay: committed %d record(s) to the sales topic (%d so far)",
        sum(done.replayed.values()),
        sum(report.replayed.values()),
    )


def _consumer(settings: Settings) -> Consumer:
    return with_token(
        Consumer(
            client_config(
                settings,
                {
                    "group.id": settings.replay_group,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_committed",
                    "client.id": "kassa-dead-letters",
                },
            )
        )
    )


def _producer(settings: Settings) -> Producer:
    # with_token: init_transactions() waits for the cluster before any poll would ask for a token
    return with_token(
        Producer(
            client_config(
                settings,
                {
                    "transactional.id": settings.replay_transactional_id,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    "partitioner": PARTITIONER,
                    "client.id": "kassa-dead-letters",
                },
            )
        )
    )


def _pending(consumer: Consumer, settings: Settings) -> dict[int, int]:
    """Assign the dead-letter topic's partitions at the group's committed offsets (or their
    start); the end offset of each, as it is now (what is appended later waits)."""
    topic = settings.dead_letter_topic
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    if metadata.error is not None:
        raise ReplayError(topic, settings.topic, metadata.error)
    partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
    committed = consumer.committed(partitions, timeout=10)
    ends: dict[int, int] = {}
    starts = []
    for tp in committed:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), 10)
        start = max(tp.offset, low) if tp.offset >= 0 else low
        starts.append(TopicPartition(topic, tp.partition, start))
        if start < high:
            ends[tp.partition] = high
    consumer.assign(starts)
    return ends


def _read(consumer: Consumer, ends: dict[int, int]) -> Iterator[Message]:
    """The records of the assigned partitions up to ``ends`` (exclusive)."""
    remaining = dict(ends)
    progress = time.monotonic()
    while remaining:
        for message in consumer.consume(1000, timeout=_POLL_SECONDS):
            partition, error = message.partition(), message.error()
            if partition not in remaining:
                continue
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
                if message.offset() >= remaining[partition]:
                    del remaining[partition]
                continue
            progress = time.monotonic()
            if message.offset() >= remaining[partition]:
                del remaining[partition]
                continue
            if message.offset() + 1 >= remaining[partition]:
                del remaining[partition]
            yield message
        if time.monotonic() - progress > _STALL_SECONDS:
            msg = f"no progress reading the dead letters for {_STALL_SECONDS:.0f} s"
            raise KafkaException(msg)


def _reason(message: Message) -> str:
    raw = _header(message, REASON_HEADER)
    return raw.decode(errors="replace") if raw is not None else "unknown"


def _header(message: Message, name: str) -> bytes | None:
    for key, value in message.headers() or ():
        if key == name:
            return bytes(value) if value is not None else b""
    return None


def _day(message: Message, settings: Settings) -> date | None:
    """The business day of the dead letter's ``occurred_at`` (``None``: none readable)."""
    when = occurred_at_of(message.value() or b"")
    if when is None:
        return None
    try:
        return business_day(when, settings.zone)
    except KassaError:
        return None


def _example(message: Message, day: date | None) -> Example:
    detail = _header(message, DETAIL_HEADER) or b""
    value = (message.value() or b"")[:200].decode(errors="replace")
    return Example(
        message.partition(), message.offset(), day, detail.decode(errors="replace"), value
    )
