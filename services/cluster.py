"""A local Apache Kafka cluster: N KRaft nodes on one host, its shape kept in ``cluster.json``.

Node ``i`` (1-based) listens for clients on ``port + 2 (i - 1)`` and, if it is one of the
controller voters, for the quorum on ``controller_port + 2 (i - 1)``: with the defaults
9092/9093, 9094/9095, 9096/9097. Nodes 1-3 are combined brokers and controllers (one voter
below three nodes), later nodes are brokers only. Each node keeps its files in
``<home>/node-<i>``; all are formatted with one cluster id.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from services.exceptions import ServiceError
from services.kafka import KafkaServer, kafka_answers
from services.process import read_pid, stop_all
from services.security import SecureFiles
from storage.kafka.config import local_node_config

logger = logging.getLogger(__name__)

CLUSTER_FILE = "cluster.json"
MAX_VOTERS = 3
PORT_STEP = 2
LEGACY_PID = "kafka.pid"


def voter_count(brokers: int) -> int:
    """Controller voters for ``brokers`` nodes: three from three nodes on, else one.

    Two voters would lose the quorum when either of them stops; one loses it only with node 1.
    """
    return MAX_VOTERS if brokers >= MAX_VOTERS else 1


@dataclass(frozen=True)
class NodeAddress:
    """Where one node listens (``controller_port`` is ``None`` for a broker-only node)."""

    node_id: int
    port: int
    controller_port: int | None


@dataclass(frozen=True)
class KafkaCluster:
    """The nodes of one local cluster and the folder ``home`` that holds them; a ``secure``
    cluster's client listeners are SASL_SSL, with the files :mod:`services.security` makes."""

    home: Path
    cluster_id: str
    host: str
    heap: str
    addresses: tuple[NodeAddress, ...]
    libs: Path
    secure: SecureFiles | None = None
    properties: tuple[str, ...] = ()
    """Further ``server.properties`` lines of every node (see :class:`KafkaServer`)."""

    @classmethod
    def plan(
        cls,
        home: Path,
        libs: Path,
        *,
        host: str,
        port: int,
        controller_port: int,
        brokers: int,
        heap: str,
        cluster_id: str | None = None,
        secure: SecureFiles | None = None,
    ) -> KafkaCluster:
        """A new cluster of ``brokers`` nodes from the first node's ports (see the module)."""
        voters = voter_count(brokers)
        addresses = tuple(
            NodeAddress(
                index + 1,
                port + PORT_STEP * index,
                controller_port + PORT_STEP * index if index < voters else None,
            )
            for index in range(brokers)
        )
        cluster_id = cluster_id or uuid.uuid4().hex[:22]
        cluster = cls(home, cluster_id, host, heap, addresses, libs, secure)
        cluster.ports()  # refuse overlapping ports before anything starts
        return cluster

    @classmethod
    def load(cls, home: Path, libs: Path) -> KafkaCluster | None:
        """The cluster recorded in ``home``, if ``up`` made one there."""
        try:
            recorded = json.loads((home / CLUSTER_FILE).read_text())
        except FileNotFoundError:
            return None
        addresses = tuple(NodeAddress(**node) for node in recorded["nodes"])
        secure = recorded.get("secure")  # clusters of kassa before 0.3 were all plaintext
        return cls(
            home,
            recorded["cluster_id"],
            recorded["host"],
            recorded["heap"],
            addresses,
            libs,
            SecureFiles(Path(secure)) if secure else None,
        )

    def save(self) -> None:
        """Record the cluster's shape, so that ``status``, ``down`` and ``up`` find it again."""
        self.home.mkdir(parents=True, exist_ok=True)
        recorded = {
            "cluster_id": self.cluster_id,
            "host": self.host,
            "heap": self.heap,
            "nodes": [vars(address) for address in self.addresses],
            "secure": str(self.secure.folder) if self.secure else None,
        }
        (self.home / CLUSTER_FILE).write_text(json.dumps(recorded, indent=2) + "\n")

    @property
    def nodes(self) -> tuple[KafkaServer, ...]:
        """Every node, in id order."""
        voters = ",".join(
            f"{a.node_id}@{self.host}:{a.controller_port}"
            for a in self.addresses
            if a.controller_port is not None
        )
        return tuple(
            KafkaServer(
                self.host,
                a.port,
                a.controller_port,
                self.home / f"node-{a.node_id}",
                self.libs,
                heap=self.heap,
                node_id=a.node_id,
                voters=voters,
                internal_replicas=min(MAX_VOTERS, len(self.addresses)),
                secure=self.secure,
                properties=self.properties,
            )
            for a in self.addresses
        )

    def node(self, node_id: int) -> KafkaServer:
        """The node with id ``node_id``."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        msg = f"the cluster in {self.home} has no node {node_id}"
        raise ServiceError(msg)

    @property
    def bootstrap(self) -> str:
        """Every node's client address, for ``KASSA_KAFKA_BOOTSTRAP``."""
        return ",".join(node.bootstrap for node in self.nodes)

    def ports(self) -> dict[int, str]:
        """Every port of every node and what for; overlapping ports are refused."""
        ports: dict[int, str] = {}
        for node in self.nodes:
            for port, what in node.ports.items():
                if port in ports:
                    msg = (
                        f"port {port} would be both the {ports[port]} and the {what}; set "
                        "KASSA_KAFKA_CONTROLLER_PORT to the port of KASSA_KAFKA_BOOTSTRAP + 1"
                    )
                    raise ServiceError(msg)
                ports[port] = what
        return ports

    def start(self, timeout: float = 120.0) -> list[KafkaServer]:
        """Start every node that is not running and wait until all brokers are registered.

        Returns the nodes started. The nodes are launched together (a voter waits for a
        majority of the quorum); if one fails, those launched here are stopped again.
        """
        self.save()
        if self.secure is not None:
            self.secure.make(self.host, self.bootstrap)
        pending = [node for node in self.nodes if node.pid is None]
        for node in pending:
            node.format(self.cluster_id)
        launched: list[KafkaServer] = []
        try:
            pids = []
            for node in pending:
                pids.append(node.launch())
                launched.append(node)
            for node, pid in zip(pending, pids, strict=True):
                node.await_answer(pid, timeout)
            self.await_brokers(timeout)
        except BaseException:
            stop_all([node.pid_file for node in launched], KafkaServer.STOP_TIMEOUT)
            raise
        return pending

    def await_brokers(self, timeout: float = 120.0) -> None:
        """Wait until the cluster's metadata lists every node as a broker."""
        wanted = {node.node_id for node in self.nodes}
        login = self.secure.admin_config() if self.secure else None
        admin = AdminClient(local_node_config(self.bootstrap, login=login))
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while time.monotonic() < deadline:
            try:
                seen = set(admin.list_topics(timeout=5).brokers)
            except KafkaException:
                seen = set()
            if seen >= wanted:
                return
            time.sleep(0.2)
        msg = (
            f"Kafka nodes {sorted(wanted - seen)} did not register as brokers within "
            f"{timeout:.0f} s; see their server.log under {self.home}"
        )
        raise ServiceError(msg)

    def stop(self) -> list[bool]:
        """Stop every node together (each leaves cleanly while the quorum lasts).

        Returns, per node, whether it was running.
        """
        return stop_all([node.pid_file for node in self.nodes], KafkaServer.STOP_TIMEOUT)


def answering(cluster: KafkaCluster) -> bool:
    """Whether any node of ``cluster`` answers clients."""
    return any(
        kafka_answers(node.bootstrap, timeout=1.0, secure=cluster.secure) for node in cluster.nodes
    )


def adopt_single_broker(home: Path) -> str | None:
    """Move the broker an older kassa kept in ``home`` itself to ``home/node-1``.

    Returns its cluster id when there was one to move (the caller records a one-node cluster
    with it), else ``None``.
    """
    data = home / "data"
    if (home / CLUSTER_FILE).exists() or not (data / "meta.properties").exists():
        return None
    pid = read_pid(home / LEGACY_PID)
    if pid is not None:
        msg = (
            f"a Kafka broker started by an older kassa runs from {home} (pid {pid}); stop it "
            "with 'kassa services down' and run 'kassa services up' again (its data moves to "
            "node-1)"
        )
        raise ServiceError(msg)
    lines = (data / "meta.properties").read_text().splitlines()
    properties = dict(line.split("=", 1) for line in lines if "=" in line)
    node = home / "node-1"
    node.mkdir()
    data.rename(node / "data")
    logger.info("moved the single broker's data in %s to %s", home, node)
    return properties["cluster.id"]
