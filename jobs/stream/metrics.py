"""Prometheus metrics and the health of the stream job (served by :mod:`common.metrics`)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from common.settings import Settings
from jobs.stream.lag import LogEnd
from jobs.stream.writer import BatchReport, RawBatch
from storage.connections import Client, Target, open_redis
from storage.kafka.probe import KafkaProbe, KafkaState
from storage.live import ApplyStatus

logger = logging.getLogger(__name__)

PROBE_SECONDS = 2.0
"""How long ``/healthz`` waits for Redis' answer to its ping."""
KAFKA_PROBE_SECONDS = 5.0
"""How often the job probes Kafka (:func:`kafka_probe`), and how long a probe waits."""
FRESHNESS: Final = "kassa_stream_freshness_seconds"
LAG_SECONDS: Final = "kassa_stream_lag_seconds"
HEALTHY: Final = "kassa_stream_healthy"
REDIS_REACHABLE: Final = "kassa_stream_redis_reachable"


@dataclass
class _Partition:
    """What the metrics know of one partition this replica holds."""

    applied: int = -1
    """The last offset applied to Redis (-1: none)."""
    newest_ms: int | None = None
    """The newest record timestamp (ms) of the batches applied since the assignment."""
    end: LogEnd = field(default_factory=LogEnd)


class StreamMetrics:
    """The stream job's metrics, in a registry of their own, and what ``/healthz`` reports.

    One object lives as long as the process, across rebuilds of the Quix application.
    ``unassigned_limit`` and ``stuck_limit`` are the seconds after which no assigned
    partition, or a batch still waiting for its writer, make the job unhealthy; ``clock``
    gives the wall-clock time (Unix seconds) the freshness and the lag in seconds count from.

    The per-partition series exist only for the partitions this replica holds: a revoked or
    lost partition's series are removed (another replica reports them), except a
    ``kassa_stream_redis_behind`` of 1, which stays until the process ends once it was found.
    """

    def __init__(
        self,
        unassigned_limit: float = 120.0,
        stuck_limit: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # A flat declaration list, excepted from the 60-line limit on functions: one statement
        # per metric, each with its name and help text.
        self.registry = CollectorRegistry()
        registry = self.registry
        ProcessCollector(registry=registry)  # process_start_time_seconds: restarts
        self.messages = Counter(
            "kassa_stream_messages", "Kafka messages consumed and accounted for", registry=registry
        )
        self.checkouts = Counter(
            "kassa_stream_checkouts", "valid checkouts applied to Redis", registry=registry
        )
        self.lines = Counter(
            "kassa_stream_lines", "lines of the checkouts applied to Redis", registry=registry
        )
        self.dead_letters = Counter(
            "kassa_stream_dead_letters",
            "messages sent to the dead-letter topic",
            ["reason"],
            registry=registry,
        )
        self.replayed = Counter(
            "kassa_stream_replayed_messages",
            "messages skipped because Redis already held their offset",
            registry=registry,
        )
        self.conflicts = Counter(
            "kassa_stream_batch_conflicts",
            "batches refused because another writer had applied part of them",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "kassa_stream_batch_seconds",
            "time to apply one partition batch to Redis",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.batch_messages = Histogram(
            "kassa_stream_batch_messages",
            "offsets in one partition batch",
            buckets=(1, 10, 100, 1_000, 10_000, 100_000, 1_000_000),
            registry=registry,
        )
        self.applied_offset = Gauge(
            "kassa_stream_applied_offset",
            "last offset applied to Redis, per partition",
            ["partition"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "kassa_stream_consumer_lag",
            "messages between the consumer's position and the end of the partition",
            ["partition"],
            registry=registry,
        )
        self.redis_behind = Gauge(
            "kassa_stream_redis_behind",
            "1 once Redis was found behind the committed offset or the job (it lost data), until "
            "the process ends",
            ["partition"],
            registry=registry,
        )
        self.restarts = Counter(
            "kassa_stream_restarts",
            "rebuilds of the Quix application after Kafka or the group membership was lost",
            registry=registry,
        )
        self.kafka_reachable = Gauge(
            "kassa_stream_kafka_reachable",
            "1 while a Kafka broker answers the job's probe (every few seconds)",
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "kassa_stream_assigned_partitions",
            "partitions of the sales topic assigned to this replica",
            registry=registry,
        )
        self.kafka_reachable.set(1)
        self.clock = clock
        self._lock = threading.Lock()
        self._partitions: dict[int, _Partition] = {}
        """The partitions whose series this replica publishes (under ``_lock``)."""
        self.state = "starting"
        self.last_batch_at = 0.0
        self._behind: set[int] = set()
        self.kafka_down_since: float | None = None
        """``time.monotonic()`` when Kafka was last found unreachable, None while it answers."""
        self.watch_problem: str | None = None
        """What the job's watch found wrong under it (:mod:`jobs.stream.watch`), if anything."""
        self._unassigned_limit = unassigned_limit
        self._stuck_limit = stuck_limit
        self._assigned: set[int] = set()
        self._unassigned_since: float | None = time.monotonic()
        self._oldest_waiting: Callable[[], float | None] = lambda: None
        self._redis: Client | None = None
        registry.register(_ScrapeTimeCollector(self))

    def watch_writers(self, oldest_waiting: Callable[[], float | None]) -> None:
        """Report ``oldest_waiting()`` (``time.monotonic()`` when the oldest batch still waiting
        for its writer was opened, or None) in ``/healthz``."""
        self._oldest_waiting = oldest_waiting

    def record_assigned(self, partitions: Iterable[int]) -> None:
        """Partitions of the sales topic were assigned to this replica."""
        self._assigned.update(partitions)
        self._publish_assignment()

    def record_revoked(self, partitions: Iterable[int] | None = None) -> None:
        """Partitions were revoked from this replica or lost by it (None: all of them): their
        series go (see the class)."""
        with self._lock:
            gone = set(self._partitions) if partitions is None else set(partitions)
            for partition in gone:
                self._partitions.pop(partition, None)
                self.applied_offset.remove(str(partition))
                self.consumer_lag.remove(str(partition))
                if partition not in self._behind:
                    self.redis_behind.remove(str(partition))
        if partitions is None:
            self._assigned.clear()
        else:
            self._assigned.difference_update(partitions)
        self._publish_assignment()

    def _publish_assignment(self) -> None:
        self.assigned_partitions.set(len(self._assigned))
        if self._assigned:
            self._unassigned_since = None
        elif self._unassigned_since is None:
            self._unassigned_since = time.monotonic()

    def record_kafka(self, *, reachable: bool) -> None:
        """Whether a Kafka broker answers now."""
        self.kafka_reachable.set(1 if reachable else 0)
        if reachable:
            self.kafka_down_since = None
        elif self.kafka_down_since is None:
            self.kafka_down_since = time.monotonic()

    def record_probe(self, state: KafkaState) -> None:
        """Whether Kafka answered the probe (:func:`kafka_probe`); a change is logged."""
        was_down = self.kafka_down_since is not None
        self.record_kafka(reachable=state.reachable)
        if not state.reachable and not was_down:
            logger.warning("Kafka does not answer (%s); /healthz reports 503", state.reason)
        elif state.reachable and was_down:
            logger.info("Kafka answers again")

    def record_batch(self, batch: RawBatch, report: BatchReport) -> None:
        """Count what the writer did with ``batch``.

        An applied batch counts its offsets, checkouts, lines, dead letters and Redis time; a
        refused one sets the partition's applied offset to the watermark Redis holds and, when
        another writer applied part of it, counts a conflict.
        """
        result = report.result
        if result.status is not ApplyStatus.APPLIED:
            self._record_applied(batch.partition, result.watermark)
            if result.status is ApplyStatus.CONFLICT:
                self.conflicts.inc()
            return
        newest = batch.newest_ms if batch.newest_ms > 0 else None  # 0: no timestamps
        self._record_applied(batch.partition, batch.last_offset, newest)
        offsets = batch.last_offset - batch.first_offset + 1
        self.messages.inc(offsets)
        self.batch_messages.observe(offsets)
        self.batch_seconds.observe(report.seconds)
        self.checkouts.inc(report.checkouts)
        self.lines.inc(report.lines)
        for reason, count in report.dead_letters.items():
            self.dead_letters.labels(reason).inc(count)
        self.last_batch_at = max(self.last_batch_at, report.finished_at)

    def record_replayed(self, messages: int) -> None:
        """Count ``messages`` skipped because Redis already held their offsets."""
        self.replayed.inc(messages)
        self.messages.inc(messages)

    def record_watermark(self, partition: int, watermark: int, *, behind: bool) -> None:
        """Publish a newly assigned partition's watermark and whether Redis is behind Kafka."""
        with self._lock:
            self._partitions[partition] = _Partition()
        self._record_applied(partition, watermark)
        if behind:
            self.record_redis_behind(partition)
        elif partition not in self._behind:
            self.redis_behind.labels(str(partition)).set(0)

    def record_redis_behind(self, partition: int) -> None:
        """Redis was found behind on ``partition``: 1 until the process ends (an alert that
        the next assignment, once the recount caught up, must not clear)."""
        self._behind.add(partition)
        self.redis_behind.labels(str(partition)).set(1)

    def _record_applied(self, partition: int, offset: int, newest_ms: int | None = None) -> None:
        """Redis holds ``partition`` up to ``offset``; ``newest_ms`` is the newest record
        timestamp of a batch just applied. Ignored for a partition this replica no longer
        holds (a writer's report may arrive after the revocation)."""
        with self._lock:
            held = self._partitions.get(partition)
            if held is None:
                return
            held.applied = offset
            if newest_ms is not None and (held.newest_ms is None or newest_ms > held.newest_ms):
                held.newest_ms = newest_ms
            self.applied_offset.labels(str(partition)).set(offset)

    def on_kafka_stats(self, stats_json: str) -> None:
        """librdkafka ``stats_cb``: publish the consumer lag of every partition this replica
        holds, and note where its log ends (for the lag in seconds)."""
        stats = json.loads(stats_json)
        now = self.clock()
        with self._lock:
            for topic in stats.get("topics", {}).values():
                for name, figures in topic.get("partitions", {}).items():
                    held = self._partitions.get(int(name))
                    if held is None:
                        continue
                    lag = figures.get("consumer_lag", -1)
                    if lag >= 0:
                        self.consumer_lag.labels(name).set(lag)
                    end = figures.get("hi_offset", -1)
                    if end >= 0:
                        held.end.observe(now, end)

    def partition_clocks(self) -> dict[int, tuple[float | None, float | None]]:
        """Per partition held: seconds since its newest applied record's timestamp (the
        event-time freshness) and the lag in seconds (:meth:`LogEnd.lag_seconds`), each None
        while unknown."""
        now = self.clock()
        with self._lock:
            return {
                partition: (
                    None if held.newest_ms is None else now - held.newest_ms / 1000,
                    held.end.lag_seconds(held.applied + 1, now),
                )
                for partition, held in self._partitions.items()
            }

    def watch_redis(self, target: Target) -> None:
        """Ping the Redis of ``target`` (the settings, or a URL) for each ``/healthz`` (see
        :meth:`close`)."""
        self._redis = open_redis(target, timeout=PROBE_SECONDS)

    @property
    def watching_redis(self) -> bool:
        """Whether Redis is pinged (:meth:`watch_redis`)."""
        return self._redis is not None

    def close(self) -> None:
        """Close the connection of :meth:`watch_redis` and stop pinging."""
        if self._redis is not None:
            self._redis.close()
            self._redis = None

    def record_watch(self, problem: str | None) -> None:
        """What the job's watch found wrong under it (None: nothing); a change is logged."""
        if problem is not None and problem != self.watch_problem:
            logger.warning("%s; /healthz reports 503", problem)
        elif problem is None and self.watch_problem is not None:
            logger.info("resolved: %s", self.watch_problem)
        self.watch_problem = problem

    def health(self) -> tuple[int, dict[str, Any]]:
        """HTTP status and body of ``/healthz``: 200 while the job runs and nothing is wrong,
        else 503 with the reasons."""
        reasons = self.reasons(self.redis_problem())
        age = time.time() - self.last_batch_at if self.last_batch_at else None
        body = {
            "state": self.state,
            "reasons": reasons,
            "partitions": sorted(self._assigned),
            "seconds_since_last_batch": age,
        }
        return (503 if reasons else 200), body

    def reasons(self, redis_problem: str | None) -> list[str]:
        """Why the job is unhealthy now (empty: it is not), given what Redis answered."""
        now = time.monotonic()
        reasons = []
        if self.state != "running":
            reasons.append(f"the job is {self.state}")
        if self.kafka_down_since is not None:
            reasons.append(f"Kafka unreachable for {now - self.kafka_down_since:.0f} s")
        unassigned = now - self._unassigned_since if self._unassigned_since else 0.0
        if unassigned > self._unassigned_limit:
            reasons.append(
                f"no partition assigned for {unassigned:.0f} s (more replicas than partitions, "
                "or the group cannot settle)"
            )
        oldest = self._oldest_waiting()
        if oldest is not None and now - oldest > self._stuck_limit:
            reasons.append(
                f"a batch has waited {now - oldest:.0f} s for its writer process (stuck on "
                "Redis or on the dead-letter topic?)"
            )
        if redis_problem is not None:
            reasons.append(f"Redis unreachable: {redis_problem}")
        if self.watch_problem is not None:
            reasons.append(self.watch_problem)
        return reasons

    def redis_problem(self) -> str | None:
        """Why Redis does not answer a PING (None when it does, or when no Redis is watched)."""
        if self._redis is None:
            return None
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            return str(exc) or type(exc).__name__
        return None


class _ScrapeTimeCollector(Collector):
    """The series computed when Prometheus scrapes: the health (as ``/healthz`` answers it
    now, Redis pinged), and each held partition's freshness and lag in seconds."""

    def __init__(self, metrics: StreamMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """The families, each with its samples now."""
        metrics = self._metrics
        redis_problem = metrics.redis_problem()
        healthy = GaugeMetricFamily(HEALTHY, "1 while /healthz answers 200 (see its reasons)")
        healthy.add_metric([], 0 if metrics.reasons(redis_problem) else 1)
        reachable = GaugeMetricFamily(
            REDIS_REACHABLE, "1 while Redis answers the job's PING (at each scrape)"
        )
        if metrics.watching_redis:
            reachable.add_metric([], 0 if redis_problem else 1)
        freshness = GaugeMetricFamily(
            FRESHNESS,
            "seconds from the newest applied record's timestamp (its sale's time) to now, per "
            "partition held (from its first batch applied since the assignment)",
            labels=["partition"],
        )
        lag = GaugeMetricFamily(
            LAG_SECONDS,
            "seconds since the log's end passed the next offset to apply, per partition held",
            labels=["partition"],
        )
        for partition, (fresh, late) in sorted(metrics.partition_clocks().items()):
            if fresh is not None:
                freshness.add_metric([str(partition)], fresh)
            if late is not None:
                lag.add_metric([str(partition)], late)
        yield from (healthy, reachable, freshness, lag)


def kafka_probe(metrics: StreamMetrics, settings: Settings) -> KafkaProbe:
    """The probe of Kafka beside the stream job's consumer, every :data:`KAFKA_PROBE_SECONDS`;
    each answer goes to :meth:`StreamMetrics.record_probe`.

    The probe runs beside the consumer because the consumer cannot tell: its offset commit
    blocks, without serving any callback, for as long as the group coordinator is away.
    """
    return KafkaProbe(
        settings, KAFKA_PROBE_SECONDS, timeout=KAFKA_PROBE_SECONDS, on_state=metrics.record_probe
    )
