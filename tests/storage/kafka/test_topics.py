"""kassa's topics carry the replication settings; a factor the cluster cannot hold is refused."""

from __future__ import annotations

import pytest

from common.errors import ReplicationFactorError
from common.settings import Settings
from storage.kafka.topics import admin_client, describe_topics, ensure_topics
from tests.helpers import run_kassa, settings_env


def test_a_replication_factor_larger_than_the_cluster_is_refused_naming_both(
    settings: Settings,
) -> None:
    three = settings.model_copy(
        update={"topic": f"{settings.topic}_rf3", "replication_factor": 3, "min_insync_replicas": 2}
    )
    with pytest.raises(ReplicationFactorError) as raised:
        ensure_topics(three)
    message = str(raised.value)
    assert "KASSA_REPLICATION_FACTOR=3 is larger than the 1 broker(s) up" in message
    assert "--brokers 3" in message
    assert three.topic not in admin_client(settings).list_topics(timeout=10).topics


def test_the_default_replication_works_on_one_broker(settings: Settings) -> None:
    (sales, dead_letters) = describe_topics(settings, [settings.topic, settings.dead_letter_topic])
    assert (sales.replication_factor, sales.min_insync_replicas) == (1, 1)
    assert dead_letters.replication_factor == 1


def test_topics_on_the_cluster_have_three_replicas_in_sync_and_min_isr_2(
    cluster_settings: Settings,
) -> None:
    names = [cluster_settings.topic, cluster_settings.dead_letter_topic]
    for topic in describe_topics(cluster_settings, names):
        assert topic.replication_factor == 3
        assert topic.min_insync_replicas == 2
        leaders = set()
        for part in topic.partitions:
            assert sorted(part.replicas) == [1, 2, 3]
            assert part.isr == (1, 2, 3)
            assert part.leader in part.replicas
            leaders.add(part.leader)
        assert leaders == {1, 2, 3}, "leadership is spread over the brokers"

    result = run_kassa("topics", "describe", env=settings_env(cluster_settings), timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert (
        f"Topic: {cluster_settings.topic}\tPartitionCount: 3\tReplicationFactor: 3\t"
        "Configs: min.insync.replicas=2"
    ) in lines
    partition_lines = [line for line in lines if "\tPartition: " in line]
    assert len(partition_lines) == 6
    assert all("Isr: 1,2,3" in line for line in partition_lines)
