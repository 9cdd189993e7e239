"""Real services for the suite: one Apache Kafka broker and one redis-server per session (per
worker under ``make test``'s pytest-xdist), and a three-node Kafka cluster for the tests that
ask for it.

All are started by kassa's own service code on free ports with data under a temporary
folder, and stopped at the end. Each test that asks for ``settings`` gets a fresh topic
(created with 3 partitions), consumer group and Redis database; ``cluster_settings`` does the
same on the cluster with replication factor 3 and min ISR 2. Tests that need no service run
first.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from common.settings import Settings
from services.cluster import KafkaCluster, NodeAddress
from services.kafka import KafkaServer, ensure_jars
from services.redis import RedisServer
from storage.connections import open_redis
from storage.kafka.topics import ensure_topics
from tests.helpers import free_port
from tests.proxy import TcpProxy

SERVICE_FIXTURES = {
    "services", "settings", "redis_client", "private_kafka", "private_redis", "cluster",
    "cluster_settings", "proxied_kafka", "secure_kafka", "secure_cluster", "secure_settings",
    "secure_cluster_settings", "locked_redis", "prometheus", "operated", "s3proxy", "s3_settings",
    "secure_redis", "secure_redis_settings", "redis_cluster", "redis_cluster_settings",
    "sentinels",
}  # fmt: skip
SHARED_SERVER_FOLDERS = ("tests/security/", "tests/operating/", "tests/s3/", "tests/redis_shapes/")
"""Folders whose tests share heavy servers started once per session (secured Kafka and Redis,
Prometheus, S3Proxy, a Redis Cluster and Sentinels): each folder is one pytest-xdist unit."""
CLUSTER_NODES = 3
CLUSTER_HEAP = "320m"
REDIS_DATABASES = 1024
_databases = itertools.count(1)


class Services:
    """The session's broker and Redis server."""

    def __init__(self, kafka: KafkaServer, redis_server: RedisServer, root: Path) -> None:
        self.kafka = kafka
        self.redis = redis_server
        self.root = root


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadfile`` with the files of each of :data:`SHARED_SERVER_FOLDERS` as one
    unit: they share servers, which one worker then starts once (each worker has its own
    session fixtures). Other distributions are left to pytest-xdist."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling  # noqa: PLC0415 - only under xdist

    class _FoldersAsOneFile(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return next((f for f in SHARED_SERVER_FOLDERS if scope.startswith(f)), scope)

    return _FoldersAsOneFile(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests of pure logic first: they need no service and fail fastest."""
    items.sort(key=lambda item: bool(SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))))


def _start_kafka(home: Path, advertised_port: int | None = None) -> KafkaServer:
    defaults = Settings()
    libs = ensure_jars(defaults.cache_dir, defaults.kafka_version)
    kafka = KafkaServer(
        "127.0.0.1",
        free_port(),
        free_port(),
        home,
        libs,
        heap="512m",
        advertised_port=advertised_port,
    )
    kafka.start()
    return kafka


@pytest.fixture(scope="session")
def redis_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server for the whole session, shared by the broker and the cluster tests."""
    redis_server = RedisServer(
        "127.0.0.1",
        free_port(),
        tmp_path_factory.mktemp("redis"),
        databases=REDIS_DATABASES,
    )
    redis_server.start()
    try:
        yield redis_server
    finally:
        redis_server.stop()


@pytest.fixture(scope="session")
def services(
    tmp_path_factory: pytest.TempPathFactory, redis_service: RedisServer
) -> Iterator[Services]:
    """A real Kafka broker and redis-server for the whole session."""
    root = tmp_path_factory.mktemp("services")
    kafka = _start_kafka(root / "kafka")
    try:
        yield Services(kafka, redis_service, root)
    finally:
        kafka.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three real Kafka nodes (combined brokers and controllers, 3 voters) for the session.

    Started only when a test asks for it; tests may kill and restart nodes, and each
    ``cluster_settings`` starts again whatever a previous test left stopped.
    """
    defaults = Settings()
    addresses = tuple(
        NodeAddress(node_id, free_port(), free_port()) for node_id in range(1, CLUSTER_NODES + 1)
    )
    cluster = KafkaCluster(
        tmp_path_factory.mktemp("cluster"),
        uuid.uuid4().hex[:22],
        "127.0.0.1",
        CLUSTER_HEAP,
        addresses,
        ensure_jars(defaults.cache_dir, defaults.kafka_version),
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def fresh_settings(
    request: pytest.FixtureRequest, tmp_path: Path, bootstrap: str, redis_url: str
) -> Settings:
    """Settings for one test: a topic and group named after it, an emptied Redis database."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", request.node.name)[:80]
    suffix = uuid.uuid4().hex[:8]
    client = open_redis(redis_url)
    client.flushdb()
    client.close()
    return Settings(
        kafka_bootstrap=bootstrap,
        topic=f"pytest_{name}_{suffix}",
        consumer_group=f"pytest_{name}_{suffix}",
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        state_dir=tmp_path / "state",
        timezone="UTC",
        partitions=3,
        daily_metrics_port=0,
    )


def database_url(redis_server: RedisServer) -> str:
    """The URL of the next of the session server's databases (tests share it round-robin)."""
    db = next(_databases) % REDIS_DATABASES or 1
    return f"redis://{redis_server.host}:{redis_server.port}/{db}"


@pytest.fixture
def settings(services: Services, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on the session's services with a fresh topic, group and Redis database."""
    result = fresh_settings(
        request, tmp_path, services.kafka.bootstrap, database_url(services.redis)
    )
    ensure_topics(result)
    return result


@pytest.fixture
def cluster_settings(
    cluster: KafkaCluster,
    redis_service: RedisServer,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> Settings:
    """Settings on the three-node cluster (every node running): a fresh topic with
    replication factor 3 and min ISR 2, a fresh group and Redis database."""
    cluster.start()
    result = fresh_settings(request, tmp_path, cluster.bootstrap, database_url(redis_service))
    result = result.model_copy(update={"replication_factor": 3, "min_insync_replicas": 2})
    ensure_topics(result)
    return result


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    """A client of the test's own (empty) Redis database."""
    client = open_redis(settings)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[KafkaServer]:
    """A broker of the test's own, for tests that stop the broker on purpose."""
    kafka = _start_kafka(tmp_path / "private-kafka")
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def proxied_kafka(tmp_path: Path) -> Iterator[tuple[KafkaServer, TcpProxy]]:
    """A broker of the test's own behind a TCP proxy of ours: clients reach it only through
    the proxy (the broker advertises the proxy's port), so the proxy's faults are theirs."""
    port = free_port()
    kafka = _start_kafka(tmp_path / "proxied-kafka", advertised_port=port)
    proxy = TcpProxy(kafka.host, kafka.port, port=port).start()
    try:
        yield kafka, proxy
    finally:
        proxy.stop()
        kafka.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that restart or reconfigure Redis."""
    server = RedisServer("127.0.0.1", free_port(), tmp_path / "private-redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own that requires a password (distinctive: it cannot
    appear anywhere by chance); :func:`tests.helpers.login_url` is the URL that logs in."""
    server = RedisServer(
        "127.0.0.1",
        free_port(),
        tmp_path / "locked-redis",
        password=SecretStr(f"redis-password-{uuid.uuid4().hex}"),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
