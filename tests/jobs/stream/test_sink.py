"""Two sinks writing the same partition (a stale replica): nothing is applied twice or lost."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis
from quixstreams.sinks import SinkBackpressureError

from common.schema import Checkout, encode_checkout
from common.settings import Settings
from jobs.stream.aggregate import Aggregator
from jobs.stream.dead_letters import DeadLetters
from jobs.stream.metrics import StreamMetrics
from jobs.stream.sink import LiveSink
from producers.synthetic import generate
from storage.live import LiveStore
from tests.helpers import truth
from tests.jobs.stream.helpers import days_of, live_figures


def _sink(settings: Settings, client: redis.Redis, spill: int) -> LiveSink:
    store = LiveStore(client, settings.topic, settings.zone, settings.retention_days)
    sink = LiveSink(
        store,
        aggregator=Aggregator(settings.zone),
        dead_letters=DeadLetters(settings.kafka_bootstrap, settings.dead_letter_topic),
        metrics=StreamMetrics(),
        limits=settings.limits,
        spill_offsets=spill,
    )
    sink.on_assign({0: -1001})
    return sink


def _feed(sink: LiveSink, topic: str, checkouts: list[Checkout], first: int = 0) -> None:
    for offset, checkout in enumerate(checkouts[first:], start=first):
        sink.add(encode_checkout(checkout), b"k", 0, [], topic, 0, offset)


@pytest.mark.parametrize("spill", [1000, 7])
def test_a_stale_replica_rewinds_and_applies_only_what_is_missing(
    settings: Settings, redis_client: redis.Redis, spill: int
) -> None:
    checkouts = list(generate(9, datetime(2026, 11, 21, 9, tzinfo=UTC), 30))
    fresh, stale = _sink(settings, redis_client, spill), _sink(settings, redis_client, spill)
    _feed(fresh, settings.topic, checkouts[:12])
    fresh.flush()
    _feed(stale, settings.topic, checkouts[:20])
    with pytest.raises(SinkBackpressureError):
        stale.flush()  # expected watermark -1, Redis holds 11: refused
    assert live_figures(redis_client, days_of(truth(checkouts, settings.zone))) == truth(
        checkouts[:12], settings.zone
    )
    _feed(stale, settings.topic, checkouts)  # Quix replays from the last commit
    stale.flush()
    expected = truth(checkouts, settings.zone)
    assert live_figures(redis_client, days_of(expected)) == expected
    for sink in (fresh, stale):
        sink.close()
