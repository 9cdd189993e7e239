"""Errors of the stream job."""

from __future__ import annotations

from common.errors import KassaError, RedisUnavailableError


class StreamError(KassaError):
    """The stream job cannot go on."""

    exit_code = 3


class DeadLetterError(StreamError):
    """Dead-lettered messages could not be delivered to the dead-letter topic."""

    exit_code = 5


class StreamRedisUnavailableError(RedisUnavailableError, StreamError):
    """Redis could not be reached, read or written by the stream job."""

    exit_code = 3
    advice = (
        "start Redis or fix the URL, then restart kassa stream: it resumes from the last commit"
    )


class RecoverableStreamError(StreamError):
    """The stream job can go on after its Quix application is rebuilt in the same process
    (``run_stream`` does so, logging one ERROR line): the new assignment resumes every
    partition from what Redis and Kafka hold."""


class KafkaContactLostError(RecoverableStreamError):
    """Kafka stopped answering while the job ran, or the group took the job's partitions
    away (its commits are refused after an outage or a pause beyond the session timeout)."""

    exit_code = 4

    def __init__(self, cause: object) -> None:
        super().__init__(
            f"the stream job's consumer lost Kafka or its group membership ({cause}); its "
            "batches are in Redis, and a new consumer resumes from the last commit, skipping "
            "what Redis holds"
        )
        self.cause = str(cause)


class InstanceFencedError(RecoverableStreamError):
    """The broker fenced this replica's ``group.instance.id``: another consumer joined with
    it, or this replica rejoined after it lost its membership and then committed as its old
    member. ``run_stream`` rebuilds the consumer once; fenced again soon after, it stops."""

    exit_code = 6

    def __init__(self, instance_id: str) -> None:
        super().__init__(
            f"the broker fenced this replica's group.instance.id {instance_id!r}: another "
            "stream replica uses it (give each replica its own KASSA_STREAM_INSTANCE_ID, or "
            "leave it empty for '<host name>-<n>'), or this replica lost its membership"
        )
        self.instance_id = instance_id


class WriterDiedError(StreamError):
    """A writer process of the stream job died (killed, out of memory)."""

    exit_code = 7

    def __init__(self) -> None:
        super().__init__(
            "a writer process of the stream job died (killed, or out of memory? see the "
            "kernel log); restart kassa stream: it resumes from the last commit"
        )
