"""The one rule by which a secret becomes text: it does not.

Everything kassa turns into text that may hold a secret (a Redis URL with a password, a
Kafka client configuration, a settings value) goes through this module on its way to a log
line, an error, an API body, a metric label or a file. Secret settings themselves are
``SecretStr`` and print as ``**********`` (:mod:`common.settings.secrets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

HIDDEN = "***"
SENSITIVE_WORDS = ("password", "secret", "token", "credential", ".pem", "oauthbearer.config")
"""A librdkafka property whose name holds one of these holds a secret (``sasl.password``,
``ssl.key.password``, ``sasl.oauthbearer.client.secret``, ``ssl.key.pem``, ...): its value
is hidden whole. Over-hiding (a token endpoint's URL) costs a debug line; under-hiding leaks."""


def redacted(url: str) -> str:
    """``url`` without its password, fit for a message or a log line."""
    parts = urlsplit(url)
    try:
        password = parts.password
    except ValueError:  # a URL urlsplit cannot take apart: show nothing of it after the scheme
        return f"{parts.scheme}://{HIDDEN}" if parts.scheme else HIDDEN
    if password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{HIDDEN}@{host}"))


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
