"""``kassa services up | down | status``: the local Kafka cluster and Redis kassa runs against
(one server, or with ``up --sentinel`` a master, its replica and three Sentinels), and, with
``up --s3``, a local S3 server (S3Proxy) for an object-store ``KASSA_DATA_DIR``.

This module puts them together; :mod:`~services.manager.kafka_nodes`,
:mod:`~services.manager.redis_nodes` and :mod:`~services.manager.s3` each know one service,
and :mod:`~services.manager.rows` the row each prints.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from common.settings import Settings
from services.cluster import LEGACY_PID
from services.exceptions import ServiceError
from services.kafka import KafkaServer, java_tools
from services.manager.kafka_nodes import (
    external_kafka,
    kafka_cluster,
    kafka_status,
    node_name,
    ports_to_start,
    up_kafka,
)
from services.manager.redis_nodes import (
    SECURE_SENTINELS,
    redis_node_name,
    redis_sentinels,
    redis_server,
    redis_status,
    redis_to_start,
    sentinel_status,
    sentinels_to_start,
    stop_sentinels,
    up_redis,
    up_sentinels,
)
from services.manager.rows import ServiceStatus, State
from services.manager.s3 import s3_status, s3proxy_server, up_s3
from services.process import port_in_use, stop_recorded
from services.redis import redis_server_binary
from services.sentinel import Address
from storage.kafka.topics import ensure_topics

__all__ = ["PortInUseError", "ServiceStatus", "State", "check_tools", "down", "status", "up"]


class PortInUseError(ServiceError):
    """A port a local service needs is taken by another program."""

    def __init__(self, port: int, what: str) -> None:
        super().__init__(
            f"port {port} ({what}) is in use by another program; nothing was started. Free "
            "it, or move kassa's services (KASSA_KAFKA_BOOTSTRAP, KASSA_KAFKA_CONTROLLER_PORT, "
            "KASSA_REDIS_URL, KASSA_REDIS_SENTINELS)"
        )
        self.port = port


def check_tools() -> None:
    """Fail before starting anything if Java, Maven or redis-server is missing."""
    java_tools()
    redis_server_binary()


def up(
    settings: Settings,
    brokers: int | None = None,
    heap: str | None = None,
    *,
    secure: bool = False,
    s3: bool = False,
    sentinel: bool = False,
) -> list[ServiceStatus]:
    """Start the Kafka nodes and Redis unless running; create the topics; with ``s3``, also
    S3Proxy (:func:`up_s3`); with ``sentinel`` (or a shape recorded by an earlier ``up
    --sentinel``), Redis as a master, its replica and three Sentinels (:func:`redis_sentinels`,
    :meth:`SentinelShape.start`), not with ``secure``.

    A single broker or Redis that already answers at the configured address (e.g. from
    ``docker compose``) is reused; a Redis that answers but refuses KASSA_REDIS_URL's
    password is :class:`~services.redis.RedisRefusedError`. Every port still needed is
    checked before anything starts. A ``secure`` cluster gets its certificates, users and
    the ``kassa`` user's ACLs, and its topics are created as ``admin``
    (:mod:`services.security`).
    """
    if secure and sentinel:
        raise ServiceError(SECURE_SENTINELS.format(why=""))
    check_tools()
    cluster = kafka_cluster(settings, brokers, heap, secure=secure or None)
    shape = sentinels_to_start(settings, cluster, sentinel=sentinel)
    if cluster.secure is not None:
        cluster.secure.make(cluster.host, cluster.bootstrap)
        host = urlsplit(settings.redis_url).hostname or "127.0.0.1"
        cluster.secure.make_redis(host, settings.redis_url)
    redis = redis_server(settings)
    reuse_kafka = external_kafka(cluster)
    needed: dict[Address, str] = {}
    if not reuse_kafka:
        needed = {(cluster.host, port): what for port, what in ports_to_start(cluster).items()}
    needed.update(redis_to_start(redis, shape))
    s3proxy = s3proxy_server(settings) if s3 else None
    if s3proxy is not None and s3proxy.pid is None:
        needed[(cluster.host, s3proxy.port)] = "S3Proxy"
    for (host, port), what in needed.items():
        if port_in_use(host, port):
            raise PortInUseError(port, what)
    if reuse_kafka:
        kafka = [ServiceStatus("kafka", cluster.nodes[0].bootstrap, "reused")]
    else:
        kafka = up_kafka(settings, cluster)
    if shape is None:
        statuses = [*kafka, up_redis(settings)]
    else:
        statuses = [*kafka, *up_sentinels(settings, shape)]
    if s3proxy is not None:
        statuses.append(up_s3(s3proxy))
    if cluster.secure is None:
        ensure_topics(settings)
        return statuses
    ensure_topics(cluster.secure.admin_settings(settings, cluster.bootstrap))
    cluster.secure.grant(cluster.bootstrap, settings)
    hint = f"clients: set -a; . {cluster.secure.client_env}; set +a"
    return [*statuses, ServiceStatus("kafka", cluster.bootstrap, "running", detail=hint)]


def down(settings: Settings) -> list[ServiceStatus]:
    """Stop every Kafka node and the Redis that ``up`` started; leave any others alone."""
    legacy = stop_recorded(settings.state_dir / "kafka" / LEGACY_PID, KafkaServer.STOP_TIMEOUT)
    cluster = kafka_cluster(settings)
    redis = redis_server(settings)
    shape = redis_sentinels(settings)
    stopped = cluster.stop()
    statuses = []
    if legacy:
        statuses.append(ServiceStatus("kafka", "single broker of an older kassa", "stopped"))
    statuses += [
        ServiceStatus(node_name(node.node_id), node.bootstrap, "stopped" if was else "down")
        for node, was in zip(cluster.nodes, stopped, strict=True)
    ]
    if shape is None:
        redis_state: State = "stopped" if redis.stop() else "down"
        statuses.append(ServiceStatus("redis", redis.address, redis_state))
    else:
        statuses += stop_sentinels(shape)
    s3proxy = settings.state_dir / "s3proxy"
    if s3proxy.exists():
        s3_state: State = "stopped" if s3proxy_server(settings).stop() else "down"
        statuses.append(ServiceStatus("s3proxy", f"127.0.0.1:{settings.s3proxy_port}", s3_state))
    return statuses


def status(settings: Settings) -> list[ServiceStatus]:
    """Each Kafka node (id, role, address, pid, data folder), the cluster with its active
    controller, and Redis: with ``up --sentinel``, each node with its role (master or
    replica, as the node says) and each Sentinel with the master it names."""
    cluster = kafka_cluster(settings)
    statuses = kafka_status(settings, cluster)
    shape = redis_sentinels(settings)
    if shape is None:
        statuses.append(redis_status(redis_server(settings)))
    else:
        statuses += [
            redis_status(node, redis_node_name(n), replication=True)
            for n, node in enumerate(shape.nodes, start=1)
        ]
        statuses += [sentinel_status(n, s) for n, s in enumerate(shape.sentinels, start=1)]
    if (settings.state_dir / "s3proxy").exists():
        server = s3proxy_server(settings)
        up_here = server.pid is not None and server.answers()
        statuses.append(s3_status(server, "running" if up_here else "down"))
    return statuses
