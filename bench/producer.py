"""Producer throughput: ``kassa produce synthetic --max`` against baselines in the same run.

Rows (median of :data:`REPETITIONS` runs each, one fresh topic per row):

* **kassa publish(synthetic)**: simulator -> ``encode_checkout`` -> ``publish`` (what
  ``kassa produce synthetic --max`` runs, minus interpreter start-up), every record delivered;
* **raw produce of pre-encoded bytes**: the same records encoded beforehand and handed to a
  bare confluent-kafka ``Producer`` with the same configuration: the ceiling of the client
  and broker on this machine;
* **naive producer**: ``json.dumps`` of a dict per checkout, ``produce`` and ``flush`` per
  message (the simplest correct code): the baseline;
* **simulator alone** and **simulator + encode**: no Kafka, to show where the time goes.

Run alone with ``python -m bench.producer`` (uses the ``KASSA_*`` settings, e.g. the dev
broker on 127.0.0.1:9092).
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Producer

from common.schema import Checkout, encode_checkout, message_key, record_timestamp_ms
from common.settings import Settings
from common.topics import admin_client, ensure_topics
from producers.publish import Deliveries, producer_config, publish
from producers.synthetic import generate

REPETITIONS = 3
MESSAGES = 400_000
NAIVE_MESSAGES = 2_000
SEED = 42


def _start() -> datetime:
    return (datetime.now(UTC) - timedelta(days=90)).replace(microsecond=0)


def _topic(settings: Settings, name: str) -> Settings:
    variant = settings.model_copy(update={"topic": f"bench_producer_{name}_{uuid.uuid4().hex[:8]}"})
    ensure_topics(variant)
    return variant


def _drop(settings: Settings) -> None:
    topics = [settings.topic, settings.dead_letter_topic]
    admin = admin_client(settings)
    for future in admin.delete_topics(topics, operation_timeout=30).values():
        future.result()


def _kassa(settings: Settings) -> tuple[int, float]:
    report = publish(settings, generate(SEED, _start(), MESSAGES))
    if report.failed:
        raise RuntimeError(report.summary())
    return report.delivered, report.elapsed


def _raw(settings: Settings) -> tuple[int, float]:
    records = [
        (encode_checkout(c), message_key(c), record_timestamp_ms(c))
        for c in generate(SEED, _start(), MESSAGES)
    ]
    deliveries = Deliveries()
    producer = Producer(producer_config(settings, deliveries))
    produce = producer.produce
    topic = settings.topic
    started = time.perf_counter()
    for value, key, timestamp in records:
        while True:
            try:
                produce(topic, value, key, timestamp=timestamp)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    elapsed = time.perf_counter() - started
    if deliveries.failures or len(producer):
        raise RuntimeError(f"raw produce failed: {dict(deliveries.failures)}")
    return len(records), elapsed


def _as_dict(checkout: Checkout) -> dict[str, Any]:
    return {
        "transaction_id": checkout.transaction_id,
        "store_id": checkout.store_id,
        "register_id": checkout.register_id,
        "occurred_at": checkout.occurred_at.isoformat(),
        "kind": checkout.kind,
        "currency": checkout.currency,
        "lines": [
            {"sku": x.sku, "name": x.name, "quantity": x.quantity, "unit_price": str(x.unit_price)}
            for x in checkout.lines
        ],
        "schema_version": checkout.schema_version,
    }


def _naive(settings: Settings) -> tuple[int, float]:
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "acks": "all", "enable.idempotence": True}
    )
    failures = 0

    def on_delivery(error: object, _message: object) -> None:
        nonlocal failures
        failures += error is not None

    started = time.perf_counter()
    for checkout in generate(SEED, _start(), NAIVE_MESSAGES):
        value = json.dumps(_as_dict(checkout)).encode()
        producer.produce(
            settings.topic,
            value,
            checkout.store_id.encode(),
            on_delivery=on_delivery,
            timestamp=record_timestamp_ms(checkout),
        )
        producer.flush(30)
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"naive producer: {failures} failed deliveries")
    return NAIVE_MESSAGES, elapsed


def _simulator(_settings: Settings) -> tuple[int, float]:
    started = time.perf_counter()
    count = sum(1 for _ in generate(SEED, _start(), MESSAGES))
    return count, time.perf_counter() - started


def _simulator_encode(_settings: Settings) -> tuple[int, float]:
    started = time.perf_counter()
    size = 0
    for checkout in generate(SEED, _start(), MESSAGES):
        size += len(encode_checkout(checkout))
    return MESSAGES, time.perf_counter() - started


Variant = tuple[str, Callable[[Settings], tuple[int, float]], bool]
VARIANTS: tuple[Variant, ...] = (
    ("kassa publish(synthetic) = `kassa produce synthetic --max`", _kassa, True),
    ("raw produce of pre-encoded bytes (ceiling)", _raw, True),
    ("naive: json.dumps + produce + flush per message (baseline)", _naive, True),
    ("simulator alone (no Kafka)", _simulator, False),
    ("simulator + encode_checkout (no Kafka)", _simulator_encode, False),
)


def run(settings: Settings) -> str:
    """Measure every variant :data:`REPETITIONS` times; a Markdown section of medians."""
    rows = []
    medians: dict[str, float] = {}
    for name, measure, kafka in VARIANTS:
        rates = []
        count = 0
        for _ in range(REPETITIONS):
            target = _topic(settings, measure.__name__.strip("_")) if kafka else settings
            try:
                count, elapsed = measure(target)
            finally:
                if kafka:
                    _drop(target)
            rates.append(count / elapsed)
        medians[name] = statistics.median(rates)
        spread = f"{min(rates):,.0f} - {max(rates):,.0f}"
        rows.append(f"| {name} | {count:,} | {medians[name]:,.0f} | {spread} |")
    kassa, naive = medians[VARIANTS[0][0]], medians[VARIANTS[2][0]]
    ceiling = medians[VARIANTS[1][0]]
    sample = list(itertools.islice(generate(SEED, _start()), 10_000))
    average = statistics.mean(len(encode_checkout(c)) for c in sample)
    lines = statistics.mean(len(c.lines) for c in sample)
    return "\n".join(
        [
            "## Producer throughput",
            "",
            f"Checkouts per second from one Python process to the broker at "
            f"`{settings.kafka_bootstrap}` (3 partitions, acks=all, idempotent, "
            f"{settings.producer_compression}, linger {settings.producer_linger_ms} ms), "
            f"median of {REPETITIONS} runs; a simulated checkout averages {lines:.1f} lines and "
            f"{average:,.0f} bytes. Target: 100,000/s. Command: `python -m bench.producer`.",
            "",
            "| variant | checkouts per run | median checkouts/s | min - max |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            f"kassa's producer runs at {kassa / naive:,.0f}x the naive baseline and "
            f"{kassa / ceiling:.0%} of the raw-produce ceiling.",
        ]
    )


if __name__ == "__main__":
    import logging

    from common.settings import load_settings

    logging.basicConfig(level=logging.WARNING)
    print(run(load_settings()))
