"""Network faults between the running stream job and its servers, through a TCP proxy of
our own (:mod:`tests.proxy`): traffic black-holed for 20 s, every connection reset, 300 ms
of latency. Within the outage limit the job never exits, never counts twice and is exact
after."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from common.settings import Settings
from services.kafka import KafkaServer
from services.redis import RedisServer
from storage.connections import open_redis
from storage.kafka.topics import ensure_topics
from tests.helpers import free_port, wait_until
from tests.jobs.stream.faults import redis_url_of
from tests.jobs.stream.helpers import (
    Load,
    assert_exact,
    caught_up,
    start_stream,
    watermark_sum,
)
from tests.proxy import TcpProxy

RATE = 300.0


def _faults(proxy: TcpProxy, child: subprocess.Popen[bytes]) -> None:
    """Hold the traffic 20 s, reset every connection, then 300 ms of latency for 10 s; the
    job must still run after each."""
    proxy.hold()
    time.sleep(20)
    proxy.heal()
    assert child.poll() is None, "the job exited during the black hole"
    time.sleep(3)
    proxy.reset()
    time.sleep(3)
    proxy.reset()
    assert child.poll() is None, "the job exited after the resets"
    proxy.delay(0.3)
    time.sleep(10)
    proxy.heal()
    assert child.poll() is None, "the job exited under latency"


def _run_through_faults(
    settings: Settings, proxy: TcpProxy, client: redis.Redis, log: Path
) -> None:
    traffic = Load(settings, 61, rate=RATE)
    child = start_stream(settings, log)
    try:
        wait_until(lambda: watermark_sum(client, settings.key_space) > 0, 120, "a first batch")
        _faults(proxy, child)
        sent = traffic.finish()
        wait_until(caught_up(client, settings), 180, "the job to catch up after the faults")
        time.sleep(2)  # a batch counted twice would show by now
        assert child.poll() is None, log.read_text()[-3000:]
        assert_exact(client, settings, sent)
    finally:
        traffic.stop.set()
        if child.poll() is None:
            child.terminate()
        status = child.wait(60)
    assert status == 0, log.read_text()[-3000:]


def test_network_faults_between_the_job_and_kafka_leave_counts_exact(
    settings: Settings,
    proxied_kafka: tuple[KafkaServer, TcpProxy],
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    _, proxy = proxied_kafka
    settings = settings.model_copy(
        update={
            "kafka_bootstrap": proxy.address,
            "metrics_port": free_port(),
            "stream_commit_interval": 1.0,
            "delivery_timeout_ms": 600_000,  # the producer waits out the black hole too
        }
    )
    ensure_topics(settings)
    _run_through_faults(settings, proxy, redis_client, tmp_path / "stream.log")


@pytest.fixture
def proxied_redis(private_redis: RedisServer) -> Iterator[TcpProxy]:
    proxy = TcpProxy(private_redis.host, private_redis.port).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_network_faults_between_the_job_and_redis_leave_counts_exact(
    settings: Settings, private_redis: RedisServer, proxied_redis: TcpProxy, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={
            "redis_url": f"redis://{proxied_redis.address}/0",
            "metrics_port": free_port(),
            "stream_commit_interval": 1.0,
        }
    )
    client = open_redis(redis_url_of(private_redis))  # the test reads Redis directly
    try:
        _run_through_faults(settings, proxied_redis, client, tmp_path / "stream.log")
    finally:
        client.close()
