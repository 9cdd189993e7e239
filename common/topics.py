"""Creating kassa's Kafka topics explicitly (the broker never auto-creates them)."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from common.errors import KafkaUnavailableError, TopicError
from common.settings import Settings

logger = logging.getLogger(__name__)


def admin_client(settings: Settings) -> AdminClient:
    """An admin client for the configured cluster."""
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap})


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
