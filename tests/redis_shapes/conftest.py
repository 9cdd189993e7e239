"""Redis in the shapes chains run it, for the tests of this folder: a Redis Cluster of three
masters (and a master with a replica watched by three Sentinels, or those ``kassa services up
--sentinel`` starts).

Each starts once per test session (this folder is one pytest-xdist unit, so one worker
starts it); each test gets a fresh topic and group, and so a key space of its own.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis.cluster import RedisCluster

from common.settings import Settings
from services.redis import RedisSentinel, RedisServer
from services.sentinel import SentinelShape
from storage.kafka.topics import ensure_topics
from tests.conftest import Services, fresh_settings
from tests.helpers import free_port, wait_until

CLUSTER_MASTERS = 3
SENTINEL_COUNT = 3
SENTINEL_MASTER = "kassa-test"


def _cluster_ok(servers: list[RedisServer]) -> bool:
    """Whether every node reports the cluster ``ok`` (every slot served)."""
    for server in servers:
        state = subprocess.run(
            ["redis-cli", "-p", str(server.port), "cluster", "info"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if "cluster_state:ok" not in state:
            return False
    return True


MAX_CLUSTER_PORT = 55535
"""A cluster node also listens on its port + 10000 (the cluster bus), below 65536."""


def cluster_port() -> int:
    """A free port for a cluster node whose bus port (+ 10000) is free too."""
    while True:
        port = free_port()
        if port > MAX_CLUSTER_PORT:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    """Three redis-servers with ``--cluster-enabled yes``, made one cluster of three masters
    (no replicas) by ``redis-cli --cluster create``."""
    home = tmp_path_factory.mktemp("redis-cluster")
    servers = [
        RedisServer(
            "127.0.0.1",
            cluster_port(),
            home / f"node-{n}",
            options=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
        )
        for n in range(1, CLUSTER_MASTERS + 1)
    ]
    try:
        for server in servers:
            server.start()
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(s.address for s in servers),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        assert created.returncode == 0, created.stdout + created.stderr
        wait_until(lambda: _cluster_ok(servers), 30, "the Redis Cluster to serve every slot")
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def redis_cluster_settings(
    services: Services,
    redis_cluster: list[RedisServer],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> Settings:
    """Settings on the session's broker and the Redis Cluster (``KASSA_REDIS_CLUSTER``,
    the URL naming its first node): a fresh topic and group, so a key space of its own."""
    url = f"redis://{redis_cluster[0].address}/0"
    settings = fresh_settings(request, tmp_path, services.kafka.bootstrap, url)
    settings = settings.model_copy(update={"redis_cluster": True})
    ensure_topics(settings)
    return settings


def cluster_client(servers: list[RedisServer]) -> RedisCluster:
    """A cluster client of ``servers`` (for the tests' own reads)."""
    return RedisCluster(host=servers[0].host, port=servers[0].port)


@dataclass(frozen=True)
class Sentinels:
    """A master, its replica and the Sentinels watching them (:data:`SENTINEL_MASTER` for the
    ``sentinels`` fixture), each logged in to with its password, if any."""

    master: RedisServer
    replica: RedisServer
    sentinels: list[RedisSentinel]

    @classmethod
    def of(cls, shape: SentinelShape) -> Sentinels:
        """The nodes and Sentinels ``kassa services up --sentinel`` recorded: node 1 the
        master, node 2 its replica, as first started."""
        master, replica = shape.nodes
        return cls(master, replica, list(shape.sentinels))

    @property
    def addresses(self) -> str:
        """The Sentinels' ``host:port`` list (``KASSA_REDIS_SENTINELS``)."""
        return ",".join(sentinel.address for sentinel in self.sentinels)

    def master_address(self) -> tuple[str, int] | None:
        """Where the first Sentinel says the master is."""
        return self.sentinels[0].master_address()

    def ready(self) -> bool:
        """Whether the replica is in sync and every Sentinel knows it and the others."""
        name = self.sentinels[0].master
        shape = SentinelShape(
            self.master.home, name, (self.master, self.replica), tuple(self.sentinels)
        )
        return not shape.not_ready((self.master.host, self.master.port))


@contextmanager
def started_sentinels(home: Path, password: SecretStr | None = None) -> Iterator[Sentinels]:
    """A master, a replica of it and three Sentinels (quorum 2, a master down after 1 s)
    under ``home``, until the block ends; the Sentinels require ``password``, if given."""
    master = RedisServer("127.0.0.1", free_port(), home / "master")
    replica = RedisServer(
        "127.0.0.1",
        free_port(),
        home / "replica",
        options=("--replicaof", master.host, str(master.port)),
    )
    watching = [
        RedisSentinel(
            "127.0.0.1",
            free_port(),
            home / f"sentinel-{n}",
            SENTINEL_MASTER,
            master.host,
            master.port,
            password=password,
        )
        for n in range(1, SENTINEL_COUNT + 1)
    ]
    shape = Sentinels(master, replica, watching)
    try:
        master.start()
        replica.start()
        for sentinel in watching:
            sentinel.start()
        wait_until(shape.ready, 60, "the replica and three Sentinels to find each other")
        yield shape
    finally:
        for server in (*watching, replica, master):
            server.stop()


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[Sentinels]:
    """Sentinels of one test (:func:`started_sentinels`): a failover changes them for good."""
    with started_sentinels(tmp_path) as shape:
        yield shape


def on_sentinels(settings: Settings, sentinels: Sentinels) -> Settings:
    """``settings`` on the master ``sentinels`` name (``KASSA_REDIS_SENTINELS``; the URL gives
    only the database), committing often and serving no metrics port of their own."""
    return settings.model_copy(
        update={
            "redis_sentinels": sentinels.addresses,
            "redis_sentinel_master": SENTINEL_MASTER,
            "stream_commit_interval": 0.5,
            "metrics_port": 0,
        }
    )


@pytest.fixture
def sentinel_settings(
    services: Services, sentinels: Sentinels, request: pytest.FixtureRequest, tmp_path: Path
) -> Settings:
    """Settings on the session's broker (a fresh topic and group) and on the Sentinels'
    master (:func:`on_sentinels`)."""
    url = f"redis://{sentinels.master.address}/0"
    settings = on_sentinels(
        fresh_settings(request, tmp_path, services.kafka.bootstrap, url), sentinels
    )
    ensure_topics(settings)
    return settings
