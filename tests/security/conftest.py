"""Secured Kafka and Redis for the tests of this folder: nodes with a SASL_SSL listener,
SCRAM users and ACLs, and a redis-server with TLS only and ACL users, made by the code behind
``kassa services up --secure`` (:mod:`services.security`).

Each server starts once per test session (this folder is one pytest-xdist unit, so one
worker starts it) and each test gets a fresh topic and group, granted to the ``kassa`` user
as ``up --secure`` grants them, and a fresh Redis database.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from common.settings import Settings
from services.cluster import KafkaCluster, NodeAddress
from services.kafka import ensure_jars
from services.redis import RedisServer
from services.security import ADMIN_USER, KASSA_USER, SecureFiles
from storage.kafka.topics import ensure_topics
from tests.conftest import database_url, fresh_settings
from tests.helpers import free_port

SECURE_HEAP = "384m"
SECURE_REDIS_DATABASES = 256
_secure_databases = itertools.count(1)


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


@pytest.fixture(scope="session")
def secure_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session as ``kassa services up --secure`` starts it: TLS only
    (a certificate from a CA of its own), the default user off, ACL users ``admin`` and
    ``kassa`` (:func:`services.security.kassa_redis_rules`); logged in to as ``admin``."""
    home = tmp_path_factory.mktemp("secure-redis")
    port = free_port()
    files = SecureFiles(home / "secure")
    files.make_redis("127.0.0.1", f"redis://127.0.0.1:{port}/0")
    users = files.redis_users()
    server = RedisServer(
        "127.0.0.1",
        port,
        home / "redis",
        databases=SECURE_REDIS_DATABASES,
        username=ADMIN_USER,
        password=SecretStr(files.password(f"redis-{ADMIN_USER}")),
        tls=files.redis_tls,
        users=users,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def secure_redis_admin(server: RedisServer, db: int = 0) -> redis.Redis:
    """A client of ``server``'s database ``db`` as its ``admin`` user, over TLS."""
    assert server.tls is not None and server.password is not None
    return redis.Redis(
        host=server.host,
        port=server.port,
        db=db,
        username=server.username,
        password=server.password.get_secret_value(),
        ssl=True,
        ssl_ca_certs=str(server.tls.ca),
    )


def as_redis_kassa(server: RedisServer, settings: Settings) -> Settings:
    """``settings`` reaching a fresh (emptied) database of ``server`` as its ``kassa`` user
    over TLS, as ``kassa services up --secure``'s client settings do."""
    assert server.tls is not None
    db = next(_secure_databases) % SECURE_REDIS_DATABASES or 1
    admin = secure_redis_admin(server, db)
    admin.flushdb()
    admin.close()
    files = SecureFiles(server.tls.ca.parent)
    return settings.model_copy(
        update={
            "redis_url": f"rediss://{server.address}/{db}",
            "redis_username": KASSA_USER,
            "redis_password": SecretStr(files.password(f"redis-{KASSA_USER}")),
            "redis_ssl_ca_location": server.tls.ca,
        }
    )


@pytest.fixture
def secure_redis_settings(secure_redis: RedisServer, secure_settings: Settings) -> Settings:
    """Settings as the ``kassa`` user on both secured services: Kafka over SASL_SSL, Redis
    over TLS as its ACL user, in a fresh database."""
    return as_redis_kassa(secure_redis, secure_settings)
