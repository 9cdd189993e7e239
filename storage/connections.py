"""Redis failures: the one place where an error of the Redis client becomes kassa's error."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

from common.errors import RedisUnavailableError


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
