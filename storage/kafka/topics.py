"""Creating kassa's Kafka topics explicitly (the broker never auto-creates them), and
describing where their partitions live."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, ConfigResource, NewTopic

from common.errors import (
    KafkaUnavailableError,
    ReplicationFactorError,
    TopicError,
    TopicNotFoundError,
)
from common.settings import Settings
from storage.kafka.access import access_error, is_refusal
from storage.kafka.config import client_config, with_token
from storage.kafka.exceptions import KafkaConfigError

logger = logging.getLogger(__name__)

MIN_INSYNC_CONFIG = "min.insync.replicas"


@dataclass(frozen=True)
class PartitionState:
    """Where one partition lives: its leader (-1: none), replicas and in-sync replicas."""

    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True)
class TopicState:
    """One topic as the cluster reports it."""

    name: str
    partitions: tuple[PartitionState, ...]
    min_insync_replicas: int | None

    @property
    def replication_factor(self) -> int:
        """Replicas of the first partition (kassa creates every partition alike)."""
        return len(self.partitions[0].replicas) if self.partitions else 0


PROBE_SECONDS = 5.0
"""How long a command waits for the broker's first answer before it gives up."""


def admin_client(settings: Settings) -> AdminClient:
    """An admin client for the configured cluster."""
    return with_token(AdminClient(client_config(settings, {"log_level": 4})))


def cluster_metadata(admin: AdminClient, settings: Settings, timeout: float) -> ClusterMetadata:
    """The cluster's metadata, or :class:`KafkaUnavailableError` naming the address."""
    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailableError(settings.kafka_bootstrap, exc) from None


def broker_problem(settings: Settings, timeout: float = PROBE_SECONDS) -> str | None:
    """Why the configured cluster does not answer a metadata request within
    ``timeout`` seconds, or None when it does (librdkafka's own log lines stay quiet).

    A cluster that answers but refuses kassa's login or TLS raises
    :class:`~storage.kafka.exceptions.KafkaAccessError`: waiting cannot fix that. Settings
    librdkafka refuses are :class:`~storage.kafka.exceptions.KafkaConfigError`.
    """
    librdkafka = _Collector()
    refusals: list[KafkaError] = []
    extra = {
        "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000)),
        "logger": librdkafka.logger,
        "error_cb": lambda error: refusals.append(error) if is_refusal(error) else None,
    }
    try:
        admin = with_token(AdminClient(client_config(settings, extra)))
    except KafkaException as exc:
        raise KafkaConfigError(exc.args[0].str()) from None
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        admin.poll(0)  # serves the log lines and errors librdkafka queued
        refused = access_error(refusals[-1], settings) if refusals else None
        if refused is not None:
            raise refused from None
        return librdkafka.last or str(exc.args[0].str())
    return None


class _Collector(logging.Handler):
    """Keeps the last line librdkafka logged, instead of printing it."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: str | None = None
        self.logger = logging.Logger("kassa.kafka-probe")  # not registered: one per probe
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        # "FAIL [rdkafka#producer-1] [thrd:...]: 127.0.0.1:9092/bootstrap: Connect to ..."
        line = record.getMessage().rpartition("]: ")[2]
        self.last = re.sub(r" \(after \d+ms in state \w+.*\)$", "", line)


def check_broker(settings: Settings, timeout: float = PROBE_SECONDS) -> None:
    """Raise :class:`KafkaUnavailableError` within about ``timeout`` seconds when the
    configured cluster does not answer."""
    problem = broker_problem(settings, timeout)
    if problem is not None:
        cause = f"no answer within {timeout:.0f} s: {problem}"
        raise KafkaUnavailableError(settings.kafka_bootstrap, cause)


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the sales and dead-letter topics if missing; return the names created.

    New topics get ``KASSA_PARTITIONS`` partitions, ``KASSA_REPLICATION_FACTOR`` replicas and
    ``min.insync.replicas`` = ``KASSA_MIN_INSYNC_REPLICAS``; a replication factor larger than
    the brokers up is refused. An existing topic is kept as it is; a different partition
    count or a smaller replication factor than configured is reported, since the topic wins.
    """
    admin = admin_client(settings)
    wanted = [settings.topic, settings.dead_letter_topic]
    metadata = cluster_metadata(admin, settings, timeout)
    existing = metadata.topics
    missing = [name for name in wanted if name not in existing]
    if missing:
        _check_replication(settings, len(metadata.brokers))
        new_topics = [
            NewTopic(
                name,
                settings.partitions,
                settings.replication_factor,
                config={MIN_INSYNC_CONFIG: str(settings.min_insync_replicas)},
            )
            for name in missing
        ]
        futures = admin.create_topics(new_topics, operation_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result(timeout)
            except KafkaException as exc:
                error = exc.args[0]
                refused = access_error(
                    error, settings, operation="CREATE", resource=f"topic {name!r}"
                )
                if refused is not None:
                    raise refused from None
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise TopicError(name, exc) from None
            logger.info(
                "created topic %s with %d partitions, replication factor %d, min ISR %d",
                name,
                settings.partitions,
                settings.replication_factor,
                settings.min_insync_replicas,
            )
        await_visible(settings, missing, timeout)
    if settings.topic in existing:
        _report_shape(settings, [p.replicas for p in existing[settings.topic].partitions.values()])
    return missing


def await_visible(settings: Settings, names: list[str], timeout: float = 30.0) -> None:
    """Wait until every broker's metadata shows ``names`` to the configured user, each
    partition with a leader.

    A new topic, or a new ACL, reaches each broker's metadata a moment after the controller
    committed it: a client asking another broker in that moment would find no topic, or be
    refused. Each broker is asked through a client of its own.
    """
    deadline = time.monotonic() + timeout
    brokers = cluster_metadata(admin_client(settings), settings, timeout).brokers.values()
    for broker in brokers:
        address = f"{broker.host}:{broker.port}"
        admin = with_token(AdminClient(client_config(settings, {"log_level": 4}, servers=address)))
        while True:
            topics = cluster_metadata(admin, settings, timeout).topics
            ready = [
                name
                for name in names
                if name in topics
                and topics[name].error is None
                and topics[name].partitions
                and all(p.leader >= 0 for p in topics[name].partitions.values())
            ]
            if len(ready) == len(names):
                break
            if time.monotonic() >= deadline:
                late = next(name for name in names if name not in ready)
                cause = (
                    f"not visible with a leader at broker {address} {timeout:.0f} s after its "
                    "creation; see the brokers' server.log"
                )
                raise TopicError(late, cause)
            time.sleep(0.05)


def _check_replication(settings: Settings, brokers: int) -> None:
    if settings.replication_factor > brokers:
        raise ReplicationFactorError(settings.replication_factor, brokers, settings.kafka_bootstrap)


def _report_shape(settings: Settings, replicas: list[list[int]]) -> None:
    if len(replicas) != settings.partitions:
        logger.warning(
            "topic %s has %d partitions, KASSA_PARTITIONS=%d; the topic wins",
            settings.topic,
            len(replicas),
            settings.partitions,
        )
    factor = min(len(copies) for copies in replicas)
    if factor < settings.replication_factor:
        logger.warning(
            "topic %s has %d replica(s) per partition, KASSA_REPLICATION_FACTOR=%d; the topic "
            "wins (add replicas with kafka-reassign-partitions or recreate the topic)",
            settings.topic,
            factor,
            settings.replication_factor,
        )


def describe_topics(
    settings: Settings, names: list[str], timeout: float = 30.0
) -> list[TopicState]:
    """Each named topic's partitions (leader, replicas, ISR) and ``min.insync.replicas``."""
    admin = admin_client(settings)
    metadata = cluster_metadata(admin, settings, timeout)
    found = [name for name in names if name in metadata.topics]
    absent = [name for name in names if name not in metadata.topics]
    if absent:
        raise TopicNotFoundError(absent)
    min_insync = _min_insync(admin, found, timeout)
    states = []
    for name in found:
        partitions = tuple(
            PartitionState(p.id, p.leader, tuple(p.replicas), tuple(sorted(p.isrs)))
            for p in sorted(metadata.topics[name].partitions.values(), key=lambda p: p.id)
        )
        states.append(TopicState(name, partitions, min_insync.get(name)))
    return states


def _min_insync(admin: AdminClient, names: list[str], timeout: float) -> dict[str, int]:
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    result = {}
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        try:
            entry = future.result(timeout).get(MIN_INSYNC_CONFIG)
        except KafkaException:
            continue  # the partitions still describe the topic; the config is a detail
        if entry is not None and entry.value is not None:
            result[resource.name] = int(entry.value)
    return result
