"""Which topic the live watermarks count: the sales topic's Kafka topic id and cluster id,
and how many partitions it has."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from storage.kafka.exceptions import TopicIdentityError
from storage.live import Identity


@dataclass(frozen=True)
class TopicShape:
    """A topic as the cluster describes it now: its identity and its partition count."""

    identity: Identity
    partitions: int


def read_identity(admin: AdminClient, topic: str, timeout: float = 30.0) -> Identity:
    """The :class:`Identity` of ``topic`` as the cluster describes it now."""
    shape = describe_topic(admin, topic, timeout)
    if shape is None:
        raise TopicIdentityError(topic, "no such topic")
    return shape.identity


def describe_topic(admin: AdminClient, topic: str, timeout: float = 30.0) -> TopicShape | None:
    """``topic``'s identity and partition count; None when the cluster has no such topic.

    Raises :class:`TopicIdentityError` when the cluster does not answer.
    """
    try:
        described = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)
        description = described[topic].result(timeout)
        cluster_id = admin.describe_cluster(request_timeout=timeout).result(timeout).cluster_id
    except TimeoutError as exc:  # the futures' wait ran out a moment before librdkafka's
        raise TopicIdentityError(topic, f"no answer within {timeout:g} s") from exc
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return None
        raise TopicIdentityError(topic, exc) from exc
    identity = Identity(str(description.topic_id), str(cluster_id))
    return TopicShape(identity, len(description.partitions))
