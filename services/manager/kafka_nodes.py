"""The local Kafka cluster of ``kassa services``: the nodes ``up`` starts, and their rows."""

from __future__ import annotations

import dataclasses

from common.settings import Settings
from services.cluster import KafkaCluster, adopt_single_broker, answering
from services.exceptions import ServiceError
from services.kafka import (
    ensure_jars,
    kafka_answers,
    metadata_version,
    quorum_status,
)
from services.manager.rows import ServiceStatus, State
from services.security import SECURE_FOLDER, SecureFiles


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


def external_kafka(cluster: KafkaCluster) -> bool:
    """Whether a Kafka kassa did not start answers where a one-node cluster would listen."""
    if len(cluster.nodes) != 1 or cluster.nodes[0].pid is not None:
        return False
    return kafka_answers(cluster.nodes[0].bootstrap, secure=cluster.secure)


def ports_to_start(cluster: KafkaCluster) -> dict[int, str]:
    """The ports (and what listens there) of each node of ``cluster`` not running."""
    ports = {}
    for node in cluster.nodes:
        if node.pid is None:
            ports.update(node.ports)
    return ports


def up_kafka(settings: Settings, cluster: KafkaCluster) -> list[ServiceStatus]:
    """Start the nodes of ``cluster`` not running; a row per node, and the bootstrap
    clients need when it is not ``KASSA_KAFKA_BOOTSTRAP``."""
    started = {node.node_id for node in cluster.start()}
    version = f"Apache Kafka {settings.kafka_version}"
    statuses = [
        ServiceStatus(
            node_name(node.node_id),
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


def node_name(node_id: int) -> str:
    """The row name of Kafka node ``node_id``."""
    return f"kafka-{node_id}"


def kafka_status(settings: Settings, cluster: KafkaCluster) -> list[ServiceStatus]:
    """A row per node of ``cluster`` and one for the cluster (its metadata version and
    active controller), or one for another program's Kafka answering at the bootstrap."""
    nodes = []
    for node in cluster.nodes:
        pid = node.pid
        up_here = pid is not None and kafka_answers(node.bootstrap, secure=cluster.secure)
        nodes.append(
            ServiceStatus(
                node_name(node.node_id),
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
