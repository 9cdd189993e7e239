"""``kassa stream rebuild``: clear live days and let the stream job recount them from Kafka.

:func:`plan_rebuild` locates the first offset to recount in every partition (the start of
``--from DAY`` as the daily job's planner finds it, or the log start) and refuses when Kafka
no longer holds it. :func:`execute_rebuild` then makes ONE Lua call
(:meth:`storage.live.LiveStore.rebuild`): it clears the live keys of every day >= DAY, sets
each partition's watermark just before its first offset, records a replay floor (records
of older days up to the old watermark are not counted again: their days were kept) and
moves the epoch on. A running stream job's next batch then finds Redis "behind" (its epoch
is gone), and the job resumes every partition from the new watermarks: the same path as a
Redis rollback. Dead letters of the recounted range are sent to the dead-letter topic
again by a full rebuild (with ``--from`` the floor skips them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition

from common.redaction import redis_location
from common.settings import Settings
from jobs.stream.exceptions import RebuildRefusedError
from storage.connections import access_refusal
from storage.kafka.identity import read_identity
from storage.kafka.planning import plan_day
from storage.kafka.reading import open_consumer
from storage.kafka.topics import admin_client
from storage.live import Identity, LiveState, LiveStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionRebuild:
    """Where one partition's recount starts."""

    partition: int
    first: int
    """The first offset to recount."""
    low: int
    high: int
    watermark: int
    """Redis's watermark when the plan was made (-1: none)."""

    @property
    def records(self) -> int:
        """Records the stream job will read again (at most)."""
        return max(0, self.high - min(self.first, self.watermark + 1))


@dataclass(frozen=True)
class RebuildPlan:
    """What :func:`execute_rebuild` will do."""

    topic: str
    space: str
    day: date | None
    identity: Identity
    state: LiveState
    partitions: tuple[PartitionRebuild, ...]

    @property
    def records(self) -> int:
        """Records the stream job will read again."""
        return sum(part.records for part in self.partitions)

    def describe(self) -> str:
        """A few lines saying what the rebuild will do."""
        days = f"every live day from {self.day} on" if self.day else "EVERY live day"
        lines = [
            f"kassa stream rebuild of topic {self.topic!r} (key space {self.space!r}, "
            f"{self.identity}): clear {days}, then the stream job recounts them from Kafka, "
            f"reading about {self.records:,} records:"
        ]
        for part in self.partitions:
            lines.append(
                f"  partition {part.partition}: watermark {part.watermark} -> recount from "
                f"offset {part.first} (log holds {part.low}..{part.high - 1})"
            )
        if self.day is not None:
            lines.append(
                f"  records of days before {self.day} up to each partition's current watermark "
                "are not counted again (their days are kept)"
            )
        return "\n".join(lines)


def plan_rebuild(settings: Settings, store: LiveStore, day: date | None) -> RebuildPlan:
    """Locate the first offset to recount in every partition; refuse what Kafka cannot redo."""
    consumer = open_consumer(settings)
    try:
        if day is None:
            firsts = _log_starts(consumer, settings)
        else:
            firsts = _day_starts(consumer, settings, day)
    finally:
        consumer.close()
    identity = read_identity(admin_client(settings), settings.topic)
    try:
        state = store.state(sorted(firsts))
    except redis.RedisError as exc:
        refusal = access_refusal(settings, exc)
        if refusal is not None:
            raise refusal from exc
        msg = f"cannot read the watermarks from {redis_location(settings)} ({exc}); is it up?"
        raise RebuildRefusedError(msg) from exc
    if day is not None and (not state.exists or state.identity not in (None, identity)):
        msg = (
            f"--from {day} keeps the days before it, which needs the watermarks of this topic "
            f"in Redis ({'missing' if not state.exists else f'they count {state.identity}'}); "
            "rebuild every day instead ('kassa stream rebuild', no --from)"
        )
        raise RebuildRefusedError(msg)
    parts = tuple(
        PartitionRebuild(p, first, low, high, state.watermarks[p])
        for p, (first, low, high) in sorted(firsts.items())
    )
    return RebuildPlan(settings.topic, settings.key_space, day, identity, state, parts)


def execute_rebuild(settings: Settings, store: LiveStore, plan: RebuildPlan) -> int:
    """Clear the days and move the watermarks back in one Lua call; return the keys cleared."""
    firsts = {part.partition: part.first for part in plan.partitions}
    try:
        epoch, cleared = store.rebuild(plan.identity, plan.state.epoch, firsts, plan.day)
    except redis.RedisError as exc:
        refusal = access_refusal(settings, exc)
        if refusal is not None:
            raise refusal from exc
        if isinstance(exc, redis.ResponseError):
            raise RebuildRefusedError(str(exc)) from exc
        msg = f"cannot rebuild the live figures in {redis_location(settings)} ({exc}); is it up?"
        raise RebuildRefusedError(msg) from exc
    logger.info("rebuild: %d live keys cleared, epoch %d", cleared, epoch)
    return cleared


def _log_starts(consumer: Consumer, settings: Settings) -> dict[int, tuple[int, int, int]]:
    """Partition -> (log start, low, high); refuses when retention deleted records."""
    topic = settings.topic
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        marks = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)
            for p in sorted(metadata.partitions)
        }
    except (KafkaException, KeyError) as exc:
        msg = f"cannot read the offsets of topic {topic!r} ({exc}); is the broker up?"
        raise RebuildRefusedError(msg) from exc
    deleted = {p: low for p, (low, _) in marks.items() if low > 0}
    if deleted:
        listed = ", ".join(f"partition {p}: 0..{low - 1}" for p, low in sorted(deleted.items()))
        msg = (
            f"Kafka no longer holds the start of topic {topic!r} (deleted by retention: "
            f"{listed}), so every day cannot be recounted; rebuild from a day Kafka holds whole "
            "('kassa stream rebuild --from DAY') after repairing the older days with the "
            "daily job ('kassa daily run --day DAY --repair-live')"
        )
        raise RebuildRefusedError(msg)
    return {p: (low, low, high) for p, (low, high) in marks.items()}


def _day_starts(
    consumer: Consumer, settings: Settings, day: date
) -> dict[int, tuple[int, int, int]]:
    """Partition -> (first offset of ``day``, low, high), as the daily job plans the day."""
    plan = plan_day(consumer, settings, day)
    deleted = [part for part in plan.partitions if part.start == part.low and part.low > 0]
    if deleted:
        listed = ", ".join(f"partition {part.partition} starts at {part.low}" for part in deleted)
        msg = (
            f"Kafka no longer holds the start of {day} in topic {settings.topic!r} ({listed}: "
            "retention deleted records); repair the days it lost from the daily job's "
            f"snapshots ('kassa daily run --day {day} --repair-live') and rebuild from a later "
            "day"
        )
        raise RebuildRefusedError(msg)
    return {part.partition: (part.start, part.low, part.high) for part in plan.partitions}
