"""Prometheus metrics and the health of the stream job (served by :mod:`common.metrics`)."""

from __future__ import annotations

import json
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from jobs.stream.writer import BatchReport, RawBatch
from storage.live import ApplyStatus


class StreamMetrics:
    """The stream job's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
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
        self.state = "starting"
        self.last_batch_at = 0.0
        self._behind: set[int] = set()

    def record_batch(self, batch: RawBatch, report: BatchReport) -> None:
        """Count what the writer did with ``batch``.

        An applied batch counts its offsets, checkouts, lines, dead letters and Redis time; a
        refused one sets the partition's applied offset to the watermark Redis holds and, when
        another writer applied part of it, counts a conflict.
        """
        result = report.result
        if result.status is not ApplyStatus.APPLIED:
            self.applied_offset.labels(str(batch.partition)).set(result.watermark)
            if result.status is ApplyStatus.CONFLICT:
                self.conflicts.inc()
            return
        self.applied_offset.labels(str(batch.partition)).set(batch.last_offset)
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
        self.applied_offset.labels(str(partition)).set(watermark)
        if behind:
            self.record_redis_behind(partition)
        elif partition not in self._behind:
            self.redis_behind.labels(str(partition)).set(0)

    def record_redis_behind(self, partition: int) -> None:
        """Redis was found behind on ``partition``: 1 until the process ends (an alert that
        the next assignment, once the recount caught up, must not clear)."""
        self._behind.add(partition)
        self.redis_behind.labels(str(partition)).set(1)

    def on_kafka_stats(self, stats_json: str) -> None:
        """librdkafka ``stats_cb``: publish the consumer lag of every assigned partition."""
        stats = json.loads(stats_json)
        for topic in stats.get("topics", {}).values():
            for partition, figures in topic.get("partitions", {}).items():
                lag = figures.get("consumer_lag", -1)
                if partition != "-1" and lag >= 0:
                    self.consumer_lag.labels(partition).set(lag)

    def health(self) -> tuple[int, dict[str, Any]]:
        """HTTP status and body of ``/healthz``: 200 while the job runs."""
        age = time.time() - self.last_batch_at if self.last_batch_at else None
        body = {"state": self.state, "seconds_since_last_batch": age}
        return (200 if self.state == "running" else 503), body
