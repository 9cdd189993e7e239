"""The stream job's baselines: simpler consumers of the same topic, each a timed piece of work.

Each function returns the work to time (see :data:`bench.stream.Work`): it consumes the
topic from the beginning with a fresh group and returns the checkouts it handled and the
``perf_counter`` times of the first and of the last one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer
from quixstreams import Application

from common.schema import WireDecoder
from common.settings import Settings
from jobs.stream.app import FETCH_CONFIG
from storage.connections import open_redis
from storage.kafka.config import client_config, quix_connection

Work = Callable[[], tuple[int, float, float]]
"""Does the work; returns (checkouts, perf_counter at the first, at the end)."""
NAIVE_KEY = "bench:naive:{topic}:{day}"


class Clock:
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


def passthrough(settings: Settings, idle_seconds: float) -> Work:
    """The Quix application of the job reading bytes and doing nothing (framework ceiling)."""

    def work() -> tuple[int, float, float]:
        clock = Clock()
        broker, connection_extra = quix_connection(settings)
        app = Application(
            broker_address=broker,
            consumer_group=f"bench_quix_{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            auto_create_topics=False,
            commit_interval=settings.stream_commit_interval,
            on_message_processed=clock,
            state_dir=settings.state_dir / "quix-bench",
            consumer_extra_config=connection_extra | FETCH_CONFIG,
            producer_extra_config=connection_extra,
        )
        topic = app.topic(settings.topic, value_deserializer="bytes", key_deserializer="bytes")
        app.dataframe(topic)
        app.run(timeout=idle_seconds, collect=False)
        return clock.count, clock.first, clock.last

    return work


def _consumer(settings: Settings, **extra: Any) -> Consumer:
    consumer = Consumer(
        client_config(
            settings,
            {
                "group.id": f"bench_stream_{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                **extra,
            },
        )
    )
    consumer.subscribe([settings.topic])
    return consumer


def raw_decode(settings: Settings, messages: int) -> Work:
    """``Consumer.consume`` batches and ``WireDecoder.decode`` each value; nothing written."""

    def work() -> tuple[int, float, float]:
        consumer = _consumer(settings, **{"enable.auto.commit": False}, **FETCH_CONFIG)
        decode = WireDecoder(settings.limits).decode
        count, started = 0, 0.0
        idle_since = time.perf_counter()
        while count < messages and time.perf_counter() - idle_since < 10:
            batch = consumer.consume(1000, timeout=0.5)
            if not batch:
                continue
            if not count:
                started = time.perf_counter()
            for message in batch:
                if message.error() is None:
                    decode(message.value())
                    count += 1
            idle_since = time.perf_counter()
        ended = time.perf_counter()
        consumer.close()
        return count, started, ended

    return work


def naive_consume(settings: Settings, messages: int) -> Work:
    """The tutorial consumer: ``json.loads`` and one ``ZINCRBY`` per line, auto commit."""

    def work() -> tuple[int, float, float]:
        client = open_redis(settings)
        consumer = _consumer(settings)
        count, started = 0, 0.0
        deadline = time.perf_counter() + 120
        while count < messages and time.perf_counter() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            if not count:
                started = time.perf_counter()
            checkout = json.loads(message.value())
            key = NAIVE_KEY.format(topic=settings.topic, day=checkout["occurred_at"][:10])
            for line in checkout["lines"]:
                client.zincrby(key, line["quantity"], line["sku"])
            count += 1
        ended = time.perf_counter()
        consumer.close()
        written = list(client.scan_iter(NAIVE_KEY.format(topic=settings.topic, day="*")))
        if written:
            client.delete(*written)
        client.close()
        return count, started, ended

    return work
