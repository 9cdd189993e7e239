"""The stream job as a service: broker outages, lost and fenced membership, one-line exits."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import redis

from common.settings import Settings
from services.kafka import KafkaServer
from services.redis import RedisServer
from storage.connections import open_redis
from storage.kafka.topics import ensure_topics
from tests.helpers import free_port, run_kassa, settings_env, truth, wait_until
from tests.jobs.stream.faults import redis_url_of
from tests.jobs.stream.helpers import (
    Load,
    assert_exact,
    caught_up,
    days_of,
    error_lines,
    health,
    live_figures,
    start_stream,
    stop_stream,
    topic_checkouts,
    watermark_sum,
)


def _partitions(port: int) -> list[int]:
    partitions = health(port)[1].get("partitions", [])
    assert isinstance(partitions, list)
    return partitions


def test_kafka_stopped_for_60_s_under_load_is_survived_with_exact_counts(
    settings: Settings, private_kafka: KafkaServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    settings = settings.model_copy(
        update={
            "kafka_bootstrap": private_kafka.bootstrap,
            "metrics_port": port,
            "stream_commit_interval": 1.0,
            "delivery_timeout_ms": 600_000,  # the producer waits out the outage too
        }
    )
    ensure_topics(settings)
    log = tmp_path / "stream.log"
    traffic = Load(settings, 41, rate=500.0)
    child = start_stream(settings, log)
    try:
        wait_until(
            lambda: watermark_sum(redis_client, settings.key_space) > 0, 120, "a first batch"
        )
        assert health(port)[0] == 200
        private_kafka.stop()
        try:
            stopped = time.monotonic()
            wait_until(lambda: health(port)[0] == 503, 30, "/healthz to report the outage")
            reasons = health(port)[1]["reasons"]
            assert any("Kafka unreachable" in r for r in reasons), reasons  # type: ignore[attr-defined]
            while time.monotonic() - stopped < 60:
                assert child.poll() is None, log.read_text()[-3000:]
                time.sleep(1)
            assert health(port)[0] == 503
        finally:
            private_kafka.start()
        wait_until(lambda: health(port)[0] == 200, 180, "/healthz to recover after the outage")
        checkouts = traffic.finish()
        wait_until(caught_up(redis_client, settings), 180, "the job to catch up")
        assert child.poll() is None, log.read_text()[-3000:]
    finally:
        traffic.finish()
        status = stop_stream(child)
    assert status == 0, log.read_text()[-3000:]
    # The producer may have written some checkouts twice across the broker's restart (its
    # retries): the job counts what the topic holds, and nothing sent may be missing.
    stored = topic_checkouts(settings)
    assert {c.transaction_id for c in stored} == {c.transaction_id for c in checkouts}
    expected = truth(stored, settings.zone)
    assert live_figures(redis_client, days_of(expected), settings.key_space) == expected


def test_an_outage_beyond_the_limit_ends_the_job_with_one_line_and_status_4(
    settings: Settings, private_kafka: KafkaServer, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={
            "kafka_bootstrap": private_kafka.bootstrap,
            "metrics_port": 0,
            "stream_outage_limit_seconds": 10,
            "stream_session_timeout_ms": 6000,
        }
    )
    ensure_topics(settings)
    log = tmp_path / "stream.log"
    child = start_stream(settings, log)
    try:
        wait_until(lambda: "assigned partitions" in log.read_text(), 120, "an assignment")
        private_kafka.stop()
        status = child.wait(180)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    output = log.read_text()
    assert status == 4, output[-3000:]
    assert "Traceback" not in output
    [line] = error_lines(log)
    assert "cannot reach Kafka at KASSA_KAFKA_BOOTSTRAP=" in line
    assert "KASSA_STREAM_OUTAGE_LIMIT_SECONDS=10" in line


def test_redis_stopped_for_20_s_under_load_is_survived_with_exact_counts(
    settings: Settings, private_redis: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    settings = settings.model_copy(
        update={
            "redis_url": redis_url_of(private_redis),
            "metrics_port": port,
            "stream_commit_interval": 1.0,
        }
    )
    client = open_redis(settings)
    log = tmp_path / "stream.log"
    traffic = Load(settings, 47, rate=500.0)
    child = start_stream(settings, log)
    try:
        wait_until(lambda: watermark_sum(client, settings.key_space) > 0, 120, "a first batch")
        private_redis.stop()
        try:
            stopped = time.monotonic()
            wait_until(lambda: health(port)[0] == 503, 30, "/healthz to report Redis down")
            reasons = health(port)[1]["reasons"]
            assert any("Redis unreachable" in r for r in reasons), reasons  # type: ignore[attr-defined]
            while time.monotonic() - stopped < 20:
                assert child.poll() is None, log.read_text()[-3000:]
                time.sleep(1)
        finally:
            private_redis.start()
        wait_until(lambda: health(port)[0] == 200, 120, "/healthz to recover after Redis")
        checkouts = traffic.finish()
        wait_until(caught_up(client, settings), 120, "the job to catch up")
        assert child.poll() is None, log.read_text()[-3000:]
    finally:
        traffic.finish()
        status = stop_stream(child)
    assert status == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
    assert_exact(client, settings, checkouts)


def test_a_redis_outage_beyond_the_limit_ends_the_job_with_one_line_and_status_3(
    settings: Settings, private_redis: RedisServer, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={
            "redis_url": redis_url_of(private_redis),
            "metrics_port": 0,
            "stream_outage_limit_seconds": 10,
        }
    )
    log = tmp_path / "stream.log"
    traffic = Load(settings, 53, rate=50.0)  # a job without traffic has nothing to write
    child = start_stream(settings, log)
    try:
        wait_until(lambda: "assigned partitions" in log.read_text(), 120, "an assignment")
        private_redis.stop()
        status = child.wait(180)
    finally:
        traffic.finish()
        if child.poll() is None:
            child.kill()
            child.wait(10)
    output = log.read_text()
    assert status == 3, output[-3000:]
    assert "Traceback" not in output
    [line] = error_lines(log)
    assert f"KASSA_REDIS_URL={settings.redis_url!r}" in line
    assert "KASSA_STREAM_OUTAGE_LIMIT_SECONDS=10" in line


def test_a_replica_paused_beyond_its_session_timeout_rejoins_and_counts_stay_exact(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    port_a, port_b = free_port(), free_port()
    first = settings.model_copy(
        update={
            "metrics_port": port_a,
            "stream_session_timeout_ms": 6000,
            "stream_commit_interval": 0.5,
        }
    )
    second = first.model_copy(update={"metrics_port": port_b})
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    traffic = Load(first, 43, rate=1000.0)
    replica_a = start_stream(first, log_a)
    replica_b = None
    try:
        wait_until(lambda: len(_partitions(port_a)) == 3, 120, "the first replica's partitions")
        replica_b = start_stream(second, log_b)
        wait_until(lambda: _partitions(port_b), 120, "the second replica's partitions")
        os.kill(replica_a.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: len(_partitions(port_b)) == 3, 60, "the group to drop the paused")
            time.sleep(3)
            assignments = log_a.read_text().count("assigned partitions")
        finally:
            os.kill(replica_a.pid, signal.SIGCONT)
        wait_until(
            lambda: (
                log_a.read_text().count("assigned partitions") > assignments
                and len(_partitions(port_b)) < 3
                and bool(_partitions(port_a))
            ),
            120,
            "the resumed replica to rejoin and get partitions back",
        )
        checkouts = traffic.finish()
        wait_until(caught_up(redis_client, first), 120, "the replicas to catch up")
        assert replica_a.poll() is None, log_a.read_text()[-3000:]
        assert "Traceback" not in log_a.read_text()
    finally:
        traffic.finish()
        statuses = [stop_stream(replica_a), replica_b and stop_stream(replica_b)]
    assert statuses == [0, 0], (log_a.read_text()[-3000:], log_b.read_text()[-3000:])
    assert_exact(redis_client, settings, checkouts)


def test_a_replica_fenced_by_one_with_its_instance_id_exits_6_with_one_line(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={"metrics_port": 0, "stream_instance_id": "till-1", "stream_commit_interval": 0.5}
    )
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    replica_a = start_stream(settings, log_a)
    replica_b = None
    try:
        wait_until(lambda: "assigned partitions" in log_a.read_text(), 120, "an assignment")
        replica_b = start_stream(settings, log_b)
        status = replica_a.wait(300)
    finally:
        if replica_a.poll() is None:
            replica_a.kill()
            replica_a.wait(10)
        if replica_b is not None:
            stop_stream(replica_b)
    assert status == 6, log_a.read_text()[-3000:]
    assert "Traceback" not in log_a.read_text()
    [line] = error_lines(log_a)
    assert "group.instance.id 'till-1'" in line
    assert log_a.read_text().count("the broker fenced") == 2  # restarted once, then stopped
    assert "KASSA_STREAM_INSTANCE_ID" in line


def test_start_up_without_a_broker_fails_in_seconds_with_one_line(settings: Settings) -> None:
    absent = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    started = time.monotonic()
    result = run_kassa("stream", env=settings_env(absent), timeout=60)
    assert time.monotonic() - started < 20
    assert result.returncode == 4, result.stderr
    assert result.stderr.splitlines() == [
        f"kassa: error: cannot reach Kafka at KASSA_KAFKA_BOOTSTRAP={absent.kafka_bootstrap!r} "
        f"(no answer within 5 s: {absent.kafka_bootstrap}/bootstrap: Connect to "
        f"ipv4#{absent.kafka_bootstrap} failed: Connection refused); start it with "
        "'kassa services up' or fix the address"
    ]
