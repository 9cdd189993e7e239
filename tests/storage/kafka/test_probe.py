"""The lag probe: the group's committed offsets against the high watermarks, or why not."""

from __future__ import annotations

import threading

from confluent_kafka import Consumer, TopicPartition

from common.settings import Settings
from storage.kafka.config import client_config
from storage.kafka.probe import KafkaProbe, KafkaState, probe_kafka
from tests.helpers import free_port
from tests.jobs.daily.helpers import checkout, produce, utc


def _commit(settings: Settings, partition: int, offset: int) -> None:
    consumer = Consumer(client_config(settings, {"group.id": settings.consumer_group}))
    try:
        consumer.commit(
            offsets=[TopicPartition(settings.topic, partition, offset)], asynchronous=False
        )
    finally:
        consumer.close()


def test_the_lag_is_the_high_watermarks_past_the_committed_offsets(settings: Settings) -> None:
    sales = [checkout(f"t{n}", utc(2026, 11, 20, 12), [("a", 1, "1")]) for n in range(5)]
    produce(settings, sales, partition=0)
    produce(settings, sales[:2], partition=1)
    _commit(settings, 0, 3)

    state = probe_kafka(settings)

    assert state.reachable
    assert state.reason is None
    assert state.partitions == [
        {"partition": 0, "high_watermark": 5, "committed": 3, "lag": 2},
        {"partition": 1, "high_watermark": 2, "committed": None, "lag": 2},
        {"partition": 2, "high_watermark": 0, "committed": None, "lag": 0},
    ]
    assert state.lag == 4


def test_a_missing_topic_is_reachable_with_the_fix(settings: Settings) -> None:
    missing = settings.model_copy(update={"topic": f"{settings.topic}_missing"})

    state = probe_kafka(missing)

    assert state.reachable
    assert state.reason is not None
    assert "not found (KASSA_TOPIC); run kassa topics create" in state.reason
    assert state.lag is None


def test_a_broker_that_does_not_answer_is_unreachable_naming_the_address(
    settings: Settings,
) -> None:
    nowhere = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    seen: list[KafkaState] = []
    probed = threading.Event()

    def on_state(state: KafkaState) -> None:
        seen.append(state)
        probed.set()

    probe = KafkaProbe(nowhere, 60.0, timeout=1.0, on_state=on_state)
    assert probe.state.reason == "not probed yet"
    probe.start()
    try:
        assert probed.wait(30)
    finally:
        probe.stop()

    assert seen == [probe.state]
    assert not probe.state.reachable
    assert probe.state.reason is not None
    assert probe.state.reason.startswith(
        f"cannot reach Kafka at KASSA_KAFKA_BOOTSTRAP={nowhere.kafka_bootstrap!r} ("
    )
    assert probe.state.as_json()["lag"] is None
