"""Freshness of the live counts: record timestamp to visible in Redis, at several rates.

``kassa stream`` runs as a child process on a fresh topic. After a warm-up (until its first
write), checkouts stamped "now" are produced at each rate of the scale in turn; a thread
polls Redis' watermarks every :data:`POLL_SECONDS`, and a checkout's freshness is the first
poll showing its offset applied minus its record timestamp.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
from confluent_kafka import Producer

from bench import plots
from bench.report import Figure, Plot, figure, table
from bench.session import Bench
from bench.workload import child_environment, drop_topic, fresh_topic
from common.schema import encode_checkout, message_key, record_timestamp_ms
from common.settings import Settings
from producers.synthetic import generate
from storage import keys
from storage.connections import Client, open_redis
from storage.kafka.config import client_config

POLL_SECONDS: Final = 0.005
PERCENTILES: Final = (50, 95, 99)
WARM_UP_LIMIT: Final = 120.0
SEED: Final = 5
Delivered = list[tuple[int, int, int]]
"""(partition, offset, record timestamp in ms) of each delivered checkout."""


class Watermarks:
    """Polls Redis' applied offsets from a thread: (wall time, partition -> offset)."""

    def __init__(self, client: Client, key: str) -> None:
        self.seen: list[tuple[float, dict[int, int]]] = []
        self._client = client
        self._key = key
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            raw = self._client.hgetall(self._key).items()
            marks = {int(k): int(v) for k, v in raw if k.isdigit()}
            self.seen.append((time.time(), marks))
            time.sleep(POLL_SECONDS)

    def __enter__(self) -> Watermarks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def latencies(self, delivered: Delivered) -> list[float]:
        """Seconds from each record timestamp to the first poll showing it applied."""
        result = []
        index = 0
        for partition, offset, timestamp_ms in sorted(delivered, key=lambda d: d[2]):
            while index < len(self.seen) and self.seen[index][0] * 1000 < timestamp_ms:
                index += 1
            for moment, marks in self.seen[index:]:
                if marks.get(partition, -1) >= offset:
                    result.append(moment - timestamp_ms / 1000)
                    break
        return result


def produce_now(settings: Settings, rate: int, seconds: float) -> Delivered:
    """Produce checkouts stamped with the current time at ``rate``/s; their positions."""
    delivered: Delivered = []

    def on_delivery(error: Any, message: Any) -> None:
        if error is None:
            delivered.append((message.partition(), message.offset(), message.timestamp()[1]))

    producer = Producer(client_config(settings, {"linger.ms": 5, "enable.idempotence": True}))
    source = generate(SEED, datetime.now(UTC))
    started = time.perf_counter()
    for sent in range(int(rate * seconds)):
        pause = started + sent / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        checkout = msgspec.structs.replace(next(source), occurred_at=datetime.now(UTC))
        producer.produce(
            settings.topic,
            encode_checkout(checkout),
            message_key(checkout),
            timestamp=record_timestamp_ms(checkout),
            on_delivery=on_delivery,
        )
        producer.poll(0)
    producer.flush(30)
    return delivered


def _warm_up(settings: Settings, client: Client) -> None:
    """Trickle checkouts in until the job's first write shows in Redis."""
    key = keys.applied_offsets_key(settings.key_space)
    deadline = time.monotonic() + WARM_UP_LIMIT
    while not client.exists(key):
        if time.monotonic() > deadline:
            msg = f"kassa stream wrote nothing to Redis within {WARM_UP_LIMIT:.0f} s"
            raise RuntimeError(msg)
        produce_now(settings, 20, 0.5)


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _latencies(bench: Bench, settings: Settings) -> dict[int, tuple[list[float], int]]:
    """Rate -> (freshness of each checkout seen applied, checkouts produced)."""
    client = open_redis(settings)
    environment = child_environment(settings)
    child = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "stream"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    found = {}
    try:
        _warm_up(settings, client)
        with Watermarks(client, keys.applied_offsets_key(settings.key_space)) as marks:
            for rate in bench.scale.freshness_rates:
                delivered = produce_now(settings, rate, bench.scale.freshness_seconds)
                time.sleep(1.0)  # the last checkouts' batch reaches Redis
                found[rate] = (marks.latencies(delivered), len(delivered))
    finally:
        child.terminate()
        child.wait(60)
        batch = list(client.scan_iter(keys.space_pattern(settings.key_space), count=1000))
        if batch:
            client.delete(*batch)
        client.close()
    return found


def measure(bench: Bench) -> tuple[list[Figure], str, Plot]:
    """Freshness percentiles at each rate: figures, a Markdown table and a plot."""
    with tempfile.TemporaryDirectory(prefix="kassa-bench-fresh-") as state:
        settings = fresh_topic(bench.settings, "fresh").model_copy(
            update={"state_dir": Path(state), "metrics_port": 0}
        )
        try:
            found = _latencies(bench, settings)
        finally:
            drop_topic(settings)
    figures, rows = [], []
    for rate, (latencies, produced) in found.items():
        if not latencies:
            msg = f"none of {produced} checkouts at {rate}/s showed in Redis"
            raise RuntimeError(msg)
        values = [percentile(latencies, p / 100) * 1000 for p in PERCENTILES]
        figures += [
            figure("freshness", "ms", [v], rate=rate, percentile=p)
            for p, v in zip(PERCENTILES, values, strict=True)
        ]
        rows.append(
            (f"{rate:,}", *(f"{v:,.0f}" for v in values), f"{len(latencies):,} of {produced:,}")
        )
    rates = list(found)
    series = {
        f"p{p}": [f.median for f in figures if f.labels["percentile"] == p] for p in PERCENTILES
    }
    plot = plots.lines(
        bench.results, "freshness.png", "Freshness of the live counts (ms)",
        x=rates, series=series, axis_labels=("checkouts/s", "ms"), log_x=True,
    )  # fmt: skip
    text = "\n\n".join(
        [
            f"Freshness (record timestamp to visible in Redis, polled every "
            f"{POLL_SECONDS * 1000:.0f} ms) of `kassa stream` in a child process at each rate "
            f"for {bench.scale.freshness_seconds:.0f} s, after a warm-up:",
            table(["checkouts/s", "p50 ms", "p95 ms", "p99 ms", "checkouts seen"], rows),
        ]
    )
    return figures, text, plot
