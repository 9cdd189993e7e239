"""``/healthz`` says why the job is unwell; each replica claims its own group.instance.id."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from common.metrics import MetricsServer
from common.settings import Settings
from jobs.stream.membership import claimed_instance_id
from jobs.stream.metrics import StreamMetrics
from tests.helpers import free_port
from tests.jobs.stream.helpers import health


def test_a_running_job_with_partitions_is_healthy() -> None:
    metrics = StreamMetrics()
    metrics.state = "running"
    metrics.record_assigned([0, 2])
    assert metrics.health() == (
        200,
        {"state": "running", "reasons": [], "partitions": [0, 2], "seconds_since_last_batch": None},
    )


def test_each_problem_is_a_reason_for_503() -> None:
    metrics = StreamMetrics(unassigned_limit=0.05, stuck_limit=0.05)
    metrics.state = "waiting for Kafka"
    metrics.record_kafka(reachable=False)
    opened = time.monotonic()
    metrics.watch_writers(lambda: opened)
    time.sleep(0.1)
    metrics.watch_redis(f"redis://127.0.0.1:{free_port()}/0")
    try:
        status, body = metrics.health()
    finally:
        metrics.close()
    assert status == 503
    reasons = body["reasons"]
    assert reasons[0] == "the job is waiting for Kafka"
    assert reasons[1].startswith("Kafka unreachable for ")
    assert reasons[2].startswith("no partition assigned for ")
    assert reasons[3].startswith("a batch has waited ")
    assert reasons[4].startswith("Redis unreachable: ")
    metrics.state = "running"
    metrics.record_kafka(reachable=True)
    metrics.record_assigned([1])
    metrics.watch_writers(lambda: None)
    assert metrics.health()[0] == 200
    metrics.record_revoked([1])
    time.sleep(0.1)
    assert metrics.health()[1]["reasons"][0].startswith("no partition assigned for ")


def test_healthz_asks_redis_at_each_request() -> None:
    metrics = StreamMetrics()
    metrics.state = "running"
    metrics.record_assigned([0])
    metrics.watch_redis(f"redis://127.0.0.1:{free_port()}/0")
    server = MetricsServer(metrics, 0)
    server.start()
    try:
        status, body = health(server.port)
    finally:
        server.stop()
        metrics.close()
    assert status == 503
    [reason] = body["reasons"]  # type: ignore[misc]
    assert reason.startswith("Redis unreachable: ")


def test_the_metrics_endpoint_binds_the_loopback_by_default() -> None:
    assert Settings().metrics_host == "127.0.0.1"


def test_replicas_sharing_a_state_folder_take_the_lowest_free_number(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    host = socket.gethostname()
    with claimed_instance_id(settings) as first, claimed_instance_id(settings) as second:
        assert (first, second) == (f"{host}-0", f"{host}-1")
    with claimed_instance_id(settings) as again:
        assert again == f"{host}-0"  # released when its holder ended (or died)
    named = settings.model_copy(update={"stream_instance_id": "till-7"})
    with claimed_instance_id(named) as chosen:
        assert chosen == "till-7"
    dynamic = settings.model_copy(update={"stream_static_membership": False})
    with claimed_instance_id(dynamic) as none:
        assert none is None
