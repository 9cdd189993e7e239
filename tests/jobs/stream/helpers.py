"""Ground truth computed independently from what a test produced, and the live figures read
back from Redis in the same shape."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path

import redis
from confluent_kafka import Consumer, TopicPartition

from common.schema import from_money_units
from common.settings import Settings
from storage import keys
from storage.figures import CHECKOUTS, NAMES, RANKED, RETURNED, REVENUE, SOLD
from tests.helpers import Figures, settings_env


def live_figures(client: redis.Redis, days: Iterable[date]) -> Figures:
    """Every live figure of ``days`` as stored in Redis (missing hash fields count 0)."""
    result: Figures = {}
    for day in days:
        stores = sorted(m.decode() for m in client.smembers(keys.stores_key("live", day)))
        for store in [None, *stores]:
            ranking = keys.day_key("live", day, NAMES[RANKED], store)
            units = client.zrange(ranking, 0, -1, withscores=True)
            hashes = {
                figure: {
                    k.decode(): int(v)
                    for k, v in client.hgetall(
                        keys.day_key("live", day, NAMES[figure], store)
                    ).items()
                }
                for figure in (SOLD, RETURNED, REVENUE, CHECKOUTS)
            }
            for raw_sku, score in units:
                sku = raw_sku.decode()
                result[(day, store, sku)] = (
                    int(score),
                    hashes[SOLD].get(sku, 0),
                    hashes[RETURNED].get(sku, 0),
                    from_money_units(hashes[REVENUE].get(sku, 0)),
                    hashes[CHECKOUTS].get(sku, 0),
                )
    return result


def days_of(figures: Figures) -> set[date]:
    """The days present in ``figures``."""
    return {day for day, _, _ in figures}


def end_offsets(settings: Settings, topic: str | None = None) -> dict[int, int]:
    """Partition -> offset after the last record of ``topic`` (the sales topic by default)."""
    name = topic or settings.topic
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "probe"})
    try:
        metadata = consumer.list_topics(name, timeout=10).topics[name]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
            for p in metadata.partitions
        }
    finally:
        consumer.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.1 s; fail the test naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout:.0f} s waiting for {what}"
            raise AssertionError(msg)
        time.sleep(0.1)


def caught_up(client: redis.Redis, settings: Settings) -> Callable[[], bool]:
    """A condition: Redis' watermark reached the end of every non-empty partition."""
    ends = end_offsets(settings)

    def check() -> bool:
        raw = client.hgetall(keys.applied_offsets_key(settings.topic))
        marks = {int(k): int(v) for k, v in raw.items()}
        return all(marks.get(p, -1) >= end - 1 for p, end in ends.items() if end > 0)

    return check


def start_stream(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """``kassa stream`` as a child process with exactly ``settings``, logging to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "stream"],
            env=settings_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
