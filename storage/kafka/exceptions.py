"""Errors of reading kassa's Kafka log; ``exit_code`` is the status ``kassa`` exits with."""

from __future__ import annotations

from common.errors import KafkaUnavailableError, KassaError, SettingsError
from common.redaction import redacted_librdkafka


class ReadError(KassaError):
    """A day's offset range could not be read from Kafka."""

    exit_code = 4


class KafkaReadError(KafkaUnavailableError, ReadError):
    """Kafka could not be reached to plan the day (a :class:`ReadError`)."""

    exit_code = 4


class TopicIdentityError(KassaError):
    """The topic and its cluster could not be described, so their identity is unknown."""

    exit_code = 3

    def __init__(self, topic: str, cause: object) -> None:
        super().__init__(
            f"cannot describe topic {topic!r} and its cluster ({cause}); is the broker up?"
        )
        self.topic = topic
        self.cause = str(cause)


class KafkaAccessError(KassaError):
    """The Kafka cluster answered but refused kassa: its login, its TLS, or an ACL.

    Retrying cannot help (unlike :class:`~common.errors.KafkaUnavailableError`): the
    message names what was refused and the setting or permission that fixes it.
    """

    exit_code = 9


class KafkaConfigError(SettingsError):
    """librdkafka refuses the client configuration that the Kafka settings make."""

    def __init__(self, cause: str) -> None:
        super().__init__(
            f"librdkafka refuses the Kafka client settings ({redacted_librdkafka(cause)}); fix "
            "that KASSA_KAFKA_* setting, or that property of KASSA_KAFKA_CONFIG"
        )
