"""A broker lost under load: a real three-node cluster, real dataset days, real SIGKILL.

Replication factor 3 with min ISR 2: while real days of the dataset are produced at a steady
rate, the leader of the busiest partition is killed with SIGKILL and restarted, and later
another broker is stopped cleanly. Every checkout the producer reported delivered must be
counted exactly once by the stream job (running throughout) and by the daily job, compared
with the ground truth computed from the checkouts themselves.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path

from confluent_kafka.admin import AdminClient

from common.schema import Checkout
from common.settings import Settings
from jobs.daily.job import run_day
from producers.publish import PublishReport, publish
from producers.replay import checkouts as replay
from services.cluster import KafkaCluster
from storage import parquet
from storage.connections import open_redis
from storage.kafka.config import client_config
from tests.helpers import DATASET, run_kassa, settings_env, truth, wait_until
from tests.jobs.daily.helpers import LONDON, expected_of, parquet_figures
from tests.jobs.stream.helpers import caught_up, days_of, end_offsets, live_figures, start_stream

logger = logging.getLogger(__name__)

FIRST_DAY = date(2011, 9, 1)
LAST_DAY = date(2011, 11, 30)
RATE = 150.0
"""Checkouts per second: ~8,400 checkouts of the replayed days take about a minute."""
KILL_AT, REJOINED_BY, STOP_AT, STOPPED_BY = 0.2, 0.6, 0.7, 0.9
"""Fractions of the checkouts taken: when each fault starts, and where the producer waits
(still sending what it took) until the fault before is complete, so every fault happens
under load however slow the machine is."""
NODE_TIMEOUT = 180.0


class Feed:
    """The checkouts for the producer, counted as taken, held at gates until a fault is done."""

    def __init__(self, checkouts: Sequence[Checkout], gates: dict[float, threading.Event]):
        self.checkouts = checkouts
        self.gates = {int(len(checkouts) * at): gate for at, gate in gates.items()}
        self.taken = 0

    def __iter__(self) -> Iterator[Checkout]:
        for checkout in self.checkouts:
            gate = self.gates.get(self.taken)
            if gate is not None and not gate.wait(2 * NODE_TIMEOUT):
                logger.error("gate at %d never opened; producing on", self.taken)
            self.taken += 1
            yield checkout

    def reached(self, fraction: float) -> bool:
        return self.taken >= len(self.checkouts) * fraction

    @property
    def day(self) -> date:
        """The business day of the checkout taken last."""
        return self.checkouts[max(self.taken - 1, 0)].occurred_at.astimezone(LONDON).date()


class Placement:
    """Where the test topic's partitions live, asked through one quiet admin client (it
    would log every refused connection to a dead node)."""

    def __init__(self, settings: Settings) -> None:
        self.topics = (settings.topic, settings.dead_letter_topic)
        self.admin = AdminClient(client_config(settings, {"log_level": 0}))

    def partitions(self, topic: str | None = None) -> dict[int, tuple[int, set[int]]]:
        """Partition -> (leader, in-sync replicas) of ``topic`` (the sales topic by default)."""
        name = topic or self.topics[0]
        metadata = self.admin.list_topics(name, timeout=10).topics[name]
        return {p.id: (p.leader, set(p.isrs)) for p in metadata.partitions.values()}

    def leader(self, partition: int) -> int:
        return self.partitions()[partition][0]

    def in_every_isr(self, node_id: int) -> bool:
        return all(
            node_id in isr for topic in self.topics for _, isr in self.partitions(topic).values()
        )


class Faults:
    """The faults of the test, each waiting until the cluster has taken it in."""

    def __init__(self, cluster: KafkaCluster, placement: Placement) -> None:
        self.cluster = cluster
        self.placement = placement
        self.measured: dict[str, object] = {}
        self.rejoined = threading.Event()
        self.stopped = threading.Event()

    def kill_and_restart_the_busiest_leader(self, settings: Settings, feed: Feed) -> int:
        """SIGKILL the leader of the partition with most records, restart it, wait until it
        is back in every ISR; return the node."""
        ends = end_offsets(settings)
        busiest = max(ends, key=lambda p: ends[p])
        killed = self.placement.leader(busiest)
        pid = self.cluster.node(killed).pid
        assert pid is not None
        self.measured["kill_day"] = feed.day
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)  # the node is this process' child: reap it
        started = time.monotonic()
        wait_until(
            lambda: self.placement.leader(busiest) not in (killed, -1),
            60,
            f"a new leader of partition {busiest} after node {killed} was killed",
        )
        self.measured["new_leader_after_s"] = round(time.monotonic() - started, 1)
        self.cluster.node(killed).start(NODE_TIMEOUT)
        wait_until(
            lambda: self.placement.in_every_isr(killed), NODE_TIMEOUT, f"node {killed} in ISR"
        )
        self.measured["back_in_isr_after_s"] = round(time.monotonic() - started, 1)
        self.measured["killed"] = killed
        self.rejoined.set()
        return killed

    def stop_another(self, feed: Feed, settings: Settings, killed: int) -> int:
        """Stop cleanly the node of the stream job's group coordinator (so that the job's
        commits meet the coordinator moving), or another node if that is ``killed``."""
        group = settings.consumer_group
        described = self.placement.admin.describe_consumer_groups([group])[group].result(30)
        other = described.coordinator.id
        if other == killed:
            other = next(n.node_id for n in self.cluster.nodes if n.node_id != killed)
        self.measured["stopped"] = other
        self.measured["stop_day"] = feed.day
        assert self.cluster.node(other).stop()
        self.stopped.set()
        return other

    def restart(self, node_id: int) -> None:
        self.cluster.node(node_id).start(NODE_TIMEOUT)
        wait_until(
            lambda: self.placement.in_every_isr(node_id), NODE_TIMEOUT, f"node {node_id} in ISR"
        )

    def release(self) -> None:
        self.rejoined.set()
        self.stopped.set()


def test_a_broker_killed_and_another_stopped_under_load_loses_and_doubles_nothing(
    cluster: KafkaCluster,
    cluster_settings: Settings,
    tmp_path: Path,
) -> None:
    settings = cluster_settings.model_copy(
        update={
            "timezone": "Europe/London",
            "retention_days": 36500,  # keep 2011's live keys for the comparison
            "metrics_port": 0,
            "stream_writers": 1,
        }
    )
    checkouts = list(replay(DATASET, FIRST_DAY, LAST_DAY))
    placement = Placement(settings)
    faults = Faults(cluster, placement)
    feed = Feed(checkouts, {REJOINED_BY: faults.rejoined, STOPPED_BY: faults.stopped})
    reports: list[PublishReport] = []
    producer = threading.Thread(
        target=lambda: reports.append(publish(settings, feed, rate=RATE)), name="producer"
    )
    client = open_redis(settings)
    log = tmp_path / "stream.log"
    stream = start_stream(settings, log)
    try:
        wait_until(lambda: "assigned partitions" in log.read_text(), 120, "the stream job")
        producer.start()
        wait_until(lambda: feed.reached(KILL_AT), 120, "the producer to reach the first fault")
        killed = faults.kill_and_restart_the_busiest_leader(settings, feed)
        wait_until(lambda: feed.reached(STOP_AT), NODE_TIMEOUT, "the producer to reach the stop")
        other = faults.stop_another(feed, settings, killed)
        # the daily job reads days produced before the kill while a broker is down
        kill_day = faults.measured["kill_day"]
        assert isinstance(kill_day, date)
        early_days = (kill_day - timedelta(days=1), kill_day)
        manifests = {day: run_day(settings, day).manifest for day in early_days}
        producer.join(timeout=600)
        assert not producer.is_alive(), "the producer never finished"
        assert stream.poll() is None, f"the stream job exited:\n{log.read_text()[-3000:]}"
        faults.restart(other)
        wait_until(caught_up(client, settings), 180, "the stream job to catch up")
    finally:
        faults.release()
        producer.join(timeout=120)
        stream.terminate()
        exit_code = stream.wait(60)
    measured = faults.measured
    measured["commit_retries"] = log.read_text().count("the group coordinator is moving")
    print(f"failover: {measured}; producer: {reports[0].summary() if reports else None}")
    assert exit_code == 0, log.read_text()[-3000:]

    (report,) = reports
    assert (report.sent, report.delivered, report.failed) == (len(checkouts),) * 2 + (0,), (
        report.summary()
    )
    expected = truth(checkouts, LONDON)
    assert live_figures(client, days_of(expected), settings.key_space) == expected

    stop_day = measured["stop_day"]
    assert isinstance(stop_day, date)
    manifests[stop_day] = run_day(settings, stop_day).manifest
    for day, manifest in manifests.items():
        assert manifest.complete is True
        assert manifest.counts.duplicates == 0, day
        path = parquet.table_path(settings.data_dir, "daily_item_sales", day)
        assert parquet_figures(path) == expected_of(checkouts, day, LONDON), day

    # Quix names its changelog and repartition topics after the consumer group (and the
    # topic is named like the group here): a stateless job must have made none.
    names = placement.admin.list_topics(timeout=10).topics
    made = {name for name in names if settings.consumer_group in name}
    assert made == {settings.topic, settings.dead_letter_topic}


def test_with_two_of_three_brokers_down_the_producer_fails_loudly_and_in_time(
    cluster: KafkaCluster, cluster_settings: Settings
) -> None:
    settings = cluster_settings.model_copy(update={"delivery_timeout_ms": 5000})
    first, *others = cluster.nodes
    try:
        for node in others:
            assert node.stop()
        started = time.monotonic()
        result = run_kassa(
            "produce", "replay", "--quiet",
            "--from", "2011-11-01", "--to", "2011-11-02", "--dataset", str(DATASET),
            env=settings_env(settings),
        )  # fmt: skip
        elapsed = time.monotonic() - started
    finally:
        cluster.start(NODE_TIMEOUT)
    print(f"two brokers down: exit {result.returncode} after {elapsed:.0f} s\n{result.stderr}")
    assert result.returncode == 1, result.stderr
    error = result.stderr[result.stderr.index("kassa: error:") :]
    sent = int(error.split("sent ")[1].split()[0].replace(",", ""))
    assert sent > 0
    assert f"0 delivered, {sent:,} failed" in error
    assert elapsed < 60, "the producer waited far past its delivery timeout"
    assert first.pid is not None
