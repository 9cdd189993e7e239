"""``kassa services up | down | status``: the local Kafka and Redis kassa runs against."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from common.settings import Settings
from common.topics import ensure_topics
from services.exceptions import ServiceError
from services.kafka import KafkaServer, ensure_jars, java_tools, kafka_answers, metadata_version
from services.redis import RedisServer, redis_info, redis_server_binary

logger = logging.getLogger(__name__)

State = Literal["started", "running", "reused", "stopped", "down"]


@dataclass(frozen=True)
class ServiceStatus:
    """What one service is doing, for ``status`` and as the result of ``up``/``down``."""

    name: str
    address: str
    state: State
    version: str = ""
    pid: int | None = None
    data_dir: Path | None = None
    detail: str = ""


def kafka_server(settings: Settings, libs: Path | None = None) -> KafkaServer:
    """The local broker described by the settings (first address of the bootstrap list)."""
    host, _, port = settings.kafka_bootstrap.split(",")[0].strip().rpartition(":")
    return KafkaServer(
        host=host,
        port=int(port),
        controller_port=settings.kafka_controller_port,
        home=settings.state_dir / "kafka",
        libs=libs or ensure_jars(settings.cache_dir, settings.kafka_version),
        heap=settings.kafka_heap,
    )


def redis_server(settings: Settings) -> RedisServer:
    """The local redis-server described by ``KASSA_REDIS_URL``."""
    url = urlsplit(settings.redis_url)
    return RedisServer(
        host=url.hostname or "127.0.0.1",
        port=url.port or 6379,
        home=settings.state_dir / "redis",
        appendfsync=settings.redis_appendfsync,
    )


def check_tools() -> None:
    """Fail before starting anything if Java, Maven or redis-server is missing."""
    java_tools()
    redis_server_binary()


def up(settings: Settings) -> list[ServiceStatus]:
    """Start Kafka and Redis unless something compatible already answers; create the topics."""
    check_tools()
    statuses = [_up_kafka(settings), _up_redis(settings)]
    ensure_topics(settings)
    return statuses


def _up_kafka(settings: Settings) -> ServiceStatus:
    server = kafka_server(settings)
    if kafka_answers(server.bootstrap):
        pid = server.pid
        state: State = "running" if pid else "reused"
        return ServiceStatus("kafka", server.bootstrap, state, pid=pid, data_dir=_own(server))
    pid = server.start()
    version = f"Apache Kafka {settings.kafka_version}"
    return ServiceStatus("kafka", server.bootstrap, "started", version, pid, server.data_dir)


def _up_redis(settings: Settings) -> ServiceStatus:
    server = redis_server(settings)
    address = f"{server.host}:{server.port}"
    info = redis_info(server.host, server.port)
    if info is not None:
        pid = server.pid
        state: State = "running" if pid else "reused"
        return ServiceStatus(
            "redis", address, state, _redis_version(info), pid, _own(server), _aof(info)
        )
    pid = server.start()
    info = redis_info(server.host, server.port) or {}
    return ServiceStatus(
        "redis", address, "started", _redis_version(info), pid, server.data_dir, _aof(info)
    )


def down(settings: Settings) -> list[ServiceStatus]:
    """Stop the services that ``up`` started; leave any others alone."""
    kafka = kafka_server(settings)
    redis = redis_server(settings)
    return [
        ServiceStatus("kafka", kafka.bootstrap, "stopped" if kafka.stop() else "down"),
        ServiceStatus("redis", f"{redis.host}:{redis.port}", "stopped" if redis.stop() else "down"),
    ]


def status(settings: Settings) -> list[ServiceStatus]:
    """Each service's address, state, version and data directory."""
    kafka = kafka_server(settings)
    redis = redis_server(settings)
    statuses = []
    if kafka_answers(kafka.bootstrap):
        try:
            version = f"metadata.version {metadata_version(kafka.libs, kafka.bootstrap)}"
        except ServiceError as exc:
            version = f"unknown ({exc})"
        if kafka.pid:
            version = f"Apache Kafka {settings.kafka_version}, {version}"
        statuses.append(
            ServiceStatus(
                "kafka", kafka.bootstrap, "running" if kafka.pid else "reused", version,
                kafka.pid, _own(kafka),
            )
        )  # fmt: skip
    else:
        statuses.append(ServiceStatus("kafka", kafka.bootstrap, "down"))
    address = f"{redis.host}:{redis.port}"
    info = redis_info(redis.host, redis.port)
    if info is None:
        statuses.append(ServiceStatus("redis", address, "down"))
    else:
        state: State = "running" if redis.pid else "reused"
        statuses.append(
            ServiceStatus(
                "redis", address, state, _redis_version(info), redis.pid, _own(redis), _aof(info)
            )
        )
    return statuses


def _own(server: KafkaServer | RedisServer) -> Path | None:
    return server.data_dir if server.pid else None


def _redis_version(info: dict[str, object]) -> str:
    return f"Redis {info.get('redis_version', '?')}"


def _aof(info: dict[str, object]) -> str:
    return "appendonly on" if info.get("aof_enabled") == 1 else "appendonly OFF"
