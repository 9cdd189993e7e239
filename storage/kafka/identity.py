"""Which topic the live watermarks count: the sales topic's Kafka topic id and cluster id."""

from __future__ import annotations

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from storage.kafka.exceptions import TopicIdentityError
from storage.live import Identity


def read_identity(admin: AdminClient, topic: str, timeout: float = 30.0) -> Identity:
    """The :class:`Identity` of ``topic`` as the cluster describes it now."""
    try:
        described = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)
        topic_id = str(described[topic].result(timeout).topic_id)
        cluster_id = admin.describe_cluster(request_timeout=timeout).result(timeout).cluster_id
    except KafkaException as exc:
        raise TopicIdentityError(topic, exc) from exc
    return Identity(topic_id, str(cluster_id))
