"""Settings of the Redis kassa keeps its figures in: where it is, how kassa logs in, and its
shape (one server, a master found through Sentinels, or a Redis Cluster).

:func:`storage.connections.open_redis` turns these into every Redis client; docs/security.md
shows them for managed Redis services.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from common.settings.checks import host_port_list, pem_file, unset_if_empty

DEFAULT_USER: Final = "default"
"""The Redis user a client without a user name logs in as (``AUTH password``)."""
_EXAMPLE: Final = "write e.g. 'redis://127.0.0.1:6379/0' or 'rediss://USER:PASSWORD@host:6380/0'"


class RedisSettings(BaseSettings):
    """The Redis part of :class:`common.settings.Settings`."""

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        pattern=r"^rediss?://",
        description="Redis server and database (rediss://: TLS); with KASSA_REDIS_SENTINELS "
        "only its scheme, login and database are used, with KASSA_REDIS_CLUSTER it names any "
        "node of the cluster",
    )
    redis_username: str = Field(
        "",
        description="ACL user kassa logs in to Redis as; empty means the URL's, else Redis's "
        "default user",
    )
    redis_password: SecretStr | None = Field(
        None,
        description="password of that user; or KASSA_REDIS_PASSWORD_FILE naming a file that "
        "holds it; empty means the URL's, if any",
    )
    redis_ssl_ca_location: Path | None = Field(
        None,
        description="rediss://: PEM file of the CA(s) that signed the server's certificate; "
        "empty means the system's trusted CAs",
    )
    redis_ssl_certificate_location: Path | None = Field(
        None,
        description="rediss://: PEM client certificate, for servers that require one (mutual TLS)",
    )
    redis_ssl_key_location: Path | None = Field(
        None, description="rediss://: PEM private key of the client certificate"
    )
    redis_sentinels: str = Field(
        "",
        description="host:port list of Redis Sentinels; set, every process asks them for the "
        "master of KASSA_REDIS_SENTINEL_MASTER and follows its failovers",
    )
    redis_sentinel_master: str = Field(
        "mymaster",
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="the name the Sentinels monitor kassa's master under",
    )
    redis_sentinel_username: str = Field(
        "",
        description="user kassa logs in to the Sentinels as; empty means their default user",
    )
    redis_sentinel_password: SecretStr | None = Field(
        None,
        description="password of the Sentinels (their requirepass), if they require one; or "
        "KASSA_REDIS_SENTINEL_PASSWORD_FILE naming a file that holds it",
    )
    redis_cluster: bool = Field(
        False,
        description="true: KASSA_REDIS_URL is a node of a Redis Cluster (database 0 only); "
        "kassa's keys of one key space share one hash slot",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        # The messages never repeat the value: the password is in it (load_settings shows
        # the value, redacted, before the message).
        parts = urlsplit(value)
        if value.count("@") > parts.netloc.count("@"):
            msg = (
                "its password holds a character URLs reserve (/ ? # @): percent-encode it "
                "(e.g. / as %2F, @ as %40)"
            )
            raise ValueError(msg)
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            msg = f"its port is not a number (a ':' in the password? percent-encode it); {_EXAMPLE}"
            raise ValueError(msg) from None
        if not parts.hostname:
            msg = f"it names no host; {_EXAMPLE}"
            raise ValueError(msg)
        for database in _databases(value):
            if database and not database.isdigit():
                msg = f"its database {database!r} is not a number (the index); {_EXAMPLE}"
                raise ValueError(msg)
        return value

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_list(cls, value: str) -> str:
        return host_port_list(value, "10.0.0.5:26379,10.0.0.6:26379")

    @field_validator(
        "redis_ssl_ca_location", "redis_ssl_certificate_location", "redis_ssl_key_location"
    )
    @classmethod
    def _readable_pem_file(cls, value: Path | None) -> Path | None:
        return pem_file(value)

    @field_validator(
        "redis_ssl_ca_location",
        "redis_ssl_certificate_location",
        "redis_ssl_key_location",
        "redis_password",
        "redis_sentinel_password",
        mode="before",
    )
    @classmethod
    def _empty_redis_value_is_unset(cls, value: object) -> object:
        return unset_if_empty(value)

    @model_validator(mode="after")
    def _redis_values_agree(self) -> RedisSettings:
        url = urlsplit(self.redis_url)
        if self.redis_username and url.username:
            msg = (
                "KASSA_REDIS_USERNAME is set and KASSA_REDIS_URL names a user too; keep one "
                "(the URL without 'USER:PASSWORD@', for a password kept in a file)"
            )
            raise ValueError(msg)
        if self.redis_password is not None and url.password:
            msg = (
                "KASSA_REDIS_PASSWORD (or its _FILE) is set and KASSA_REDIS_URL holds a "
                "password too; keep one (the URL without it, for a password kept in a file)"
            )
            raise ValueError(msg)
        files = (
            self.redis_ssl_ca_location,
            self.redis_ssl_certificate_location,
            self.redis_ssl_key_location,
        )
        if url.scheme != "rediss" and any(files):
            msg = (
                "KASSA_REDIS_SSL_* files are set but KASSA_REDIS_URL is redis:// (no TLS); "
                "write rediss://, or unset them"
            )
            raise ValueError(msg)
        if bool(self.redis_ssl_certificate_location) != bool(self.redis_ssl_key_location):
            msg = (
                "a client certificate needs its key and a key its certificate: set both "
                "KASSA_REDIS_SSL_CERTIFICATE_LOCATION and KASSA_REDIS_SSL_KEY_LOCATION, or neither"
            )
            raise ValueError(msg)
        if self.redis_cluster and self.redis_sentinels:
            msg = (
                "KASSA_REDIS_CLUSTER=true and KASSA_REDIS_SENTINELS are both set; a Redis "
                "Cluster fails over by itself: keep one"
            )
            raise ValueError(msg)
        sentinel_login = self.redis_sentinel_username or self.redis_sentinel_password
        if sentinel_login and not self.redis_sentinels:
            msg = (
                "KASSA_REDIS_SENTINEL_USERNAME or _PASSWORD is set but KASSA_REDIS_SENTINELS is "
                "not: name the Sentinels, or unset the Sentinels' login"
            )
            raise ValueError(msg)
        if self.redis_cluster and any(db not in ("", "0") for db in _databases(self.redis_url)):
            msg = (
                "KASSA_REDIS_CLUSTER=true but KASSA_REDIS_URL names a database other than 0; "
                "a Redis Cluster has database 0 only: drop it from the URL"
            )
            raise ValueError(msg)
        return self

    @property
    def redis_user(self) -> str:
        """The Redis user kassa logs in as (``default`` without a user name)."""
        url = urlsplit(self.redis_url)
        return self.redis_username or unquote(url.username or "") or DEFAULT_USER

    @property
    def redis_sentinel_addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of each Sentinel; empty without Sentinels."""
        servers = filter(None, (part.strip() for part in self.redis_sentinels.split(",")))
        return [(host, int(port)) for host, _, port in (s.rpartition(":") for s in servers)]


def _databases(url: str) -> list[str]:
    """The database indexes ``url`` names: its path and any ``db=`` of its query."""
    parts = urlsplit(url)
    return [parts.path.removeprefix("/"), *parse_qs(parts.query).get("db", [])]
