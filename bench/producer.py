"""Producer throughput: ``kassa produce synthetic --max`` against baselines in the same run.

Rows (the median of the scale's repetitions each, one fresh topic per run):

* **kassa publish(synthetic)**: simulator -> ``encode_checkout`` -> ``publish`` (what
  ``kassa produce synthetic --max`` runs, minus interpreter start-up), every record delivered;
* **raw produce of pre-encoded bytes**: the same records encoded beforehand and handed to a
  bare confluent-kafka ``Producer`` with the same configuration: the ceiling of the client
  and broker on this machine;
* **naive producer**: ``json.dumps`` of a dict per checkout, ``produce`` and ``flush`` per
  message (the simplest correct code): the baseline;
* **simulator alone** and **simulator + encode**: no Kafka, to show where the time goes.

The Kafka ceiling (``ProducerPerformance`` on the same records) comes from :mod:`bench.broker`
when it ran first. Run alone with ``python -m bench --only broker producer``.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from confluent_kafka import Producer

from bench import plots
from bench.broker import PRODUCE
from bench.report import Figure, Role, Section, figure, rate_row, table
from bench.session import Bench
from bench.workload import drop_topic, fresh_topic
from common.schema import Checkout, encode_checkout, message_key, record_timestamp_ms
from common.settings import Settings
from producers.publish import Deliveries, producer_config, publish
from producers.synthetic import generate
from storage.kafka.config import client_config

SEED: Final = 42


def _start() -> datetime:
    return (datetime.now(UTC) - timedelta(days=90)).replace(microsecond=0)


def _kassa(settings: Settings, count: int) -> tuple[int, float]:
    report = publish(settings, generate(SEED, _start(), count))
    if report.failed:
        raise RuntimeError(report.summary())
    return report.delivered, report.elapsed


def _raw(settings: Settings, count: int) -> tuple[int, float]:
    records = [
        (encode_checkout(c), message_key(c), record_timestamp_ms(c))
        for c in generate(SEED, _start(), count)
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


def _naive(settings: Settings, count: int) -> tuple[int, float]:
    producer = Producer(client_config(settings, {"acks": "all", "enable.idempotence": True}))
    failures = 0

    def on_delivery(error: object, _message: object) -> None:
        nonlocal failures
        failures += error is not None

    started = time.perf_counter()
    for checkout in generate(SEED, _start(), count):
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
    return count, elapsed


def _simulator(_settings: Settings, count: int) -> tuple[int, float]:
    started = time.perf_counter()
    made = sum(1 for _ in generate(SEED, _start(), count))
    return made, time.perf_counter() - started


def _simulator_encode(_settings: Settings, count: int) -> tuple[int, float]:
    started = time.perf_counter()
    size = 0
    for checkout in generate(SEED, _start(), count):
        size += len(encode_checkout(checkout))
    return count, time.perf_counter() - started


Measure = Callable[[Settings, int], tuple[int, float]]


@dataclass(frozen=True)
class _Variant:
    name: str
    measure: Measure
    kafka: bool
    role: Role
    naive: bool = False


VARIANTS: Final = (
    _Variant("kassa publish(synthetic) = `kassa produce synthetic --max`", _kassa, True, "kassa"),
    _Variant("raw produce of pre-encoded bytes (client ceiling)", _raw, True, "ceiling"),
    _Variant(
        "naive: json.dumps + produce + flush per message", _naive, True, "baseline", naive=True
    ),
    _Variant("simulator alone (no Kafka)", _simulator, False, "input"),
    _Variant("simulator + encode_checkout (no Kafka)", _simulator_encode, False, "input"),
)


def _rates(bench: Bench, variant: _Variant) -> Figure:
    scale = bench.scale
    count = scale.naive_messages if variant.naive else scale.producer_messages
    rates = []
    for _ in range(scale.repetitions):
        target = fresh_topic(bench.settings, "producer") if variant.kafka else bench.settings
        try:
            delivered, elapsed = variant.measure(target, count)
        finally:
            if variant.kafka:
                drop_topic(target)
        rates.append(delivered / elapsed)
    return figure(variant.name, "checkouts/s", rates, variant.role, checkouts=count)


def run(bench: Bench) -> Section:
    """Measure every variant; medians, ratios and the broker's own producer next to them."""
    figures = [_rates(bench, variant) for variant in VARIANTS]
    ceiling = bench.find("broker", PRODUCE)
    if ceiling is not None:
        figures.append(ceiling)
    kassa, raw, naive = figures[0].median, figures[1].median, figures[2].median
    rows = [rate_row(f) for f in figures]
    sample = list(itertools.islice(generate(SEED, _start()), 10_000))
    average = statistics.mean(len(encode_checkout(c)) for c in sample)
    lines = statistics.mean(len(c.lines) for c in sample)
    settings = bench.settings
    ratios = [
        f"kassa's producer runs at {kassa / naive:,.0f}x the naive baseline and {kassa / raw:.0%} "
        "of the raw-produce ceiling"
    ]
    if ceiling is not None:
        ratios.append(f"{kassa / ceiling.median:.0%} of Kafka's own ProducerPerformance")
    plot = plots.bars(
        bench.results, "producer.png", "Producer throughput (checkouts/s)",
        {f.name: f.median for f in figures}, "checkouts/s",
    )  # fmt: skip
    markdown = "\n\n".join(
        [
            f"Checkouts per second from one Python process to the broker (3 partitions, "
            f"acks=all, idempotent, {settings.producer_compression}, linger "
            f"{settings.producer_linger_ms} ms), median of {bench.scale.repetitions} runs, one "
            f"fresh topic per run; a simulated checkout averages {lines:.1f} lines and "
            f"{average:,.0f} bytes. Target: 100,000/s. Command: `python -m bench --only "
            "broker producer`.",
            table(["variant", "checkouts per run", "median checkouts/s", "min - max"], rows),
            "; ".join(ratios) + ".",
        ]
    )
    notes = {"bytes_per_checkout": average, "lines_per_checkout": lines}
    return Section("producer", "Producer throughput", markdown, tuple(figures), (plot,), notes)
