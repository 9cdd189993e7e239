"""The broker's own ceiling: Kafka's producer and consumer performance tools on our records.

``org.apache.kafka.tools.ProducerPerformance`` (``kafka-producer-perf-test``) sends encoded
simulated checkouts (its ``--payload-file``) with kassa's producer settings; the
``ConsumerPerformance`` tool (``kafka-consumer-perf-test``) reads a topic kassa's producer
filled with the same kind of checkouts. Both run on the jars ``kassa services`` fetched, on
the machine's Java. Next to them in the same run: a bare confluent-kafka consume of the same
topic (values only), the ceiling of any Python consumer. The producer and stream sections
quote these figures next to their own.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Final

from confluent_kafka import Consumer, TopicPartition

from bench import plots
from bench.report import Figure, Section, figure, spread, table
from bench.session import Bench
from bench.workload import drop_topic, encoded_size, fresh_topic, produce, stream_checkouts
from common.schema import encode_checkout
from common.settings import Settings
from services.kafka import ensure_jars, java_tools

PRODUCER_TOOL: Final = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_TOOL: Final = "org.apache.kafka.tools.ConsumerPerformance"
SEED: Final = 4
PAYLOADS: Final = 10_000
PRODUCE: Final = "Kafka ProducerPerformance (kafka-producer-perf-test)"
CONSUME: Final = "Kafka ConsumerPerformance (kafka-consumer-perf-test)"
PYTHON_CONSUME: Final = "confluent-kafka consume, values only (Python ceiling)"


def _java(settings: Settings, main_class: str, *args: str) -> str:
    """Run one of Kafka's tools to its end; its standard output."""
    java, _ = java_tools()
    libs = ensure_jars(settings.cache_dir, settings.kafka_version)
    command = [java, "-Xmx512m", "-cp", f"{libs}/*", main_class, *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if result.returncode != 0:
        msg = f"{main_class} exited {result.returncode}: {result.stderr[-2000:]}"
        raise RuntimeError(msg)
    return result.stdout


def _producer_perf(settings: Settings, payloads: Path, records: int) -> float:
    """Records per second of ProducerPerformance to a fresh topic, kassa's producer settings."""
    target = fresh_topic(settings, "perf_produce")
    try:
        output = _java(
            settings, PRODUCER_TOOL,
            "--topic", target.topic, "--num-records", str(records), "--throughput", "-1",
            "--payload-file", str(payloads),
            "--producer-props", f"bootstrap.servers={settings.kafka_bootstrap}", "acks=all",
            "enable.idempotence=true", f"compression.type={settings.producer_compression}",
            f"linger.ms={settings.producer_linger_ms}", "batch.size=1000000",
        )  # fmt: skip
    finally:
        drop_topic(target)
    rates = re.findall(r"([\d.]+) records/sec", output)
    if not rates:
        msg = f"ProducerPerformance printed no rate: {output[-500:]}"
        raise RuntimeError(msg)
    return float(rates[-1])


def _consumer_perf(settings: Settings, records: int) -> float:
    """Records per second ConsumerPerformance fetched (its join time left out)."""
    output = _java(
        settings, CONSUMER_TOOL,
        "--bootstrap-server", settings.kafka_bootstrap, "--topic", settings.topic,
        "--messages", str(records), "--timeout", "60000",
        "--group", f"bench_perf_{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    lines = [line for line in output.splitlines() if line.strip()]
    heading = [name.strip() for name in lines[-2].split(",")]
    values = dict(zip(heading, (v.strip() for v in lines[-1].split(",")), strict=False))
    consumed = int(float(values["data.consumed.in.nMsg"]))
    if consumed < records:
        msg = f"ConsumerPerformance read {consumed} of {records} records of {settings.topic}"
        raise RuntimeError(msg)
    return float(values["fetch.nMsg.sec"])


def python_consume(settings: Settings, records: int) -> float:
    """Records per second of a bare confluent-kafka consumer reading the topic's values."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"bench_raw_{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "max.partition.fetch.bytes": 8 << 20,
        }
    )
    partitions = consumer.list_topics(settings.topic, timeout=30).topics[settings.topic].partitions
    consumer.assign([TopicPartition(settings.topic, p, 0) for p in partitions])
    count, ended, started = 0, 0, time.perf_counter()
    while ended < len(partitions):
        for message in consumer.consume(10_000, timeout=1.0):
            if message.error() is None:
                message.value()
                count += 1
            else:
                ended += 1  # the end of a partition (enable.partition.eof)
    elapsed = time.perf_counter() - started
    consumer.close()
    if count < records:
        msg = f"the raw consumer read {count} of {records} records of {settings.topic}"
        raise RuntimeError(msg)
    return count / elapsed


def _payload_file(folder: Path) -> Path:
    path = folder / "checkouts.txt"
    encoded = (encode_checkout(c) for c in stream_checkouts(SEED, PAYLOADS))
    path.write_bytes(b"\n".join(encoded))
    return path


def _measure(bench: Bench) -> tuple[Figure, ...]:
    settings, scale = bench.settings, bench.scale
    records = scale.broker_messages
    source = fresh_topic(settings, "perf_consume")
    try:
        produce(source, stream_checkouts(SEED, records))
        with tempfile.TemporaryDirectory(prefix="kassa-bench-broker-") as folder:
            payloads = _payload_file(Path(folder))
            runs = range(scale.repetitions)
            produced = [_producer_perf(settings, payloads, records) for _ in runs]
        consumed = [_consumer_perf(source, records) for _ in runs]
        python = [python_consume(source, records) for _ in runs]
    finally:
        drop_topic(source)
    return (
        figure(PRODUCE, "checkouts/s", produced, "ceiling"),
        figure(CONSUME, "checkouts/s", consumed, "ceiling"),
        figure(PYTHON_CONSUME, "checkouts/s", python, "ceiling"),
    )


def run(bench: Bench) -> Section:
    """Kafka's own tools and a bare Python consumer on our records."""
    figures = _measure(bench)
    size = encoded_size(SEED)
    rows = [(f.name, f"{f.median:,.0f}", spread(f)) for f in figures]
    plot = plots.bars(
        bench.results, "broker.png", "The broker's own ceiling (checkouts/s)",
        {f.name: f.median for f in figures}, "checkouts/s",
    )  # fmt: skip
    markdown = "\n\n".join(
        [
            f"{bench.scale.broker_messages:,} simulated checkouts ({size:,.0f} bytes each on "
            f"average, {bench.settings.partitions} partitions, acks=all, idempotent, "
            f"{bench.settings.producer_compression}, linger {bench.settings.producer_linger_ms} "
            f"ms); median of {bench.scale.repetitions} runs. The consumer figures read a topic "
            "that kassa's producer filled. Command: `python -m bench --only broker`.",
            table(["tool", "median checkouts/s", "min - max"], rows),
            f"Kafka's consumer tool reads {figures[1].median / figures[2].median:.1f}x as fast "
            "as a bare Python consumer on the same records.",
        ]
    )
    notes = {"records": bench.scale.broker_messages, "bytes_per_checkout": size}
    return Section("broker", "Broker ceiling", markdown, figures, (plot,), notes)
