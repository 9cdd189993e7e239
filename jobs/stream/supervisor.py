"""The stream job's process (``kassa stream``): run the job, rebuild it after what it can
ride out, and give up with the error of what it cannot.

:func:`run_stream` runs the job until it stops. A :class:`RecoverableStreamError` (Redis
found behind the job, Kafka or the group membership lost) or a Redis outage while the job
ran is one ERROR line; the supervisor waits until Kafka and Redis answer and runs a new
job, whose consumer rejoins the group and resumes every partition from Redis's watermarks.
It gives up with the error when an outage lasts ``KASSA_STREAM_OUTAGE_LIMIT_SECONDS``
(Kafka: :class:`KafkaUnavailableError`, exit 4; Redis: exit 3), when the replica is fenced
twice within :data:`FENCED_AGAIN_SECONDS` (exit 6), when Redis did not answer at start-up,
and when a signal asked the job to stop (a refused last flush is never "stopped cleanly").
Its decisions rest on its own :class:`SupervisorState`; it reports to the metrics.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common.errors import KafkaUnavailableError, KassaError
from common.metrics import MetricsServer
from common.redaction import redis_location
from common.settings import Settings
from jobs.stream.app import build_stream_job
from jobs.stream.exceptions import (
    InstanceFencedError,
    RecoverableStreamError,
    StreamError,
    StreamRedisUnavailableError,
)
from jobs.stream.malloc import keep_batch_memory
from jobs.stream.membership import claimed_instance_id
from jobs.stream.metrics import StreamMetrics, kafka_probe
from storage.kafka.topics import broker_problem

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RETRY_SECONDS = 2.0
"""Pause between two probes of an unreachable Kafka, and before a rebuild of the job."""
FENCED_AGAIN_SECONDS = 300.0
"""A replica fenced twice within this long shares its ``group.instance.id`` with another."""


@dataclass
class Outage:
    """One service's outage as the supervisor sees it."""

    service: str
    """``Kafka`` or ``Redis``, as the log lines and ``/healthz`` name it."""
    since: float | None = None
    """``time.monotonic()`` when the outage was first seen; None while the service answers."""
    problem: str = ""
    """Why the service did not answer the last time it was asked."""

    def observe(self, problem: str | None, now: float, seen_since: float | None = None) -> None:
        """Record the service's answer (``problem`` None: it answered) at ``now``; an outage
        begins at ``seen_since`` when another observer saw it earlier."""
        if problem is None:
            self.since = None
            return
        self.problem = problem
        if self.since is None:
            self.since = now if seen_since is None else min(seen_since, now)

    def lasted(self, now: float) -> float:
        """Seconds the current outage has lasted at ``now`` (0 while the service answers)."""
        return 0.0 if self.since is None else now - self.since


@dataclass
class SupervisorState:
    """What the supervisor remembers across rebuilds of the job."""

    started: bool = False
    """A job found Redis answering at its start (a Redis failure after that is an outage)."""
    fenced_at: float | None = None
    """``time.monotonic()`` of the last fencing of this replica's ``group.instance.id``."""
    kafka: Outage = field(default_factory=lambda: Outage("Kafka"))
    redis: Outage = field(default_factory=lambda: Outage("Redis"))

    def gives_up(self, error: StreamError, *, stopping: bool, now: float) -> bool:
        """Whether ``error``, which ended a job, ends the process instead of a rebuild.

        It does when a signal asked the job to stop, when Redis failed before any job ran,
        and on a second fencing within :data:`FENCED_AGAIN_SECONDS` (another live replica
        has this id); a first fencing is remembered.
        """
        if stopping:
            return True
        if isinstance(error, StreamRedisUnavailableError):
            return not self.started
        if isinstance(error, InstanceFencedError):
            if self.fenced_at is not None and now - self.fenced_at < FENCED_AGAIN_SECONDS:
                return True
            self.fenced_at = now
        return False


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
        metrics.watch_redis(settings)
        server = None
        if settings.metrics_port:
            server = MetricsServer(metrics, settings.metrics_port, settings.metrics_host)
            server.start()
        logger.info(
            "kassa stream: topic %s, group %s as %s, %s, %s (key space %s)",
            settings.topic,
            settings.consumer_group,
            instance_id or "a dynamic member",
            settings.stream_guarantee,
            redis_location(settings),
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
    """Run jobs until one runs to its end or stops on a signal (see the module's docstring)."""
    state = SupervisorState()
    while True:
        job = build_stream_job(settings, metrics)
        try:
            job.run(timeout=idle_timeout)
        except (RecoverableStreamError, StreamRedisUnavailableError) as exc:
            state.started = state.started or job.started
            if state.gives_up(exc, stopping=job.app.stopping, now=time.monotonic()):
                raise
            logger.error("%s; restarting the stream job's consumer", exc)  # noqa: TRY400
            metrics.restarts.inc()
            metrics.state = "restarting"
            redis_down = isinstance(exc, StreamRedisUnavailableError)
            if _await_services(settings, metrics, state, redis_was_down=redis_down):
                continue
        return  # ran to its end, or stopped by a signal while waiting for Kafka or Redis


def _await_services(
    settings: Settings, metrics: StreamMetrics, state: SupervisorState, *, redis_was_down: bool
) -> bool:
    """Wait until Kafka and Redis answer (True) or SIGTERM/SIGINT arrives (False).

    Each outage counts from when it was first seen (Kafka's from when the consumer or the
    probe last found it unreachable; Redis's from now when ``redis_was_down``, else from
    the first failed ping here). Raises :class:`KafkaUnavailableError` or
    :class:`StreamRedisUnavailableError` once one lasts ``KASSA_STREAM_OUTAGE_LIMIT_SECONDS``.
    """
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    state.kafka = Outage("Kafka")
    state.redis = Outage("Redis", since=time.monotonic() if redis_was_down else None)
    try:
        stop.wait(RETRY_SECONDS)
        while not stop.is_set():
            kafka_problem = broker_problem(settings)
            metrics.record_kafka(reachable=kafka_problem is None)
            redis_problem = metrics.redis_problem()
            now = time.monotonic()
            # the probe (a thread of its own) may have seen Kafka go away before this did
            state.kafka.observe(kafka_problem, now, seen_since=metrics.kafka_down_since)
            state.redis.observe(redis_problem, now)
            if kafka_problem is None and redis_problem is None:
                break
            _give_up_after_the_limit(settings, metrics, state, now)
            stop.wait(RETRY_SECONDS)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if stop.is_set():
        metrics.state = "stopped"
        return False
    return True


def _give_up_after_the_limit(
    settings: Settings, metrics: StreamMetrics, state: SupervisorState, now: float
) -> None:
    """Log the outages, or raise the error of one that lasted the outage limit."""
    limit = settings.stream_outage_limit_seconds
    errors: list[tuple[Outage, Callable[[str], KassaError]]] = [
        (state.kafka, lambda cause: KafkaUnavailableError(settings.kafka_bootstrap, cause)),
        (
            state.redis,
            lambda cause: StreamRedisUnavailableError(settings, "reach", cause),
        ),
    ]
    for outage, error in errors:
        if outage.since is None:
            continue
        metrics.state = f"waiting for {outage.service}"
        down = outage.lasted(now)
        if down >= limit:
            raise error(
                f"no answer for {down:.0f} s, "
                f"KASSA_STREAM_OUTAGE_LIMIT_SECONDS={limit}: {outage.problem}"
            )
        logger.warning(
            "%s does not answer for %.0f s (%s); retrying", outage.service, down, outage.problem
        )
