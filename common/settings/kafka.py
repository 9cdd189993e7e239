"""Settings of the Kafka cluster: where it is, how kassa authenticates, the topics it uses.

:mod:`storage.kafka.config` turns these into every client's librdkafka configuration;
docs/security.md shows them for managed clusters.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from common.settings.checks import host_port_list, pem_file, unset_if_empty

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]

NAMED_PROPERTIES: Final = {
    "bootstrap.servers": "KASSA_KAFKA_BOOTSTRAP",
    "security.protocol": "KASSA_KAFKA_SECURITY_PROTOCOL",
    "sasl.mechanism": "KASSA_KAFKA_SASL_MECHANISM",
    "sasl.mechanisms": "KASSA_KAFKA_SASL_MECHANISM",
    "sasl.username": "KASSA_KAFKA_SASL_USERNAME",
    "sasl.password": "KASSA_KAFKA_SASL_PASSWORD",
    "ssl.ca.location": "KASSA_KAFKA_SSL_CA_LOCATION",
    "ssl.certificate.location": "KASSA_KAFKA_SSL_CERTIFICATE_LOCATION",
    "ssl.key.location": "KASSA_KAFKA_SSL_KEY_LOCATION",
    "ssl.key.password": "KASSA_KAFKA_SSL_KEY_PASSWORD",
    "sasl.oauthbearer.method": "KASSA_KAFKA_SASL_MECHANISM=OAUTHBEARER",
    "sasl.oauthbearer.token.endpoint.url": "KASSA_KAFKA_OAUTH_TOKEN_URL",
    "sasl.oauthbearer.client.id": "KASSA_KAFKA_OAUTH_CLIENT_ID",
    "sasl.oauthbearer.client.secret": "KASSA_KAFKA_OAUTH_CLIENT_SECRET",
    "sasl.oauthbearer.scope": "KASSA_KAFKA_OAUTH_SCOPE",
}
"""librdkafka properties that have a setting of their own (KASSA_KAFKA_CONFIG may not set
them, so that one value never hides behind another)."""
KASSA_PROPERTIES: Final = frozenset(
    {
        "group.id",
        "group.instance.id",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "auto.offset.reset",
        "isolation.level",
        "enable.partition.eof",
        "transactional.id",
        "enable.idempotence",
        "acks",
    }
)
"""librdkafka properties each kassa client sets itself, because its guarantees rest on them."""
_PROPERTY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
_EXAMPLE = 'write e.g. KASSA_KAFKA_CONFIG=\'{"client.rack": "eu-west-1a"}\''


class KafkaSettings(BaseSettings):
    """The Kafka part of :class:`common.settings.Settings`."""

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        description="how clients talk to the brokers: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or "
        "SASL_SSL (TLS and a SASL login; what managed clusters require)",
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        "PLAIN",
        description="SASL mechanism with SASL_*: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or "
        "OAUTHBEARER (OIDC client credentials: the KASSA_KAFKA_OAUTH_* settings)",
    )
    kafka_sasl_username: str = Field("", description="SASL user name (PLAIN and SCRAM)")
    kafka_sasl_password: SecretStr | None = Field(
        None,
        description="SASL password (PLAIN and SCRAM); or KASSA_KAFKA_SASL_PASSWORD_FILE naming "
        "a file that holds it",
    )
    kafka_ssl_ca_location: Path | None = Field(
        None,
        description="PEM file of the CA(s) that signed the brokers' certificates; empty means "
        "the system's trusted CAs",
    )
    kafka_ssl_certificate_location: Path | None = Field(
        None, description="PEM client certificate, for brokers that require one (mutual TLS)"
    )
    kafka_ssl_key_location: Path | None = Field(
        None, description="PEM private key of the client certificate"
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        None,
        description="password of an encrypted client key; or KASSA_KAFKA_SSL_KEY_PASSWORD_FILE",
    )
    kafka_oauth_token_url: str = Field(
        "", description="OAUTHBEARER: the OIDC token endpoint (client credentials grant)"
    )
    kafka_oauth_client_id: str = Field("", description="OAUTHBEARER: the OIDC client id")
    kafka_oauth_client_secret: SecretStr | None = Field(
        None,
        description="OAUTHBEARER: the OIDC client secret; or KASSA_KAFKA_OAUTH_CLIENT_SECRET_FILE",
    )
    kafka_oauth_scope: str = Field("", description="OAUTHBEARER: the scope asked for, if any")
    kafka_oauth_callback: str = Field(
        "",
        pattern=r"^([A-Za-z_][\w.]*:[A-Za-z_]\w*)?$",
        description="OAUTHBEARER: 'module:function' returning (token, expiry in epoch seconds) "
        "for librdkafka's oauth_cb, instead of the OIDC settings (Amazon MSK IAM: "
        "docs/security.md)",
    )
    kafka_config: SecretStr = Field(
        SecretStr(""),
        description="a JSON object of further librdkafka settings every Kafka client gets, "
        "for what kassa has no setting of its own; or KASSA_KAFKA_CONFIG_FILE",
    )
    topic: str = Field("sales", pattern=r"^[A-Za-z0-9._-]{1,200}$", description="sales topic")
    dlq_topic: str = Field("", description="dead-letter topic; empty means '<topic>.dlq'")
    partitions: int = Field(3, ge=1, le=1000, description="partitions of the topics kassa creates")
    replication_factor: int = Field(
        1,
        ge=1,
        le=32,
        description="copies of each partition of the topics kassa creates (at most the "
        "cluster's broker count; 3 for a production cluster)",
    )
    min_insync_replicas: int = Field(
        1,
        ge=1,
        le=32,
        description="min.insync.replicas of the topics kassa creates: an acknowledged checkout "
        "is on at least this many brokers (2 with a replication factor of 3)",
    )
    consumer_group: str = Field("kassa-stream", min_length=1, description="stream job's group")

    @field_validator("kafka_bootstrap")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        if not value.strip():
            msg = "names no broker; write e.g. '127.0.0.1:9092'"
            raise ValueError(msg)
        return host_port_list(value, "127.0.0.1:9092")

    @field_validator(
        "kafka_ssl_ca_location", "kafka_ssl_certificate_location", "kafka_ssl_key_location"
    )
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        return pem_file(value)

    @field_validator(
        "kafka_ssl_ca_location",
        "kafka_ssl_certificate_location",
        "kafka_ssl_key_location",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return unset_if_empty(value)

    @field_validator("kafka_config")
    @classmethod
    def _json_object(cls, value: SecretStr) -> SecretStr:
        extra_properties(value)
        return value

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> KafkaSettings:
        if self.min_insync_replicas > self.replication_factor:
            msg = (
                f"KASSA_MIN_INSYNC_REPLICAS={self.min_insync_replicas} is larger than "
                f"KASSA_REPLICATION_FACTOR={self.replication_factor}: every acks=all write "
                "would be refused; use at most the replication factor (e.g. 3 and 2)"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _credentials_fit_the_protocol(self) -> KafkaSettings:
        protocol = self.kafka_security_protocol
        sasl, tls = protocol.startswith("SASL_"), protocol.endswith("SSL")
        named = f"KASSA_KAFKA_SECURITY_PROTOCOL={protocol}"
        if not sasl and (self.kafka_sasl_username or self.kafka_sasl_password):
            msg = (
                f"KASSA_KAFKA_SASL_USERNAME/PASSWORD are set but {named} sends no login; use "
                "SASL_SSL (or SASL_PLAINTEXT), or unset them"
            )
            raise ValueError(msg)
        locations = (
            self.kafka_ssl_ca_location,
            self.kafka_ssl_certificate_location,
            self.kafka_ssl_key_location,
        )
        if not tls and any(locations):
            msg = f"KASSA_KAFKA_SSL_* files are set but {named} uses no TLS; use SSL or SASL_SSL"
            raise ValueError(msg)
        if bool(self.kafka_ssl_certificate_location) != bool(self.kafka_ssl_key_location):
            msg = (
                "a client certificate needs its key and a key its certificate: set both "
                "KASSA_KAFKA_SSL_CERTIFICATE_LOCATION and KASSA_KAFKA_SSL_KEY_LOCATION, or neither"
            )
            raise ValueError(msg)
        if sasl:
            self._check_login()
        return self

    def _check_login(self) -> None:
        mechanism = self.kafka_sasl_mechanism
        if mechanism == "OAUTHBEARER" and self.kafka_oauth_callback:
            oidc = [self.kafka_oauth_token_url, self.kafka_oauth_client_id]
            if any(oidc) or self.kafka_oauth_client_secret:
                msg = (
                    "KASSA_KAFKA_OAUTH_CALLBACK and the OIDC settings (KASSA_KAFKA_OAUTH_"
                    "TOKEN_URL, _CLIENT_ID, _CLIENT_SECRET) are both set: keep one of them"
                )
                raise ValueError(msg)
            oauth_callback(self.kafka_oauth_callback)  # importable, or refused now
            return
        if mechanism == "OAUTHBEARER":
            needed = {
                "KASSA_KAFKA_OAUTH_TOKEN_URL": self.kafka_oauth_token_url,
                "KASSA_KAFKA_OAUTH_CLIENT_ID": self.kafka_oauth_client_id,
                "KASSA_KAFKA_OAUTH_CLIENT_SECRET": self.kafka_oauth_client_secret,
            }
        else:
            needed = {
                "KASSA_KAFKA_SASL_USERNAME": self.kafka_sasl_username,
                "KASSA_KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
            }
        missing = [name for name, value in needed.items() if not value]
        if missing:
            msg = (
                f"KASSA_KAFKA_SASL_MECHANISM={mechanism} needs {' and '.join(missing)} "
                "(a secret may come from <NAME>_FILE instead)"
            )
            raise ValueError(msg)

    @property
    def dead_letter_topic(self) -> str:
        """Where the stream job sends messages it cannot count."""
        return self.dlq_topic or f"{self.topic}.dlq"

    @property
    def replay_group(self) -> str:
        """The consumer group of ``kassa dead-letters replay`` on the dead-letter topic: its
        committed offsets are where the dead letters not yet replayed begin."""
        return f"{self.consumer_group}-dead-letter-replay"

    @property
    def replay_transactional_id(self) -> str:
        """The transactional id of ``kassa dead-letters replay`` (one per sales topic: a
        second replay fences the first and aborts what it left open)."""
        return f"kassa-dead-letter-replay-{self.topic}"


def oauth_callback(path: str) -> Callable[[str], tuple[str, float]]:
    """The function KASSA_KAFKA_OAUTH_CALLBACK names (``module:function``), imported."""
    module_name, _, name = path.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        msg = f"cannot import {path!r} ({exc}); name an importable module:function"
        raise ValueError(msg) from None
    if not callable(found):
        msg = f"{path!r} is not a function; name one taking the config string"
        raise ValueError(msg)  # noqa: TRY004 - pydantic reports only ValueError
    return found  # type: ignore[no-any-return]


def extra_properties(config: SecretStr) -> dict[str, str | int | float | bool]:
    """The librdkafka properties of KASSA_KAFKA_CONFIG, checked (the text never appears in
    a message: it may hold secrets)."""
    text = config.get_secret_value().strip()
    if not text:
        return {}
    try:
        loaded: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"is not JSON ({exc.msg} at character {exc.pos}); {_EXAMPLE}"
        raise ValueError(msg) from None
    if not isinstance(loaded, dict):
        msg = f"is a JSON {type(loaded).__name__}, not an object; {_EXAMPLE}"
        raise ValueError(msg)  # noqa: TRY004 - pydantic reports only ValueError
    for name, value in loaded.items():
        if not _PROPERTY.match(name):
            msg = f"{name!r} is not a librdkafka property name (dotted lower case); {_EXAMPLE}"
            raise ValueError(msg)
        if name in NAMED_PROPERTIES:
            msg = f"sets {name!r}, which has its own setting: use {NAMED_PROPERTIES[name]}"
            raise ValueError(msg)
        if name in KASSA_PROPERTIES:
            msg = f"sets {name!r}, which kassa's clients set themselves; remove it"
            raise ValueError(msg)
        if not isinstance(value, str | int | float | bool):
            msg = f"{name!r} has a {type(value).__name__} value; give a string, number or boolean"
            raise ValueError(msg)  # noqa: TRY004 - pydantic reports only ValueError
    return loaded
