"""The stream job as a Quix Streams application (``kassa stream``)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from quixstreams import Application
from quixstreams.exceptions import PartitionAssignmentError
from quixstreams.kafka.exceptions import BaseKafkaException, KafkaBrokerUnavailableError

from common.errors import KafkaUnavailableError, KassaError, redacted
from common.metrics import MetricsServer
from common.settings import Settings
from jobs.stream.commits import retrying_commit
from jobs.stream.exceptions import (
    EvictionPolicyError,
    IdentityMismatchError,
    InstanceFencedError,
    KafkaContactLostError,
    RecordsLostError,
    RecoverableStreamError,
    StreamError,
    StreamRedisUnavailableError,
    WatermarksLostError,
)
from jobs.stream.malloc import keep_batch_memory
from jobs.stream.membership import claimed_instance_id
from jobs.stream.metrics import StreamMetrics, kafka_probe
from jobs.stream.sink import LiveSink, check_watermarks
from jobs.stream.writer import BatchWriter
from storage.connections import open_redis, redis_failures
from storage.kafka.config import quix_connection
from storage.kafka.identity import read_identity
from storage.kafka.topics import admin_client, broker_problem
from storage.live import LiveStore

logger = logging.getLogger(__name__)

COMMITTED_TIMEOUT_SECONDS = 30.0
STATS_INTERVAL_MS = 5000
FETCH_CONFIG = {"max.partition.fetch.bytes": 8 << 20}
"""librdkafka fetch settings of the job's consumer (bigger fetches than the 1 MiB default)."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RETRY_SECONDS = 2.0
"""Pause between two probes of an unreachable Kafka, and before a rebuild of the job."""
KAFKA_FAILURES = (
    BaseKafkaException,
    KafkaBrokerUnavailableError,
    KafkaException,
    PartitionAssignmentError,
)
"""Errors of Quix and librdkafka that mean Kafka or the group membership was lost."""
FENCED = {KafkaError._FENCED, KafkaError.FENCED_INSTANCE_ID, KafkaError._FATAL}
"""A consumer's only fatal error: another member joined with its ``group.instance.id``."""
FENCED_AGAIN_SECONDS = 300.0
"""A replica fenced twice within this long shares its ``group.instance.id`` with another."""


class StreamApplication(Application):
    """A Quix ``Application`` that resumes every partition from what Redis applied.

    Quix has no public rebalance hook; this overrides its ``_on_assign`` callback and, BEFORE
    Quix's own work (which calls ``consumer.assign`` with the list it gets), checks that
    Redis's watermarks count this topic (:class:`~storage.live.Identity`) and sets each sales
    partition's start offset to its watermark + 1 (:func:`resume_offsets`): Redis is the
    truth about what was applied, whether it is ahead of the group's commit or behind it.
    ``_on_revoke`` and ``_on_lost`` make the sink forget the partitions it no longer owns.
    """

    def __init__(
        self,
        sink: LiveSink,
        metrics: StreamMetrics,
        store: LiveStore,
        admin: AdminClient,
        *,
        topic: str,
        exactly_once: bool,
        redis_url: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._live_sink = sink
        self._metrics = metrics
        self._store = store
        self._admin = admin
        self._sales_topic = topic
        self._exactly_once = exactly_once
        self._redis_url = redis_url
        self.stopping = False
        """Set by SIGTERM/SIGINT: the job is to stop, not to be rebuilt."""

    def _get_internal_consumer(self, *args: Any, **kwargs: Any) -> Any:
        consumer = super()._get_internal_consumer(*args, **kwargs)
        # ride a group coordinator moving to another broker (Quix would stop on it)
        consumer.commit = retrying_commit(consumer.commit)  # type: ignore[method-assign]
        # Quix logs every librdkafka error as an ERROR line (several a second while the
        # broker is away); the job's probe and restart loop say what matters.
        consumer._user_error_cb = _ErrorLog()
        return consumer

    def _on_sigterm(self, *args: Any) -> None:
        logger.info("SIGTERM: writing the last batches, committing and stopping")
        self.stopping = True
        self._metrics.state = "stopping"
        super()._on_sigterm(*args)  # type: ignore[no-untyped-call]  # Quix is untyped

    def _on_sigint(self, *args: Any) -> None:
        self.stopping = True
        super()._on_sigint(*args)  # type: ignore[no-untyped-call]  # Quix is untyped

    def _on_assign(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        mine = [tp for tp in topic_partitions if tp.topic == self._sales_topic]
        if mine:
            self._resume(consumer, mine)
        super()._on_assign(consumer, topic_partitions)
        self._metrics.record_assigned(tp.partition for tp in mine)

    def _on_revoke(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        super()._on_revoke(consumer, topic_partitions)  # commits what the sink holds first
        self._live_sink.on_revoke(self._partitions(topic_partitions))
        self._metrics.record_revoked(self._partitions(topic_partitions))

    def _on_lost(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        self._live_sink.on_revoke(self._partitions(topic_partitions))
        self._metrics.record_revoked(self._partitions(topic_partitions))
        super()._on_lost(consumer, topic_partitions)

    def _partitions(self, topic_partitions: list[TopicPartition]) -> list[int]:
        return [tp.partition for tp in topic_partitions if tp.topic == self._sales_topic]

    def _resume(self, consumer: Any, mine: list[TopicPartition]) -> None:
        """Check Redis's watermarks for ``mine`` and set each one's start offset in place."""
        partitions = [tp.partition for tp in mine]
        identity = read_identity(self._admin, self._sales_topic)
        with redis_failures(
            self._redis_url, "read the watermarks from", StreamRedisUnavailableError
        ):
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
        starts = resume_offsets(self._sales_topic, state.watermarks, logs)
        check_watermarks(committed, state.watermarks, self._metrics)
        if self._exactly_once:
            for tp in mine:
                tp.offset = starts[tp.partition]
        self._live_sink.on_assign(state, identity, starts)


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
                "KASSA_REDIS_NAMESPACE?); reset them with 'kassa stream rebuild'"
            )
            raise StreamError(msg)
        else:
            starts[partition] = watermark + 1
    if lost:
        raise RecordsLostError(topic, lost)
    return starts


@dataclass
class StreamJob:
    """A built stream job: the application and the parts tests and the CLI look at."""

    app: StreamApplication
    sink: LiveSink
    metrics: StreamMetrics
    redis_client: redis.Redis
    store: LiveStore
    redis_url: str
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
            self.app.run(timeout=timeout, collect=False)
        except Exception as exc:
            cause = _kassa_cause(exc) or _kafka_failure(exc, self.instance_id)
            if cause is None or cause is exc:
                raise
            raise cause from exc
        finally:
            self.metrics.state = "stopped"
            self.metrics.record_revoked()
            self.sink.close()
            self.redis_client.close()

    def _check_redis(self) -> None:
        """Redis answers, and its ``maxmemory-policy`` cannot evict kassa's keys."""
        with redis_failures(self.redis_url, "reach", StreamRedisUnavailableError):
            self.redis_client.ping()
            policy = self.store.eviction_policy()
        if policy != "noeviction":
            raise EvictionPolicyError(self.redis_url, policy)


def _kassa_cause(exc: BaseException) -> KassaError | None:
    """The first :class:`KassaError` in ``exc``'s chain of causes, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KassaError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class _ErrorLog:
    """librdkafka's error callback: each kind of error (its code) once a minute at WARNING,
    the repetitions at DEBUG."""

    def __init__(self, interval: float = 60.0) -> None:
        self._interval = interval
        self._logged: dict[int, float] = {}

    def __call__(self, error: KafkaError) -> None:
        now = time.monotonic()
        if now - self._logged.get(error.code(), -self._interval) >= self._interval:
            self._logged[error.code()] = now
            logger.warning("Kafka consumer: %s (repeats are logged at DEBUG)", error.str())
        else:
            logger.debug("Kafka consumer: %s", error.str())


def _consumer_failed(exc: Exception, message: object, quix_logger: logging.Logger) -> bool:
    """Quix's consumer error callback: let the error stop the run (``StreamJob.run`` turns
    it into one line); its traceback is logged at DEBUG only (``kassa -v``)."""
    logger.debug("the Quix consumer failed", exc_info=exc)
    return False


def _kafka_failure(exc: BaseException, instance_id: str | None) -> StreamError | None:
    """The stream error for a lost Kafka or group membership in ``exc``'s chain, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KAFKA_FAILURES):
            error = getattr(seen, "error", None) or (seen.args[0] if seen.args else None)
            code = error.code() if isinstance(error, KafkaError) else None
            if code in FENCED and instance_id is not None:
                return InstanceFencedError(instance_id)
            detail = error.str() if isinstance(error, KafkaError) else str(seen)
            return KafkaContactLostError(f"{type(seen).__name__}: {detail}")
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
    :func:`run_stream`). The consumer is a static group member when
    ``KASSA_STREAM_STATIC_MEMBERSHIP`` is on and ``KASSA_STREAM_INSTANCE_ID`` names it
    (:func:`run_stream` fills in the id when it is empty).
    """
    metrics = metrics or StreamMetrics(
        settings.stream_unassigned_limit_seconds, settings.stream_stuck_seconds
    )
    instance_id = settings.stream_instance_id if settings.stream_static_membership else ""
    client = open_redis(settings.redis_url)
    store = LiveStore(client, settings.key_space, settings.zone, settings.retention_days)
    exactly_once = settings.stream_guarantee == "exactly-once"
    sink = LiveSink(
        store,
        BatchWriter(settings),
        metrics=metrics,
        exactly_once=exactly_once,
        write_interval=settings.stream_write_interval,
    )
    app = StreamApplication(
        sink,
        metrics,
        store,
        admin_client(settings),
        topic=settings.topic,
        exactly_once=exactly_once,
        redis_url=settings.redis_url,
        broker_address=quix_connection(settings),
        consumer_group=settings.consumer_group,
        auto_offset_reset="earliest",
        auto_create_topics=False,
        broker_availability_timeout=settings.stream_outage_limit_seconds,
        commit_interval=settings.stream_commit_interval,
        processing_guarantee="at-least-once",
        on_message_processed=on_message_processed,
        on_consumer_error=_consumer_failed,
        loglevel=None,  # Quix logs through the handlers the CLI configured (e.g. --log-json)
        state_dir=settings.state_dir / "quix",
        consumer_extra_config=_consumer_config(settings, metrics, instance_id),
    )
    topic = app.topic(settings.topic, value_deserializer="bytes", key_deserializer="bytes")
    app.dataframe(topic).sink(sink)
    return StreamJob(app, sink, metrics, client, store, settings.redis_url, instance_id or None)


def _consumer_config(
    settings: Settings, metrics: StreamMetrics, instance_id: str
) -> dict[str, Any]:
    """The librdkafka settings of the job's consumer beyond Quix's own."""
    membership = {"group.instance.id": instance_id} if instance_id else {}
    return {
        "session.timeout.ms": settings.stream_session_timeout_ms,
        "heartbeat.interval.ms": min(3000, settings.stream_session_timeout_ms // 3),
        "statistics.interval.ms": STATS_INTERVAL_MS,
        **FETCH_CONFIG,
        **membership,
        # librdkafka's own log lines repeat what the error callback reports (see
        # _ErrorLog), several a second while the broker is away: kept for ``kassa -v``.
        "log_level": 7 if logger.isEnabledFor(logging.DEBUG) else 2,
        "stats_cb": metrics.on_kafka_stats,
    }


def run_stream(settings: Settings, idle_timeout: float = 0.0) -> None:
    """Run the stream job with its metrics endpoint until SIGTERM (or ``idle_timeout`` s idle).

    This is the job's process: it tunes the process's allocator for the job's batches
    (:func:`~jobs.stream.malloc.keep_batch_memory`), claims the replica's
    ``group.instance.id`` (:mod:`jobs.stream.membership`), then runs the job, rebuilding it
    after a :class:`RecoverableStreamError` (see :func:`_run_until_stopped`).
    """
    keep_batch_memory()
    metrics = StreamMetrics(settings.stream_unassigned_limit_seconds, settings.stream_stuck_seconds)
    with claimed_instance_id(settings) as instance_id:
        settings = settings.model_copy(update={"stream_instance_id": instance_id or ""})
        metrics.watch_redis(settings.redis_url)
        server = None
        if settings.metrics_port:
            server = MetricsServer(metrics, settings.metrics_port, settings.metrics_host)
            server.start()
        logger.info(
            "kassa stream: topic %s, group %s as %s, %s, Redis %s (key space %s)",
            settings.topic,
            settings.consumer_group,
            instance_id or "a dynamic member",
            settings.stream_guarantee,
            redacted(settings.redis_url),
            settings.key_space,
        )
        probe = kafka_probe(metrics, settings)
        probe.start()
        try:
            _run_until_stopped(settings, metrics, idle_timeout)
        finally:
            probe.stop()
            if server is not None:
                server.stop()
            metrics.close()
    logger.info("kassa stream stopped cleanly")


def _run_until_stopped(settings: Settings, metrics: StreamMetrics, idle_timeout: float) -> None:
    """Run the job; after a :class:`RecoverableStreamError` (Redis found behind the job, Kafka
    or the group membership lost) or a Redis outage while it ran, log it as one ERROR line,
    wait until Kafka and Redis answer and run a new job: its new consumer rejoins the group
    and resumes every partition from Redis's watermarks. Raises the error instead when a
    signal asked the job to stop (a refused last flush is never "stopped cleanly"), when
    Redis did not answer at start-up, or when the replica is fenced twice within
    :data:`FENCED_AGAIN_SECONDS`."""
    fenced_at = -FENCED_AGAIN_SECONDS
    started = False
    while True:
        job = build_stream_job(settings, metrics)
        try:
            job.run(timeout=idle_timeout)
        except (RecoverableStreamError, StreamRedisUnavailableError) as exc:
            started = started or job.started
            redis_down = isinstance(exc, StreamRedisUnavailableError)
            if job.app.stopping or (redis_down and not started):
                raise
            fenced = isinstance(exc, InstanceFencedError)
            if fenced and time.monotonic() - fenced_at < FENCED_AGAIN_SECONDS:
                raise  # another live replica has this id
            if fenced:
                fenced_at = time.monotonic()
            logger.error("%s; restarting the stream job's consumer", exc)  # noqa: TRY400
            metrics.restarts.inc()
            metrics.state = "restarting"
            if _await_services(settings, metrics, redis_was_down=redis_down):
                continue
        return  # ran to its end, or stopped by a signal while waiting for Kafka or Redis


def _await_services(settings: Settings, metrics: StreamMetrics, redis_was_down: bool) -> bool:
    """Wait until Kafka and Redis answer (True) or SIGTERM/SIGINT arrives (False).

    Each outage counts from when it was first seen (Kafka's from when the consumer or the
    probe last found it unreachable; Redis's from now when ``redis_was_down``, else from
    the first failed ping here). Raises :class:`KafkaUnavailableError` or
    :class:`StreamRedisUnavailableError` once one lasts ``KASSA_STREAM_OUTAGE_LIMIT_SECONDS``.
    """
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    redis_since = time.monotonic() if redis_was_down else None
    try:
        stop.wait(RETRY_SECONDS)
        while not stop.is_set():
            kafka = broker_problem(settings)
            metrics.record_kafka(reachable=kafka is None)
            redis_problem = metrics.redis_problem()
            if kafka is None and redis_problem is None:
                break
            if redis_problem is None:
                redis_since = None
            elif redis_since is None:
                redis_since = time.monotonic()
            _give_up_after_the_limit(settings, metrics, kafka, redis_problem, redis_since)
            stop.wait(RETRY_SECONDS)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if stop.is_set():
        metrics.state = "stopped"
        return False
    return True


def _give_up_after_the_limit(
    settings: Settings,
    metrics: StreamMetrics,
    kafka: str | None,
    redis_problem: str | None,
    redis_since: float | None,
) -> None:
    """Log the outages, or raise the error of one that lasted the outage limit."""
    now = time.monotonic()
    limit = settings.stream_outage_limit_seconds
    outages: list[tuple[str, str, float, Callable[[str], KassaError]]] = []
    if kafka is not None:
        outages.append(
            ("Kafka", kafka, metrics.kafka_down_since or now,
             lambda cause: KafkaUnavailableError(settings.kafka_bootstrap, cause))
        )  # fmt: skip
    if redis_problem is not None and redis_since is not None:
        outages.append(
            ("Redis", redis_problem, redis_since,
             lambda cause: StreamRedisUnavailableError(settings.redis_url, "reach", cause))
        )  # fmt: skip
    for name, problem, since, error in outages:
        metrics.state = f"waiting for {name}"
        down = now - since
        if down >= limit:
            raise error(
                f"no answer for {down:.0f} s, KASSA_STREAM_OUTAGE_LIMIT_SECONDS={limit}: {problem}"
            )
        logger.warning("%s does not answer for %.0f s (%s); retrying", name, down, problem)
