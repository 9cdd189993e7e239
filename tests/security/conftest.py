"""Secured Kafka for the tests of this folder: nodes with a SASL_SSL listener, SCRAM users
and ACLs, made by the code behind ``kassa services up --secure`` (:mod:`services.security`).

Each cluster starts once per test session (every test using it lives in this folder's one
module, so one pytest-xdist worker starts it) and each test gets a fresh topic and group,
granted to the ``kassa`` user as ``up --secure`` grants them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.settings import Settings
from services.cluster import KafkaCluster, NodeAddress
from services.kafka import ensure_jars
from services.redis import RedisServer
from services.security import KASSA_USER, SecureFiles
from storage.kafka.topics import ensure_topics
from tests.conftest import database_url, fresh_settings
from tests.helpers import free_port

SECURE_HEAP = "384m"


UNSECURED_OAUTHBEARER = (
    "sasl.enabled.mechanisms=SCRAM-SHA-512,OAUTHBEARER",
    "listener.name.sasl_ssl.oauthbearer.sasl.jaas.config="
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
)
"""Also OAUTHBEARER on the client listener, with Kafka's unsecured validator (no signature
checked): the tests' stand-in for a token provider (tests/security/oauth_token.py)."""


def _running_secure_cluster(
    home: Path, nodes: int, properties: tuple[str, ...] = ()
) -> Iterator[KafkaCluster]:
    """``nodes`` secured Kafka nodes on free ports under ``home``, running until closed."""
    defaults = Settings()
    addresses = tuple(
        NodeAddress(node_id, free_port(), free_port()) for node_id in range(1, nodes + 1)
    )
    cluster = KafkaCluster(
        home,
        uuid.uuid4().hex[:22],
        "127.0.0.1",
        SECURE_HEAP,
        addresses,
        ensure_jars(defaults.cache_dir, defaults.kafka_version),
        SecureFiles(home / "secure"),
        properties,
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """One secured Kafka node for the session; it also takes unsecured OAUTHBEARER tokens."""
    home = tmp_path_factory.mktemp("secure-kafka")
    yield from _running_secure_cluster(home, 1, UNSECURED_OAUTHBEARER)


@pytest.fixture(scope="session")
def secure_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three secured Kafka nodes (3 voters) for the session, started when first asked for."""
    yield from _running_secure_cluster(tmp_path_factory.mktemp("secure-cluster"), 3)


def as_kassa(cluster: KafkaCluster, settings: Settings) -> Settings:
    """``settings`` connecting to ``cluster`` as the ``kassa`` user, its topics created (as
    ``admin``) and granted as ``kassa services up --secure`` grants them."""
    secure = cluster.secure
    assert secure is not None
    ensure_topics(secure.admin_settings(settings, cluster.bootstrap))
    secure.grant(cluster.bootstrap, settings)
    return secure.user_settings(settings, cluster.bootstrap, KASSA_USER)


@pytest.fixture
def secure_settings(
    secure_kafka: KafkaCluster,
    redis_service: RedisServer,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> Settings:
    """Settings as the ``kassa`` user on the secured node: a fresh topic, group and Redis
    database."""
    fresh = fresh_settings(request, tmp_path, secure_kafka.bootstrap, database_url(redis_service))
    return as_kassa(secure_kafka, fresh)


@pytest.fixture
def secure_cluster_settings(
    secure_cluster: KafkaCluster,
    redis_service: RedisServer,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> Settings:
    """Settings as ``kassa`` on the three secured nodes: replication factor 3, min ISR 2."""
    fresh = fresh_settings(request, tmp_path, secure_cluster.bootstrap, database_url(redis_service))
    fresh = fresh.model_copy(update={"replication_factor": 3, "min_insync_replicas": 2})
    return as_kassa(secure_cluster, fresh)
