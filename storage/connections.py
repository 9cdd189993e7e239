"""Redis connections: the one place that makes a Redis client, and where an error of the
Redis client becomes kassa's error.

A Redis URL becomes text only through :func:`~common.redaction.redacted` (its password never
reaches a message or a log line).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

from common.errors import RedisUnavailableError


def open_redis(url: str, *, timeout: float | None = None, **options: Any) -> redis.Redis:
    """A client of the Redis database at ``url`` (``KASSA_REDIS_URL``).

    ``timeout`` bounds both connecting and each command, in seconds (None: wait as long as
    it takes); ``options`` are redis-py's own (e.g. ``retry``).
    """
    if timeout is not None:
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, **options}
    return redis.Redis.from_url(url, **options)


@contextmanager
def redis_failures(
    url: str,
    doing: str,
    error: Callable[[str, str, BaseException], RedisUnavailableError] = RedisUnavailableError,
) -> Iterator[None]:
    """Turn any Redis error in the block into ``error(url, doing, cause)``.

    ``doing`` completes "cannot ... Redis", e.g. ``"read the ranking from"``; ``error`` is
    :class:`~common.errors.RedisUnavailableError` or a subclass that says what the failure
    means for its job.
    """
    try:
        yield
    except redis.RedisError as exc:
        raise error(url, doing, exc) from exc
