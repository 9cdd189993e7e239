"""The sink: batches reach Redis by age or at the commit, exactly once, despite stale replicas."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import redis
from quixstreams.sinks import SinkBackpressureError

from common.schema import Checkout, encode_checkout
from common.settings import Settings
from jobs.stream.metrics import StreamMetrics
from jobs.stream.sink import LiveSink, check_watermarks
from jobs.stream.writer import BatchWriter
from producers.synthetic import generate
from storage import keys
from storage.live import Identity, LiveStore
from tests.helpers import truth, wait_until
from tests.jobs.stream.helpers import assert_exact, days_of, live_figures, watermarks

IDENTITY = Identity("topic-id", "cluster-id")


@contextmanager
def _sink(
    settings: Settings,
    client: redis.Redis,
    *,
    spill: int = 1000,
    write_interval: float = 60.0,
    idle_seconds: float = 60.0,
    spill_bytes: int = 1 << 30,
    max_in_flight: int = 16,
) -> Iterator[LiveSink]:
    """A sink assigned partitions 0-2 with no watermark yet, closed on exit."""
    store = LiveStore(client, settings.key_space, settings.zone, settings.retention_days)
    sink = LiveSink(
        store,
        BatchWriter(settings),
        metrics=StreamMetrics(),
        write_interval=write_interval,
        idle_seconds=idle_seconds,
        spill_offsets=spill,
        spill_bytes=spill_bytes,
        max_in_flight=max_in_flight,
    )
    try:
        sink.on_assign(store.state(range(3)), IDENTITY, dict.fromkeys(range(3), 0))
        yield sink
    finally:
        sink.close()


def _feed(sink: LiveSink, topic: str, checkouts: list[Checkout], first: int = 0) -> None:
    for offset, checkout in enumerate(checkouts[first:], start=first):
        sink.add(encode_checkout(checkout), b"k", 0, [], topic, 0, offset)


@pytest.mark.parametrize("spill", [1000, 7])
def test_a_stale_replica_rewinds_and_applies_only_what_is_missing(
    settings: Settings, redis_client: redis.Redis, spill: int
) -> None:
    checkouts = list(generate(9, datetime(2026, 11, 21, 9, tzinfo=UTC), 30))
    with (
        _sink(settings, redis_client, spill=spill) as fresh,
        _sink(settings, redis_client, spill=spill) as stale,
    ):
        _feed(fresh, settings.topic, checkouts[:12])
        fresh.flush()
        _feed(stale, settings.topic, checkouts[:20])
        with pytest.raises(SinkBackpressureError):
            stale.flush()  # expected watermark -1, Redis holds 11: refused
        assert live_figures(
            redis_client, days_of(truth(checkouts, settings.zone)), settings.key_space
        ) == truth(checkouts[:12], settings.zone)
        _feed(stale, settings.topic, checkouts)  # Quix replays from the last commit
        stale.flush()
        assert_exact(redis_client, settings, checkouts)


def test_a_batch_reaches_redis_once_it_is_write_interval_old_without_a_commit(
    settings: Settings, redis_client: redis.Redis
) -> None:
    checkouts = list(generate(5, datetime(2026, 11, 21, 9, tzinfo=UTC), 6))
    applied = keys.applied_offsets_key(settings.key_space)
    with _sink(settings, redis_client, write_interval=2.0) as sink:
        _feed(sink, settings.topic, checkouts)
        assert redis_client.hget(applied, "0") is None  # young batch: still collecting

        # No further message and no flush: the timer hands the batch over.
        wait_until(lambda: redis_client.hget(applied, "0") == b"5", 10, "the batch in Redis")
        assert_exact(redis_client, settings, checkouts)


def test_a_batch_reaches_redis_as_soon_as_its_partition_goes_quiet(
    settings: Settings, redis_client: redis.Redis
) -> None:
    checkouts = list(generate(5, datetime(2026, 11, 21, 9, tzinfo=UTC), 12))
    applied = keys.applied_offsets_key(settings.key_space)
    with _sink(settings, redis_client, idle_seconds=0.05) as sink:  # write interval: 60 s
        for first, end in ((0, 6), (6, 12)):
            _feed(sink, settings.topic, checkouts[:end], first)
            # No flush, a young batch: only the pause after the burst can hand it over.
            wait_until(
                lambda last=end - 1: redis_client.hget(applied, "0") == str(last).encode(),
                10,
                f"the burst up to offset {end - 1} in Redis",
            )
        assert_exact(redis_client, settings, checkouts)


def test_several_writers_split_the_partitions_and_keep_each_partition_in_order(
    settings: Settings, redis_client: redis.Redis
) -> None:
    checkouts = list(generate(8, datetime(2026, 11, 21, 9, tzinfo=UTC), 60))
    three = settings.model_copy(update={"stream_writers": 3})
    with _sink(three, redis_client, spill=1) as sink:  # every message is a batch of its own
        for index, checkout in enumerate(checkouts):
            partition, offset = index % 3, index // 3
            sink.add(encode_checkout(checkout), b"k", 0, [], settings.topic, partition, offset)
        sink.flush()  # a batch applied out of order would be refused: SinkBackpressureError
        assert watermarks(redis_client, settings.key_space) == {0: 19, 1: 19, 2: 19}
        assert_exact(redis_client, settings, checkouts)


def test_a_batch_larger_than_spill_bytes_is_handed_over_at_once(
    settings: Settings, redis_client: redis.Redis
) -> None:
    checkouts = list(generate(6, datetime(2026, 11, 21, 9, tzinfo=UTC), 40))
    values = [encode_checkout(checkout) for checkout in checkouts]
    applied = keys.applied_offsets_key(settings.key_space)
    with _sink(settings, redis_client, spill_bytes=sum(map(len, values[:5]))) as sink:
        _feed(sink, settings.topic, checkouts)

        # No flush and a 60 s write interval: only the size bound can have written these.
        wait_until(lambda: int(redis_client.hget(applied, "0") or -1) >= 19, 10, "batches in Redis")
        sink.flush()
        assert_exact(redis_client, settings, checkouts)


def test_the_consumer_waits_while_the_writer_is_max_in_flight_batches_behind(
    settings: Settings, redis_client: redis.Redis
) -> None:
    checkouts = list(generate(7, datetime(2026, 11, 21, 9, tzinfo=UTC), 12))
    with _sink(settings, redis_client, spill=1, max_in_flight=2) as sink:
        feeding = threading.Thread(target=_feed, args=(sink, settings.topic, checkouts))
        try:
            redis_client.execute_command("CLIENT", "PAUSE", "3000", "WRITE")  # Redis stalls
            feeding.start()
            feeding.join(1.0)
            assert feeding.is_alive()  # 12 one-message batches, at most 2 in flight: waiting

            feeding.join(30)
            assert not feeding.is_alive()
            sink.flush()
            assert_exact(redis_client, settings, checkouts)
        finally:
            redis_client.execute_command("CLIENT", "UNPAUSE")


def test_a_partition_lost_mid_batch_and_reassigned_drops_its_stale_batch(
    settings: Settings, redis_client: redis.Redis
) -> None:
    checkouts = list(generate(12, datetime(2026, 11, 21, 9, tzinfo=UTC), 30))
    store = LiveStore(redis_client, settings.key_space, settings.zone, settings.retention_days)
    with _sink(settings, redis_client) as mine, _sink(settings, redis_client) as other:
        _feed(mine, settings.topic, checkouts[:10])  # an open batch 0..9, not yet submitted
        mine.on_revoke([0])  # the group takes partition 0 away (lost: no commit)
        _feed(other, settings.topic, checkouts[:20])  # the new owner applies 0..19
        other.flush()
        mine.on_assign(store.state([0]), IDENTITY, {0: 20})  # back again, resuming at 20
        _feed(mine, settings.topic, checkouts, first=20)
        mine.flush()
        assert_exact(redis_client, settings, checkouts)


def test_an_assignment_with_redis_behind_kafka_is_reported_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = StreamMetrics()
    committed = {0: 100, 1: 50, 2: -1001}
    with caplog.at_level(logging.INFO):
        check_watermarks(committed, {0: 42, 1: 60, 2: -1}, metrics)

    assert "REDIS IS BEHIND KAFKA on partition 0" in caplog.text
    assert "recounting offsets 43..99 from Kafka" in caplog.text
    assert "partition 1: Redis is ahead of the committed offset 50" in caplog.text
    assert "partition 2" not in caplog.text
    gauges = {
        name: [
            metrics.registry.get_sample_value(name, {"partition": str(partition)})
            for partition in range(3)
        ]
        for name in ("kassa_stream_redis_behind", "kassa_stream_applied_offset")
    }
    assert gauges == {
        "kassa_stream_redis_behind": [1, 0, 0],
        "kassa_stream_applied_offset": [42, 60, -1],
    }
