"""The Quix sink: partition batches handed to the writer process, applied exactly once."""

from __future__ import annotations

import functools
import logging
import threading
import time
from concurrent.futures import Future, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from quixstreams.sinks import BaseSink, SinkBackpressureError

from jobs.stream.exceptions import (
    IdentityMismatchError,
    KafkaContactLostError,
    RedisBehindError,
    StreamError,
    TopicChangedError,
    WriterDiedError,
)
from jobs.stream.metrics import StreamMetrics
from jobs.stream.writer import BatchReport, BatchWriter, RawBatch
from storage.live import ApplyStatus, Expectation, Identity, LiveState, LiveStore, ReplayFloor

logger = logging.getLogger(__name__)

CONFLICT_RETRY_SECONDS = 0.5
SPILL_OFFSETS = 20_000
SPILL_BYTES = 32 << 20
"""A partition batch this long or this large is handed over at once (bounds memory and the
length of the Lua call)."""
MAX_IN_FLIGHT = 16
"""Batches handed over and not yet written beyond which ``add`` waits (backpressure)."""
IDLE_SECONDS = 0.02
"""A batch that got no record for this long is handed over without waiting for its age, so
the live counts catch up as soon as a burst of checkouts ends."""


class LiveSink(BaseSink):
    """Collects each partition's records into batches and has them applied exactly once.

    ``add`` is the per-message path and stays tiny: skip offsets Redis already holds
    (exactly-once mode) and append the raw record to its partition's :class:`RawBatch`. A
    batch goes to the :class:`BatchWriter` (decode, aggregate, dead-letter, one Lua call
    with the watermark the sink expects) when it spans ``spill_offsets`` offsets or
    ``spill_bytes`` bytes, or when a timer thread finds it ``write_interval`` seconds old or
    idle (no record for ``idle_seconds``), so the live counts trail Kafka by at most about
    ``write_interval`` whatever the commit interval. ``flush`` (called by Quix before it
    commits offsets) hands over the rest and waits for every batch. Batches of a partition
    are applied in order, and one refused batch makes every later one of the checkpoint
    refused too (compare-and-set).
    """

    def __init__(
        self,
        store: LiveStore,
        writer: BatchWriter,
        *,
        metrics: StreamMetrics,
        exactly_once: bool = True,
        write_interval: float = 0.25,
        idle_seconds: float = IDLE_SECONDS,
        spill_offsets: int = SPILL_OFFSETS,
        spill_bytes: int = SPILL_BYTES,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        super().__init__()
        self._store = store
        self._writer = writer
        self._metrics = metrics
        self._exactly_once = exactly_once
        self._write_interval = write_interval
        self._idle_seconds = idle_seconds
        self._spill_offsets = spill_offsets
        self._spill_bytes = spill_bytes
        self._max_in_flight = max_in_flight
        self._batches: dict[int, RawBatch] = {}
        self._watermarks: dict[int, int] = {}
        self._applied: dict[int, int] = {}
        """Partition -> the last offset a writer saw Redis apply (the watch compares)."""
        # Its own lock: a writer's callback may run inside _submit, which holds _lock.
        self._applied_lock = threading.Lock()
        self._halted = False
        self._rewinding: set[int] = set()
        """Partitions Quix rewound (after backpressure) and replays: skips are expected."""
        self._identity: Identity | None = None
        self._epoch = 0
        self._floor: ReplayFloor | None = None
        self._skipped = 0
        self._pending: list[tuple[RawBatch, Future[BatchReport]]] = []
        self._lock = threading.Lock()  # batches, watermarks and pending: add vs the timer
        self._timer_failure: BaseException | None = None
        self._stopped = threading.Event()
        self._timer = threading.Thread(target=self._hand_over_old_batches, daemon=True)
        self._timer.start()
        metrics.watch_writers(self.oldest_waiting)

    def __repr__(self) -> str:
        return "<LiveSink>"

    def on_assign(self, state: LiveState, identity: Identity, starts: dict[int, int]) -> None:
        """Take over newly assigned partitions: Redis's ``state`` and where Kafka resumes.

        ``starts`` maps each partition to the offset the consumer resumes from (Redis's
        watermark + 1, see :class:`~jobs.stream.assignment.Assignments`).
        """
        with self._lock:
            for partition in starts:
                self._batches.pop(partition, None)
            self._watermarks.update(state.watermarks)
            with self._applied_lock:
                self._applied.update(state.watermarks)
            self._identity = identity
            self._epoch = state.epoch
            self._floor = state.floor
        logger.info(
            "assigned partitions %s, watermarks %s, resuming at %s",
            sorted(starts),
            state.watermarks,
            starts,
        )

    def on_revoke(self, partitions: list[int]) -> None:
        """Forget revoked or lost partitions: their unsubmitted batches and watermarks.

        Another replica may apply them meanwhile; if they come back, :meth:`on_assign` reads
        the watermarks again and the consumer resumes after them.
        """
        with self._lock:
            for partition in partitions:
                self._batches.pop(partition, None)
                self._watermarks.pop(partition, None)
                with self._applied_lock:
                    self._applied.pop(partition, None)

    def applied(self) -> tuple[dict[int, int], int]:
        """The last offset Redis applied per partition this replica holds, as the writers
        saw it, and the epoch the batches carry."""
        with self._applied_lock:
            return dict(self._applied), self._epoch

    def halt(self) -> None:
        """Hand no more batch to the writers (the job stops without its last commit)."""
        with self._lock:
            self._halted = True
            self._batches.clear()

    def oldest_waiting(self) -> float | None:
        """``time.monotonic()`` when the oldest batch still waiting for its writer was opened
        (read without the lock, which ``add`` holds while the writers are behind)."""
        waiting = [batch.opened for batch, future in list(self._pending) if not future.done()]
        return min(waiting, default=None)

    def add(  # noqa: PLR0917 - the signature is Quix's
        self,
        value: Any,
        key: Any,
        timestamp: int,
        headers: Any,
        topic: str,
        partition: int,
        offset: int,
    ) -> None:
        """Append one record to its partition's batch (the per-message path)."""
        lock = self._lock
        lock.acquire()  # cheaper than ``with`` on this path, which runs for every message
        try:
            batch = self._batches.get(partition)
            if batch is None:
                if partition not in self._watermarks:
                    msg = f"partition {partition} was not assigned to the sink (on_assign)"
                    raise StreamError(msg)
                if self._exactly_once and offset <= self._watermarks[partition]:
                    self._skip(partition, offset)
                    return
                self._rewinding.discard(partition)  # past the replay
                batch = self._batches[partition] = RawBatch(topic, partition, time.monotonic())
            elif self._exactly_once and offset <= self._watermarks[partition]:
                self._skip(partition, offset)
                return
            batch.offsets.append(offset)
            batch.keys.append(key)
            batch.values.append(value)
            if timestamp > batch.newest_ms:  # noqa: PLR1730 - cheaper than max() per message
                batch.newest_ms = timestamp
            if value is not None:
                batch.size += len(value)
            if len(batch.offsets) >= self._spill_offsets or batch.size >= self._spill_bytes:
                self._submit(partition)
        finally:
            lock.release()

    def _skip(self, partition: int, offset: int) -> None:
        """Skip a record Redis holds; the caller holds the lock. Only a replay after Quix's
        rewind delivers one: else the log moved back under the job (a recreated topic read
        from its start) and the job stops to check the topic."""
        if partition not in self._rewinding:
            watermark = self._watermarks[partition]
            what = f"partition {partition} delivered offset {offset} after {watermark}, unrewound"
            raise TopicChangedError(what)
        self._skipped += 1

    def _submit(self, partition: int) -> None:
        """Hand a partition's batch to the writer, in order, with the expected watermark.

        The caller holds the lock. The batch stays in place if the writer refuses it. When
        the writer is ``max_in_flight`` batches behind, wait for it (holding the lock, so
        ``add`` waits too: memory stays bounded when Redis or the writer is slow).
        """
        if self._halted:
            del self._batches[partition]
            return
        batch = self._batches[partition]
        watermark = self._watermarks[partition]
        assert self._identity is not None, "on_assign comes before the first record"
        expected = Expectation(
            self._identity, self._epoch, watermark if self._exactly_once else None
        )
        floor = None if self._floor is None else self._floor.of(partition)
        future = self._writer.submit(batch, expected, floor)
        del self._batches[partition]
        self._watermarks[partition] = batch.last_offset
        self._pending.append((batch, future))
        future.add_done_callback(functools.partial(self._count, batch))
        in_flight = [future for _, future in self._pending if not future.done()]
        if len(in_flight) > self._max_in_flight:
            wait(in_flight[: len(in_flight) - self._max_in_flight])

    def _hand_over_old_batches(self) -> None:
        """The timer thread: hand over every batch that is old or idle."""
        # Each open batch, its length and when the timer last saw that length change.
        seen: dict[int, tuple[RawBatch, int, float]] = {}
        tick = min(self._idle_seconds, self._write_interval) / 2
        while not self._stopped.wait(tick):
            try:
                with self._lock:
                    self._hand_over_due(seen, time.monotonic())
            except Exception as exc:  # flush() hands the batches over again and raises
                logger.exception("cannot hand a batch to the writer")
                self._timer_failure = exc
                return

    def _hand_over_due(self, seen: dict[int, tuple[RawBatch, int, float]], now: float) -> None:
        """Hand over the batches old or idle at ``now``; the caller holds the lock.

        ``seen`` is the timer's record of each open batch: its length and when that changed.
        """
        for partition, batch in list(self._batches.items()):
            length = len(batch.offsets)
            last = seen.get(partition)
            if last is None or last[0] is not batch or last[1] != length:
                seen[partition] = last = (batch, length, now)
            idle = now - last[2] >= self._idle_seconds
            if idle or now - batch.opened >= self._write_interval:
                self._submit(partition)
        for partition in seen.keys() - self._batches.keys():
            del seen[partition]  # handed over (by anyone): let the batch go

    def flush(self) -> None:
        """Hand over every partition's batch and wait for all batches of this checkpoint.

        Quix commits offsets after this returns, so every batch of the checkpoint is in
        Redis by then. If a batch was refused because another replica got there first, raise
        ``SinkBackpressureError``: Quix rewinds to the last commit and the replay skips what
        Redis holds. While Kafka does not answer, raise :class:`KafkaContactLostError` instead
        of letting Quix commit (see :func:`~jobs.stream.metrics.kafka_probe`).
        """
        with self._lock:
            for partition in list(self._batches):
                self._submit(partition)
            pending, self._pending = self._pending, []
        wait([future for _, future in pending])
        if self._timer_failure is not None:
            msg = "the stream job's batch timer failed (see the log above); restart kassa stream"
            raise StreamError(msg) from self._timer_failure
        if self._skipped:
            self._metrics.record_replayed(self._skipped)
            self._skipped = 0
        behind, conflict = self._settle(pending)
        if behind:
            # Not a rewind to the last commit: that would skip what Redis lost. The whole
            # application is rebuilt and resumes from Redis's watermarks (run_stream).
            raise RedisBehindError(behind)
        if conflict:
            with self._lock:  # Quix seeks back to the last commit: the replay skips
                self._rewinding.update(self._watermarks)
            raise SinkBackpressureError(retry_after=CONFLICT_RETRY_SECONDS)
        if self._metrics.kafka_down_since is not None:
            # librdkafka's offset commit would block until the group coordinator is back.
            raise KafkaContactLostError("Kafka does not answer the job's probe")

    def _settle(
        self, pending: list[tuple[RawBatch, Future[BatchReport]]]
    ) -> tuple[dict[int, tuple[int, int]], bool]:
        """Take in the refused batches of a checkpoint: the partitions Redis is behind on
        (its watermark and the offset the job expected), and whether another replica wrote
        part of a batch (a conflict). A batch of another topic or cluster raises
        :class:`IdentityMismatchError`."""
        conflict = False
        behind: dict[int, tuple[int, int]] = {}
        refused: set[int] = set()
        for batch, future in pending:
            report = self._report(future)
            partition = batch.partition
            result = report.result
            if result.status is ApplyStatus.APPLIED:
                continue  # counted by _count as soon as it was written
            if result.status is ApplyStatus.FOREIGN:
                assert self._identity is not None
                space = self._store.space
                raise IdentityMismatchError(space, "another topic or cluster", self._identity)
            if result.status is ApplyStatus.BEHIND and partition not in refused:
                # The first refusal of the partition: Redis lost writes (or was rebuilt).
                # After a refused batch, the later ones expect more than Redis holds anyway.
                behind.setdefault(partition, (result.watermark, batch.first_offset - 1))
                self._metrics.record_redis_behind(partition)
                continue
            refused.add(partition)
            with self._lock:
                self._watermarks[partition] = result.watermark
                # another writer got further: the records up to its watermark are skipped
                self._rewinding.add(partition)
            self._metrics.record_batch(batch, report)
            conflict = conflict or result.status is not ApplyStatus.DUPLICATE
            _log_refused(batch, report)
        return behind, conflict

    def _report(self, future: Future[BatchReport]) -> BatchReport:
        try:
            return future.result()  # the writer raises StreamRedisUnavailableError when Redis fails
        except BrokenProcessPool as exc:
            raise WriterDiedError from exc

    def _count(self, batch: RawBatch, future: Future[BatchReport]) -> None:
        """Metrics and dead-letter log lines of a written batch, as soon as it is written."""
        if future.exception() is not None:
            return  # flush raises it
        report = future.result()
        if report.result.status is not ApplyStatus.APPLIED:
            return  # flush reports it
        with self._applied_lock:
            if batch.partition in self._applied:
                self._applied[batch.partition] = max(
                    self._applied[batch.partition], batch.last_offset
                )
        self._metrics.record_batch(batch, report)
        _log_dead_letters(batch, report)

    def close(self) -> None:
        """Stop the timer and the writer (after the application stopped)."""
        self._stopped.set()
        self._timer.join()
        self._writer.close()

    def on_paused(self) -> None:
        """Quix rewinds after another sink's backpressure: drop the batches it will replay."""
        with self._lock:
            self._batches.clear()
            self._rewinding.update(self._watermarks)
            self._skipped = 0


def check_watermarks(
    committed: dict[int, int], watermarks: dict[int, int], metrics: StreamMetrics
) -> None:
    """Compare the watermarks Redis holds with the offsets the consumer group committed.

    A watermark below ``committed - 1`` means Redis lost writes that Kafka considers done
    (the job recounts them from the watermark on): logged as an error and shown by
    ``kassa_stream_redis_behind``. A watermark at or past the committed offset is normal after
    a crash between the Redis write and the commit.
    """
    for partition, watermark in watermarks.items():
        offset = committed[partition]
        behind = offset >= 0 and watermark < offset - 1
        metrics.record_watermark(partition, watermark, behind=behind)
        if behind:
            logger.error(
                "REDIS IS BEHIND KAFKA on partition %d: Redis holds offsets up to %d but "
                "the consumer group committed %d (Redis lost data: restored from an older "
                "copy, restarted without its AOF?); recounting offsets %d..%d from Kafka",
                partition,
                watermark,
                offset,
                watermark + 1,
                offset - 1,
            )
        elif watermark >= offset >= 0:
            logger.info(
                "partition %d: Redis is ahead of the committed offset %d (watermark %d); "
                "resuming after the watermark",
                partition,
                offset,
                watermark,
            )


def _log_refused(batch: RawBatch, report: BatchReport) -> None:
    """The log line of a batch refused because Redis already held (part of) it."""
    result = report.result
    if result.status is ApplyStatus.DUPLICATE:
        logger.info(
            "partition %d: batch %d..%d was already applied (watermark %d)",
            batch.partition,
            batch.first_offset,
            batch.last_offset,
            result.watermark,
        )
    else:
        logger.warning(
            "partition %d: batch %d..%d refused, Redis holds watermark %d written by "
            "another replica; rewinding to the last commit",
            batch.partition,
            batch.first_offset,
            batch.last_offset,
            result.watermark,
        )


def _log_dead_letters(batch: RawBatch, report: BatchReport) -> None:
    """One warning per refused message the report describes, one for the rest."""
    for refusal in report.refusals:
        logger.warning(
            "dead-lettered %s[%d]@%d: %s: %s",
            batch.topic,
            batch.partition,
            refusal.offset,
            refusal.reason,
            refusal.detail,
        )
    unreported = sum(report.dead_letters.values()) - len(report.refusals)
    if unreported:
        logger.warning(
            "dead-lettered %d more message(s) of %s[%d]@%d..%d",
            unreported,
            batch.topic,
            batch.partition,
            batch.first_offset,
            batch.last_offset,
        )
