"""Telling a refusal from an outage: what a secured Kafka cluster says when it will not let
kassa in, turned into one :class:`~storage.kafka.exceptions.KafkaAccessError` naming the fix.

librdkafka reports a refused login (``_AUTHENTICATION``) and a failed TLS handshake
(``_SSL``) through a client's error callback while its requests merely time out, and a
missing ACL as a ``*_AUTHORIZATION_FAILED`` error of the request itself. Every Kafka client
kassa makes hands such errors to :func:`access_error`.
"""

from __future__ import annotations

from typing import Final

from confluent_kafka import KafkaError

from common.settings import Settings
from storage.kafka.exceptions import KafkaAccessError

_AUTHORIZATION: Final = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "group",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id",
}
REFUSALS: Final = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL, *_AUTHORIZATION})
"""The error codes that mean the cluster refused kassa rather than did not answer."""


def is_refusal(error: KafkaError) -> bool:
    """Whether ``error`` is a refusal (a retry cannot help) rather than an outage."""
    return error.code() in REFUSALS


def access_error(
    error: KafkaError, settings: Settings, *, operation: str = "", resource: str = ""
) -> KafkaAccessError | None:
    """The refusal ``error`` stands for, or ``None`` when it is no refusal.

    ``operation`` and ``resource`` say what the client was doing when it was refused (e.g.
    ``"READ"``, ``"group 'kassa-stream'"``), for an ACL's message.
    """
    where = f"Kafka at KASSA_KAFKA_BOOTSTRAP={settings.kafka_bootstrap!r}"
    detail = error.str().rpartition("/bootstrap: ")[2]
    code = error.code()
    if code == KafkaError._AUTHENTICATION:
        user = settings.kafka_sasl_username or settings.kafka_oauth_client_id
        return KafkaAccessError(
            f"{where} refused the {settings.kafka_sasl_mechanism} login of user {user!r} "
            f"({detail}); check KASSA_KAFKA_SASL_USERNAME and KASSA_KAFKA_SASL_PASSWORD (or "
            "its _FILE), or the KASSA_KAFKA_OAUTH_* settings"
        )
    if code == KafkaError._SSL:
        ca = settings.kafka_ssl_ca_location
        trusted = f"KASSA_KAFKA_SSL_CA_LOCATION={str(ca)!r}" if ca else "the system's CAs"
        return KafkaAccessError(
            f"TLS with {where} failed ({detail}); the broker's certificate must be signed by "
            f"a CA in {trusted} and name the host in KASSA_KAFKA_BOOTSTRAP"
        )
    kind = _AUTHORIZATION.get(code)
    if kind is None:
        return None
    return denied(
        operation or "access",
        resource or kind,
        error.name(),
        user=settings.kafka_sasl_username,
        where=where,
    )


def denied(
    operation: str, resource: str, reason: str, *, user: str = "", where: str = "Kafka"
) -> KafkaAccessError:
    """The refusal of a missing ACL: ``user`` may not ``operation`` on ``resource`` (e.g.
    ``"READ"``, ``"group 'kassa-stream'"``), as ``reason`` (the error's name) says."""
    who = f"user {user!r}" if user else "kassa's Kafka user"
    return KafkaAccessError(
        f"{where} denied {who} {operation} on {resource} ({reason}); grant that ACL "
        "(docs/security.md lists every ACL kassa needs)"
    )
