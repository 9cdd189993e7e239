"""Creating kassa's Kafka topics explicitly (the broker never auto-creates them)."""

from __future__ import annotations

import logging
import re

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from common.errors import KafkaUnavailableError, TopicError
from common.settings import Settings

logger = logging.getLogger(__name__)

PROBE_SECONDS = 5.0
"""How long a command waits for the broker's first answer before it gives up."""


def admin_client(settings: Settings) -> AdminClient:
    """An admin client for the configured cluster."""
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap})


def broker_problem(bootstrap: str, timeout: float = PROBE_SECONDS) -> str | None:
    """Why the cluster at ``bootstrap`` does not answer a metadata request within
    ``timeout`` seconds, or None when it does (librdkafka's own log lines stay quiet)."""
    librdkafka = _Collector()
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000)),
            "logger": librdkafka.logger,
        }
    )
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        admin.poll(0)  # serves the log lines librdkafka queued
        return librdkafka.last or str(exc.args[0].str())
    return None


class _Collector(logging.Handler):
    """Keeps the last line librdkafka logged, instead of printing it."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: str | None = None
        self.logger = logging.Logger("kassa.kafka-probe")  # not registered: one per probe
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        # "FAIL [rdkafka#producer-1] [thrd:...]: 127.0.0.1:9092/bootstrap: Connect to ..."
        line = record.getMessage().rpartition("]: ")[2]
        self.last = re.sub(r" \(after \d+ms in state \w+.*\)$", "", line)


def check_broker(settings: Settings, timeout: float = PROBE_SECONDS) -> None:
    """Raise :class:`KafkaUnavailableError` within about ``timeout`` seconds when the
    configured cluster does not answer."""
    problem = broker_problem(settings.kafka_bootstrap, timeout)
    if problem is not None:
        cause = f"no answer within {timeout:.0f} s: {problem}"
        raise KafkaUnavailableError(settings.kafka_bootstrap, cause)


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the sales and dead-letter topics if missing; return the names created.

    An existing topic is kept as it is; a sales topic with a different partition count than
    ``KASSA_PARTITIONS`` is reported, since kassa's per-partition bookkeeping follows the topic.
    """
    admin = admin_client(settings)
    wanted = [settings.topic, settings.dead_letter_topic]
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise KafkaUnavailableError(settings.kafka_bootstrap, exc) from None
    missing = [name for name in wanted if name not in existing]
    if missing:
        futures = admin.create_topics(
            [NewTopic(name, settings.partitions, 1) for name in missing],
            operation_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result(timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise TopicError(name, exc) from None
            logger.info("created topic %s with %d partitions", name, settings.partitions)
    if settings.topic in existing:
        count = len(existing[settings.topic].partitions)
        if count != settings.partitions:
            logger.warning(
                "topic %s has %d partitions, KASSA_PARTITIONS=%d; the topic wins",
                settings.topic,
                count,
                settings.partitions,
            )
    return missing
