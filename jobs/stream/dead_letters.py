"""The dead-letter topic: messages the stream job cannot count, with the reason in headers."""

from __future__ import annotations

from confluent_kafka import KafkaError, Message, Producer

from jobs.stream.exceptions import DeadLetterError

REASON_HEADER = "kassa.reason"
DETAIL_HEADER = "kassa.detail"
TOPIC_HEADER = "kassa.source.topic"
PARTITION_HEADER = "kassa.source.partition"
OFFSET_HEADER = "kassa.source.offset"
_MAX_DETAIL = 1000


class DeadLetters:
    """Produces refused messages, unchanged, to the dead-letter topic."""

    def __init__(self, bootstrap: str, topic: str, flush_timeout: float = 30.0) -> None:
        self.topic = topic
        self._flush_timeout = flush_timeout
        self._failures: list[str] = []
        self._pending = 0
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "client.id": "kassa-stream-dlq",
            }
        )

    def send(
        self,
        value: bytes | None,
        key: bytes | None,
        *,
        reason: str,
        detail: str,
        source_topic: str,
        partition: int,
        offset: int,
    ) -> None:
        """Queue one message with its reason and source position in headers."""
        headers = [
            (REASON_HEADER, reason.encode()),
            (DETAIL_HEADER, detail[:_MAX_DETAIL].encode()),
            (TOPIC_HEADER, source_topic.encode()),
            (PARTITION_HEADER, str(partition).encode()),
            (OFFSET_HEADER, str(offset).encode()),
        ]
        self._producer.produce(
            self.topic, value=value, key=key, headers=headers, on_delivery=self._delivered
        )
        self._pending += 1
        self._producer.poll(0)

    def flush(self) -> None:
        """Wait until every queued message is delivered, or raise :class:`DeadLetterError`."""
        if not self._pending:
            return
        remaining = self._producer.flush(self._flush_timeout)
        failures, self._failures = self._failures, []
        self._pending = 0
        if remaining or failures:
            msg = (
                f"{remaining} message(s) not delivered to dead-letter topic {self.topic!r} "
                f"within {self._flush_timeout:.0f} s ({'; '.join(failures[:3]) or 'timeout'}); "
                "check that the topic exists ('kassa topics create') and the broker is up"
            )
            raise DeadLetterError(msg)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(str(error))
