"""kassa's errors build their messages from values, keep their exit codes and survive pickling."""

from __future__ import annotations

import pickle
from datetime import date

import pytest

from common.days import check_day_order
from common.errors import (
    InvalidCheckout,
    InvalidDay,
    InvalidDayRange,
    KafkaUnavailableError,
    KassaError,
    RedisUnavailableError,
    ReplicationFactorError,
    TopicError,
    TopicNotFoundError,
)
from common.schema import Reason
from common.settings import load_settings

ERRORS = [
    (
        RedisUnavailableError("redis://127.0.0.1:6379/3", "read the live ranking from", "refused"),
        "cannot read the live ranking from Redis at KASSA_REDIS_URL='redis://127.0.0.1:6379/3' "
        "(refused); start Redis or fix its settings",
        3,
    ),
    (
        KafkaUnavailableError("127.0.0.1:9092", "timed out"),
        "cannot reach Kafka at KASSA_KAFKA_BOOTSTRAP='127.0.0.1:9092' (timed out); "
        "start it with 'kassa services up' or fix the address",
        4,
    ),
    (TopicError("sales", "POLICY_VIOLATION"), "cannot create topic 'sales': POLICY_VIOLATION", 2),
    (
        ReplicationFactorError(3, 1, "127.0.0.1:9092"),
        "KASSA_REPLICATION_FACTOR=3 is larger than the 1 broker(s) up at '127.0.0.1:9092'; start "
        "more brokers ('kassa services up --brokers 3') or lower KASSA_REPLICATION_FACTOR to 1 "
        "or less",
        2,
    ),
    (
        TopicNotFoundError(["sales", "sales.dlq"]),
        "no topic 'sales', 'sales.dlq'; create it with 'kassa topics create'",
        2,
    ),
    (
        InvalidDay("21/11/2026"),
        "day '21/11/2026' is not a date; write it as YYYY-MM-DD, e.g. 2026-11-21",
        2,
    ),
    (
        InvalidDayRange(date(2026, 11, 20), date(2026, 11, 19)),
        "--from 2026-11-20 is after --to 2026-11-19; pass the days in order",
        2,
    ),
    (
        InvalidCheckout(Reason.NO_LINES, "a checkout needs at least one line"),
        "no_lines: a checkout needs at least one line",
        2,
    ),
]


@pytest.mark.parametrize(("error", "message", "exit_code"), ERRORS)
def test_an_error_builds_its_message_and_survives_pickling(
    error: KassaError, message: str, exit_code: int
) -> None:
    copy = pickle.loads(pickle.dumps(error))

    assert str(error) == str(copy) == message
    assert type(copy) is type(error)
    assert copy.exit_code == error.exit_code == exit_code
    assert vars(copy) == vars(error)


def test_a_redis_password_stays_out_of_the_message() -> None:
    error = RedisUnavailableError("redis://kassa:s3cret@cache:6380/1", "reach", "refused")

    assert "s3cret" not in str(error)
    assert "'redis://kassa:***@cache:6380/1'" in str(error)
    assert error.url == "redis://kassa:***@cache:6380/1"


def test_a_range_of_days_must_not_end_before_it_starts() -> None:
    check_day_order(date(2026, 11, 19), date(2026, 11, 19))
    with pytest.raises(InvalidDayRange, match="--from 2026-11-20 is after --to 2026-11-19"):
        check_day_order(date(2026, 11, 20), date(2026, 11, 19))


@pytest.mark.parametrize(
    ("shape", "named"),
    [
        ({}, "Redis at KASSA_REDIS_URL='redis://kassa:***@cache:6380/1'"),
        (
            {"KASSA_REDIS_SENTINELS": "10.0.0.5:26379,10.0.0.6:26379"},
            "the Redis master KASSA_REDIS_SENTINEL_MASTER='mymaster' of "
            "KASSA_REDIS_SENTINELS='10.0.0.5:26379,10.0.0.6:26379'",
        ),
        (
            {"KASSA_REDIS_URL": "redis://kassa:s3cret@cache:6380/0", "KASSA_REDIS_CLUSTER": "true"},
            "the Redis Cluster at KASSA_REDIS_URL='redis://kassa:***@cache:6380/0'",
        ),
    ],
)
def test_a_redis_error_names_the_settings_of_its_redis_shape(
    monkeypatch: pytest.MonkeyPatch, shape: dict[str, str], named: str
) -> None:
    """A master found through Sentinels is named by the Sentinels and the master's name, not
    by the URL (whose host is not where it is); a cluster by its node's URL."""
    monkeypatch.setenv("KASSA_REDIS_URL", "redis://kassa:s3cret@cache:6380/1")
    for name, value in shape.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()

    error = RedisUnavailableError(settings, "reach", "refused")

    assert str(error) == f"cannot reach {named} (refused); start Redis or fix its settings"
    assert "s3cret" not in str(pickle.loads(pickle.dumps(error)))
