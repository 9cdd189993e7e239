"""A real Apache Kafka node in KRaft mode, from the official jars on Maven Central.

The jars are resolved by Maven into ``<cache_dir>/kafka-<version>/libs`` once; a node runs on
the machine's Java as a combined broker and controller (or as a broker only, when it has no
controller port), listening on 127.0.0.1, with its storage formatted by Kafka's own storage
tool. Topics are never auto-created. :mod:`services.cluster` puts several nodes together.
"""

from __future__ import annotations

import logging
import re
import subprocess
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from services.exceptions import ServiceError
from services.process import RecordedServer, await_ready, require_tool, spawn
from services.security import SecureFiles
from storage.kafka.config import local_node_config

logger = logging.getLogger(__name__)
_probe_logger = logging.getLogger(f"{__name__}.probe")
_probe_logger.setLevel(logging.CRITICAL)

SERVER_CLASS = "kafka.Kafka"
STORAGE_TOOL_CLASS = "kafka.tools.StorageTool"
FEATURE_TOOL_CLASS = "org.apache.kafka.tools.FeatureCommand"
QUORUM_TOOL_CLASS = "org.apache.kafka.tools.MetadataQuorumCommand"
PLAINTEXT_LISTENERS = (
    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "inter.broker.listener.name=PLAINTEXT",
)


def java_tools() -> tuple[str, str]:
    """The paths of ``java`` and ``mvn``."""
    java = require_tool("java", "sudo apt-get install openjdk-17-jre-headless")
    mvn = require_tool("mvn", "sudo apt-get install maven")
    return java, mvn


def kafka_home(cache_dir: Path, version: str) -> Path:
    """Where the jars of Kafka ``version`` are kept."""
    return cache_dir / f"kafka-{version}"


def ensure_jars(cache_dir: Path, version: str) -> Path:
    """Fetch the Kafka ``version`` jars with Maven unless cached; return the ``libs`` folder."""
    home = kafka_home(cache_dir, version)
    libs = home / "libs"
    if (home / ".complete").exists():
        return libs
    logger.info("fetching Apache Kafka %s jars from Maven Central into %s", version, libs)
    failure = (
        f"Maven could not fetch Apache Kafka {version} (KASSA_KAFKA_VERSION); is Maven "
        "Central reachable and the version published?"
    )
    fetch_with_maven(home, "kafka-pom.xml", {"@KAFKA_VERSION@": version}, failure)
    if not (libs / f"kafka_2.13-{version}.jar").exists():
        msg = f"Maven finished but {libs} has no kafka_2.13-{version}.jar; delete {home} and retry"
        raise ServiceError(msg)
    (home / ".complete").write_text(version)
    return libs


def fetch_with_maven(home: Path, pom: str, values: dict[str, str], failure: str) -> None:
    """Resolve the runtime dependencies of the pom template ``pom`` (in
    ``services/resources``, its placeholders replaced by ``values``) into ``home/libs``.

    Raises :class:`ServiceError` with ``failure`` and Maven's last words when it fails.
    """
    _, mvn = java_tools()
    home.mkdir(parents=True, exist_ok=True)
    template = resources.files("services").joinpath(f"resources/{pom}").read_text()
    for placeholder, value in values.items():
        template = template.replace(placeholder, value)
    (home / "pom.xml").write_text(template)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(home / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={home / 'libs'}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip()[-2000:]
        raise ServiceError(f"{failure}\n{tail}")


def kafka_answers(bootstrap: str, timeout: float = 2.0, secure: SecureFiles | None = None) -> bool:
    """Whether a Kafka cluster answers a metadata request at ``bootstrap`` (logged in as
    the ``secure`` cluster's admin, if it is one)."""
    admin = AdminClient(
        local_node_config(
            bootstrap,
            {
                "socket.connection.setup.timeout.ms": 1000,
                "logger": _probe_logger,  # "connection refused" is the expected answer here
            },
            login=secure.admin_config() if secure else None,
        )
    )
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def _run_tool(
    libs: Path, main_class: str, *args: str, secure: SecureFiles | None = None
) -> subprocess.CompletedProcess[str]:
    java, _ = java_tools()
    login = ["--command-config", str(secure.admin_properties)] if secure else []
    return subprocess.run(
        [java, "-Xmx128m", "-cp", f"{libs}/*", main_class, *login, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def metadata_version(libs: Path, bootstrap: str, secure: SecureFiles | None = None) -> str:
    """The ``metadata.version`` the broker at ``bootstrap`` reports (asked with Kafka's tool)."""
    result = _run_tool(
        libs, FEATURE_TOOL_CLASS, "--bootstrap-server", bootstrap, "describe", secure=secure
    )
    found = re.search(r"metadata\.version\s.*FinalizedVersionLevel:\s*(\S+)", result.stdout)
    if result.returncode != 0 or found is None:
        msg = f"Kafka at {bootstrap} did not describe its features: {result.stderr.strip()[-500:]}"
        raise ServiceError(msg)
    return found.group(1)


@dataclass(frozen=True)
class QuorumStatus:
    """The KRaft controller quorum as Kafka's metadata-quorum tool reports it."""

    leader: int
    voters: tuple[int, ...]


def quorum_status(libs: Path, bootstrap: str, secure: SecureFiles | None = None) -> QuorumStatus:
    """The active controller (the quorum's leader) and the voters, asked through a broker.

    Clients cannot ask KRaft controllers directly, and the "controller" of a metadata answer
    is any broker; only the quorum's own description names the active controller.
    """
    result = _run_tool(
        libs,
        QUORUM_TOOL_CLASS,
        "--bootstrap-server",
        bootstrap,
        "describe",
        "--status",
        secure=secure,
    )
    leader = re.search(r"^LeaderId:\s*(-?\d+)", result.stdout, re.MULTILINE)
    voters = re.search(r"^CurrentVoters:\s*(.*)$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or leader is None or voters is None:
        msg = f"Kafka at {bootstrap} did not describe its quorum: {result.stderr.strip()[-500:]}"
        raise ServiceError(msg)
    ids = tuple(sorted(int(n) for n in re.findall(r'"id":\s*(\d+)', voters.group(1))))
    return QuorumStatus(int(leader.group(1)), ids)


@dataclass(frozen=True)
class KafkaServer(RecordedServer):
    """One local Kafka node and the files it keeps under ``home``.

    With a ``controller_port`` the node is a combined broker and controller, else a broker
    only. ``voters`` is the static controller quorum (``id@host:port,...``; default: this
    node alone); ``internal_replicas`` is the replication factor of Kafka's own topics
    (consumer offsets, transactions), at most the cluster's broker count. Clients are sent to
    ``advertised_port`` when one is given (the network-fault tests put a proxy there).
    A ``secure`` node's client listener is SASL_SSL (:mod:`services.security`).
    """

    PID_NAME = "kafka.pid"
    STOP_TIMEOUT = 60.0

    host: str
    port: int
    controller_port: int | None
    home: Path
    libs: Path
    heap: str = "1g"
    node_id: int = 1
    voters: str = ""
    internal_replicas: int = 1
    advertised_port: int | None = None
    """The port clients are told to use, when it is not ``port`` (a proxy's in front)."""
    secure: SecureFiles | None = None
    properties: tuple[str, ...] = ()
    """Further ``server.properties`` lines, after kassa's own (a later line wins)."""

    @property
    def bootstrap(self) -> str:
        """The broker's client address."""
        return f"{self.host}:{self.port}"

    @property
    def roles(self) -> str:
        """``broker,controller`` or ``broker``."""
        return "broker" if self.controller_port is None else "broker,controller"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    @property
    def formatted(self) -> bool:
        """Whether the node's storage was formatted (it then keeps its cluster id and data)."""
        return (self.data_dir / "meta.properties").exists()

    @property
    def ports(self) -> dict[int, str]:
        """Each port the node listens on, and what for."""
        ports = {self.port: f"client port of Kafka node {self.node_id}"}
        if self.controller_port is not None:
            ports[self.controller_port] = f"controller port of Kafka node {self.node_id}"
        return ports

    def _config(self) -> Path:
        voters = self.voters or f"{self.node_id}@{self.host}:{self.controller_port}"
        client = "SASL_SSL" if self.secure else "PLAINTEXT"
        listeners = f"{client}://{self.host}:{self.port}"
        if self.controller_port is not None:
            listeners += f",CONTROLLER://{self.host}:{self.controller_port}"
        internal_min_isr = min(2, self.internal_replicas)
        advertised = self.advertised_port or self.port
        config = self.home / "server.properties"
        config.touch(mode=0o600)  # a secured node's file holds its inter-broker password
        config.write_text(
            "\n".join(
                [
                    f"process.roles={self.roles}",
                    f"node.id={self.node_id}",
                    f"controller.quorum.voters={voters}",
                    f"listeners={listeners}",
                    f"advertised.listeners={client}://{self.host}:{advertised}",
                    "controller.listener.names=CONTROLLER",
                    *(self.secure.broker_properties() if self.secure else PLAINTEXT_LISTENERS),
                    f"log.dirs={self.data_dir}",
                    "auto.create.topics.enable=false",
                    "num.partitions=3",
                    f"offsets.topic.replication.factor={self.internal_replicas}",
                    "offsets.topic.num.partitions=10",
                    f"transaction.state.log.replication.factor={self.internal_replicas}",
                    f"transaction.state.log.min.isr={internal_min_isr}",
                    f"share.coordinator.state.topic.replication.factor={self.internal_replicas}",
                    f"share.coordinator.state.topic.min.isr={internal_min_isr}",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.hours=-1",
                    *self.properties,
                    "",
                ]
            )
        )
        log4j = self.home / "log4j2.properties"
        log4j.write_text(
            resources.files("services").joinpath("resources/log4j2.properties").read_text()
        )
        return config

    def _java(self, main_class: str, *args: str) -> list[str]:
        java, _ = java_tools()
        return [
            java, f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dkassa.kafka.log={self.log_file}",
            "-cp", f"{self.libs}/*", main_class, *args,
        ]  # fmt: skip

    def format(self, cluster_id: str) -> None:
        """Format the node's storage for ``cluster_id`` unless it was formatted before."""
        self.home.mkdir(parents=True, exist_ok=True)
        config = self._config()
        if self.formatted:
            return
        result = subprocess.run(
            self._java(
                STORAGE_TOOL_CLASS,
                "format",
                "-t",
                cluster_id,
                "-c",
                str(config),
                *(self.secure.format_arguments() if self.secure else []),
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = result.stdout + result.stderr
            msg = f"kafka-storage format failed in {self.data_dir}: {output}"
            raise ServiceError(msg)

    def launch(self) -> int:
        """Start the (formatted) node without waiting for it; return its pid."""
        config = self._config()
        return spawn(self._java(SERVER_CLASS, str(config)), self.home / "stdout.log", self.pid_file)

    def await_answer(self, pid: int, timeout: float = 90.0) -> None:
        """Wait until the launched node ``pid`` answers clients; stop it if it never does."""
        ready = lambda: kafka_answers(self.bootstrap, timeout=1.0, secure=self.secure)  # noqa: E731
        await_ready(pid, ready, f"Kafka at {self.bootstrap}", self.log_file, timeout)
        logger.info("Kafka node %d answers at %s (pid %d)", self.node_id, self.bootstrap, pid)

    def start(self, timeout: float = 90.0) -> int:
        """Format storage if new, start the node, wait until it answers; return its pid.

        A node of a multi-node quorum answers only once a majority of the voters runs: start
        those with :meth:`launch` first, then :meth:`await_answer` each.
        """
        self.format(uuid.uuid4().hex[:22])
        pid = self.launch()
        self.await_answer(pid, timeout)
        return pid
