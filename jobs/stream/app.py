"""The stream job wired together: a Quix Streams application reading the sales topic into the
live Redis store (:func:`build_stream_job`).

The parts live in their own modules: the Quix adapter (:mod:`jobs.stream.quix`), where each
assigned partition resumes (:mod:`jobs.stream.assignment`), the sink and its writer
processes (:mod:`jobs.stream.sink`, :mod:`jobs.stream.writer`), what Quix's and librdkafka's
errors mean (:mod:`jobs.stream.failures`); :mod:`jobs.stream.supervisor` runs and rebuilds
the job as ``kassa stream``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quixstreams.models.topics.exceptions import TopicPermissionError

from common.settings import Settings
from jobs.stream.assignment import Assignments
from jobs.stream.exceptions import (
    EvictionPolicyError,
    StreamError,
    StreamRedisUnavailableError,
    TopicChangedError,
)
from jobs.stream.failures import consumer_failed, refusal, stream_failure
from jobs.stream.metrics import StreamMetrics
from jobs.stream.quix import StreamApplication
from jobs.stream.sink import LiveSink
from jobs.stream.watch import Watch
from jobs.stream.writer import BatchWriter
from storage.connections import Client, open_redis, redis_failures
from storage.kafka.config import quix_connection
from storage.kafka.exceptions import TopicIdentityError
from storage.kafka.topics import admin_client
from storage.live import LiveStore

logger = logging.getLogger(__name__)

STATS_INTERVAL_MS = 5000
FETCH_CONFIG = {"max.partition.fetch.bytes": 8 << 20}
"""librdkafka fetch settings of the job's consumer (bigger fetches than the 1 MiB default)."""


@dataclass
class StreamJob:
    """A built stream job: the application and the parts tests and the CLI look at."""

    app: StreamApplication
    sink: LiveSink
    metrics: StreamMetrics
    redis_client: Client
    store: LiveStore
    settings: Settings
    watch: Watch
    instance_id: str | None = None
    """The consumer's ``group.instance.id`` (None: dynamic membership)."""
    started: bool = False
    """Redis answered when the job started (a Redis failure after that is an outage)."""

    def run(self, timeout: float = 0.0) -> None:
        """Consume until SIGTERM/SIGINT, or until ``timeout`` seconds pass without a message.

        Raises a :class:`~jobs.stream.exceptions.StreamError` naming the fix when Redis or the
        dead-letter topic fails (also when Quix wrapped it in one of its own errors), and a
        :class:`~jobs.stream.exceptions.KafkaContactLostError` when Kafka or the group
        membership was lost.
        """
        try:
            self._check_redis()
            self.started = True
            self.metrics.state = "running"
            self.watch.start()
            self.app.run(timeout=timeout, collect=False)
        except Exception as exc:
            cause = (
                self.watch.failure
                or refusal(exc, self.settings)
                or stream_failure(exc, self.instance_id)
            )
            if isinstance(cause, TopicChangedError):
                cause = self._verdict() or cause  # recreated or deleted: say which
            if cause is None:
                raise
            raise cause from exc
        finally:
            self.watch.stop()
            self.metrics.state = "stopped"
            self.metrics.record_revoked()
            self.sink.close()
            self.redis_client.close()
        if self.watch.failure is not None:
            raise self.watch.failure

    def _verdict(self) -> StreamError | None:
        """The watch's verdict on a topic the consumer saw change; None when it cannot tell
        (Kafka does not answer: the restart loop waits for it, then the assignment checks)."""
        try:
            return self.watch.verdict()
        except TopicIdentityError:
            return None

    def _check_redis(self) -> None:
        """Redis answers, and its ``maxmemory-policy`` cannot evict kassa's keys."""
        with redis_failures(self.settings, "reach", StreamRedisUnavailableError):
            self.redis_client.ping()
            policy = self.store.eviction_policy()
        if policy != "noeviction":
            raise EvictionPolicyError(self.settings, policy)


def build_stream_job(
    settings: Settings,
    metrics: StreamMetrics | None = None,
    on_message_processed: Callable[[str, int, int], None] | None = None,
) -> StreamJob:
    """Wire the Quix application, the live Redis store and the dead-letter producer.

    ``on_message_processed(topic, partition, offset)`` is Quix's per-message callback
    (benchmarks use it to time the run). The process's allocator is left as it is (see
    :func:`~jobs.stream.supervisor.run_stream`). The consumer is a static group member when
    ``KASSA_STREAM_STATIC_MEMBERSHIP`` is on and ``KASSA_STREAM_INSTANCE_ID`` names it
    (:func:`~jobs.stream.supervisor.run_stream` fills in the id when it is empty).
    """
    metrics = metrics or StreamMetrics(
        settings.stream_unassigned_limit_seconds, settings.stream_stuck_seconds
    )
    instance_id = settings.stream_instance_id if settings.stream_static_membership else ""
    client = open_redis(settings)
    store = LiveStore(client, settings.key_space, settings.zone, settings.retention_days)
    exactly_once = settings.stream_guarantee == "exactly-once"
    sink = LiveSink(
        store,
        BatchWriter(settings),
        metrics=metrics,
        exactly_once=exactly_once,
        write_interval=settings.stream_write_interval,
    )
    admin = admin_client(settings)
    watch = Watch(
        admin,
        store,
        metrics,
        topic=settings.topic,
        interval=settings.stream_check_seconds,
        # at-least-once batches may move a watermark back: only exactly-once compares them
        applied=sink.applied if exactly_once else lambda: ({}, 0),
        stop=lambda: _stop_now(sink, app),
    )
    assignments = Assignments(
        sink,
        metrics,
        store,
        admin,
        watch,
        topic=settings.topic,
        exactly_once=exactly_once,
        redis=settings,
    )
    broker, connection_extra = quix_connection(settings)
    app = StreamApplication(
        assignments,
        metrics,
        broker_address=broker,
        consumer_group=settings.consumer_group,
        auto_offset_reset="earliest",
        auto_create_topics=False,
        broker_availability_timeout=settings.stream_outage_limit_seconds,
        commit_interval=settings.stream_commit_interval,
        processing_guarantee="at-least-once",
        on_message_processed=on_message_processed,
        on_consumer_error=consumer_failed,
        loglevel=None,  # Quix logs through the handlers the CLI configured (e.g. --log-json)
        state_dir=settings.state_dir / "quix",
        consumer_extra_config=connection_extra | _consumer_config(settings, metrics, instance_id),
        producer_extra_config=connection_extra,
    )
    try:  # Quix describes the topic and its configs here
        topic = app.topic(settings.topic, value_deserializer="bytes", key_deserializer="bytes")
    except TopicPermissionError as exc:
        refused = refusal(exc, settings)
        if refused is None:
            raise
        raise refused from exc
    app.dataframe(topic).sink(sink)
    return StreamJob(app, sink, metrics, client, store, settings, watch, instance_id or None)


def _stop_now(sink: LiveSink, app: StreamApplication) -> None:
    """Stop the job at once, writing and committing nothing more (the watch found it wrong)."""
    sink.halt()
    app.stop(fail=True)


def _consumer_config(
    settings: Settings, metrics: StreamMetrics, instance_id: str
) -> dict[str, Any]:
    """The librdkafka settings of the job's consumer beyond Quix's own."""
    membership = {"group.instance.id": instance_id} if instance_id else {}
    return {
        "session.timeout.ms": settings.stream_session_timeout_ms,
        "heartbeat.interval.ms": min(3000, settings.stream_session_timeout_ms // 3),
        "statistics.interval.ms": STATS_INTERVAL_MS,
        # new partitions reach the group's next assignment within seconds (the default is
        # 5 minutes), as often as the watch looks (jobs/stream/watch.py)
        "topic.metadata.refresh.interval.ms": round(settings.stream_check_seconds * 1000),
        **FETCH_CONFIG,
        **membership,
        # librdkafka's own log lines repeat what the error callback reports (see
        # ErrorLog), several a second while the broker is away: kept for ``kassa -v``.
        "log_level": 7 if logger.isEnabledFor(logging.DEBUG) else 2,
        "stats_cb": metrics.on_kafka_stats,
    }
