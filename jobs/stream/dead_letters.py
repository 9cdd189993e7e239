"""The dead-letter topic: messages the stream job cannot count, with the reason in headers.

A dead letter is the refused record's key and value with headers saying why and where it
came from. Every refused record is written, however large: a value (or key) that would make
the dead letter larger than the producer's :data:`MAX_RECORD_BYTES` is cut to fit, and
``kassa.original.size`` (always present) tells the value's length before, ``kassa.truncated``
that it was cut. A dead letter the broker still refuses as too large (a topic with a lower
``max.message.bytes``) is written again without its value.
"""

from __future__ import annotations

import functools
from typing import Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from common.settings import Settings
from jobs.stream.exceptions import DeadLetterError
from storage.kafka.config import client_config

REASON_HEADER = "kassa.reason"
DETAIL_HEADER = "kassa.detail"
TOPIC_HEADER = "kassa.source.topic"
PARTITION_HEADER = "kassa.source.partition"
OFFSET_HEADER = "kassa.source.offset"
SIZE_HEADER = "kassa.original.size"
"""The refused value's length in bytes (0 for a null value)."""
TRUNCATED_HEADER = "kassa.truncated"
"""Present when the dead letter holds only the start of the value (``value``), its key cut
too (``key,value``), or no value at all because the broker refused it (``dropped``)."""
MAX_RECORD_BYTES: Final = 1_000_000
"""The producer's ``message.max.bytes`` (librdkafka's default), which a dead letter fits."""
MAX_KEY_BYTES: Final = 1024
_MAX_DETAIL_BYTES: Final = 1000
_OVERHEAD_BYTES: Final = 1024
"""Room left for the record's framing (its batch header and varints need far less)."""

Header = tuple[str, bytes]


class DeadLetters:
    """Produces refused messages to the dead-letter topic (cut to fit, see the module)."""

    def __init__(self, settings: Settings, topic: str, flush_timeout: float = 30.0) -> None:
        self.topic = topic
        self._flush_timeout = flush_timeout
        self._failures: list[str] = []
        self._too_large: list[tuple[bytes | None, list[Header]]] = []
        self._pending = 0
        self._producer = Producer(
            client_config(
                settings,
                {
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    "message.max.bytes": MAX_RECORD_BYTES,
                    "client.id": "kassa-stream-dlq",
                },
            )
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
        """Queue one message with its reason, source position and size in headers."""
        headers: list[Header] = [
            (REASON_HEADER, reason.encode()),
            (DETAIL_HEADER, detail.encode()[:_MAX_DETAIL_BYTES]),
            (TOPIC_HEADER, source_topic.encode()),
            (PARTITION_HEADER, str(partition).encode()),
            (OFFSET_HEADER, str(offset).encode()),
            (SIZE_HEADER, str(len(value or b"")).encode()),
        ]
        cut: list[str] = []
        if key is not None and len(key) > MAX_KEY_BYTES:
            key = key[:MAX_KEY_BYTES]
            cut.append("key")
        room = MAX_RECORD_BYTES - _OVERHEAD_BYTES - len(key or b"")
        room -= sum(len(name) + len(data) + 32 for name, data in headers)
        if value is not None and len(value) > room:
            value = value[:room]
            cut.append("value")
        if cut:
            headers.append((TRUNCATED_HEADER, ",".join(cut).encode()))
        self._produce(value, key, headers)

    def _produce(self, value: bytes | None, key: bytes | None, headers: list[Header]) -> None:
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    value=value,
                    key=key,
                    headers=headers,
                    on_delivery=functools.partial(self._delivered, key, headers),
                )
                break
            except BufferError:  # the local queue is full: let deliveries make room
                self._producer.poll(0.1)
            except KafkaException as exc:
                msg = (
                    f"cannot queue a dead letter for topic {self.topic!r} ({exc.args[0]}); "
                    "check the dead-letter topic's settings and restart kassa stream"
                )
                raise DeadLetterError(msg) from None
        self._pending += 1
        self._producer.poll(0)

    def flush(self) -> None:
        """Wait until every queued message is delivered, or raise :class:`DeadLetterError`."""
        if not self._pending:
            return
        remaining = self._producer.flush(self._flush_timeout)
        if self._too_large and not remaining:
            refused, self._too_large = self._too_large, []
            for key, headers in refused:
                kept = [header for header in headers if header[0] != TRUNCATED_HEADER]
                self._produce(None, key, [*kept, (TRUNCATED_HEADER, b"dropped")])
            remaining = self._producer.flush(self._flush_timeout)
        failures, self._failures = self._failures, []
        self._pending = 0
        if remaining or failures:
            msg = (
                f"{remaining + len(failures)} message(s) not delivered to dead-letter topic "
                f"{self.topic!r} within {self._flush_timeout:.0f} s "
                f"({'; '.join(failures[:3]) or 'timeout'}); check that the topic exists "
                "('kassa topics create'), the broker is up and the topic's max.message.bytes "
                f"is at least {MAX_RECORD_BYTES}"
            )
            raise DeadLetterError(msg)

    def _delivered(
        self, key: bytes | None, headers: list[Header], error: KafkaError | None, _: Message
    ) -> None:
        if error is None:
            return
        dropped = (TRUNCATED_HEADER, b"dropped") in headers
        if error.code() == KafkaError.MSG_SIZE_TOO_LARGE and not dropped:
            self._too_large.append((key, headers))
        else:
            self._failures.append(str(error))
