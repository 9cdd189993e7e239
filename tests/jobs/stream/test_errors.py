"""The stream job's errors: found again behind Quix's, and carried over from the writers."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest

from common.errors import RedisUnavailableError
from common.schema import encode_checkout
from common.settings import Settings
from jobs.stream.app import _kassa_cause
from jobs.stream.exceptions import StreamError, StreamRedisUnavailableError
from jobs.stream.writer import BatchWriter, RawBatch
from producers.synthetic import generate
from storage.live import Expectation, Identity
from tests.helpers import free_port


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
        assert _kassa_cause(wrapped) is original
    assert _kassa_cause(ValueError("plain")) is None


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
            "(refused); start Redis or fix the URL, then restart kassa stream: it resumes from "
            "the last commit"
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
