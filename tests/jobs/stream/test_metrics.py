"""The stream job's metrics tell the truth: a replica publishes per-partition series only for
the partitions it holds, the freshness gauge is the age of the newest applied sale, and the
lag in seconds is how long ago the log ended where the job stands."""

from __future__ import annotations

import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
import redis
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from common.schema import Checkout
from common.settings import Settings
from jobs.stream.lag import LogEnd
from producers.publish import publish
from storage.kafka.config import client_config
from tests.helpers import free_port, wait_until
from tests.jobs.stream.helpers import (
    caught_up,
    end_offsets,
    health,
    start_stream,
    stop_stream,
    valid_checkouts,
    watermarks,
)

PER_PARTITION = (
    "kassa_stream_applied_offset",
    "kassa_stream_consumer_lag",
    "kassa_stream_redis_behind",
    "kassa_stream_freshness_seconds",
    "kassa_stream_lag_seconds",
)
"""Every per-partition series of the stream job."""


def test_the_lag_in_seconds_is_how_long_ago_the_log_ended_where_the_job_stands() -> None:
    end = LogEnd()
    assert end.lag_seconds(0, now=100.0) is None  # no sample yet
    end.observe(10.0, 0)
    end.observe(20.0, 100)  # offsets 0..99 arrived between t=10 and t=20
    end.observe(30.0, 100)
    assert end.lag_seconds(100, now=35.0) == 0.0  # everything the log held is applied
    assert end.lag_seconds(49, now=35.0) == 35.0 - 15.0  # offset 49 arrived at t=15
    assert end.lag_seconds(0, now=35.0) == pytest.approx(35.0 - 10.1)
    end.observe(40.0, 5)  # a recreated topic: the old history is no guide
    assert end.lag_seconds(0, now=45.0) == 5.0  # a lower bound: the age of the oldest sample


def _scrape(port: int) -> dict[str, dict[str, float]]:
    """Per-partition series of the job on ``port``: metric name -> partition -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found: dict[str, dict[str, float]] = {name: {} for name in PER_PARTITION}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in found:
                found[sample.name][sample.labels["partition"]] = sample.value
    return found


def _series(port: int, name: str) -> int:
    """How many partitions' series of ``name`` the job on ``port`` exports (0 until it
    answers)."""
    try:
        return len(_scrape(port)[name])
    except OSError:
        return 0


def _held(port: int) -> set[str]:
    """The partitions the job on ``port`` holds, as ``/healthz`` lists them (none until it
    answers)."""
    status, body = health(port)
    partitions = body.get("partitions", []) if status == 200 else []
    assert isinstance(partitions, list)
    return {str(partition) for partition in partitions}


class _SteadyReplay:
    """Checkouts dated ``age`` seconds before now (a replay of the recent past), published at
    ``rate`` a second from a thread until stopped."""

    def __init__(self, settings: Settings, rate: float, age: float = 0.0) -> None:
        self._settings = settings
        self._rate = rate
        self._age = timedelta(seconds=age)
        self._templates = valid_checkouts(500, 7)
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _dated_now(self) -> Iterator[Checkout]:
        while True:
            for template in self._templates:
                yield msgspec.structs.replace(template, occurred_at=datetime.now(UTC) - self._age)

    def _run(self) -> None:
        self.report = publish(self._settings, self._dated_now(), rate=self._rate, stop=self.stop)

    def finish(self) -> None:
        self.stop.set()
        self._thread.join()
        assert self.report.failed == 0, self.report.summary()


def _timestamps(settings: Settings) -> dict[tuple[int, int], float]:
    """(partition, offset) -> the record's timestamp in seconds, read back from Kafka."""
    ends = end_offsets(settings)
    consumer = Consumer(client_config(settings, {"group.id": "timestamps"}))
    consumer.assign([TopicPartition(settings.topic, p, 0) for p in ends if ends[p] > 0])
    found: dict[tuple[int, int], float] = {}
    try:
        while len(found) < sum(ends.values()):
            message = consumer.poll(10)
            assert message is not None, "the topic did not answer within 10 s"
            assert message.error() is None, message.error()
            found[message.partition(), message.offset()] = message.timestamp()[1] / 1000
    finally:
        consumer.close()
    return found


def test_a_replica_drops_the_series_of_partitions_a_rebalance_took_from_it(
    settings: Settings, tmp_path: Path
) -> None:
    port_a, port_b = free_port(), free_port()
    first = settings.model_copy(update={"metrics_port": port_a, "stream_commit_interval": 0.2})
    second = first.model_copy(update={"metrics_port": port_b})
    load = _SteadyReplay(first, rate=300.0)
    replica_a = start_stream(first, tmp_path / "a.log")
    replica_b = None
    try:
        every = {"0", "1", "2"}
        wait_until(lambda: _held(port_a) == every, 60, "the first replica to hold every partition")
        wait_until(
            lambda: all(_series(port_a, name) == len(every) for name in PER_PARTITION),
            60,
            "every per-partition series of the first replica (librdkafka statistics: 5 s)",
        )
        replica_b = start_stream(second, tmp_path / "b.log")
        wait_until(
            lambda: _held(port_b) and _held(port_a) | _held(port_b) == every,
            60,
            "the group to share the partitions between the two replicas",
        )
        held_a, held_b = _held(port_a), _held(port_b)
        assert held_a and held_b and held_a | held_b == every and not held_a & held_b
        series_a, series_b = _scrape(port_a), _scrape(port_b)
        for name in ("kassa_stream_applied_offset", "kassa_stream_redis_behind"):
            assert set(series_a[name]) == held_a, (name, series_a[name])
            assert set(series_b[name]) == held_b, (name, series_b[name])
        for name in PER_PARTITION:  # the rest appear with the first batch or statistics
            assert set(series_a[name]) <= held_a, (name, series_a[name], held_a)
    finally:
        load.finish()
        for replica in (replica_a, replica_b):
            if replica is not None:
                replica.send_signal(signal.SIGTERM)
                assert replica.wait(30) == 0


def test_the_freshness_gauge_is_the_age_of_the_newest_applied_sale_within_a_second(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    job = settings.model_copy(update={"metrics_port": port})
    load = _SteadyReplay(job, rate=200.0, age=600.0)  # not the time the batches were written
    child = start_stream(job, tmp_path / "stream.log")
    samples: list[tuple[dict[int, int], float, dict[str, float]]] = []
    try:
        wait_until(lambda: _series(port, "kassa_stream_freshness_seconds") == 3, 60, "gauges")
        for _ in range(10):  # under the steady replay
            marks = watermarks(redis_client, job.key_space)
            scraped = _scrape(port)["kassa_stream_freshness_seconds"]
            samples.append((marks, time.time(), scraped))
            time.sleep(0.3)
        load.finish()
        wait_until(caught_up(redis_client, job), 60, "the job to apply every record")
        for _ in range(2):  # idle: the newest sale gets older with the clock
            time.sleep(1.5)
            samples.append(
                (
                    watermarks(redis_client, job.key_space),
                    time.time(),
                    _scrape(port)["kassa_stream_freshness_seconds"],
                )
            )
    finally:
        load.stop.set()
        assert stop_stream(child) == 0
    stamps = _timestamps(job)
    for marks, at, scraped in samples:
        for partition, value in scraped.items():
            truth = at - stamps[int(partition), marks[int(partition)]]
            assert abs(value - truth) < 1.0, (partition, value, truth)
            assert truth > 599.0
    assert samples[-1][2]["0"] > samples[-2][2]["0"] + 1.0  # it grows while nothing arrives
