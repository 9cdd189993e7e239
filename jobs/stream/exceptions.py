"""Errors of the stream job."""

from __future__ import annotations

from common.errors import KassaError, RedisUnavailableError
from common.redaction import RedisPlace, redis_location


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
        "start Redis or fix its settings, then restart kassa stream: it resumes from the last "
        "commit"
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


class RedisBehindError(RecoverableStreamError):
    """Redis holds less than the job applied (it lost writes, or was rebuilt) while running."""

    def __init__(self, partitions: dict[int, tuple[int, int]]) -> None:
        listed = ", ".join(
            f"partition {p}: Redis holds offsets up to {stored}, the job applied up to {mine}"
            for p, (stored, mine) in sorted(partitions.items())
        )
        super().__init__(
            f"REDIS IS BEHIND the stream job ({listed}): Redis lost writes (restored from an "
            "older copy, a failover) or 'kassa stream rebuild' reset it; the job resumes "
            "those partitions from Redis's watermark + 1"
        )
        self.partitions = partitions


class TopicChangedError(RecoverableStreamError):
    """The consumer saw the topic change under the job: it is gone, or a partition delivered
    an offset the job had passed with nothing rewinding it (the job checks the topic)."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}: the topic was deleted or recreated under the job, or its log was cut "
            "back; checking the topic and resuming from Redis's watermarks"
        )


class IdentityMismatchError(StreamError):
    """The watermarks in Redis count another topic or cluster than the one consumed."""

    def __init__(self, space: str, stored: object, current: object) -> None:
        super().__init__(
            f"the live figures of key space {space!r} count {stored}, but the topic is now "
            f"{current} (deleted and recreated, or another cluster): their watermarks mean "
            "nothing for the new topic. Reset the live figures with 'kassa stream rebuild' "
            "(it recounts what the new topic holds), or point KASSA_REDIS_KEY_SPACE elsewhere"
        )


class TopicDeletedError(StreamError):
    """The sales topic was deleted under the running job."""

    def __init__(self, topic: str, identity: object) -> None:
        super().__init__(
            f"topic {topic!r} ({identity}) was deleted under the running stream job: nothing "
            "more can be counted from it. Create the topic again ('kassa topics create'), then "
            "reset the live figures with 'kassa stream rebuild' (they count the deleted topic)"
        )
        self.topic = topic


class WatermarksLostError(StreamError):
    """Live day keys exist but the watermark hash is gone: counting on top would double."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"the watermark hash {key} is missing but live day keys of its key space exist "
            "(a stray DEL, or an eviction): counting from Kafka on top of them would count "
            "records twice. Reset the live figures with 'kassa stream rebuild' (or "
            "'kassa stream rebuild --from DAY' after the daily job repaired the older days)"
        )


class RecordsLostError(StreamError):
    """Records Redis has not applied are no longer in Kafka (retention deleted them)."""

    def __init__(self, topic: str, lost: dict[int, tuple[int, int]]) -> None:
        listed = ", ".join(
            f"partition {p}: offsets {first}..{last}" for p, (first, last) in sorted(lost.items())
        )
        super().__init__(
            f"Redis has not applied records that topic {topic!r} no longer holds ({listed}; "
            "deleted by retention): the live figures of their days are short. Repair the "
            "days the daily job has with 'kassa daily run --day DAY --repair-live', then "
            "'kassa stream rebuild --from DAY' for the first day Kafka still holds whole"
        )


class EvictionPolicyError(StreamError):
    """Redis may evict kassa's keys (any ``maxmemory-policy`` but ``noeviction``)."""

    def __init__(self, target: str | RedisPlace, policy: str) -> None:
        super().__init__(
            f"{redis_location(target)} has maxmemory-policy {policy!r}, which "
            "may evict kassa's keys (the watermarks, or day keys: they carry a TTL) and "
            "silently lose or double counts; run 'redis-cli CONFIG SET maxmemory-policy "
            "noeviction' and set 'maxmemory-policy noeviction' in redis.conf"
        )


class RebuildRefusedError(StreamError):
    """``kassa stream rebuild`` cannot rebuild the live figures as asked (the message says why)."""


class WriterError(StreamError):
    """The writer process failed on a batch in a way kassa did not foresee."""

    def __init__(self, partition: int, first: int, last: int, cause: BaseException) -> None:
        super().__init__(
            f"the stream job's writer failed on partition {partition}, offsets {first}..{last}: "
            f"{type(cause).__name__}: {cause}; restart kassa stream (it resumes from the last "
            "commit) and report the traceback above if it happens again"
        )
        self.partition = partition
        self.first = first
        self.last = last
        self.cause = f"{type(cause).__name__}: {cause}"


class ReplayError(StreamError):
    """``kassa dead-letters`` could not read the dead letters or re-produce them."""

    exit_code = 4

    def __init__(self, dead_letter_topic: str, topic: str, cause: object) -> None:
        super().__init__(
            f"cannot replay dead letters from {dead_letter_topic!r} to {topic!r} ({cause}); "
            "nothing of the failed transaction was committed: check that both topics exist "
            "('kassa topics create') and the broker is up, then run the replay again"
        )
        self.cause = str(cause)
