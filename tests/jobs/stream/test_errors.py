"""The stream job's errors: found again behind Quix's, and carried over from the writers."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from common.errors import (
    DayOutOfRange,
    FigureLimitError,
    InvalidCheckout,
    KassaError,
    RedisUnavailableError,
)
from common.schema import Reason, encode_checkout
from common.settings import Settings
from jobs.stream.exceptions import (
    DeadLetterError,
    InstanceFencedError,
    KafkaContactLostError,
    StreamError,
    StreamRedisUnavailableError,
    WriterError,
)
from jobs.stream.failures import kassa_cause, stream_failure
from jobs.stream.writer import BatchWriter, RawBatch, _picklable
from producers.synthetic import generate
from storage.kafka.config import client_config
from storage.live import Expectation, Identity
from tests.helpers import free_port, wait_until


def test_the_kassa_error_behind_a_framework_error_is_found() -> None:
    original = StreamRedisUnavailableError(
        "redis://127.0.0.1:1/0", "read the watermarks from", "refused"
    )
    try:
        try:
            raise original
        except StreamRedisUnavailableError as exc:
            raise RuntimeError("Error during partition assignment") from exc
    except RuntimeError as wrapped:
        assert kassa_cause(wrapped) is original
    assert kassa_cause(ValueError("plain")) is None


def test_a_lost_broker_or_membership_behind_a_framework_error_is_a_stream_error() -> None:
    fenced = KafkaException(KafkaError(KafkaError.FENCED_INSTANCE_ID))
    try:
        try:
            raise fenced
        except KafkaException as exc:
            raise RuntimeError("commit failed") from exc
    except RuntimeError as wrapped:
        assert isinstance(stream_failure(wrapped, "till-1"), InstanceFencedError)
        dynamic = stream_failure(wrapped, None)  # no group.instance.id: not a fencing
        assert isinstance(dynamic, KafkaContactLostError)
        assert dynamic.cause.startswith("KafkaException: ")
    original = StreamRedisUnavailableError("redis://127.0.0.1:1/0", "reach", "refused")
    assert stream_failure(original, None) is None  # raised as it is
    assert stream_failure(ValueError("a bug"), None) is None


def test_a_redis_error_pickles_with_its_message_and_stays_a_stream_error() -> None:
    error = StreamRedisUnavailableError(
        "redis://127.0.0.1:1/0", "write partition 2's batch to", "refused"
    )

    copy = pickle.loads(pickle.dumps(error))

    assert (
        str(copy)
        == str(error)
        == (
            "cannot write partition 2's batch to Redis at KASSA_REDIS_URL='redis://127.0.0.1:1/0' "
            "(refused); start Redis or fix its settings, then restart kassa stream: it resumes "
            "from the last commit"
        )
    )
    assert isinstance(copy, StreamError)
    assert isinstance(copy, RedisUnavailableError)
    assert copy.exit_code == 3


def test_a_redis_failure_in_the_writer_process_reaches_the_consumer_as_kassas_error(
    settings: Settings,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    writer = BatchWriter(settings.model_copy(update={"redis_url": url}))
    checkout = next(generate(3, datetime(2026, 11, 21, 9, tzinfo=UTC), 1))
    batch = RawBatch(settings.topic, 2, 0.0, [0], [b"s01"], [encode_checkout(checkout)])
    try:
        future = writer.submit(batch, Expectation(Identity("topic-id", "cluster-id"), 0, None))
        with pytest.raises(StreamRedisUnavailableError) as failed:
            future.result()
    finally:
        writer.close()

    assert str(failed.value).startswith(
        f"cannot write partition 2's batch to Redis at KASSA_REDIS_URL={url!r} ("
    )
    assert failed.value.url == url


def _round_trip(error: BaseException) -> BaseException:
    copy: BaseException = pickle.loads(pickle.dumps(error))
    return copy


def test_every_error_the_writer_can_raise_pickles_with_its_message() -> None:
    errors: list[KassaError] = [
        WriterError(1, 10, 20, KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))),
        DeadLetterError("1 message(s) not delivered to dead-letter topic 'x.dlq'"),
        FigureLimitError("x in kassa:live:2026-11-21:units"),
        DayOutOfRange("9999-12-31", "Europe/Berlin"),
        InvalidCheckout(Reason.EVENT_TIME, "occurred_at 9999-12-31T12:00:00+00:00 is ..."),
    ]
    for error in errors:
        copy = _round_trip(error)
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert copy.__dict__ == error.__dict__


def test_an_error_that_cannot_be_pickled_becomes_a_writer_error_naming_it() -> None:
    batch = RawBatch("sales", 2, 0.0, [7, 8], [None, None], [b"{}", b"{}"])
    kafka_error = KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    with pytest.raises(pickle.PicklingError):
        pickle.dumps(kafka_error)  # confluent_kafka's errors do not pickle

    error = _picklable(kafka_error, batch)

    assert isinstance(error, WriterError)
    assert isinstance(error, StreamError)
    assert str(_round_trip(error)) == str(error)
    assert str(error).startswith(
        "the stream job's writer failed on partition 2, offsets 7..8: KafkaException: "
    )
    redis_error = StreamRedisUnavailableError("redis://127.0.0.1:1/0", "write to", "refused")
    assert _picklable(redis_error, batch) is redis_error


def _limit_dead_letter_records(settings: Settings, max_bytes: int) -> None:
    """Make the broker refuse dead letters over ``max_bytes`` (the topic's own limit)."""
    admin = AdminClient(client_config(settings))
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        settings.dead_letter_topic,
        incremental_configs=[
            ConfigEntry(
                "max.message.bytes",
                str(max_bytes),
                incremental_operation=AlterConfigOpType.SET,
            )
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)
    topic = ConfigResource(ConfigResource.Type.TOPIC, settings.dead_letter_topic)

    def applied() -> bool:
        configs = next(iter(admin.describe_configs([topic]).values())).result(30)
        return bool(configs["max.message.bytes"].value == str(max_bytes))

    wait_until(applied, 30, f"the dead-letter topic's max.message.bytes to be {max_bytes}")


def test_a_failure_in_the_writer_process_reaches_the_consumer_as_a_kassa_error(
    settings: Settings,
) -> None:
    # The broker refuses even a dead letter without its value: nothing can be written.
    _limit_dead_letter_records(settings, 100)
    writer = BatchWriter(settings)
    batch = RawBatch(settings.topic, 1, 0.0, [0], [b"s01"], [b"not json" * 100])
    try:
        with pytest.raises(DeadLetterError) as failed:
            writer.submit(batch, None).result()
    finally:
        writer.close()

    assert str(failed.value).startswith(
        f"1 message(s) not delivered to dead-letter topic {settings.dead_letter_topic!r} "
    )
    assert "too large" in str(failed.value).lower()
