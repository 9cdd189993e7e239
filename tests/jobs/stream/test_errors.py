"""A kassa error wrapped by Quix (e.g. in a rebalance callback) is found again."""

from __future__ import annotations

from jobs.stream.app import _kassa_cause
from jobs.stream.exceptions import RedisUnavailableError


def test_the_kassa_error_behind_a_framework_error_is_found() -> None:
    original = RedisUnavailableError("cannot read the watermarks; is KASSA_REDIS_URL up?")
    try:
        try:
            raise original
        except RedisUnavailableError as exc:
            raise RuntimeError("Error during partition assignment") from exc
    except RuntimeError as wrapped:
        assert _kassa_cause(wrapped) is original
    assert _kassa_cause(ValueError("plain")) is None
