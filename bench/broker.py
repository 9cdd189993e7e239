"""The broker's own ceiling: Kafka's producer and consumer performance tools on our records.

``org.apache.kafka.tools.ProducerPerformance`` (``kafka-producer-perf-test``) sends encoded
simulated checkouts (its ``--payload-file``) with kassa's producer settings; the
``ConsumerPerformance`` tool (``kafka-consumer-perf-test``) reads a topic kassa's producer
filled with the same kind of checkouts. Both run on the jars ``kassa services`` fetched, on
the machine's Java. Next to them in the same run: a bare confluent-kafka consume of the same
topic (values only), the ceiling of any Python consumer. The producer and stream sections
quote these figures next to their own.

While kassa's producer fills that topic, the broker's CPU is sampled (its cost per checkout
written, one copy) and afterwards its log segments are sized on disk (bytes per checkout as
stored, compressed batches and record overhead included): the capacity plan's broker figures.
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
from confluent_kafka.admin import ConfigResource

from bench import plots
from bench.processes import cpu_seconds
from bench.report import Figure, Section, figure, spread, table
from bench.session import Bench
from bench.workload import drop_topic, encoded_size, fresh_topic, produce, stream_checkouts
from common.schema import encode_checkout
from common.settings import Settings
from services.kafka import ensure_jars, java_tools
from storage.kafka.config import client_config, connection
from storage.kafka.topics import admin_client

PRODUCER_TOOL: Final = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_TOOL: Final = "org.apache.kafka.tools.ConsumerPerformance"
SEED: Final = 4
PAYLOADS: Final = 10_000
PRODUCE: Final = "Kafka ProducerPerformance (kafka-producer-perf-test)"
CONSUME: Final = "Kafka ConsumerPerformance (kafka-consumer-perf-test)"
PYTHON_CONSUME: Final = "confluent-kafka consume, values only (Python ceiling)"
DISK: Final = "broker disk per checkout (one copy)"
BROKER_WRITE_CPU: Final = "broker CPU per checkout written (one copy)"


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
            # the Java client reads the connection's librdkafka names as its own
            "--producer-props", *(f"{k}={v}" for k, v in connection(settings).items()),
            "acks=all",
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
        client_config(
            settings,
            {
                "group.id": f"bench_raw_{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "max.partition.fetch.bytes": 8 << 20,
            },
        )
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


def log_bytes(settings: Settings, broker_id: str = "1") -> int:
    """Bytes of ``settings.topic``'s log segments in the broker's ``log.dirs`` (local broker)."""
    admin = admin_client(settings)
    resource = ConfigResource("broker", broker_id)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    folders = [Path(d) for d in configs["log.dirs"].value.split(",")]
    segments = (f for d in folders for f in d.glob(f"{settings.topic}-*/*.log"))
    return sum(f.stat().st_size for f in segments)


def _fill(bench: Bench, source: Settings, records: int) -> tuple[float, float]:
    """Produce the consumers' topic; the broker's CPU seconds and disk bytes per checkout."""
    broker = bench.broker_pid()
    before = cpu_seconds(broker) if broker is not None else None
    produce(source, stream_checkouts(SEED, records))
    after = cpu_seconds(broker) if broker is not None else None
    spent = (after - before) if before is not None and after is not None else 0.0
    return spent / records, log_bytes(source) / records


def _measure(bench: Bench) -> tuple[Figure, ...]:
    settings, scale = bench.settings, bench.scale
    records = scale.broker_messages
    source = fresh_topic(settings, "perf_consume")
    try:
        write_cpu, disk = _fill(bench, source, records)
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
        figure(DISK, "bytes", [disk], "input"),
        figure(BROKER_WRITE_CPU, "µs/checkout", [write_cpu * 1e6], "input"),
    )


def run(bench: Bench) -> Section:
    """Kafka's own tools and a bare Python consumer on our records."""
    figures = _measure(bench)
    rates, (disk, write_cpu) = figures[:3], figures[3:]
    size = encoded_size(SEED)
    rows = [(f.name, f"{f.median:,.0f}", spread(f)) for f in rates]
    plot = plots.bars(
        bench.results, "broker.png", "The broker's own ceiling (checkouts/s)",
        {f.name: f.median for f in rates}, "checkouts/s",
    )  # fmt: skip
    markdown = "\n\n".join(
        [
            f"{bench.scale.broker_messages:,} simulated checkouts ({size:,.0f} bytes each on "
            f"average, {bench.settings.partitions} partitions, acks=all, idempotent, "
            f"{bench.settings.producer_compression}, linger {bench.settings.producer_linger_ms} "
            f"ms); median of {bench.scale.repetitions} runs. The consumer figures read a topic "
            "that kassa's producer filled. Command: `python -m bench --only broker`.",
            table(["tool", "median checkouts/s", "min - max"], rows),
            f"Kafka's consumer tool reads {rates[1].median / rates[2].median:.1f}x as fast "
            "as a bare Python consumer on the same records.",
            f"Filling the consumers' topic with kassa's producer, the broker spent "
            f"{write_cpu.median:.1f} µs of CPU per checkout, and its log segments hold "
            f"{disk.median:,.0f} bytes per checkout ({size:,.0f} bytes encoded, "
            f"{bench.settings.producer_compression} batches), one copy.",
        ]
    )
    notes = {"records": bench.scale.broker_messages, "bytes_per_checkout": size}
    return Section("broker", "Broker ceiling", markdown, figures, (plot,), notes)
