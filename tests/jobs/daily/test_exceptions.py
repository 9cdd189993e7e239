"""The daily job's Kafka and Redis errors: kassa's shared ones, with the daily exit statuses."""

from __future__ import annotations

import pickle
from datetime import date

from common.errors import KafkaUnavailableError, RedisUnavailableError
from jobs.daily.exceptions import DailyError, KafkaReadError, ReadError, RedisWriteError


def test_redis_down_means_parquet_written_and_the_day_unfinished() -> None:
    error = RedisWriteError("redis://127.0.0.1:1/1", date(2026, 11, 20), "refused")

    copy: RedisWriteError = pickle.loads(pickle.dumps(error))

    assert (
        str(copy)
        == str(error)
        == (
            "cannot write the rankings of 2026-11-20 to Redis at "
            "KASSA_REDIS_URL='redis://127.0.0.1:1/1' (refused); the Parquet files are written "
            "but the day is not finished (no manifest): start Redis and run the day again"
        )
    )
    assert isinstance(copy, RedisUnavailableError)
    assert isinstance(copy, DailyError)
    assert copy.exit_code == 5
    assert copy.day == date(2026, 11, 20)


def test_kafka_down_is_a_read_error() -> None:
    error = KafkaReadError("127.0.0.1:1", "timed out")

    copy = pickle.loads(pickle.dumps(error))

    assert str(copy) == str(KafkaUnavailableError("127.0.0.1:1", "timed out"))
    assert isinstance(copy, ReadError)
    assert copy.exit_code == 4
