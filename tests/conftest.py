"""Real services for the suite: one Apache Kafka broker and one redis-server per session.

Both are started by kassa's own service code on free ports with data under a temporary
folder, and stopped at the end. Each test that asks for ``settings`` gets a fresh topic
(created with 3 partitions), consumer group and Redis database. Tests that need no service
run first.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from common.settings import Settings
from common.topics import ensure_topics
from services.kafka import KafkaServer, ensure_jars
from services.redis import RedisServer
from tests.helpers import free_port

SERVICE_FIXTURES = {"services", "settings", "redis_client", "private_kafka", "private_redis"}
REDIS_DATABASES = 1024
_databases = itertools.count(1)


class Services:
    """The session's broker and Redis server."""

    def __init__(self, kafka: KafkaServer, redis_server: RedisServer, root: Path) -> None:
        self.kafka = kafka
        self.redis = redis_server
        self.root = root

    def redis_url(self, db: int) -> str:
        return f"redis://{self.redis.host}:{self.redis.port}/{db}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests of pure logic first: they need no service and fail fastest."""
    items.sort(key=lambda item: bool(SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))))


def _start_kafka(home: Path) -> KafkaServer:
    defaults = Settings()
    libs = ensure_jars(defaults.cache_dir, defaults.kafka_version)
    kafka = KafkaServer("127.0.0.1", free_port(), free_port(), home, libs, heap="512m")
    kafka.start()
    return kafka


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """A real Kafka broker and redis-server for the whole session."""
    root = tmp_path_factory.mktemp("services")
    redis_server = RedisServer("127.0.0.1", free_port(), root / "redis", databases=REDIS_DATABASES)
    redis_server.start()
    try:
        kafka = _start_kafka(root / "kafka")
    except BaseException:
        redis_server.stop()
        raise
    try:
        yield Services(kafka, redis_server, root)
    finally:
        kafka.stop()
        redis_server.stop()


@pytest.fixture
def settings(services: Services, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on the session's services with a fresh topic, group and Redis database."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", request.node.name)[:80]
    suffix = uuid.uuid4().hex[:8]
    db = next(_databases) % REDIS_DATABASES or 1
    client = redis.Redis.from_url(services.redis_url(db))
    client.flushdb()
    client.close()
    result = Settings(
        kafka_bootstrap=services.kafka.bootstrap,
        topic=f"pytest_{name}_{suffix}",
        consumer_group=f"pytest_{name}_{suffix}",
        redis_url=services.redis_url(db),
        data_dir=tmp_path / "data",
        state_dir=tmp_path / "state",
        timezone="UTC",
        partitions=3,
    )
    ensure_topics(result)
    return result


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    """A client of the test's own (empty) Redis database."""
    client = redis.Redis.from_url(settings.redis_url)
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
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that restart or reconfigure Redis."""
    server = RedisServer("127.0.0.1", free_port(), tmp_path / "private-redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()
