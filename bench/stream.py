"""Stream job throughput and freshness against baselines, same run, same pre-produced data.

Rows (median of :data:`REPETITIONS` runs each; every run reads the same synthetic topic from
the beginning with a fresh consumer group):

* **kassa stream, exactly-once** and **at-least-once**: the real job (Quix app, raw bytes
  handed to the writer process: ``WireDecoder``, per-partition aggregation, one Lua call per
  partition batch) with the default settings, and exactly-once with smaller batches (write
  interval 0.1 s, commit interval 1 s); timed from the first message to the last batch
  applied in Redis;
* **Quix passthrough**: the same Quix application reading bytes and doing nothing (the
  framework's ceiling);
* **raw confluent-kafka consume + decode**: ``Consumer.consume`` batches and
  ``WireDecoder.decode`` per message, nothing written (the ceiling of any Python consumer);
* **naive tutorial consumer**: ``json.loads`` per message and one ``ZINCRBY`` per line, auto
  commit (at-least-once), on the first :data:`NAIVE_MESSAGES` messages.

Freshness: ``kassa stream`` as a child process while checkouts stamped "now" are produced
at :data:`FRESHNESS_RATE`/s; a poller reads Redis' watermarks every 5 ms; each checkout's
freshness is the first poll that shows its offset applied minus its record timestamp.

Run alone with ``python -m bench.stream`` (uses the ``KASSA_*`` settings, e.g. the dev
broker on 127.0.0.1:9092); it writes only under Redis database 15 and deletes its keys.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource
from quixstreams import Application

from common.schema import WireDecoder, encode_checkout, message_key, record_timestamp_ms
from common.settings import ENV_PREFIX, Settings
from common.topics import ensure_topics
from jobs.stream.app import FETCH_CONFIG, build_stream_job
from jobs.stream.malloc import keep_batch_memory
from producers.publish import publish
from producers.synthetic import generate
from storage import keys

REPETITIONS = 5
MESSAGES = 600_000
"""Several seconds per run: every run of the job includes offset commits (each waits for the
writer to drain) and the writer's steady pace, not only the burst its queue can absorb."""
NAIVE_MESSAGES = 5_000
FRESHNESS_RATE = 2_000
FRESHNESS_SECONDS = 15
SEED = 4
BENCH_DAY = date(2001, 1, 1)
REDIS_DB = 15
IDLE_SECONDS = 3.0
"""A run ends after this long without a message (not part of the timed span)."""


def _redis_url(settings: Settings) -> str:
    return urlunsplit(urlsplit(settings.redis_url)._replace(path=f"/{REDIS_DB}"))


def _variant(settings: Settings, **update: Any) -> Settings:
    group = f"bench_stream_{uuid.uuid4().hex[:8]}"
    state = Path(tempfile.gettempdir()) / "kassa-bench-stream"
    return settings.model_copy(
        update={"consumer_group": group, "metrics_port": 0, "state_dir": state, **update}
    )


def _clear(client: redis.Redis, topic: str, day: date = BENCH_DAY) -> None:
    space = keys.namespace_prefix(topic, "live")  # the key space is the topic's name
    patterns = (f"{space}{day.isoformat()}*", f"{space}*", "bench:naive:*")
    for pattern in (*patterns, keys.names_key(topic)):
        batch = list(client.scan_iter(pattern, count=1000))
        if batch:
            client.delete(*batch)


def _produce_input(settings: Settings) -> Settings:
    topic = settings.model_copy(update={"topic": f"bench_stream_{uuid.uuid4().hex[:8]}"})
    ensure_topics(topic)
    # The records are stamped in 2001: with the broker's default time retention the log
    # cleaner would delete them minutes after they were produced, in the middle of the run.
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    keep = ConfigResource("topic", topic.topic, set_config={"retention.ms": "-1"})
    for future in admin.alter_configs([keep]).values():
        future.result()
    start = datetime(2001, 1, 1, 8, tzinfo=UTC)
    report = publish(topic, generate(SEED, start, MESSAGES))
    if report.failed:
        raise RuntimeError(report.summary())
    return topic


class _Clock:
    """First and last message times seen by a Quix ``on_message_processed`` callback."""

    def __init__(self) -> None:
        self.first = 0.0
        self.last = 0.0
        self.count = 0

    def __call__(self, topic: str, partition: int, offset: int) -> None:
        now = time.perf_counter()
        if not self.count:
            self.first = now
        self.last = now
        self.count += 1


def _kassa(settings: Settings, guarantee: str, **update: Any) -> tuple[int, float]:
    variant = _variant(settings, stream_guarantee=guarantee, retention_days=36500, **update)
    client = redis.Redis.from_url(variant.redis_url)
    _clear(client, variant.topic)
    clock = _Clock()
    job = build_stream_job(variant, on_message_processed=clock)
    job.run(timeout=IDLE_SECONDS)
    # The run ends when the last batch is in Redis (last_batch_at is wall-clock time).
    wall_now, perf_now = time.time(), time.perf_counter()
    end = max(clock.last, perf_now - (wall_now - job.metrics.last_batch_at))
    _clear(client, variant.topic)
    client.close()
    return clock.count, end - clock.first


def _kassa_exactly_once(settings: Settings) -> tuple[int, float]:
    return _kassa(settings, "exactly-once")


def _kassa_at_least_once(settings: Settings) -> tuple[int, float]:
    return _kassa(settings, "at-least-once")


def _kassa_small_batches(settings: Settings) -> tuple[int, float]:
    return _kassa(settings, "exactly-once", stream_write_interval=0.1, stream_commit_interval=1.0)


def _passthrough(settings: Settings) -> tuple[int, float]:
    variant = _variant(settings)
    clock = _Clock()
    app = Application(
        broker_address=variant.kafka_bootstrap,
        consumer_group=variant.consumer_group,
        auto_offset_reset="earliest",
        auto_create_topics=False,
        commit_interval=variant.stream_commit_interval,
        on_message_processed=clock,
        state_dir=variant.state_dir / "quix-bench",
        consumer_extra_config=FETCH_CONFIG,
    )
    topic = app.topic(variant.topic, value_deserializer="bytes", key_deserializer="bytes")
    app.dataframe(topic)
    app.run(timeout=IDLE_SECONDS, collect=False)
    return clock.count, clock.last - clock.first


def _consumer(settings: Settings, **extra: Any) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"bench_stream_{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            **extra,
        }
    )
    consumer.subscribe([settings.topic])
    return consumer


def _raw_decode(settings: Settings) -> tuple[int, float]:
    consumer = _consumer(settings, **{"enable.auto.commit": False})
    decode = WireDecoder(settings.limits).decode
    count = 0
    started = 0.0
    idle_since = time.perf_counter()
    while count < MESSAGES and time.perf_counter() - idle_since < 10:
        messages = consumer.consume(1000, timeout=0.5)
        if not messages:
            continue
        if not count:
            started = time.perf_counter()
        for message in messages:
            if message.error() is None:
                decode(message.value())
                count += 1
        idle_since = time.perf_counter()
    elapsed = time.perf_counter() - started
    consumer.close()
    return count, elapsed


def _naive(settings: Settings) -> tuple[int, float]:
    client = redis.Redis.from_url(_redis_url(settings))
    consumer = _consumer(settings)
    count = 0
    started = 0.0
    deadline = time.perf_counter() + 120
    while count < NAIVE_MESSAGES and time.perf_counter() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error() is not None:
            continue
        if not count:
            started = time.perf_counter()
        checkout = json.loads(message.value())
        day = checkout["occurred_at"][:10]
        for line in checkout["lines"]:
            client.zincrby(f"bench:naive:{day}", line["quantity"], line["sku"])
        count += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    _clear(client, settings.topic)
    client.close()
    return count, elapsed


Variant = tuple[str, Callable[[Settings], tuple[int, float]]]
VARIANTS: tuple[Variant, ...] = (
    ("kassa stream, exactly-once (default)", _kassa_exactly_once),
    ("kassa stream, at-least-once", _kassa_at_least_once),
    (
        "kassa stream, exactly-once, write interval 0.1 s, commit interval 1 s (fresher)",
        _kassa_small_batches,
    ),
    ("Quix passthrough app (framework ceiling)", _passthrough),
    ("raw confluent-kafka consume + WireDecoder.decode (Python ceiling)", _raw_decode),
    ("naive: json.loads + one ZINCRBY per line, auto commit", _naive),
)


class _Watermarks:
    """Polls Redis' applied offsets every 5 ms from a thread: (wall time, partition -> offset)."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.seen: list[tuple[float, dict[int, int]]] = []
        self._client = client
        self._key = key
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll)

    def _poll(self) -> None:
        while not self._stop.is_set():
            raw = self._client.hgetall(self._key).items()
            marks = {int(k): int(v) for k, v in raw if k.isdigit()}
            self.seen.append((time.time(), marks))
            time.sleep(0.005)

    def __enter__(self) -> _Watermarks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def latencies(self, delivered: list[tuple[int, int, int]]) -> list[float]:
        """Seconds from each record timestamp to the first poll showing it applied.

        Checkouts produced before the job's first write (plus one second) are left out: the
        figure is the steady state, not the start-up.
        """
        started = next((moment for moment, marks in self.seen if marks), None)
        if started is None:
            return []
        result = []
        index = 0
        steady = [d for d in delivered if d[2] >= (started + 1.0) * 1000]
        for partition, offset, timestamp_ms in sorted(steady, key=lambda d: d[2]):
            while index < len(self.seen) and self.seen[index][0] * 1000 < timestamp_ms:
                index += 1
            for moment, marks in self.seen[index:]:
                if marks.get(partition, -1) >= offset:
                    result.append(moment - timestamp_ms / 1000)
                    break
        return result


def _produce_now(settings: Settings, rate: int, seconds: int) -> list[tuple[int, int, int]]:
    """Produce checkouts stamped with the current time at ``rate``/s; their positions."""
    delivered: list[tuple[int, int, int]] = []

    def on_delivery(error: Any, message: Any) -> None:
        if error is None:
            delivered.append((message.partition(), message.offset(), message.timestamp()[1]))

    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 5, "enable.idempotence": True}
    )
    source = generate(SEED, datetime.now(UTC))
    started = time.perf_counter()
    for sent in range(rate * seconds):
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


def _freshness(settings: Settings) -> tuple[list[float], int]:
    """Freshness in seconds of every checkout produced at FRESHNESS_RATE/s for a while."""
    topic = settings.model_copy(update={"topic": f"bench_fresh_{uuid.uuid4().hex[:8]}"})
    ensure_topics(topic)
    variant = _variant(topic)
    env = dict(os.environ)
    for name, value in variant.model_dump(mode="json").items():
        env[ENV_PREFIX + name.upper()] = str(value)
    child = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "stream"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis.from_url(variant.redis_url)
    applied_key = keys.applied_offsets_key(variant.key_space)
    try:
        time.sleep(8)  # let the job start and join its group
        with _Watermarks(client, applied_key) as watermarks:
            delivered = _produce_now(variant, FRESHNESS_RATE, FRESHNESS_SECONDS)
            time.sleep(3)
    finally:
        child.terminate()
        child.wait(60)
        client.delete(applied_key)
        _clear(client, variant.topic, datetime.now(UTC).date())
        _clear(client, variant.topic, date.fromordinal(datetime.now(UTC).date().toordinal() - 1))
        client.close()
    return watermarks.latencies(delivered), len(delivered)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(settings: Settings) -> str:
    """Measure every variant :data:`REPETITIONS` times and freshness once; Markdown."""
    # The allocator tuning kassa stream applies (run_stream): every variant, the baselines
    # included, runs with it.
    keep_batch_memory()
    settings = settings.model_copy(update={"redis_url": _redis_url(settings)})
    source = _produce_input(settings)
    rows = []
    medians: dict[str, float] = {}
    for name, measure in VARIANTS:
        rates = []
        count = 0
        for _ in range(REPETITIONS):
            count, elapsed = measure(source)
            if not count or elapsed <= 0:
                msg = f"{name}: consumed {count} messages in {elapsed:.3f} s; is the broker up?"
                raise RuntimeError(msg)
            rates.append(count / elapsed)
        medians[name] = statistics.median(rates)
        spread = f"{min(rates):,.0f} - {max(rates):,.0f}"
        rows.append(f"| {name} | {count:,} | {medians[name]:,.0f} | {spread} |")
    names = [name for name, _ in VARIANTS]
    exactly, at_least, _, quix, raw, naive = (medians[name] for name in names)
    latencies, produced = _freshness(settings)
    fresh = (
        f"p50 {_percentile(latencies, 0.5) * 1000:,.0f} ms, "
        f"p99 {_percentile(latencies, 0.99) * 1000:,.0f} ms, "
        f"max {max(latencies) * 1000:,.0f} ms over {len(latencies):,} of {produced:,} checkouts "
        "(steady state)"
        if latencies
        else f"no checkout became visible (of {produced:,} produced)"
    )
    return "\n".join(
        [
            "## Stream job",
            "",
            f"Checkouts per second from the broker at `{settings.kafka_bootstrap}` "
            f"(3 partitions) into Redis, one process, median of {REPETITIONS} runs on the same "
            f"{MESSAGES:,} pre-produced synthetic checkouts (the naive consumer: the first "
            f"{NAIVE_MESSAGES:,}). Defaults: write interval {settings.stream_write_interval} s, "
            f"commit interval {settings.stream_commit_interval} s. "
            "Command: `python -m bench.stream`.",
            "",
            "| variant | checkouts per run | median checkouts/s | min - max |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            "| target | measured |",
            "|---|---:|",
            f"| >= 50,000 checkouts/s | {exactly:,.0f} |",
            f"| >= 20x naive | {exactly / naive:,.1f}x |",
            f"| >= 25% of raw consume + decode | {exactly / raw:.0%} |",
            f"| >= 70% of Quix passthrough | {exactly / quix:.0%} |",
            f"| exactly-once >= 80% of at-least-once | {exactly / at_least:.0%} |",
            f"| freshness p99 <= 1 s at {FRESHNESS_RATE:,}/s | {fresh} |",
        ]
    )


if __name__ == "__main__":
    import logging

    from common.settings import load_settings

    logging.basicConfig(level=logging.WARNING)
    print(run(load_settings()))
