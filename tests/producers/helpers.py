"""Reading a test topic back from the beginning to its end (a bounded read)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from common.settings import Settings
from storage.kafka.config import client_config


def read_all(settings: Settings, timeout: float = 30.0) -> list[Message]:
    """Every record of ``settings.topic``, partition by partition in offset order."""
    consumer = Consumer(
        client_config(
            settings,
            {
                "group.id": f"pytest-read-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            },
        )
    )
    try:
        metadata = consumer.list_topics(settings.topic, timeout=10)
        partitions = sorted(metadata.topics[settings.topic].partitions)
        consumer.assign([TopicPartition(settings.topic, p, 0) for p in partitions])
        pending = set(partitions)
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                msg = f"partitions {sorted(pending)} of {settings.topic} not read to the end"
                raise TimeoutError(msg)
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                    continue
                raise RuntimeError(error.str())
            records.append(message)
        return records
    finally:
        consumer.close()
