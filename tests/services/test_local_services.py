"""``kassa services``: a real Apache Kafka broker and redis-server, started once, stopped clean."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from common.settings import Settings
from services.kafka import kafka_answers, metadata_version
from services.process import is_alive
from storage.connections import open_redis
from storage.kafka.config import client_config
from storage.kafka.topics import admin_client
from tests.conftest import Services
from tests.helpers import free_port, settings_env
from tests.services.helpers import kassa, pids_in


def test_the_broker_is_apache_kafka_4_and_reports_its_version(services: Services) -> None:
    version = metadata_version(services.kafka.libs, services.kafka.bootstrap)
    assert version.startswith("4.")
    pid = services.kafka.pid
    assert pid is not None
    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"kafka.Kafka" in command
    assert any(b"kafka_2.13" in part or b"/libs/*" in part for part in command)


def test_messages_round_trip_through_a_topic_kassa_created(settings: Settings) -> None:
    topics = admin_client(settings).list_topics(timeout=10).topics
    assert len(topics[settings.topic].partitions) == 3
    producer = Producer(client_config(settings, {"acks": "all"}))
    sent = [f"checkout-{n}".encode() for n in range(20)]
    for value in sent:
        producer.produce(settings.topic, value, partition=0)
    assert producer.flush(10) == 0

    consumer = Consumer(
        client_config(settings, {"group.id": settings.consumer_group,
         "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    )  # fmt: skip
    consumer.assign([TopicPartition(settings.topic, 0, 0)])
    received = []
    while True:
        message = consumer.poll(10)
        assert message is not None, "timed out before the end of the partition"
        if message.error():
            break
        received.append(message.value())
    consumer.close()
    assert received == sent


def test_the_broker_never_creates_topics_by_itself(settings: Settings) -> None:
    missing = f"never_created_{uuid.uuid4().hex}"
    producer = Producer(client_config(settings, {"message.timeout.ms": 3000}))
    errors = []
    producer.produce(missing, b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None
    assert missing not in admin_client(settings).list_topics(timeout=10).topics


def test_redis_keeps_an_append_only_file(redis_client: redis.Redis) -> None:
    assert redis_client.config_get("appendonly") == {"appendonly": "yes"}
    assert redis_client.config_get("appendfsync") == {"appendfsync": "everysec"}


@pytest.fixture
def fresh_env(tmp_path: Path) -> dict[str, str]:
    """Settings for a second, not yet started pair of services on free ports."""
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        state_dir=tmp_path / "state",
        kafka_heap="384m",
    )
    return settings_env(settings)


def test_up_twice_starts_nothing_twice_and_down_leaves_no_process(
    fresh_env: dict[str, str],
) -> None:
    first = kassa("services", "up", env=fresh_env)
    assert first.returncode == 0, first.stderr
    started = pids_in(first.stdout)
    assert set(started) == {"kafka-1", "redis"}
    assert first.stdout.count(" started ") == 2
    try:
        second = kassa("services", "up", env=fresh_env)
        assert second.returncode == 0, second.stderr
        assert " started " not in second.stdout
        assert pids_in(second.stdout) == started

        status = kassa("services", "status", env=fresh_env)
        assert status.returncode == 0, status.stderr
        assert "Apache Kafka 4." in status.stdout
        assert "Redis 7." in status.stdout
        assert "appendonly on" in status.stdout
    finally:
        down = kassa("services", "down", env=fresh_env)
    assert down.returncode == 0, down.stderr
    assert down.stdout.count(" stopped") == 2
    for pid in started.values():
        assert not is_alive(pid)
    assert kassa("services", "status", env=fresh_env).returncode == 1


def test_up_reuses_services_that_already_answer(settings: Settings) -> None:
    env = settings_env(settings.model_copy(update={"state_dir": settings.state_dir / "other"}))
    result = kassa("services", "up", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" reused ") == 2
    down = kassa("services", "down", env=env)
    assert down.stdout.count(" down") == 2
    client = open_redis(settings.redis_url)
    assert client.ping()


def test_missing_redis_server_is_named_with_the_command_that_installs_it(
    tmp_path: Path, fresh_env: dict[str, str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("java", "mvn"):
        found = subprocess.run(["which", tool], capture_output=True, text=True, check=True)
        os.symlink(found.stdout.strip(), bin_dir / tool)
    result = kassa("services", "up", env={**fresh_env, "PATH": str(bin_dir)})
    assert result.returncode == 3
    assert "'redis-server' is not installed" in result.stderr
    assert "apt-get install redis-server" in result.stderr
    assert not list(Path(fresh_env["KASSA_STATE_DIR"]).rglob("kafka.pid"))


def test_nothing_answers_where_no_broker_listens() -> None:
    assert not kafka_answers(f"127.0.0.1:{free_port()}", timeout=1.0)
