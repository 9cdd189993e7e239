"""What the errors of Quix and librdkafka mean for the stream job.

Quix wraps the errors the job's own code raises (a Redis outage during an assignment, a
refused batch) in errors of its own, and reports a lost broker or group membership as
errors of Quix or librdkafka. :func:`stream_failure` finds the kassa error in such a chain
(:func:`kassa_cause`) or translates the Kafka one (:func:`kafka_failure`);
:class:`ErrorLog` and :func:`consumer_failed` keep librdkafka's and Quix's own reports of
them to a few log lines.
"""

from __future__ import annotations

import logging
import re
import time

from confluent_kafka import KafkaError, KafkaException
from quixstreams.checkpointing.exceptions import InvalidStoredOffset
from quixstreams.exceptions import PartitionAssignmentError
from quixstreams.kafka.exceptions import BaseKafkaException, KafkaBrokerUnavailableError
from quixstreams.models.topics.exceptions import TopicNotFoundError as QuixTopicNotFoundError
from quixstreams.models.topics.exceptions import TopicPermissionError

from common.errors import KassaError, TopicNotFoundError
from common.settings import Settings
from jobs.stream.exceptions import (
    InstanceFencedError,
    KafkaContactLostError,
    StreamError,
    TopicChangedError,
)
from storage.kafka.access import access_error, denied, is_refusal
from storage.kafka.exceptions import KafkaAccessError

logger = logging.getLogger(__name__)

KAFKA_FAILURES = (
    BaseKafkaException,
    KafkaBrokerUnavailableError,
    KafkaException,
    PartitionAssignmentError,
)
"""Errors of Quix and librdkafka that mean Kafka or the group membership was lost."""
FENCED = {KafkaError._FENCED, KafkaError.FENCED_INSTANCE_ID, KafkaError._FATAL}
"""A consumer's only fatal error: another member joined with its ``group.instance.id``."""
TOPIC_GONE = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC}
"""What a consumer reports when its subscribed topic no longer exists."""


def stream_failure(exc: BaseException, instance_id: str | None) -> KassaError | None:
    """The kassa error to raise instead of ``exc``, which ended a run of the Quix application:
    the kassa error in its chain of causes, or the stream error for a lost Kafka or group
    membership (:func:`kafka_failure`); None when ``exc`` is to be raised as it is."""
    cause = kassa_cause(exc) or topic_changed(exc) or kafka_failure(exc, instance_id)
    return None if cause is exc else cause


def topic_changed(exc: BaseException) -> TopicChangedError | None:
    """The error for what in ``exc``'s chain says the topic changed under the consumer: Quix
    refusing an offset below one it had processed (``InvalidStoredOffset``: the log moved
    back, e.g. a recreated topic read from its start), or the subscribed topic unknown."""
    seen: BaseException | None = exc
    while seen is not None:
        error = getattr(seen, "error", None) or (seen.args[0] if seen.args else None)
        if isinstance(seen, InvalidStoredOffset) or (
            isinstance(error, KafkaError) and error.code() in TOPIC_GONE
        ):
            return TopicChangedError(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    return None


def kassa_cause(exc: BaseException) -> KassaError | None:
    """The first :class:`KassaError` in ``exc``'s chain of causes, if any (Quix's "topic not
    found" at the start of a run counts as kassa's :class:`TopicNotFoundError`)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KassaError):
            return seen
        if isinstance(seen, QuixTopicNotFoundError):
            return TopicNotFoundError([topic for topic in re.findall(r'"([^"]+)"', str(seen))])
        seen = seen.__cause__ or seen.__context__
    return None


def refusal(exc: BaseException, settings: Settings) -> KafkaAccessError | None:
    """The refusal in ``exc``'s chain, if the cluster refused the job (a missing ACL, its
    login, its TLS): retrying cannot help, so the job stops instead of restarting."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TopicPermissionError):  # Quix could not read the topic's configs
            topic, user = f"topic {settings.topic!r}", settings.kafka_sasl_username
            return denied("DESCRIBE_CONFIGS", topic, "TopicPermissionError", user=user)
        error = getattr(seen, "error", None) or (seen.args[0] if seen.args else None)
        if isinstance(error, KafkaError) and is_refusal(error):
            if error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
                group = f"group {settings.consumer_group!r}"
                return access_error(error, settings, operation="READ", resource=group)
            topic = f"topic {settings.topic!r}"
            return access_error(error, settings, operation="READ", resource=topic)
        seen = seen.__cause__ or seen.__context__
    return None


def kafka_failure(exc: BaseException, instance_id: str | None) -> StreamError | None:
    """The stream error for a lost Kafka or group membership in ``exc``'s chain, if any:
    :class:`InstanceFencedError` when the broker fenced the static member ``instance_id``,
    else :class:`KafkaContactLostError`."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KAFKA_FAILURES):
            error = getattr(seen, "error", None) or (seen.args[0] if seen.args else None)
            code = error.code() if isinstance(error, KafkaError) else None
            if code in FENCED and instance_id is not None:
                return InstanceFencedError(instance_id)
            detail = error.str() if isinstance(error, KafkaError) else str(seen)
            return KafkaContactLostError(f"{type(seen).__name__}: {detail}")
        seen = seen.__cause__ or seen.__context__
    return None


class ErrorLog:
    """librdkafka's error callback: each kind of error (its code) once a minute at WARNING,
    the repetitions at DEBUG."""

    def __init__(self, interval: float = 60.0) -> None:
        self._interval = interval
        self._logged: dict[int, float] = {}

    def __call__(self, error: KafkaError) -> None:
        now = time.monotonic()
        if now - self._logged.get(error.code(), -self._interval) >= self._interval:
            self._logged[error.code()] = now
            logger.warning("Kafka consumer: %s (repeats are logged at DEBUG)", error.str())
        else:
            logger.debug("Kafka consumer: %s", error.str())


def consumer_failed(exc: Exception, message: object, quix_logger: logging.Logger) -> bool:
    """Quix's consumer error callback: let the error stop the run (``StreamJob.run`` turns
    it into one line); its traceback is logged at DEBUG only (``kassa -v``)."""
    logger.debug("the Quix consumer failed", exc_info=exc)
    return False
