"""What TLS and SCRAM cost the stream job: the same job on a plaintext and a secured broker.

The module starts its own secured one-node Kafka (a SASL_SSL client listener, SCRAM-SHA-512
users and ACLs, made by :mod:`services.security` as ``kassa services up --secure`` makes
them) in a temporary folder on free ports, with the heap of the local broker
(``KASSA_KAFKA_HEAP``), and stops it at the end. The same seeded checkouts go to a fresh
topic with the same partitions on the bench's plaintext broker and on the secured one
(created there by ``admin``, read by the ``kassa`` user holding only its ACLs).

The real job (:func:`bench.stream.stream_run`, exactly-once defaults) then reads each topic
from the beginning, plaintext and secured alternately (A B A B ..., one untimed pair first to
warm both brokers and the client): the median checkouts/s of each, the median of the pairs'
secured/plaintext ratios, and the CPU per checkout of the consumer, the writers, Redis and
the broker that served the run.
"""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from bench import plots
from bench.report import Figure, Section, rate_row, table
from bench.session import Bench
from bench.stream import RATE, SEED, Run, Variant, alternated_pairs, cpu_table, stream_run
from bench.workload import drop_topic, fresh_topic, produce, stream_checkouts
from common.settings import Settings
from jobs.stream.malloc import keep_batch_memory
from services.cluster import KafkaCluster
from services.kafka import ensure_jars
from services.process import free_port
from services.security import MECHANISM, SECURE_FOLDER, SecureFiles

HOST: Final = "127.0.0.1"
RATIO: Final = "secured / plaintext throughput"


@contextmanager
def secured_node(settings: Settings) -> Iterator[KafkaCluster]:
    """A secured one-node Kafka in a temporary folder on free ports, stopped at the end."""
    with tempfile.TemporaryDirectory(prefix="kassa-bench-secure-") as folder:
        home = Path(folder)
        cluster = KafkaCluster.plan(
            home,
            ensure_jars(settings.cache_dir, settings.kafka_version),
            host=HOST,
            port=free_port(HOST),
            controller_port=free_port(HOST),
            brokers=1,
            heap=settings.kafka_heap,
            secure=SecureFiles(home / SECURE_FOLDER),
        )
        cluster.start()
        try:
            yield cluster
        finally:
            gc.collect()  # the job's unreachable Kafka clients go before their broker
            cluster.stop()


def _secured_topic(bench: Bench, bootstrap: str, secure: SecureFiles) -> Settings:
    """Settings as ``kassa`` on a fresh topic of the secured node, made by ``admin``, granted."""
    one_node = bench.settings.model_copy(update={"replication_factor": 1, "min_insync_replicas": 1})
    made = fresh_topic(secure.admin_settings(one_node, bootstrap), "security")
    source = secure.user_settings(made, bootstrap)
    secure.grant(bootstrap, source)
    return source


def _secured_run(bench: Bench, source: Settings, secure: SecureFiles) -> Run:
    """One run as ``kassa``; its fresh consumer group is granted first, outside the timed span."""
    group = f"bench_security_{os.urandom(4).hex()}"
    secure.grant(source.kafka_bootstrap, source.model_copy(update={"consumer_group": group}))
    return stream_run(bench, source, consumer_group=group)


def _measure(bench: Bench, cluster: KafkaCluster) -> list[Figure]:
    """Every run of both variants, alternated; their figures and the pairs' ratios."""
    secure = cluster.secure
    if secure is None:
        msg = f"the Kafka cluster in {cluster.home} is not secured; plan it with secure=SecureFiles"
        raise ValueError(msg)
    plain = fresh_topic(bench.settings, "security")
    try:
        secured = _secured_topic(bench, cluster.bootstrap, secure)
        for source in (plain, secured):
            produce(source, stream_checkouts(SEED, bench.scale.stream_messages))
        plaintext = Variant("plaintext", "kassa stream, PLAINTEXT", "kassa", stream_run)
        secured_variant = Variant(
            "secured",
            f"kassa stream, SASL_SSL + {MECHANISM}",
            "kassa",
            lambda bench, source: _secured_run(bench, source, secure),
        )
        return alternated_pairs(bench, (plaintext, plain), (secured_variant, secured), RATIO)
    finally:
        drop_topic(plain)  # the secured node's topics go with its folder


def run(bench: Bench) -> Section:
    """Throughput and CPU per checkout of the job, plaintext and secured; one section."""
    keep_batch_memory()  # the allocator tuning of kassa stream, as in bench.stream
    with secured_node(bench.settings) as cluster:
        found = _measure(bench, cluster)
    rates = [f for f in found if f.unit == RATE]
    ratio = next(f for f in found if f.name == RATIO)
    cpu_text, stacks = cpu_table(found)
    plot = plots.stacked_bars(
        bench.results, "security-cpu.png", "CPU per checkout by process, plaintext vs secured (µs)",
        stacks, "µs",
    )  # fmt: skip
    scale, settings = bench.scale, bench.settings
    markdown = "\n\n".join(
        [
            f"`kassa stream` (exactly-once defaults, {settings.stream_writers} writer "
            f"processes) on the same {scale.stream_messages:,} pre-produced synthetic "
            f"checkouts ({settings.partitions} partitions), read from the bench's plaintext "
            f"broker and from a one-node broker with a SASL_SSL listener (TLS, "
            f"{MECHANISM} login as the `kassa` user with only its ACLs, heap "
            f"{settings.kafka_heap}) started for this section on the same machine. The runs "
            f"alternate, plaintext then secured, {scale.repetitions} pair(s) after one "
            "untimed pair; medians. Command: `python -m bench --only security`.",
            table(
                ["variant", "checkouts per run", "median checkouts/s", "min - max"],
                [rate_row(f) for f in rates],
            ),
            f"Secured / plaintext throughput: **{ratio.median:.0%}** (the median of each "
            "pair's ratio).",
            "CPU per checkout of each process over the timed span (microseconds, medians; "
            "`broker` is the broker that served the run):",
            cpu_text,
            "What the security costs, and where: TLS encrypts every fetch response on the "
            "broker, which can then no longer hand log segments to the socket unread "
            "(`sendfile`) but reads and encrypts them in the JVM, and librdkafka decrypts them "
            "in the consumer process; the writers and Redis do the same work either way. "
            "SCRAM costs a few round trips and a salted hash per connection at login, nothing "
            "per checkout. No target: the figures say what turning security on costs here.",
        ]
    )
    notes = {
        "checkouts": scale.stream_messages,
        "partitions": settings.partitions,
        "secured_heap": settings.kafka_heap,
        "mechanism": MECHANISM,
    }
    return Section(
        "security", "Stream job on a secured broker", markdown, tuple(found), (plot,), notes
    )
