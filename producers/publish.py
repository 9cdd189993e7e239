"""The one Kafka producer of kassa: checkouts in, delivered records out, every failure counted.

Each checkout becomes one record: key = :func:`~common.schema.message_key` (the store id),
timestamp = :func:`~common.schema.record_timestamp_ms` (``occurred_at``), value =
:func:`~common.schema.encode_checkout`. The producer is idempotent (``acks=all``,
``enable.idempotence=true``) and batches for throughput. Only failed deliveries call back
into Python (``delivery.report.only.error``), so a checkout costs one encode and one
``produce`` call; every record that was neither reported failed nor left in the queue after
the final flush was delivered.

Broker failover is librdkafka's to ride: ``NOT_ENOUGH_REPLICAS``, ``NOT_LEADER_OR_FOLLOWER``,
``LEADER_NOT_AVAILABLE`` and lost connections are retriable, so a request is retried (to the
new leader, without duplicates thanks to idempotence) until ``KASSA_DELIVERY_TIMEOUT_MS``;
only what outlasts that timeout is reported failed, under the last error it met. The report
also counts the retries, from librdkafka's statistics.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from common.schema import Checkout, encode_checkout, message_key, record_timestamp_ms
from common.settings import Settings
from storage.kafka.access import is_refusal
from storage.kafka.config import PARTITIONER, client_config

logger = logging.getLogger(__name__)

NOT_FLUSHED = "not delivered before exit (still queued after the final flush)"
PROGRESS_SECONDS = 1.0
_CHECK_EVERY = 256
_FLUSH_MARGIN_SECONDS = 5.0
_TIMESTAMP_REASONS = ("INVALID_RECORD", "INVALID_TIMESTAMP")
_REPLICA_REASONS = ("NOT_ENOUGH_REPLICAS", "NOT_LEADER", "LEADER_NOT_AVAILABLE")
STATS_INTERVAL_MS = 1000


@dataclass
class PublishReport:
    """What happened to the checkouts handed to :func:`publish`."""

    topic: str
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    elapsed: float = 0.0
    stopped_by: str | None = None
    refusal: KafkaError | None = None
    """What the cluster refused (a missing ACL), if it stopped the run."""
    hints: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Checkouts accepted per second of the run."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> str:
        """One paragraph for humans: totals, rate, and why deliveries failed."""
        text = (
            f"sent {self.sent:,} checkouts to {self.topic!r} in {self.elapsed:.1f} s "
            f"({self.rate:,.0f}/s): {self.delivered:,} delivered, {self.failed:,} failed"
        )
        if self.retries:
            text += f"; {self.retries:,} produce requests retried"
        if self.stopped_by:
            text += f"; stopped by {self.stopped_by}"
        for reason, count in sorted(self.failures.items(), key=lambda item: -item[1]):
            text += f"\n  {count:,} x {reason}"
        for hint in self.hints:
            text += f"\n  {hint}"
        return text


def _hints(failures: Counter[str], settings: Settings) -> list[str]:
    hints = []
    if any(name in reason for reason in failures for name in _TIMESTAMP_REASONS):
        hints.append(
            "the broker refuses record timestamps too far from its clock (Kafka 4 default: "
            "more than 1 h ahead, log.message.timestamp.after.max.ms); use an earlier --start "
            "or --shift-to"
        )
    if any(name in reason for reason in failures for name in _REPLICA_REASONS):
        hints.append(
            "partitions had no leader or fewer in-sync replicas than their min.insync.replicas "
            f"(KASSA_MIN_INSYNC_REPLICAS={settings.min_insync_replicas}) for longer than "
            f"KASSA_DELIVERY_TIMEOUT_MS={settings.delivery_timeout_ms}: are enough brokers up "
            "('kassa topics describe')?"
        )
    if any("_MSG_TIMED_OUT" in reason for reason in failures):
        hint = (
            f"no acknowledgement from KASSA_KAFKA_BOOTSTRAP={settings.kafka_bootstrap!r} within "
            f"KASSA_DELIVERY_TIMEOUT_MS={settings.delivery_timeout_ms}: is the broker up "
            "('kassa services status') and the topic there ('kassa topics create')?"
        )
        if settings.min_insync_replicas > 1:
            hint += (
                f" With KASSA_MIN_INSYNC_REPLICAS={settings.min_insync_replicas}, that many "
                "brokers must hold each partition in sync ('kassa topics describe')."
            )
        hints.append(hint)
    return hints


class Deliveries:
    """The delivery-report and error callbacks librdkafka calls from ``poll``/``flush``."""

    def __init__(self) -> None:
        self.failures: Counter[str] = Counter()
        self.fatal: KafkaError | None = None
        """A fatal error, or a refusal (a missing ACL): sending more cannot succeed."""
        self.retries = 0
        self._logged: dict[str, float] = {}

    def on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        """Count a failed delivery under its reason (successes are not reported); a refusal
        stops the run like a fatal error."""
        if error is not None:
            self.failures[f"{error.name()}: {error.str()}"] += 1
            if self.fatal is None and is_refusal(error):
                self.fatal = error
                logger.error("the cluster refused the checkouts, stopping: %s", error.str())

    def on_error(self, error: KafkaError) -> None:
        """Log a client-level error (at most every 10 s per kind); remember a fatal one."""
        if error.fatal():
            self.fatal = error
            logger.error("fatal producer error, stopping: %s", error.str())
            return
        now = time.monotonic()
        if now - self._logged.get(error.name(), -60.0) >= 10.0:
            self._logged[error.name()] = now
            logger.warning("producer: %s", error.str())

    def on_stats(self, stats: str) -> None:
        """Keep the produce requests retried so far, summed over the brokers."""
        brokers = json.loads(stats).get("brokers", {})
        self.retries = max(self.retries, sum(b.get("txretries", 0) for b in brokers.values()))


def producer_config(settings: Settings, deliveries: Deliveries) -> dict[str, Any]:
    """The librdkafka configuration of kassa's producer."""
    return client_config(
        settings,
        {
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": settings.producer_compression,
            "linger.ms": settings.producer_linger_ms,
            "batch.size": 1_000_000,
            "batch.num.messages": 100_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "message.timeout.ms": settings.delivery_timeout_ms,
            "partitioner": PARTITIONER,
            "delivery.report.only.error": True,
            "on_delivery": deliveries.on_delivery,
            "error_cb": deliveries.on_error,
            "statistics.interval.ms": STATS_INTERVAL_MS,
            "stats_cb": deliveries.on_stats,
            "log_level": 3,
        },
    )


class _Stop:
    """Set by SIGINT/SIGTERM (or by the caller); a second signal abandons the final flush."""

    def __init__(self, event: threading.Event | None) -> None:
        self.event = event or threading.Event()
        self.signal: str | None = None
        self.abandon = False

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.event.is_set():
            self.abandon = True
        self.signal = signal.Signals(signum).name
        self.event.set()


@contextmanager
def _signals_stop(stop: _Stop) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, stop.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def publish(
    settings: Settings,
    checkouts: Iterable[Checkout],
    *,
    rate: float | None = None,
    duration: float | None = None,
    progress: bool = False,
    stop: threading.Event | None = None,
) -> PublishReport:
    """Send ``checkouts`` to ``settings.topic`` and wait until each is delivered or failed.

    ``rate`` caps checkouts per second (``None``: as fast as possible); ``duration`` stops
    taking checkouts after that many seconds; ``progress`` logs totals and the rate every
    second. Setting ``stop`` (or SIGINT/SIGTERM, when called from the main thread) stops
    taking checkouts; what was accepted is still flushed, up to ``delivery_timeout_ms``.
    A second signal abandons the flush. Failures are counted in the report, never raised.
    """
    if rate is not None and rate <= 0:
        msg = f"rate {rate} is not positive; pass a rate in checkouts per second, e.g. 1000"
        raise ValueError(msg)
    stopper = _Stop(stop)
    deliveries = Deliveries()
    producer = Producer(producer_config(settings, deliveries))
    report = PublishReport(topic=settings.topic)
    with _signals_stop(stopper):
        started = time.monotonic()
        try:
            _produce_all(
                producer,
                report,
                checkouts,
                stopper=stopper,
                deliveries=deliveries,
                started=started,
                rate=rate,
                duration=duration,
                progress=progress,
            )
        except BaseException:
            logger.warning("checkouts stopped coming after %d; flushing those first", report.sent)
            raise
        finally:
            _flush(producer, settings, stopper, deliveries)
        report.elapsed = time.monotonic() - started
    failures = deliveries.failures
    # len(producer) also counts queued client events, not only records: never report more
    # records stuck than there are records without a reported outcome.
    unflushed = min(len(producer), report.sent - sum(failures.values()))
    if unflushed > 0:
        failures[NOT_FLUSHED] += unflushed
    report.failures = dict(failures)
    report.failed = sum(failures.values())
    report.hints = _hints(failures, settings)
    report.delivered = report.sent - report.failed
    report.retries = deliveries.retries
    report.stopped_by = stopper.signal
    if deliveries.fatal is not None:
        report.stopped_by = f"fatal error {deliveries.fatal.name()}"
        report.refusal = deliveries.fatal if is_refusal(deliveries.fatal) else None
    return report


def _produce_all(
    producer: Producer,
    report: PublishReport,
    checkouts: Iterable[Checkout],
    *,
    stopper: _Stop,
    deliveries: Deliveries,
    started: float,
    rate: float | None,
    duration: float | None,
    progress: bool,
) -> None:
    produce = producer.produce
    poll = producer.poll
    topic = report.topic
    encode = encode_checkout
    key_of = message_key
    timestamp_of = record_timestamp_ms
    step = _CHECK_EVERY if rate is None else max(1, min(_CHECK_EVERY, int(rate / 1000)))
    pace = _Pace(started, rate, None if duration is None else started + duration, progress)
    sent = 0
    next_check = step
    if stopper.event.is_set():
        return
    try:
        for checkout in checkouts:
            value = encode(checkout)
            key = key_of(checkout)
            timestamp = timestamp_of(checkout)
            while True:
                try:
                    produce(topic, value, key, timestamp=timestamp)
                    break
                except BufferError:
                    poll(0.05)
                except KafkaException as exc:  # refused locally, e.g. larger than message.max.bytes
                    error = exc.args[0]
                    deliveries.failures[f"{error.name()}: {error.str()}"] += 1
                    break
            sent += 1
            if sent < next_check:
                continue
            next_check += step
            poll(0)
            if pace.stop_after(sent, producer, stopper, deliveries):
                break
    finally:
        report.sent = sent
    if progress:
        _log_progress(sent, len(producer), deliveries, time.monotonic() - started)


@dataclass
class _Pace:
    """What :func:`_produce_all` checks every few checkouts: the rate, the duration, the
    progress lines, and whether to stop."""

    started: float
    rate: float | None
    deadline: float | None
    progress: bool
    next_progress: float = 0.0

    def __post_init__(self) -> None:
        self.next_progress = self.started + PROGRESS_SECONDS

    def stop_after(
        self, sent: int, producer: Producer, stopper: _Stop, deliveries: Deliveries
    ) -> bool:
        """Wait for the rate after ``sent`` checkouts; whether the run should stop now."""
        now = time.monotonic()
        if self.rate is not None:
            _sleep_until(self.started + sent / self.rate, stopper)
            now = time.monotonic()
        if self.progress and now >= self.next_progress:
            self.next_progress = now + PROGRESS_SECONDS
            _log_progress(sent, len(producer), deliveries, now - self.started)
        return (
            stopper.event.is_set()
            or deliveries.fatal is not None
            or (self.deadline is not None and now >= self.deadline)
        )


def _sleep_until(due: float, stopper: _Stop) -> None:
    while not stopper.event.is_set():
        ahead = due - time.monotonic()
        if ahead <= 0:
            return
        time.sleep(min(ahead, 0.1))


def _log_progress(sent: int, queued: int, deliveries: Deliveries, elapsed: float) -> None:
    failed = sum(deliveries.failures.values())
    logger.info(
        "sent %d (%.0f/s), in flight %d, failed %d",
        sent,
        sent / elapsed if elapsed > 0 else 0.0,
        queued,
        failed,
    )


def _flush(producer: Producer, settings: Settings, stopper: _Stop, deliveries: Deliveries) -> None:
    deadline = time.monotonic() + settings.delivery_timeout_ms / 1000 + _FLUSH_MARGIN_SECONDS
    while len(producer) and not stopper.abandon and deliveries.fatal is None:
        if time.monotonic() >= deadline:
            logger.error("%d checkouts still queued after the flush deadline", len(producer))
            return
        producer.flush(0.5)
