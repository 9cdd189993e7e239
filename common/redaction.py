"""The one rule by which a secret becomes text: it does not.

Everything kassa turns into text that may hold a secret (a Redis URL with a password, a
Kafka client configuration, a settings value) goes through this module on its way to a log
line, an error, an API body, a metric label or a file. Secret settings themselves are
``SecretStr`` and print as ``**********`` (:mod:`common.settings.secrets`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

HIDDEN = "***"
SENSITIVE_WORDS = ("password", "secret", "token", "credential", ".pem", "oauthbearer.config")
"""A librdkafka property whose name holds one of these holds a secret (``sasl.password``,
``ssl.key.password``, ``sasl.oauthbearer.client.secret``, ``ssl.key.pem``, ...): its value
is hidden whole. Over-hiding (a token endpoint's URL) costs a debug line; under-hiding leaks."""


def redacted(url: str) -> str:
    """``url`` without its password, fit for a message or a log line.

    A URL that does not parse cleanly hides more, never less: one urlsplit cannot take apart
    shows only its scheme, and an ``@`` outside the host part (a password holding an
    unescaped ``/ ? #``, or a malformed ``redis:/...``) hides everything before the last ``@``.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        scheme, separator, _ = url.partition("://")
        return f"{scheme}://{HIDDEN}" if separator else HIDDEN
    if url.count("@") > parts.netloc.count("@"):
        after = url.rpartition("@")[2]
        return f"{parts.scheme}:{HIDDEN}@{after}" if parts.scheme else f"{HIDDEN}@{after}"
    if password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{HIDDEN}@{host}"))


class RedisPlace(Protocol):
    """The settings that say where kassa's Redis is
    (:class:`common.settings.redis.RedisSettings`)."""

    @property
    def redis_url(self) -> str: ...
    @property
    def redis_sentinels(self) -> str: ...
    @property
    def redis_sentinel_master(self) -> str: ...
    @property
    def redis_cluster(self) -> bool: ...


def redis_location(target: str | RedisPlace) -> str:
    """Where kassa's Redis is, as a message names it: the settings that say so, their URL
    without its password (``Redis at KASSA_REDIS_URL='redis://:***@cache:6379/0'``, the master
    the Sentinels name, or a Redis Cluster)."""
    if isinstance(target, str):
        return f"Redis at KASSA_REDIS_URL={redacted(target)!r}"
    url = redacted(target.redis_url)
    if target.redis_sentinels:
        return (
            f"the Redis master KASSA_REDIS_SENTINEL_MASTER={target.redis_sentinel_master!r} of "
            f"KASSA_REDIS_SENTINELS={target.redis_sentinels!r}"
        )
    if target.redis_cluster:
        return f"the Redis Cluster at KASSA_REDIS_URL={url!r}"
    return f"Redis at KASSA_REDIS_URL={url!r}"


_QUOTED_VALUE = re.compile(r'value ".*" for configuration property')


def redacted_librdkafka(message: str) -> str:
    """librdkafka's error ``message`` without the configuration values it quotes
    (``Invalid value "..." for configuration property "debug"``): a value of
    KASSA_KAFKA_CONFIG may be a secret, and which property is at fault is what helps."""
    return _QUOTED_VALUE.sub("value for configuration property", message)


def is_sensitive(name: str) -> bool:
    """Whether the configuration property ``name`` holds a secret."""
    lowered = name.lower().replace("_", ".")
    return any(word in lowered for word in SENSITIVE_WORDS)


def redacted_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` (a librdkafka configuration, a settings dump) with every secret value
    hidden: sensitive property names, ``SecretStr`` values and passwords inside URLs."""
    shown: dict[str, Any] = {}
    for name, value in config.items():
        if isinstance(value, SecretStr) or (is_sensitive(name) and value not in (None, "")):
            shown[name] = HIDDEN
        elif isinstance(value, str) and "://" in value:
            shown[name] = redacted(value)
        elif isinstance(value, Mapping):
            shown[name] = redacted_config(value)
        else:
            shown[name] = value
    return shown
