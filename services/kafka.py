"""A real Apache Kafka broker in KRaft mode, from the official jars on Maven Central.

The jars are resolved by Maven into ``<cache_dir>/kafka-<version>/libs`` once; the broker
runs on the machine's Java as one combined broker and controller, listening on 127.0.0.1,
with its storage formatted by Kafka's own storage tool. Topics are never auto-created.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from services.exceptions import MissingToolError, ServiceError
from services.process import RecordedServer, await_ready, spawn

logger = logging.getLogger(__name__)
_probe_logger = logging.getLogger(f"{__name__}.probe")
_probe_logger.setLevel(logging.CRITICAL)

SERVER_CLASS = "kafka.Kafka"
STORAGE_TOOL_CLASS = "kafka.tools.StorageTool"
FEATURE_TOOL_CLASS = "org.apache.kafka.tools.FeatureCommand"


def require_tool(name: str, install_hint: str) -> str:
    """The path of program ``name`` on PATH, or :class:`MissingToolError` saying how to get it."""
    path = shutil.which(name)
    if path is None:
        msg = f"'{name}' is not installed or not on PATH; install it with: {install_hint}"
        raise MissingToolError(msg)
    return path


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
    done = home / ".complete"
    if done.exists():
        return libs
    _, mvn = java_tools()
    home.mkdir(parents=True, exist_ok=True)
    template = resources.files("services").joinpath("resources/kafka-pom.xml").read_text()
    (home / "pom.xml").write_text(template.replace("@KAFKA_VERSION@", version))
    logger.info("fetching Apache Kafka %s jars from Maven Central into %s", version, libs)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(home / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip()[-2000:]
        msg = (
            f"Maven could not fetch Apache Kafka {version} (KASSA_KAFKA_VERSION); is Maven "
            f"Central reachable and the version published?\n{tail}"
        )
        raise ServiceError(msg)
    if not (libs / f"kafka_2.13-{version}.jar").exists():
        msg = f"Maven finished but {libs} has no kafka_2.13-{version}.jar; delete {home} and retry"
        raise ServiceError(msg)
    done.write_text(version)
    return libs


def kafka_answers(bootstrap: str, timeout: float = 2.0) -> bool:
    """Whether a Kafka cluster answers a metadata request at ``bootstrap``."""
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "socket.connection.setup.timeout.ms": 1000,
            "logger": _probe_logger,  # "connection refused" is the expected answer here
        }
    )
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def metadata_version(libs: Path, bootstrap: str) -> str:
    """The ``metadata.version`` the broker at ``bootstrap`` reports (asked with Kafka's tool)."""
    java, _ = java_tools()
    result = subprocess.run(
        [java, "-cp", f"{libs}/*", FEATURE_TOOL_CLASS, "--bootstrap-server", bootstrap, "describe"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    found = re.search(r"metadata\.version\s.*FinalizedVersionLevel:\s*(\S+)", result.stdout)
    if result.returncode != 0 or found is None:
        msg = f"Kafka at {bootstrap} did not describe its features: {result.stderr.strip()[-500:]}"
        raise ServiceError(msg)
    return found.group(1)


@dataclass(frozen=True)
class KafkaServer(RecordedServer):
    """One local Kafka broker+controller and the files it keeps under ``home``."""

    PID_NAME = "kafka.pid"
    STOP_TIMEOUT = 60.0

    host: str
    port: int
    controller_port: int
    home: Path
    libs: Path
    heap: str = "1g"

    @property
    def bootstrap(self) -> str:
        """The broker's client address."""
        return f"{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    def _config(self) -> Path:
        config = self.home / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{self.host}:{self.controller_port}",
                    f"listeners=PLAINTEXT://{self.host}:{self.port},"
                    f"CONTROLLER://{self.host}:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.data_dir}",
                    "auto.create.topics.enable=false",
                    "num.partitions=3",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=10",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.hours=-1",
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

    def start(self, timeout: float = 90.0) -> int:
        """Format storage if new, start the broker, wait until it answers; return its pid."""
        self.home.mkdir(parents=True, exist_ok=True)
        config = self._config()
        if not (self.data_dir / "meta.properties").exists():
            cluster_id = uuid.uuid4().hex[:22]
            result = subprocess.run(
                self._java(STORAGE_TOOL_CLASS, "format", "-t", cluster_id, "-c", str(config)),
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                output = result.stdout + result.stderr
                msg = f"kafka-storage format failed in {self.data_dir}: {output}"
                raise ServiceError(msg)
        pid = spawn(self._java(SERVER_CLASS, str(config)), self.home / "stdout.log", self.pid_file)
        ready = lambda: kafka_answers(self.bootstrap, timeout=1.0)  # noqa: E731
        await_ready(pid, ready, f"Kafka at {self.bootstrap}", self.log_file, timeout)
        logger.info("Kafka answers at %s (pid %d)", self.bootstrap, pid)
        return pid
