"""``kassa services``: a real Apache Kafka broker and redis-server, started once, stopped clean."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from common.settings import Settings
from services.kafka import kafka_answers, metadata_version
from services.process import is_alive
from services.redis import RedisServer
from storage.connections import open_redis
from storage.kafka.config import client_config
from storage.kafka.topics import admin_client
from tests.conftest import Services
from tests.helpers import free_port, login_url, settings_env
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
    client = open_redis(settings)
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


@pytest.fixture
def locked_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """The session's Kafka (reused by ``up``) and a Redis on a free port whose URL carries
    a password, with a state folder of its own."""
    password = f"s3cret-{uuid.uuid4().hex}"
    return settings_env(settings) | {
        "KASSA_REDIS_URL": f"redis://:{password}@127.0.0.1:{free_port()}/0",
        "KASSA_STATE_DIR": str(tmp_path / "locked-state"),
    }


def test_up_starts_redis_requiring_the_urls_password_and_status_logs_in_with_it(
    locked_env: dict[str, str],
) -> None:
    url = locked_env["KASSA_REDIS_URL"]
    password = urlsplit(url).password
    assert password is not None
    up = kassa("services", "up", env=locked_env)
    assert up.returncode == 0, up.stderr
    try:
        assert "redis" in pids_in(up.stdout)
        assert " started " in up.stdout
        status = kassa("services", "status", env=locked_env)
        assert status.returncode == 0, status.stdout
        assert re.search(r"^redis +\S+ +running +Redis 7\.", status.stdout, re.MULTILINE)
        assert "password (KASSA_REDIS_URL or KASSA_REDIS_PASSWORD)" in status.stdout

        with pytest.raises(redis.AuthenticationError):
            open_redis(url.replace(f":{password}@", "")).ping()
        assert open_redis(url).ping()
        pid = pids_in(up.stdout)["redis"]
        assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        config = Path(locked_env["KASSA_STATE_DIR"]) / "redis" / "redis.conf"
        assert config.stat().st_mode & 0o777 == 0o600
        for output in (up.stdout, up.stderr, status.stdout, status.stderr):
            assert password not in output

        changed = locked_env | {"KASSA_REDIS_URL": url.replace(password, "changed-password")}
        refused = kassa("services", "status", env=changed)
        assert refused.returncode == 1
        assert re.search(r"^redis +\S+ +refused .*'kassa services down' then 'kassa services up'",
                         refused.stdout, re.MULTILINE)  # fmt: skip
    finally:
        down = kassa("services", "down", env=locked_env)
    assert down.returncode == 0, down.stderr
    assert re.search(r"^redis +\S+ +stopped", down.stdout, re.MULTILINE)


def test_up_starts_redis_requiring_the_password_of_kassa_redis_password_file(
    locked_env: dict[str, str], tmp_path: Path
) -> None:
    """The password kept in a file (``KASSA_REDIS_PASSWORD_FILE``, as docs/security.md
    advises) is the one the started Redis requires, as a password in the URL is."""
    url = locked_env["KASSA_REDIS_URL"]
    password = urlsplit(url).password
    assert password is not None
    bare = url.replace(f":{password}@", "")
    secret = tmp_path / "redis-password"
    secret.write_text(password + "\n")
    env = locked_env | {"KASSA_REDIS_URL": bare, "KASSA_REDIS_PASSWORD_FILE": str(secret)}
    up = kassa("services", "up", env=env)
    assert up.returncode == 0, up.stderr
    try:
        with pytest.raises(redis.AuthenticationError):
            open_redis(bare).ping()
        assert open_redis(url).ping()
        status = kassa("services", "status", env=env)
        assert status.returncode == 0, status.stdout
        assert re.search(r"^redis +\S+ +running +Redis 7\.", status.stdout, re.MULTILINE)
        for output in (up.stdout, up.stderr, status.stdout, status.stderr):
            assert password not in output
    finally:
        down = kassa("services", "down", env=env)
    assert down.returncode == 0, down.stderr


def test_a_redis_that_refuses_the_password_is_reported_so_with_the_fix(
    locked_redis: RedisServer, settings: Settings, tmp_path: Path
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    env = settings_env(settings) | {
        "KASSA_REDIS_URL": login_url(locked_redis, wrong),
        "KASSA_STATE_DIR": str(tmp_path / "other-state"),
    }
    status = kassa("services", "status", env=env)
    up = kassa("services", "up", env=env)

    assert status.returncode == 1
    [line] = [line for line in status.stdout.splitlines() if line.startswith("redis")]
    assert re.match(rf"redis +{locked_redis.address} +refused +Redis at", line)
    assert "put its password in KASSA_REDIS_URL" in line
    assert up.returncode == 2
    assert "answers but refuses the user name and password of KASSA_REDIS_URL" in up.stderr
    assert "another program" not in up.stderr
    assert "put its password in KASSA_REDIS_URL" in up.stderr
    for output in (status.stdout, status.stderr, up.stdout, up.stderr):
        assert wrong not in output
        assert locked_redis.password is not None
        assert locked_redis.password.get_secret_value() not in output


def test_up_refuses_a_redis_user_other_than_default_in_one_line(
    locked_env: dict[str, str],
) -> None:
    url = locked_env["KASSA_REDIS_URL"].replace("redis://:", "redis://bob:")
    result = kassa("services", "up", env=locked_env | {"KASSA_REDIS_URL": url})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "only sets the default user's password" in result.stderr
    assert not (Path(locked_env["KASSA_STATE_DIR"]) / "redis" / "redis.pid").exists()
