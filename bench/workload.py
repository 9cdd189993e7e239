"""The seeded workloads of the benchmarks and the throwaway topics they live in."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgspec
from confluent_kafka import KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from common.days import day_bounds
from common.environment import settings_variables
from common.schema import Checkout, encode_checkout
from common.settings import Settings
from producers.publish import publish
from producers.synthetic import Versions, generate
from storage.kafka.topics import admin_client, ensure_topics

logger = logging.getLogger(__name__)

UTC_ZONE: Final = ZoneInfo("UTC")
OLD_START: Final = datetime(2001, 1, 1, 8, tzinfo=UTC_ZONE)
"""Where the stream benchmarks' simulated clock starts (their days are never 'today')."""


def fresh_topic(settings: Settings, name: str, partitions: int | None = None) -> Settings:
    """Settings on a new topic ``bench_<name>_<id>`` (and group) kept without time retention.

    The records are stamped with old dates: the broker's default retention would delete them
    minutes after they were produced, in the middle of a run.
    """
    unique = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    update: dict[str, Any] = {"topic": unique, "consumer_group": unique}
    if partitions is not None:
        update["partitions"] = partitions
    variant = settings.model_copy(update=update)
    ensure_topics(variant)
    forever = ConfigEntry("retention.ms", "-1", incremental_operation=AlterConfigOpType.SET)
    keep = ConfigResource("topic", variant.topic, incremental_configs=[forever])
    admin = admin_client(variant)  # kept alive until the futures are done
    for future in admin.incremental_alter_configs([keep]).values():
        future.result()
    return variant


def drop_topic(settings: Settings) -> None:
    """Delete the sales and dead-letter topics of ``settings`` (a warning if it fails)."""
    admin = admin_client(settings)
    topics = [settings.topic, settings.dead_letter_topic]
    for topic, future in admin.delete_topics(topics, operation_timeout=30).items():
        try:
            future.result()
        except KafkaException:
            logger.warning("could not delete topic %s", topic)


def produce(settings: Settings, checkouts: Iterable[Checkout]) -> int:
    """Publish ``checkouts`` with kassa's producer; the number delivered (all, or it raises)."""
    report = publish(settings, checkouts)
    if report.failed:
        msg = f"could not produce the benchmark's records to {settings.topic}: {report.summary()}"
        raise RuntimeError(msg)
    return report.delivered


def stream_checkouts(
    seed: int, count: int, stores: int = 20, versions: Versions = "1"
) -> Iterator[Checkout]:
    """``count`` simulated checkouts from :data:`OLD_START` on (in message ``versions``)."""
    return generate(seed, OLD_START, count, store_count=stores, versions=versions)


def day_of_checkouts(seed: int, day: date, count: int, stores: int = 20) -> Iterator[Checkout]:
    """``count`` simulated baskets spread evenly over ``day`` (UTC)."""
    start, end = day_bounds(day, UTC_ZONE)
    step = (end - start) / count
    source = generate(seed, start, count, store_count=stores)
    for index, item in enumerate(source):
        yield msgspec.structs.replace(item, occurred_at=start + index * step)


def day_seal(day: date, partitions: int) -> Iterator[Checkout]:
    """Checkouts a few hours after ``day`` in every partition: they tell the daily job that
    the day's range is complete (eight per partition: keys spread by hash)."""
    _, end = day_bounds(day, UTC_ZONE)
    template = next(generate(8, end, 1))
    for index in range(partitions * 8):
        yield msgspec.structs.replace(
            template,
            transaction_id=f"seal-{index}",
            store_id=f"seal-{index}",
            occurred_at=end + timedelta(hours=3),
        )


def encoded_size(seed: int, count: int = 2_000) -> float:
    """The mean encoded size in bytes of the first ``count`` simulated checkouts."""
    sizes = [len(encode_checkout(c)) for c in stream_checkouts(seed, count)]
    return sum(sizes) / len(sizes)


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of a ``kassa`` child process run with ``settings``."""
    return {"PATH": "/usr/bin:/bin", **settings_variables(settings)}
