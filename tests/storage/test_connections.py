"""A failing Redis becomes kassa's error, naming the URL, what was being done and the cause."""

from __future__ import annotations

import pytest
import redis

from common.errors import RedisUnavailableError
from storage.connections import open_redis, redis_failures
from tests.helpers import free_port


def test_an_unreachable_redis_is_reported_with_its_url_and_the_cause() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    client = open_redis(url)

    with pytest.raises(RedisUnavailableError) as failed, redis_failures(url, "reach"):
        client.ping()

    assert str(failed.value).startswith(f"cannot reach Redis at KASSA_REDIS_URL={url!r} (")
    assert "Connection refused" in str(failed.value)
    assert isinstance(failed.value.__cause__, redis.ConnectionError)


class _JobError(RedisUnavailableError):
    advice = "restart the job"


def test_the_error_class_is_the_callers() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"

    with (
        pytest.raises(_JobError, match=r"; restart the job$"),
        redis_failures(url, "reach", _JobError),
    ):
        open_redis(url).ping()
