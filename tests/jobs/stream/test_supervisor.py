"""The supervisor's rules: when a failed job is rebuilt and when the process gives up.

The rules are pure; ``test_service.py`` checks them end to end on real outages and fencings.
"""

from __future__ import annotations

import logging

import pytest

from common.errors import KafkaUnavailableError
from common.settings import Settings
from jobs.stream.exceptions import (
    InstanceFencedError,
    KafkaContactLostError,
    StreamRedisUnavailableError,
)
from jobs.stream.metrics import StreamMetrics
from jobs.stream.supervisor import (
    FENCED_AGAIN_SECONDS,
    Outage,
    SupervisorState,
    _give_up_after_the_limit,
)

REDIS_DOWN = StreamRedisUnavailableError("redis://127.0.0.1:1/0", "reach", "refused")


def test_a_replica_fenced_twice_within_five_minutes_gives_up_and_once_is_rebuilt() -> None:
    state = SupervisorState(started=True)
    fenced = InstanceFencedError("till-1")
    assert not state.gives_up(fenced, stopping=False, now=1000.0)
    assert state.gives_up(fenced, stopping=False, now=1000.0 + FENCED_AGAIN_SECONDS - 1)
    later = SupervisorState(started=True, fenced_at=1000.0)
    assert not later.gives_up(fenced, stopping=False, now=1000.0 + FENCED_AGAIN_SECONDS)
    assert later.fenced_at == 1000.0 + FENCED_AGAIN_SECONDS


def test_redis_down_gives_up_only_before_any_job_started_and_a_signal_always() -> None:
    assert SupervisorState().gives_up(REDIS_DOWN, stopping=False, now=0.0)
    assert not SupervisorState(started=True).gives_up(REDIS_DOWN, stopping=False, now=0.0)
    lost = KafkaContactLostError("KafkaException: broker down")
    assert not SupervisorState().gives_up(lost, stopping=False, now=0.0)
    assert SupervisorState(started=True).gives_up(lost, stopping=True, now=0.0)


def test_an_outage_counts_from_its_first_sighting_until_the_service_answers() -> None:
    outage = Outage("Kafka")
    outage.observe("refused", now=100.0, seen_since=90.0)  # the probe saw it first
    outage.observe("timed out", now=102.0, seen_since=101.0)
    assert (outage.since, outage.problem, outage.lasted(104.0)) == (90.0, "timed out", 14.0)
    outage.observe(None, now=106.0)
    assert outage.since is None
    assert outage.lasted(106.0) == 0.0
    outage.observe("refused", now=108.0)
    assert outage.since == 108.0


def test_each_outage_is_a_warning_until_it_lasts_the_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(stream_outage_limit_seconds=10)
    metrics = StreamMetrics()
    state = SupervisorState()
    state.kafka.observe("refused", now=100.0)
    state.redis.observe("connection reset", now=105.0)
    with caplog.at_level(logging.WARNING, logger="jobs.stream.supervisor"):
        _give_up_after_the_limit(settings, metrics, state, now=109.0)
    assert [r.getMessage() for r in caplog.records] == [
        "Kafka does not answer for 9 s (refused); retrying",
        "Redis does not answer for 4 s (connection reset); retrying",
    ]
    assert metrics.state == "waiting for Redis"

    with pytest.raises(KafkaUnavailableError) as kafka:
        _give_up_after_the_limit(settings, metrics, state, now=110.0)
    assert kafka.value.exit_code == 4
    assert "no answer for 10 s, KASSA_STREAM_OUTAGE_LIMIT_SECONDS=10: refused" in str(kafka.value)
    state.kafka.observe(None, now=111.0)
    with pytest.raises(StreamRedisUnavailableError) as redis_down:
        _give_up_after_the_limit(settings, metrics, state, now=115.0)
    assert redis_down.value.exit_code == 3
    assert f"KASSA_REDIS_URL={settings.redis_url!r}" in str(redis_down.value)
