"""The stream job as a Quix Streams application (``kassa stream``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from confluent_kafka import TopicPartition
from quixstreams import Application

from common.errors import KassaError, redacted
from common.metrics import MetricsServer
from common.settings import Settings
from jobs.stream.commits import retrying_commit
from jobs.stream.exceptions import StreamRedisUnavailableError
from jobs.stream.malloc import keep_batch_memory
from jobs.stream.metrics import StreamMetrics
from jobs.stream.sink import LiveSink
from jobs.stream.writer import BatchWriter
from storage.connections import redis_failures
from storage.live import LiveStore

logger = logging.getLogger(__name__)

COMMITTED_TIMEOUT_SECONDS = 30.0
STATS_INTERVAL_MS = 5000
FETCH_CONFIG = {"max.partition.fetch.bytes": 8 << 20}
"""librdkafka fetch settings of the job's consumer (bigger fetches than the 1 MiB default)."""


class StreamApplication(Application):
    """A Quix ``Application`` that also tells the sink about each partition assignment.

    Quix has no public rebalance hook; this overrides its ``_on_assign`` callback and, after
    Quix's own work, hands the group's committed offsets to :meth:`LiveSink.on_assign`.
    """

    def __init__(
        self, sink: LiveSink, metrics: StreamMetrics, topic: str, redis_url: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._live_sink = sink
        self._metrics = metrics
        self._sales_topic = topic
        self._redis_url = redis_url

    def _get_internal_consumer(self, *args: Any, **kwargs: Any) -> Any:
        consumer = super()._get_internal_consumer(*args, **kwargs)
        # ride a group coordinator moving to another broker (Quix would stop on it)
        consumer.commit = retrying_commit(consumer.commit)  # type: ignore[method-assign]
        return consumer

    def _on_sigterm(self, *args: Any) -> None:
        logger.info("SIGTERM: writing the last batches, committing and stopping")
        self._metrics.state = "stopping"
        super()._on_sigterm(*args)  # type: ignore[no-untyped-call]  # Quix is untyped

    def _on_assign(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        super()._on_assign(consumer, topic_partitions)
        mine = [tp for tp in topic_partitions if tp.topic == self._sales_topic]
        if not mine:
            return
        committed = consumer.committed(mine, timeout=COMMITTED_TIMEOUT_SECONDS)
        with redis_failures(
            self._redis_url, "read the watermarks from", StreamRedisUnavailableError
        ):
            self._live_sink.on_assign({tp.partition: tp.offset for tp in committed})


@dataclass
class StreamJob:
    """A built stream job: the application and the parts tests and the CLI look at."""

    app: StreamApplication
    sink: LiveSink
    metrics: StreamMetrics
    redis_client: redis.Redis
    redis_url: str

    def run(self, timeout: float = 0.0) -> None:
        """Consume until SIGTERM/SIGINT, or until ``timeout`` seconds pass without a message.

        Raises a :class:`~jobs.stream.exceptions.StreamError` naming the fix when Redis or the
        dead-letter topic fails (also when Quix wrapped it in one of its own errors).
        """
        with redis_failures(self.redis_url, "reach", StreamRedisUnavailableError):
            self.redis_client.ping()
        self.metrics.state = "running"
        try:
            self.app.run(timeout=timeout, collect=False)
        except Exception as exc:
            cause = _kassa_cause(exc)
            if cause is None or cause is exc:
                raise
            raise cause from exc
        finally:
            self.metrics.state = "stopped"
            self.sink.close()
            self.redis_client.close()


def _kassa_cause(exc: BaseException) -> KassaError | None:
    """The first :class:`KassaError` in ``exc``'s chain of causes, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KassaError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def build_stream_job(
    settings: Settings,
    metrics: StreamMetrics | None = None,
    on_message_processed: Callable[[str, int, int], None] | None = None,
) -> StreamJob:
    """Wire the Quix application, the live Redis store and the dead-letter producer.

    ``on_message_processed(topic, partition, offset)`` is Quix's per-message callback
    (benchmarks use it to time the run). The process's allocator is left as it is (see
    :func:`run_stream`).
    """
    metrics = metrics or StreamMetrics()
    client = redis.Redis.from_url(settings.redis_url)
    store = LiveStore(client, settings.topic, settings.zone, settings.retention_days)
    sink = LiveSink(
        store,
        BatchWriter(settings),
        metrics=metrics,
        exactly_once=settings.stream_guarantee == "exactly-once",
        write_interval=settings.stream_write_interval,
    )
    app = StreamApplication(
        sink,
        metrics,
        settings.topic,
        settings.redis_url,
        broker_address=settings.kafka_bootstrap,
        consumer_group=settings.consumer_group,
        auto_offset_reset="earliest",
        auto_create_topics=False,
        commit_interval=settings.stream_commit_interval,
        processing_guarantee="at-least-once",
        on_message_processed=on_message_processed,
        loglevel=None,  # Quix logs through the handlers the CLI configured (e.g. --log-json)
        state_dir=settings.state_dir / "quix",
        consumer_extra_config={
            "session.timeout.ms": settings.stream_session_timeout_ms,
            "heartbeat.interval.ms": min(3000, settings.stream_session_timeout_ms // 3),
            "statistics.interval.ms": STATS_INTERVAL_MS,
            **FETCH_CONFIG,
            "stats_cb": metrics.on_kafka_stats,
        },
    )
    topic = app.topic(settings.topic, value_deserializer="bytes", key_deserializer="bytes")
    app.dataframe(topic).sink(sink)
    return StreamJob(app, sink, metrics, client, settings.redis_url)


def run_stream(settings: Settings, idle_timeout: float = 0.0) -> None:
    """Run the stream job with its metrics endpoint until SIGTERM (or ``idle_timeout`` s idle).

    This is the job's process: it tunes the process's allocator for the job's batches
    (:func:`~jobs.stream.malloc.keep_batch_memory`) before building the job.
    """
    keep_batch_memory()
    job = build_stream_job(settings)
    server = None
    if settings.metrics_port:
        server = MetricsServer(job.metrics, settings.metrics_port, settings.metrics_host)
        server.start()
    logger.info(
        "kassa stream: topic %s, group %s, %s, Redis %s",
        settings.topic,
        settings.consumer_group,
        settings.stream_guarantee,
        redacted(settings.redis_url),
    )
    try:
        job.run(timeout=idle_timeout)
    finally:
        if server is not None:
            server.stop()
    logger.info("kassa stream stopped cleanly")
