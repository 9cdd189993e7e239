"""The one redaction rule: a URL loses its password, however malformed it is."""

from __future__ import annotations

import pytest

from common.redaction import redacted, redacted_librdkafka


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://user@cache:6379/0", "redis://user@cache:6379/0"),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://kassa:p%40w@cache:6380/1", "rediss://kassa:***@cache:6380/1"),
        ("redis://:p@w@cache/0", "redis://:***@cache/0"),
        ("redis://:p/w@cache/0", "redis:***@cache/0"),
        ("redis://:p#w@cache/0", "redis:***@cache/0"),
        ("redis:/:pw@cache/0", "redis:***@cache/0"),
        ("redis://:pw@[::1/0", "redis://***"),
        ("no scheme:pw@cache", "***@cache"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


def test_librdkafka_errors_lose_the_values_they_quote() -> None:
    message = 'Invalid value "pw "x" y" for configuration property "debug"'
    assert redacted_librdkafka(message) == 'Invalid value for configuration property "debug"'
