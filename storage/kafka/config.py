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
from typing import TYPE_CHECKING, Any

from common.settings import Settings

if TYPE_CHECKING:
    from quixstreams.kafka.configuration import ConnectionConfig


def connection(settings: Settings, *, servers: str | None = None) -> dict[str, Any]:
    """The librdkafka settings that reach the configured cluster (``servers`` names other
    brokers of it, e.g. one node of a local cluster)."""
    return {"bootstrap.servers": servers or settings.kafka_bootstrap}


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


def quix_connection(settings: Settings) -> ConnectionConfig:
    """:func:`connection` as Quix Streams' typed connection settings."""
    # Imported here: quixstreams takes most of a second to import, and only the stream job
    # needs it (the CLI, the API and the daily job build plain librdkafka clients).
    from quixstreams.kafka.configuration import ConnectionConfig  # noqa: PLC0415

    return ConnectionConfig.from_librdkafka_dict(connection(settings))


def local_node_config(servers: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The configuration of a client of brokers that ``kassa services`` started itself on
    127.0.0.1 (``servers``), for the services' own start-up and health checks."""
    return {**(extra or {}), "bootstrap.servers": servers}
