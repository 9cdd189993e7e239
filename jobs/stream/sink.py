"""The Quix sink that turns each partition batch into one idempotent Redis write."""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import redis
from quixstreams.sinks import BaseSink, SinkBackpressureError

from common.schema import InvalidCheckout, Limits, Reason, decode_checkout
from jobs.stream.aggregate import Aggregator
from jobs.stream.dead_letters import DeadLetters
from jobs.stream.exceptions import RedisUnavailableError
from jobs.stream.metrics import StreamMetrics
from storage.live import ApplyResult, ApplyStatus, LiveStore, PartitionDelta

logger = logging.getLogger(__name__)

CONFLICT_RETRY_SECONDS = 0.5
SPILL_OFFSETS = 20_000
"""A partition batch this long is written at once (bounds memory and the Lua call's length)."""


class LiveSink(BaseSink):
    """Decodes raw checkout bytes, aggregates them per partition, writes per batch.

    ``add`` is the per-message path: skip offsets Redis already holds (exactly-once mode),
    decode once, fold into the partition's :class:`PartitionDelta`, or dead-letter.
    A batch is written by a writer thread (one Lua call, :meth:`LiveStore.apply`, with the
    watermark the sink expects) when it spans :data:`SPILL_OFFSETS` offsets, so Redis works
    while the next batch is decoded; ``flush`` (called by Quix before it commits offsets)
    writes the rest and waits for every write. Writes of a partition stay in order, and one
    refused write makes every later one of the checkpoint refused too (compare-and-set).
    """

    def __init__(
        self,
        store: LiveStore,
        *,
        aggregator: Aggregator,
        dead_letters: DeadLetters,
        metrics: StreamMetrics,
        limits: Limits,
        exactly_once: bool = True,
        spill_offsets: int = SPILL_OFFSETS,
    ) -> None:
        super().__init__()
        self._store = store
        self._aggregator = aggregator
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._limits = limits
        self._exactly_once = exactly_once
        self._spill_offsets = spill_offsets
        self._deltas: dict[int, PartitionDelta] = {}
        self._watermarks: dict[int, int] = {}
        self._skipped = 0
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="kassa-redis-writer")
        self._pending: list[tuple[PartitionDelta, Future[ApplyResult]]] = []

    def __repr__(self) -> str:
        return "<LiveSink>"

    def on_assign(self, committed: dict[int, int]) -> None:
        """Load the watermarks of newly assigned partitions and compare them with Kafka.

        ``committed`` maps each partition to the group's committed offset (negative when the
        group has none). A watermark below ``committed - 1`` means Redis lost writes that
        Kafka considers done: logged as an error and shown by ``kassa_stream_redis_behind``.
        """
        try:
            watermarks = self._store.watermarks(committed)
        except redis.RedisError as exc:
            msg = f"cannot read the watermarks from Redis ({exc}); is KASSA_REDIS_URL up?"
            raise RedisUnavailableError(msg) from exc
        for partition, watermark in watermarks.items():
            self._watermarks[partition] = watermark
            self._metrics.applied_offset.labels(str(partition)).set(watermark)
            offset = committed[partition]
            behind = offset >= 0 and watermark < offset - 1
            self._metrics.redis_behind.labels(str(partition)).set(1 if behind else 0)
            if behind:
                logger.error(
                    "REDIS IS BEHIND KAFKA on partition %d: Redis holds offsets up to %d but "
                    "the consumer group committed %d, so the live counts of offsets %d..%d "
                    "are missing (Redis lost data: restarted without its AOF, flushed?). "
                    "Repair with the daily job or reset the group and clear the live keys.",
                    partition,
                    watermark,
                    offset,
                    watermark + 1,
                    offset - 1,
                )
            elif watermark >= offset >= 0:
                logger.info(
                    "partition %d: Redis is ahead of the committed offset %d (watermark %d); "
                    "offsets up to the watermark will be skipped",
                    partition,
                    offset,
                    watermark,
                )
        logger.info("assigned partitions %s, watermarks %s", sorted(committed), watermarks)

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
        """Fold one message into its partition's batch (the per-message path)."""
        delta = self._deltas.get(partition)
        if delta is None:
            delta = self._deltas[partition] = PartitionDelta(partition)
            if partition not in self._watermarks:
                self._watermarks.update(self._store.watermarks([partition]))
        if self._exactly_once and offset <= self._watermarks[partition]:
            self._skipped += 1
            return
        if delta.first_offset < 0:
            delta.first_offset = offset
        delta.last_offset = offset
        try:
            checkout = decode_checkout(value if value is not None else b"", self._limits)
        except InvalidCheckout as exc:
            self._dead_letter(delta, value, key, exc, (topic, partition, offset))
            return
        except Exception as exc:  # a decoder bug must not stop the job either
            logger.exception("unexpected error decoding %s[%d]@%d", topic, partition, offset)
            error = InvalidCheckout(Reason.INVALID_FIELD, f"{type(exc).__name__}: {exc}")
            self._dead_letter(delta, value, key, error, (topic, partition, offset))
            return
        self._aggregator.add(delta, checkout)
        if offset - delta.first_offset >= self._spill_offsets:
            self._submit(partition)

    def _dead_letter(
        self,
        delta: PartitionDelta,
        value: bytes | None,
        key: bytes | None,
        error: InvalidCheckout,
        position: tuple[str, int, int],
    ) -> None:
        reason, detail = error.reason, error.detail
        topic, partition, offset = position
        self._dead_letters.send(
            value,
            key,
            reason=reason.value,
            detail=detail,
            source_topic=topic,
            partition=partition,
            offset=offset,
        )
        delta.dead_letters[reason.value] = delta.dead_letters.get(reason.value, 0) + 1
        logger.warning("dead-lettered %s[%d]@%d: %s: %s", topic, partition, offset, reason, detail)

    def _submit(self, partition: int) -> None:
        """Hand a partition's batch to the writer thread, in order, with the expected watermark.

        Dead letters are delivered first, so a watermark never covers an undelivered one.
        """
        delta = self._deltas.pop(partition)
        if delta.empty:
            return
        self._dead_letters.flush()
        expected = self._watermarks[partition] if self._exactly_once else None
        self._watermarks[partition] = delta.last_offset
        self._pending.append((delta, self._writer.submit(self._apply, delta, expected)))

    def _apply(self, delta: PartitionDelta, expected: int | None) -> ApplyResult:
        started = time.perf_counter()
        result = self._store.apply(delta, expected)
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        return result

    def flush(self) -> None:
        """Write every partition's batch and wait for all writes of this checkpoint.

        Quix commits offsets after this returns, so every write of the checkpoint is in
        Redis by then. If a write was refused because another replica got there first, raise
        ``SinkBackpressureError``: Quix rewinds to the last commit and the replay skips what
        Redis holds.
        """
        for partition in list(self._deltas):
            self._submit(partition)
        pending, self._pending = self._pending, []
        wait([future for _, future in pending])
        metrics = self._metrics
        if self._skipped:
            metrics.replayed.inc(self._skipped)
            metrics.messages.inc(self._skipped)
            self._skipped = 0
        conflict = False
        for delta, future in pending:
            try:
                result = future.result()
            except redis.RedisError as exc:
                msg = (
                    f"cannot write partition {delta.partition}'s batch to Redis ({exc}); "
                    "check that the server of KASSA_REDIS_URL is up. Restarting kassa stream "
                    "is safe: it resumes from the last commit"
                )
                raise RedisUnavailableError(msg) from exc
            partition = delta.partition
            if result.status is not ApplyStatus.APPLIED:
                self._watermarks[partition] = result.watermark
            metrics.applied_offset.labels(str(partition)).set(self._watermarks[partition])
            if result.status is ApplyStatus.CONFLICT:
                conflict = True
                metrics.conflicts.inc()
                logger.warning(
                    "partition %d: batch %d..%d refused, Redis holds watermark %d written by "
                    "another replica; rewinding to the last commit",
                    partition,
                    delta.first_offset,
                    delta.last_offset,
                    result.watermark,
                )
            elif result.status is ApplyStatus.DUPLICATE:
                logger.info(
                    "partition %d: batch %d..%d was already applied (watermark %d)",
                    partition,
                    delta.first_offset,
                    delta.last_offset,
                    result.watermark,
                )
            else:
                offsets = delta.last_offset - delta.first_offset + 1
                metrics.messages.inc(offsets)
                metrics.batch_messages.observe(offsets)
                metrics.checkouts.inc(delta.checkouts)
                metrics.lines.inc(delta.lines)
                for reason, count in delta.dead_letters.items():
                    metrics.dead_letters.labels(reason).inc(count)
                metrics.last_batch_at = time.time()
        if conflict:
            raise SinkBackpressureError(retry_after=CONFLICT_RETRY_SECONDS)

    def close(self) -> None:
        """Stop the writer thread and release the dead-letter producer (after the app)."""
        self._writer.shutdown(wait=True)
        self._dead_letters.close()

    def on_paused(self) -> None:
        """Quix rewinds after backpressure: drop the batches it will replay."""
        self._deltas.clear()
        self._skipped = 0
