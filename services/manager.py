"""``kassa services up | down | status``: the local Kafka cluster and Redis kassa runs against
(one server, or with ``up --sentinel`` a master, its replica and three Sentinels), and, with
``up --s3``, a local S3 server (S3Proxy) for an object-store ``KASSA_DATA_DIR``."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from common.settings import Settings
from services.cluster import LEGACY_PID, KafkaCluster, adopt_single_broker, answering
from services.exceptions import ServiceError
from services.kafka import (
    KafkaServer,
    ensure_jars,
    java_tools,
    kafka_answers,
    metadata_version,
    quorum_status,
)
from services.process import is_local, port_in_use, stop_recorded
from services.redis import RedisRefusedError, RedisSentinel, RedisServer, redis_server_binary
from services.s3proxy import S3ProxyServer, ensure_s3proxy
from services.security import SECURE_FOLDER, SecureFiles
from services.sentinel import (
    DEFAULT_SENTINEL_PORTS,
    DOWN_AFTER_MS,
    MIN_SENTINELS,
    QUORUM,
    SENTINEL_FOLDER,
    Address,
    NodeStart,
    SentinelShape,
    address_text,
)
from storage.kafka.topics import ensure_topics

logger = logging.getLogger(__name__)

State = Literal["started", "running", "reused", "stopped", "down", "degraded", "refused"]
"""What a service is doing; ``refused``: Redis answers but refuses KASSA_REDIS_URL's login."""


@dataclass(frozen=True)
class ServiceStatus:
    """What one service (or Kafka node) is doing, for ``status`` and as the result of
    ``up``/``down``."""

    name: str
    address: str
    state: State
    version: str = ""
    pid: int | None = None
    data_dir: Path | None = None
    detail: str = ""
    role: str = ""
    security: str = ""
    """How clients reach it: ``plaintext``, or the protocol, login and client files."""


class PortInUseError(ServiceError):
    """A port a local service needs is taken by another program."""

    def __init__(self, port: int, what: str) -> None:
        super().__init__(
            f"port {port} ({what}) is in use by another program; nothing was started. Free "
            "it, or move kassa's services (KASSA_KAFKA_BOOTSTRAP, KASSA_KAFKA_CONTROLLER_PORT, "
            "KASSA_REDIS_URL, KASSA_REDIS_SENTINELS)"
        )
        self.port = port


def kafka_cluster(
    settings: Settings,
    brokers: int | None = None,
    heap: str | None = None,
    *,
    secure: bool | None = None,
) -> KafkaCluster:
    """The local cluster ``up`` made under ``KASSA_STATE_DIR``, else a new one to make.

    A new cluster has ``brokers`` nodes (default 1), the first at the first address of
    ``KASSA_KAFKA_BOOTSTRAP``, and is ``secure`` (SASL_SSL, :mod:`services.security`) or
    plaintext; a recorded cluster keeps its size, ports and security, and asking for another
    is refused.
    """
    home = settings.state_dir / "kafka"
    libs = ensure_jars(settings.cache_dir, settings.kafka_version)
    cluster = KafkaCluster.load(home, libs)
    if cluster is None:
        adopted = adopt_single_broker(home)
        host, _, port = settings.kafka_bootstrap.split(",")[0].strip().rpartition(":")
        cluster = KafkaCluster.plan(
            home,
            libs,
            host=host,
            port=int(port),
            controller_port=settings.kafka_controller_port,
            brokers=1 if adopted else brokers or 1,
            heap=heap or settings.kafka_heap,
            cluster_id=adopted,
            secure=SecureFiles(settings.state_dir / SECURE_FOLDER) if secure else None,
        )
        if adopted:
            cluster.save()
    if brokers is not None and brokers != len(cluster.addresses):
        msg = (
            f"the local Kafka in {home} has {len(cluster.addresses)} node(s), not {brokers}; "
            "run 'kassa services down' and delete that folder (its topics go with it), or "
            "use another KASSA_STATE_DIR"
        )
        raise ServiceError(msg)
    if secure is not None and secure != (cluster.secure is not None):
        shape = "secured (SASL_SSL)" if cluster.secure else "plaintext"
        msg = (
            f"the local Kafka in {home} is {shape}; run 'kassa services down' and delete that "
            "folder (its topics go with it), or use another KASSA_STATE_DIR"
        )
        raise ServiceError(msg)
    if heap is not None and heap != cluster.heap:
        cluster = dataclasses.replace(cluster, heap=heap)
    return cluster


def redis_server(settings: Settings) -> RedisServer:
    """The local redis-server at ``KASSA_REDIS_URL``'s host and port.

    Secured by ``up --secure`` (:meth:`SecureFiles.redis_made`): TLS only, its ACL users,
    logged in to as ``admin``. Else with the URL's user name and password (percent-decoded,
    as redis-py reads them), which it requires.
    """
    url = urlsplit(settings.redis_url)
    server = RedisServer(
        host=url.hostname or "127.0.0.1",
        port=url.port or 6379,
        home=settings.state_dir / "redis",
        appendfsync=settings.redis_appendfsync,
        username=unquote(url.username) if url.username else None,
        password=SecretStr(unquote(url.password)) if url.password else None,
    )
    secure = SecureFiles(settings.state_dir / SECURE_FOLDER)
    if not secure.redis_made:
        return server
    users = secure.redis_users()
    admin = users[0]
    return dataclasses.replace(
        server, username=admin.name, password=admin.password, tls=secure.redis_tls, users=users
    )


SECURE_SENTINELS: Final = (
    "'kassa services up --sentinel' starts plaintext Redis nodes and Sentinels, and "
    "'--secure' a TLS-only Redis: they do not go together{why}. For TLS Sentinels run your "
    "own (kassa's client follows them: KASSA_REDIS_SENTINELS and a rediss:// KASSA_REDIS_URL, "
    "docs/security.md), or use another KASSA_STATE_DIR"
)


def redis_sentinels(settings: Settings, *, sentinel: bool = False) -> SentinelShape | None:
    """The master, replica and Sentinels ``up --sentinel`` recorded under ``KASSA_STATE_DIR``;
    else, with ``sentinel``, a new shape to make; else ``None`` (the single Redis).

    The nodes log in with ``KASSA_REDIS_URL``'s password (:func:`redis_server`), which the
    Sentinels also give them; the Sentinels require ``KASSA_REDIS_SENTINEL_PASSWORD``. A new
    shape's Sentinels listen at ``KASSA_REDIS_SENTINELS`` (each on this machine), else on
    ports 26379-26381 of the URL's host.
    """
    home = settings.state_dir / SENTINEL_FOLDER
    first = redis_server(settings)
    watching = RedisSentinel(
        first.host,
        DEFAULT_SENTINEL_PORTS[0],
        home,
        settings.redis_sentinel_master,
        first.host,
        first.port,
        quorum=QUORUM,
        down_after_ms=DOWN_AFTER_MS,
        username=settings.redis_sentinel_username or None,
        password=settings.redis_sentinel_password,
        master_username=first.username,
        master_password=first.password,
    )
    shape = SentinelShape.load(home, first, watching)
    if shape is None and sentinel:
        addresses = _sentinel_addresses(settings, first.host)
        shape = SentinelShape.plan(home, settings.redis_sentinel_master, first, watching, addresses)
    return shape


def _sentinel_addresses(settings: Settings, host: str) -> list[Address]:
    """Where the Sentinels of a new shape listen: ``KASSA_REDIS_SENTINELS``, else ports
    26379-26381 of ``host``."""
    if not settings.redis_sentinels:
        return [(host, port) for port in DEFAULT_SENTINEL_PORTS]
    addresses = settings.redis_sentinel_addresses
    for address in addresses:
        if not is_local(address[0]):
            msg = (
                f"KASSA_REDIS_SENTINELS names {address_text(address)}, not an address of this "
                "machine, where 'kassa services up --sentinel' starts the Sentinels: list "
                "local addresses (e.g. 127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381), or "
                "unset it for those"
            )
            raise ServiceError(msg)
    if len(addresses) < MIN_SENTINELS:
        msg = (
            f"KASSA_REDIS_SENTINELS names {len(addresses)} Sentinel(s); 'kassa services up "
            f"--sentinel' starts at least {MIN_SENTINELS} (quorum {QUORUM}, so that a failover "
            "still happens with one of them down): list three addresses, or unset it"
        )
        raise ServiceError(msg)
    return addresses


def _sentinels_to_start(
    settings: Settings, cluster: KafkaCluster, *, sentinel: bool
) -> SentinelShape | None:
    """The Sentinel shape ``up`` makes or keeps (:func:`redis_sentinels`), if any: refused
    if the settings name another, or if the local services are secured."""
    shape = redis_sentinels(settings, sentinel=sentinel)
    if shape is None:
        return None
    _check_recorded(settings, shape)
    if cluster.secure is not None or redis_server(settings).tls is not None:
        why = f" (the local services in {settings.state_dir} are secured)"
        raise ServiceError(SECURE_SENTINELS.format(why=why))
    return shape


def _check_recorded(settings: Settings, shape: SentinelShape) -> None:
    """Refuse settings that name another shape than the one recorded (``up`` would start
    servers the others do not know)."""
    url = urlsplit(settings.redis_url)
    wanted = [
        ("master name", shape.master_name, settings.redis_sentinel_master,
         "KASSA_REDIS_SENTINEL_MASTER"),
        ("first Redis node", shape.nodes[0].address,
         f"{url.hostname or '127.0.0.1'}:{url.port or 6379}", "KASSA_REDIS_URL"),
    ]  # fmt: skip
    if settings.redis_sentinels:
        given = ",".join(map(address_text, settings.redis_sentinel_addresses))
        wanted.append(("Sentinels", shape.sentinel_list, given, "KASSA_REDIS_SENTINELS"))
    for what, recorded, given, setting in wanted:
        if recorded != given:
            msg = (
                f"the local Redis Sentinel shape in {shape.home} has the {what} {recorded}, "
                f"not {given} ({setting}); set that back, or run 'kassa services down' and "
                "delete that folder, or use another KASSA_STATE_DIR"
            )
            raise ServiceError(msg)


def s3proxy_server(settings: Settings) -> S3ProxyServer:
    """The local S3Proxy on ``KASSA_S3PROXY_PORT``, kept under ``KASSA_STATE_DIR``."""
    return S3ProxyServer(
        "127.0.0.1",
        settings.s3proxy_port,
        settings.state_dir / "s3proxy",
        ensure_s3proxy(settings.cache_dir, settings.s3proxy_version),
    )


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
    shape = _sentinels_to_start(settings, cluster, sentinel=sentinel)
    if cluster.secure is not None:
        cluster.secure.make(cluster.host, cluster.bootstrap)
        host = urlsplit(settings.redis_url).hostname or "127.0.0.1"
        cluster.secure.make_redis(host, settings.redis_url)
    redis = redis_server(settings)
    reuse_kafka = _external_kafka(cluster)
    needed: dict[Address, str] = {}
    if not reuse_kafka:
        needed = {(cluster.host, port): what for port, what in _ports_to_start(cluster).items()}
    needed.update(_redis_to_start(redis, shape))
    s3proxy = s3proxy_server(settings) if s3 else None
    if s3proxy is not None and s3proxy.pid is None:
        needed[(cluster.host, s3proxy.port)] = "S3Proxy"
    for (host, port), what in needed.items():
        if port_in_use(host, port):
            raise PortInUseError(port, what)
    if reuse_kafka:
        kafka = [ServiceStatus("kafka", cluster.nodes[0].bootstrap, "reused")]
    else:
        kafka = _up_kafka(settings, cluster)
    if shape is None:
        statuses = [*kafka, _up_redis(settings)]
    else:
        statuses = [*kafka, *_up_sentinels(settings, shape)]
    if s3proxy is not None:
        statuses.append(up_s3(s3proxy))
    if cluster.secure is None:
        ensure_topics(settings)
        return statuses
    ensure_topics(cluster.secure.admin_settings(settings, cluster.bootstrap))
    cluster.secure.grant(cluster.bootstrap, settings)
    hint = f"clients: set -a; . {cluster.secure.client_env}; set +a"
    return [*statuses, ServiceStatus("kafka", cluster.bootstrap, "running", detail=hint)]


def _redis_to_start(redis: RedisServer, shape: SentinelShape | None) -> dict[Address, str]:
    """The address of each Redis node (and Sentinel) that does not answer, and so that ``up``
    starts; each checked that it can be started with its login."""
    needed: dict[Address, str] = {}
    for node in shape.nodes if shape is not None else (redis,):
        if node.info() is None:
            node.check_can_start()
            needed[(node.host, node.port)] = "Redis"
    for sentinel in shape.sentinels if shape is not None else ():
        if not sentinel.answers():
            sentinel.check_can_start()
            needed[(sentinel.host, sentinel.port)] = "Redis Sentinel"
    return needed


def _up_sentinels(settings: Settings, shape: SentinelShape) -> list[ServiceStatus]:
    """Start what of ``shape`` does not run; a row per node and Sentinel, and the settings
    clients need if they are not those of ``settings``."""
    nodes, sentinels = shape.start()
    rows = [_started_node(n, start) for n, start in enumerate(nodes, start=1)]
    for n, (sentinel, started) in enumerate(zip(shape.sentinels, sentinels, strict=True), start=1):
        row = _sentinel_status(n, sentinel)
        rows.append(dataclasses.replace(row, state="started") if started else row)
    listed = [(sentinel.host, sentinel.port) for sentinel in shape.sentinels]
    if settings.redis_sentinel_addresses != listed:
        hint = (
            f"clients: export KASSA_REDIS_SENTINELS={shape.sentinel_list} "
            f"KASSA_REDIS_SENTINEL_MASTER={shape.master_name}"
        )
        rows.append(ServiceStatus("redis", shape.sentinel_list, "running", detail=hint))
    return rows


def _started_node(n: int, start: NodeStart) -> ServiceStatus:
    row = _redis_status(start.node, _redis_node_name(n), replication=True)
    if not start.started:
        return row
    how = (
        "as the master" if start.master is None else f"as a replica of {address_text(start.master)}"
    )
    return dataclasses.replace(row, state="started", detail=f"{row.detail}; started {how}")


def _redis_node_name(n: int) -> str:
    return f"redis-{n}"


def _sentinel_name(n: int) -> str:
    return f"sentinel-{n}"


def _sentinel_status(n: int, sentinel: RedisSentinel) -> ServiceStatus:
    """Whether the Sentinel answers (with its login) and which master it names."""
    name = _sentinel_name(n)
    try:
        answers = sentinel.answers()
        master = sentinel.master_address() if answers else None
    except RedisRefusedError as exc:
        return ServiceStatus(
            name, sentinel.address, "refused", pid=sentinel.pid, role="sentinel", detail=str(exc)
        )
    if not answers:
        return ServiceStatus(name, sentinel.address, "down", role="sentinel")
    pid = sentinel.pid
    if master is None:
        named = f"knows no master {sentinel.master!r}"
    else:
        named = f"names {address_text(master)} the master {sentinel.master!r}"
    return ServiceStatus(
        name,
        sentinel.address,
        "running" if pid else "reused",
        pid=pid,
        data_dir=sentinel.home if pid else None,
        detail=named,
        role="sentinel",
        security="password (KASSA_REDIS_SENTINEL_PASSWORD)" if sentinel.password else "no password",
    )


def up_s3(server: S3ProxyServer) -> ServiceStatus:
    """Start S3Proxy unless it runs; its status names the client settings file to load."""
    state: State = "running"
    if server.pid is None:
        server.start()
        state = "started"
    return _s3_status(server, state)


def _s3_status(server: S3ProxyServer, state: State) -> ServiceStatus:
    return ServiceStatus(
        "s3proxy",
        server.endpoint,
        state,
        "S3Proxy (transient: objects in memory)" if state != "down" else "",
        server.pid,
        detail=f"clients: set -a; . {server.client_env}; set +a" if state != "down" else "",
        security="AWS signature v4 (access key 'kassa')",
    )


def _external_kafka(cluster: KafkaCluster) -> bool:
    """Whether a Kafka kassa did not start answers where a one-node cluster would listen."""
    if len(cluster.nodes) != 1 or cluster.nodes[0].pid is not None:
        return False
    return kafka_answers(cluster.nodes[0].bootstrap, secure=cluster.secure)


def _ports_to_start(cluster: KafkaCluster) -> dict[int, str]:
    ports = {}
    for node in cluster.nodes:
        if node.pid is None:
            ports.update(node.ports)
    return ports


def _up_kafka(settings: Settings, cluster: KafkaCluster) -> list[ServiceStatus]:
    started = {node.node_id for node in cluster.start()}
    version = f"Apache Kafka {settings.kafka_version}"
    statuses = [
        ServiceStatus(
            _node_name(node.node_id),
            node.bootstrap,
            "started" if node.node_id in started else "running",
            version if node.node_id in started else "",
            node.pid,
            node.data_dir,
            role=node.roles,
            security=_kafka_security(cluster),
        )
        for node in cluster.nodes
    ]
    if len(cluster.nodes) > 1 and settings.kafka_bootstrap != cluster.bootstrap:
        hint = f"clients: export KASSA_KAFKA_BOOTSTRAP={cluster.bootstrap}"
        statuses.append(ServiceStatus("kafka", cluster.bootstrap, "running", detail=hint))
    return statuses


def _node_name(node_id: int) -> str:
    return f"kafka-{node_id}"


def _up_redis(settings: Settings) -> ServiceStatus:
    server = redis_server(settings)
    if server.info() is not None:
        return _redis_status(server)
    pid = server.start()
    info = server.info() or {}
    return ServiceStatus(
        "redis",
        server.address,
        "started",
        _redis_version(info),
        pid,
        server.data_dir,
        _aof(info),
        security=_redis_security(server),
    )


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
        ServiceStatus(_node_name(node.node_id), node.bootstrap, "stopped" if was else "down")
        for node, was in zip(cluster.nodes, stopped, strict=True)
    ]
    if shape is None:
        redis_state: State = "stopped" if redis.stop() else "down"
        statuses.append(ServiceStatus("redis", redis.address, redis_state))
    else:
        statuses += _stop_sentinels(shape)
    s3proxy = settings.state_dir / "s3proxy"
    if s3proxy.exists():
        s3_state: State = "stopped" if s3proxy_server(settings).stop() else "down"
        statuses.append(ServiceStatus("s3proxy", f"127.0.0.1:{settings.s3proxy_port}", s3_state))
    return statuses


def _stop_sentinels(shape: SentinelShape) -> list[ServiceStatus]:
    sentinels, nodes = shape.stop()
    rows = [
        ServiceStatus(_redis_node_name(n), node.address, "stopped" if was else "down")
        for n, (node, was) in enumerate(zip(shape.nodes, nodes, strict=True), start=1)
    ]
    rows += [
        ServiceStatus(_sentinel_name(n), sentinel.address, "stopped" if was else "down")
        for n, (sentinel, was) in enumerate(zip(shape.sentinels, sentinels, strict=True), start=1)
    ]
    return rows


def status(settings: Settings) -> list[ServiceStatus]:
    """Each Kafka node (id, role, address, pid, data folder), the cluster with its active
    controller, and Redis: with ``up --sentinel``, each node with its role (master or
    replica, as the node says) and each Sentinel with the master it names."""
    cluster = kafka_cluster(settings)
    statuses = _kafka_status(settings, cluster)
    shape = redis_sentinels(settings)
    if shape is None:
        statuses.append(_redis_status(redis_server(settings)))
    else:
        statuses += [
            _redis_status(node, _redis_node_name(n), replication=True)
            for n, node in enumerate(shape.nodes, start=1)
        ]
        statuses += [_sentinel_status(n, s) for n, s in enumerate(shape.sentinels, start=1)]
    if (settings.state_dir / "s3proxy").exists():
        server = s3proxy_server(settings)
        up_here = server.pid is not None and server.answers()
        statuses.append(_s3_status(server, "running" if up_here else "down"))
    return statuses


def _redis_status(
    redis: RedisServer, name: str = "redis", *, replication: bool = False
) -> ServiceStatus:
    """The row of one Redis server; with ``replication``, its role and master as it says."""
    try:
        info = redis.info()
    except RedisRefusedError as exc:
        return ServiceStatus(name, redis.address, "refused", pid=redis.pid, detail=str(exc))
    if info is None:
        return ServiceStatus(name, redis.address, "down")
    state: State = "running" if redis.pid else "reused"
    version = _redis_version(info)
    role, detail = "", _aof(info)
    if replication:
        role, replicating = _replication(info)
        detail = f"{detail}; {replicating}"
    return ServiceStatus(
        name,
        redis.address,
        state,
        version,
        redis.pid,
        _own(redis),
        detail,
        role,
        security=_redis_security(redis),
    )


def _replication(info: dict[str, object]) -> tuple[str, str]:
    """The role (``master``/``replica``) and a few words on replication from ``INFO``."""
    if info.get("role") == "master":
        return "master", f"{info.get('connected_slaves', 0)} replica(s) connected"
    master = f"{info.get('master_host')}:{info.get('master_port')}"
    return "replica", f"replica of {master}, link {info.get('master_link_status')}"


def _kafka_status(settings: Settings, cluster: KafkaCluster) -> list[ServiceStatus]:
    nodes = []
    for node in cluster.nodes:
        pid = node.pid
        up_here = pid is not None and kafka_answers(node.bootstrap, secure=cluster.secure)
        nodes.append(
            ServiceStatus(
                _node_name(node.node_id),
                node.bootstrap,
                "running" if up_here else "down",
                pid=pid,
                data_dir=node.data_dir if node.formatted else None,
                role=node.roles,
                detail="" if up_here or pid is None else "not answering yet",
                security=_kafka_security(cluster),
            )
        )
    running = [node for node, row in zip(cluster.nodes, nodes, strict=True) if row.state != "down"]
    if running:
        bootstrap = ",".join(node.bootstrap for node in running)
        state: State = "running" if len(running) == len(nodes) else "degraded"
        version = f"Apache Kafka {settings.kafka_version}"
        summary = ServiceStatus(
            "kafka", cluster.bootstrap, state, version, security=_kafka_security(cluster)
        )
    elif answering(cluster):
        bootstrap = cluster.nodes[0].bootstrap
        summary = ServiceStatus("kafka", bootstrap, "reused")
        nodes = []  # another program's Kafka: kassa knows none of its nodes
    else:
        return [*nodes, ServiceStatus("kafka", cluster.bootstrap, "down")]
    return [*nodes, _describe_cluster(cluster, bootstrap, summary)]


def _describe_cluster(
    cluster: KafkaCluster, bootstrap: str, summary: ServiceStatus
) -> ServiceStatus:
    """``summary`` with the metadata version and the active controller, as Kafka reports them."""
    try:
        version = f"metadata.version {metadata_version(cluster.libs, bootstrap, cluster.secure)}"
        quorum = quorum_status(cluster.libs, bootstrap, cluster.secure)
    except ServiceError as exc:
        return dataclasses.replace(
            summary, version=f"{summary.version}, unknown ({exc})".lstrip(", ")
        )
    voters = ",".join(map(str, quorum.voters))
    controller = f"active controller: node {quorum.leader} (voters {voters})"
    return dataclasses.replace(
        summary, version=f"{summary.version}, {version}".lstrip(", "), detail=controller
    )


def _kafka_security(cluster: KafkaCluster) -> str:
    """How clients reach ``cluster``: ``plaintext``, or SASL_SSL and the client files."""
    if cluster.secure is None:
        return "plaintext"
    files = cluster.secure
    return f"SASL_SSL (SCRAM-SHA-512), CA {files.ca}, client settings {files.client_env}"


def _redis_security(server: RedisServer) -> str:
    """How kassa logs in to Redis: ``no password``, ``password (KASSA_REDIS_URL)``, or TLS
    and its ACL users (secured by ``up --secure``)."""
    if server.tls is not None:
        users = ", ".join(repr(user.name) for user in server.users)
        return f"TLS (CA {server.tls.ca}), ACL users {users}, default user off"
    return "password (KASSA_REDIS_URL)" if server.password else "no password"


def _own(server: RedisServer) -> Path | None:
    return server.data_dir if server.pid else None


def _redis_version(info: dict[str, object]) -> str:
    return f"Redis {info.get('redis_version', '?')}"


def _aof(info: dict[str, object]) -> str:
    return "appendonly on" if info.get("aof_enabled") == 1 else "appendonly OFF"
