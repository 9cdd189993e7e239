"""Where a business day lies in the sales topic: each partition's offset range, and whether
it is complete.

:func:`plan_day` locates the day with ``offsets_for_times``, decides where each partition's
range ends without trusting any one producer's clock (the look-ahead rule) and whether the
partition is complete (:func:`~storage.kafka.completeness.judge_partition`), reading only a
few records' timestamps (:class:`~storage.kafka.reading.PartitionSource`).
:class:`LateRecords` finds the records of earlier, finalized days met while a later day is
read.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from common.days import business_day_of_ms, day_bounds
from common.settings import Settings
from storage.kafka.access import denied, is_refusal
from storage.kafka.completeness import judge_partition
from storage.kafka.exceptions import KafkaReadError, ReadError
from storage.kafka.reading import PartitionSource

logger = logging.getLogger(__name__)


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
    case: str = "records"
    """Which completeness case applied (:class:`Completeness`)."""
    read_to: str = ""
    """Why the range ends at ``end`` (the look-ahead rule, the end of the log, late records)."""
    newest_at: datetime | None = None
    gap: bool = False
    """Retention deleted records the range may need: the first record left is its start."""

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
        """Every partition is complete (:func:`judge_partition`)."""
        return all(part.complete for part in self.partitions)

    @property
    def behind(self) -> list[tuple[int, str]]:
        """The partitions that are not complete, with the reason."""
        return [(part.partition, part.reason) for part in self.partitions if not part.complete]

    @property
    def gaps(self) -> list[tuple[int, int]]:
        """``(partition, low watermark)`` of each partition retention cut into the range of."""
        return [(part.partition, part.low) for part in self.partitions if part.gap]

    @property
    def records(self) -> int:
        """Records in the whole range."""
        return sum(part.records for part in self.partitions)


class LateRecords:
    """Records of earlier, finalized days found while reading a later day's range.

    A record is late for day D when its timestamp falls on D and its offset is at or after
    the end of D's finalized range in its partition (``ends_of(D)``, from D's manifest; a day
    without one has no late records). :attr:`counts` and :attr:`reach` (per day and
    partition, the offset after the last late record) go into the reading day's manifest; a
    revision of D reads up to :attr:`reach`.
    """

    def __init__(
        self,
        before: datetime,
        zone: ZoneInfo,
        ends_of: Callable[[date], Mapping[int, int] | None],
    ) -> None:
        self.before_ms = _ms(before)
        self._zone = zone
        self._ends_of = ends_of
        self._ends: dict[date, Mapping[int, int] | None] = {}
        self.counts: Counter[date] = Counter()
        self.reach: dict[date, dict[int, int]] = {}

    def check(self, partition: int, offset: int, timestamp_ms: int) -> None:
        """Count the record if it is late (called for records stamped before ``before``)."""
        day = business_day_of_ms(timestamp_ms, self._zone)
        if day not in self._ends:
            self._ends[day] = self._ends_of(day)
        ends = self._ends[day]
        if ends is None or partition not in ends or offset < ends[partition]:
            return
        self.counts[day] += 1
        reach = self.reach.setdefault(day, {})
        reach[partition] = max(reach.get(partition, 0), offset + 1)


@dataclass(frozen=True)
class _Window:
    """What decides where a partition's range ends (instants in Kafka milliseconds) and
    whether the partition is complete (:func:`judge_partition`)."""

    day_end_ms: int
    cut_off_ms: int
    confirm_ms: int
    records: int
    now: datetime
    cut_off: datetime
    idle_margin: timedelta


def _window(settings: Settings, end: datetime, now: datetime) -> _Window:
    cut_off = end + timedelta(seconds=settings.lateness_seconds)
    confirm = cut_off + timedelta(seconds=settings.daily_lookahead_seconds)
    return _Window(
        _ms(end),
        _ms(cut_off),
        _ms(confirm),
        settings.daily_lookahead_records,
        now,
        cut_off,
        timedelta(seconds=settings.daily_idle_margin_seconds),
    )


def plan_day(
    consumer: Consumer,
    settings: Settings,
    day: date,
    timeout: float = 30.0,
    *,
    now: datetime | None = None,
    reach: Mapping[int, int] | None = None,
    since: Mapping[int, int] | None = None,
) -> DayRange:
    """Locate ``day`` in every partition of ``settings.topic`` (see :class:`DayRange`).

    A partition's range starts at its first record stamped at or after the day's start minus
    ``KASSA_DAILY_GRACE_SECONDS``. It ends by the look-ahead rule: at the first record stamped
    ``KASSA_DAILY_LOOKAHEAD_SECONDS`` or more past the cut-off (day end + lateness) which,
    with the records after it (``KASSA_DAILY_LOOKAHEAD_RECORDS`` in all), lies past the
    cut-off; a record stamped before the cut-off among them is read, and the search goes on
    after it. Without such a record the range runs to the end of the log; so it does when one
    of the log's last records is stamped before the day's end (records appended out of time
    order, e.g. an older day replayed into a topic with newer data). ``reach`` (partition ->
    offset) extends ranges over late records found by later runs; ``since`` (partition ->
    the end of the previous day's range) starts them no later than that, so a late record
    appended between two days' ranges is seen (:class:`LateRecords`). ``now`` (default: the
    clock) decides completeness (:func:`judge_partition`).
    """
    start, end = day_bounds(day, settings.zone)
    grace = timedelta(seconds=settings.daily_grace_seconds)
    window = _window(settings, end, now or datetime.now(UTC))
    topic = settings.topic
    numbers = _partitions_of(consumer, settings, timeout)
    firsts, candidates, marks = _offsets(
        consumer, topic, numbers, (_ms(start - grace), window.confirm_ms), timeout=timeout, day=day
    )
    parts = []
    for number, first, candidate, watermarks in zip(
        numbers, firsts, candidates, marks, strict=True
    ):
        source = PartitionSource(consumer, topic, number, timeout)
        bounds = (first.offset, candidate.offset, (reach or {}).get(number, 0))
        part = _partition_range(source, window, watermarks, bounds, (since or {}).get(number))
        if part.gap:
            logger.warning(
                "partition %d of %s starts at offset %d inside the range of %s: "
                "retention deleted part of the day",
                number,
                topic,
                part.low,
                day,
            )
        parts.append(part)
    lateness = timedelta(seconds=settings.lateness_seconds)
    return DayRange(day, topic, start, end, grace, lateness, tuple(parts))


def _partitions_of(consumer: Consumer, settings: Settings, timeout: float) -> list[int]:
    """The partition numbers of ``settings.topic``, in order."""
    topic = settings.topic
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise KafkaReadError(settings.kafka_bootstrap, exc) from None
    if metadata is not None and metadata.error is not None and is_refusal(metadata.error):
        reason, user = metadata.error.name(), settings.kafka_sasl_username
        raise denied("DESCRIBE", f"topic {topic!r}", reason, user=user)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        msg = f"topic {topic!r} does not exist; create it with 'kassa topics create'"
        raise ReadError(msg)
    return sorted(metadata.partitions)


def _offsets(
    consumer: Consumer,
    topic: str,
    numbers: list[int],
    at_ms: tuple[int, int],
    *,
    timeout: float,
    day: date,
) -> tuple[list[TopicPartition], list[TopicPartition], list[tuple[int, int]]]:
    """Per partition: the offsets of the first records at or after each of ``at_ms``, and the
    watermarks; looked up again while the partitions' leaders are being elected."""
    settle_until = time.monotonic() + timeout
    first_ms, confirm_ms = at_ms
    while True:
        try:
            firsts = consumer.offsets_for_times(
                [TopicPartition(topic, p, first_ms) for p in numbers], timeout=timeout
            )
            candidates = consumer.offsets_for_times(
                [TopicPartition(topic, p, confirm_ms) for p in numbers], timeout=timeout
            )
            marks = [
                consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=timeout, cached=False
                )
                for p in numbers
            ]
        except KafkaException as exc:
            if not _settling(exc) or time.monotonic() >= settle_until:
                msg = f"cannot look up the offsets of {day} in topic {topic!r}: {exc}"
                raise ReadError(msg) from None
        else:
            return firsts, candidates, marks
        time.sleep(0.1)


def _partition_range(
    source: PartitionSource,
    window: _Window,
    marks: tuple[int, int],
    bounds: tuple[int, int, int],
    previous_end: int | None,
) -> PartitionRange:
    """One partition's range (:func:`plan_day`). ``bounds``: the offset of the first record
    of the day (-1: none), of the first past the look-ahead (-1: none), and the offset later
    runs found late records up to; ``previous_end``: the end of the previous day's range."""
    low, high = marks
    first, candidate, wanted = bounds
    begin = first if first >= 0 else high
    if previous_end is not None and low <= previous_end < begin:
        begin = previous_end
    finish, confirmed_at, read_to = _range_end(source, window, begin, candidate, high)
    newest_at, finish, read_to = _tail(source, window, marks, finish, read_to)
    if wanted > finish:
        finish = min(wanted, high)
        read_to += f"; extended to offset {finish} over late records found by later runs"
    verdict = judge_partition(
        window.now, window.cut_off, window.idle_margin, confirmed_at, newest_at
    )
    # The log starts where the range does: what retention deleted may be of the day,
    # unless it all lay in the previous day's range.
    gap = begin == low and low > 0 and previous_end != low
    return PartitionRange(
        source.partition,
        begin,
        finish,
        low,
        high,
        verdict.complete,
        verdict.reason,
        verdict.case,
        read_to,
        newest_at,
        gap,
    )


_SETTLING: Final = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


def _settling(exc: KafkaException) -> bool:
    """Whether ``exc`` only says the partitions' leaders are still being elected."""
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and (error.retriable() or error.code() in _SETTLING)


def _ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def _at(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)


def _range_end(
    source: PartitionSource, window: _Window, begin: int, candidate: int, high: int
) -> tuple[int, datetime | None, str]:
    """The look-ahead rule (:func:`plan_day`): the end offset, its record's stamp, and why."""
    if candidate < 0:
        return high, None, f"end of the log (offset {high}): no record stamped past the look-ahead"
    found: int | None = None
    found_ms = seen = 0
    with closing(source.stamps(max(candidate, begin), high)) as stamps:
        for offset, timestamp_ms in stamps:
            if timestamp_ms < window.cut_off_ms:
                found, seen = None, 0
            elif found is None and timestamp_ms >= window.confirm_ms:
                found, found_ms, seen = offset, timestamp_ms, 1
            elif found is not None:
                seen += 1
            if found is not None and seen >= window.records:
                break
    if found is None or seen < window.records:
        return (
            high,
            None,
            (
                f"end of the log (offset {high}): no record past the look-ahead with "
                f"{window.records - 1} more after it past the cut-off"
            ),
        )
    return (
        found,
        _at(found_ms),
        (
            f"look-ahead: offset {found} is stamped {_at(found_ms):%Y-%m-%d %H:%M} UTC and it and "
            f"the {window.records - 1} record(s) after it all lie past the cut-off"
        ),
    )


def _tail(
    source: PartitionSource, window: _Window, marks: tuple[int, int], finish: int, read_to: str
) -> tuple[datetime | None, int, str]:
    """The newest stamp among the log's last records; and the range's end, moved to the end
    of the log when one of those records is stamped before the day's end."""
    low, high = marks
    stamps = list(source.stamps(max(low, high - window.records), high))
    if not stamps:
        return None, finish, read_to
    newest_at = _at(max(timestamp_ms for _, timestamp_ms in stamps))
    early = [offset for offset, timestamp_ms in stamps if timestamp_ms < window.day_end_ms]
    if early and finish < high:
        read_to = (
            f"end of the log (offset {high}): offset {early[-1]} near the end is stamped before "
            "the day's end (records appended out of time order, e.g. an older day replayed "
            "into a topic with newer data)"
        )
        finish = high
    return newest_at, finish, read_to
