"""A topic's identity: its Kafka topic id and cluster id, or an error naming the topic."""

from __future__ import annotations

import pytest

from common.settings import Settings
from storage.kafka.exceptions import TopicIdentityError
from storage.kafka.identity import describe_topic, read_identity
from storage.kafka.topics import admin_client


def test_a_topic_is_identified_by_its_topic_id_and_cluster_id(settings: Settings) -> None:
    admin = admin_client(settings)

    identity = read_identity(admin, settings.topic)

    assert read_identity(admin, settings.topic) == identity
    assert read_identity(admin, settings.dead_letter_topic).topic_id != identity.topic_id
    assert read_identity(admin, settings.dead_letter_topic).cluster_id == identity.cluster_id


def test_a_missing_topic_is_an_error_naming_it(settings: Settings) -> None:
    missing = f"{settings.topic}_missing"

    with pytest.raises(TopicIdentityError, match=f"cannot describe topic '{missing}'"):
        read_identity(admin_client(settings), missing, timeout=10)


def test_a_topic_is_described_with_its_partitions_and_a_missing_one_is_none(
    settings: Settings,
) -> None:
    admin = admin_client(settings)

    shape = describe_topic(admin, settings.topic)

    assert shape is not None
    assert shape.partitions == settings.partitions
    assert shape.identity == read_identity(admin, settings.topic)
    assert describe_topic(admin, f"{settings.topic}_missing", timeout=10) is None
