"""How every Kafka client kassa makes reaches the cluster: the one place that builds a
librdkafka configuration.

:func:`connection` is the connection part (where the brokers are; how to authenticate comes
here too), :func:`client_config` a consumer's, producer's or admin client's whole
configuration (the connection plus the client's own settings), and :func:`quix_connection`
the same connection as the typed :class:`~quixstreams.kafka.configuration.ConnectionConfig`
that the stream job hands to its Quix application.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from common.redaction import is_sensitive
from common.settings import Settings
from common.settings.kafka import extra_properties, oauth_callback

if TYPE_CHECKING:
    from quixstreams.kafka.configuration import ConnectionConfig

PARTITIONER: Final = "murmur2_random"
"""The partitioner of every producer of the sales topic: the Java client's, so a store's
checkouts land on the same partition whoever sends them (``kassa produce``, a replay of
dead letters, another language's client)."""


def connection(settings: Settings, *, servers: str | None = None) -> dict[str, Any]:
    """The librdkafka settings that reach the configured cluster and log in to it
    (``servers`` names other brokers of it, e.g. one node of a local cluster).

    The result holds secrets in plain text, as librdkafka needs them: show it only through
    :func:`common.redaction.redacted_config`.
    """
    config: dict[str, Any] = {
        **extra_properties(settings.kafka_config),
        "bootstrap.servers": servers or settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
    }
    files = {
        "ssl.ca.location": settings.kafka_ssl_ca_location,
        "ssl.certificate.location": settings.kafka_ssl_certificate_location,
        "ssl.key.location": settings.kafka_ssl_key_location,
    }
    config |= {name: str(path) for name, path in files.items() if path is not None}
    if settings.kafka_ssl_key_password is not None:
        config["ssl.key.password"] = settings.kafka_ssl_key_password.get_secret_value()
    if settings.kafka_security_protocol.startswith("SASL_"):
        config |= _login(settings)
    return config


def _login(settings: Settings) -> dict[str, Any]:
    """The SASL part of :func:`connection` (the settings checked that it is complete)."""
    mechanism = settings.kafka_sasl_mechanism
    if mechanism == "OAUTHBEARER" and settings.kafka_oauth_callback:
        # librdkafka calls it for each token (and before one expires)
        return {
            "sasl.mechanism": mechanism,
            "oauth_cb": oauth_callback(settings.kafka_oauth_callback),
        }
    if mechanism == "OAUTHBEARER":
        secret = settings.kafka_oauth_client_secret
        login = {
            "sasl.mechanism": mechanism,
            "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.token.endpoint.url": settings.kafka_oauth_token_url,
            "sasl.oauthbearer.client.id": settings.kafka_oauth_client_id,
            "sasl.oauthbearer.client.secret": secret.get_secret_value() if secret else "",
        }
        if settings.kafka_oauth_scope:
            login["sasl.oauthbearer.scope"] = settings.kafka_oauth_scope
        return login
    password = settings.kafka_sasl_password
    return {
        "sasl.mechanism": mechanism,
        "sasl.username": settings.kafka_sasl_username,
        "sasl.password": password.get_secret_value() if password else "",
    }


def client_config(
    settings: Settings, extra: Mapping[str, Any] | None = None, *, servers: str | None = None
) -> dict[str, Any]:
    """The librdkafka configuration of a client: :func:`connection` plus ``extra``, the
    client's own settings (which may not replace the connection's)."""
    config = connection(settings, servers=servers)
    clashes = sorted(set(config) & set(extra or {}))
    if clashes:
        msg = f"{clashes} are connection settings: set them in storage.kafka.config.connection"
        raise ValueError(msg)
    return {**(extra or {}), **config}


def quix_connection(settings: Settings) -> tuple[ConnectionConfig, dict[str, Any]]:
    """:func:`connection` as Quix Streams' typed connection settings, and the rest of it
    (properties ``ConnectionConfig`` has no field for, e.g. most of KASSA_KAFKA_CONFIG's),
    which the Quix application's consumer and producer take as their extra configuration.

    Every secret property goes into the rest: Quix logs the typed settings when the
    application starts, and types some secrets as plain text (``ssl.key.pem``,
    ``sasl.oauthbearer.config``)."""
    # Imported here: quixstreams takes most of a second to import, and only the stream job
    # needs it (the CLI, the API and the daily job build plain librdkafka clients).
    from quixstreams.kafka.configuration import ConnectionConfig  # noqa: PLC0415

    config = connection(settings)
    shown = {name: value for name, value in config.items() if not is_sensitive(name)}
    typed = ConnectionConfig.from_librdkafka_dict(shown, ignore_extras=True)
    known = set(typed.as_librdkafka_dict())
    return typed, {name: value for name, value in config.items() if name not in known}


Client = TypeVar("Client", AdminClient, Consumer, Producer)


def with_token(client: Client) -> Client:
    """``client``, its first OAUTHBEARER token asked for now (a no-op unless
    KASSA_KAFKA_OAUTH_CALLBACK provides the tokens); kassa's clients go through this.

    confluent-kafka 2.12 calls ``oauth_cb`` only from ``poll()``: an admin request or a
    metadata call before any poll would wait for a token that never comes (its 2.13 moved
    the calls to a background thread). ``poll(0)`` asks for it without waiting; before any
    assignment a consumer's poll returns nothing.
    """
    client.poll(0)
    return client


def local_node_config(
    servers: str, extra: Mapping[str, Any] | None = None, *, login: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The configuration of a client of brokers that ``kassa services`` started itself on
    127.0.0.1 (``servers``), for the services' own start-up and health checks; ``login`` is
    a secured cluster's admin login (:meth:`services.security.SecureFiles.admin_config`)."""
    return {**(extra or {}), **(login or {}), "bootstrap.servers": servers}
