"""Where each assigned sales partition resumes: from what Redis applied.

Redis is the truth about what was applied, whether it is ahead of the group's commit or
behind it. On every assignment :class:`Assignments` checks that Redis's watermarks count
this topic (:class:`~storage.live.Identity`) and sets each sales partition's start offset to
its watermark + 1 (:func:`resume_offsets`); on a revocation the sink forgets the partitions.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from common.settings.redis import RedisSettings
from jobs.stream.exceptions import (
    IdentityMismatchError,
    RecordsLostError,
    StreamError,
    StreamRedisUnavailableError,
    WatermarksLostError,
)
from jobs.stream.metrics import StreamMetrics
from jobs.stream.sink import LiveSink, check_watermarks
from jobs.stream.watch import Watch
from storage.connections import redis_failures
from storage.kafka.exceptions import TopicIdentityError
from storage.kafka.identity import describe_topic
from storage.live import LiveStore

logger = logging.getLogger(__name__)

COMMITTED_TIMEOUT_SECONDS = 30.0


class Assignments:
    """The stream job's :class:`~jobs.stream.quix.Listener`: resumes every assigned partition of
    ``topic`` from Redis's watermark + 1 (only when ``exactly_once``; else from the group's
    commit) and tells the sink and the metrics which partitions this replica holds."""

    def __init__(
        self,
        sink: LiveSink,
        metrics: StreamMetrics,
        store: LiveStore,
        admin: AdminClient,
        watch: Watch,
        *,
        topic: str,
        exactly_once: bool,
        redis: RedisSettings,
    ) -> None:
        self._sink = sink
        self._metrics = metrics
        self._store = store
        self._admin = admin
        self._watch = watch
        self._topic = topic
        self._exactly_once = exactly_once
        self._redis = redis

    def assigning(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        """Check Redis's watermarks for the sales partitions in ``topic_partitions`` and set
        each one's start offset in place."""
        mine = [tp for tp in topic_partitions if tp.topic == self._topic]
        if mine:
            self._resume(consumer, mine)

    def assigned(self, topic_partitions: list[TopicPartition]) -> None:
        """The consumer was assigned ``topic_partitions``."""
        self._metrics.record_assigned(self._partitions(topic_partitions))

    def revoked(self, topic_partitions: list[TopicPartition]) -> None:
        """``topic_partitions`` were revoked or lost: the sink forgets them."""
        self._sink.on_revoke(self._partitions(topic_partitions))
        self._metrics.record_revoked(self._partitions(topic_partitions))

    def _partitions(self, topic_partitions: list[TopicPartition]) -> list[int]:
        return [tp.partition for tp in topic_partitions if tp.topic == self._topic]

    def _resume(self, consumer: Any, mine: list[TopicPartition]) -> None:
        """Check Redis's watermarks for ``mine`` and set each one's start offset in place."""
        partitions = [tp.partition for tp in mine]
        shape = describe_topic(self._admin, self._topic)
        if shape is None:
            raise TopicIdentityError(self._topic, "no such topic")
        identity = shape.identity
        with redis_failures(self._redis, "read the watermarks from", StreamRedisUnavailableError):
            state = self._store.state(partitions)
            if state.identity is not None and state.identity != identity:
                raise IdentityMismatchError(self._store.space, state.identity, identity)
            if not state.exists and self._store.has_day_keys():
                raise WatermarksLostError(self._store.applied_key)
            if state.exists and state.identity is None:
                logger.warning("recording %s in %s", identity, self._store.applied_key)
                self._store.claim(identity)
        committed = {
            tp.partition: tp.offset
            for tp in consumer.committed(mine, timeout=COMMITTED_TIMEOUT_SECONDS)
        }
        logs = {
            tp.partition: consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition),
                timeout=COMMITTED_TIMEOUT_SECONDS,
                cached=False,
            )
            for tp in mine
        }
        starts = resume_offsets(self._topic, state.watermarks, logs)
        check_watermarks(committed, state.watermarks, self._metrics)
        if self._exactly_once:
            for tp in mine:
                tp.offset = starts[tp.partition]
        self._sink.on_assign(state, identity, starts)
        self._watch.assigned(identity, shape.partitions)


def resume_offsets(
    topic: str, watermarks: dict[int, int], logs: dict[int, tuple[int, int]]
) -> dict[int, int]:
    """Where each partition resumes: its watermark + 1, or the log start without a watermark.

    ``logs`` maps each partition to its ``(low, high)`` offsets. Raises
    :class:`RecordsLostError` when retention deleted records Redis has not applied, and
    :class:`StreamError` when Redis claims offsets past the end of the log.
    """
    starts: dict[int, int] = {}
    lost: dict[int, tuple[int, int]] = {}
    for partition, watermark in sorted(watermarks.items()):
        low, high = logs[partition]
        if watermark < 0:
            if low > 0:
                logger.warning(
                    "partition %d of %s has no watermark in Redis and its log starts at offset "
                    "%d: offsets 0..%d (deleted by retention) are not counted",
                    partition,
                    topic,
                    low,
                    low - 1,
                )
            starts[partition] = low
        elif watermark + 1 < low:
            lost[partition] = (watermark + 1, low - 1)
        elif watermark + 1 > high:
            msg = (
                f"Redis holds offsets up to {watermark} of partition {partition} of {topic!r}, "
                f"whose log ends at {high}: the watermarks belong to another topic (a shared "
                "KASSA_REDIS_KEY_SPACE?); reset them with 'kassa stream rebuild'"
            )
            raise StreamError(msg)
        else:
            starts[partition] = watermark + 1
    if lost:
        raise RecordsLostError(topic, lost)
    return starts
