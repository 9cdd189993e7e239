"""``kassa stream --idle-timeout``: catch up a backlog, then stop cleanly by itself."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from common.settings import Settings
from producers.publish import publish
from producers.synthetic import generate
from tests.helpers import run_kassa, settings_env, truth
from tests.jobs.stream.helpers import days_of, live_figures


def test_idle_timeout_counts_the_backlog_then_exits_zero(
    settings: Settings, redis_client: redis.Redis
) -> None:
    checkouts = list(generate(seed=11, start=datetime(2026, 11, 20, 9, tzinfo=UTC), count=300))
    assert publish(settings, checkouts).delivered == 300
    env = settings_env(settings.model_copy(update={"metrics_port": 0}))

    result = run_kassa("stream", "--idle-timeout", "3", env=env)

    assert result.returncode == 0, result.stderr[-2000:]
    expected = truth(checkouts, settings.zone)
    assert live_figures(redis_client, days_of(expected), settings.key_space) == expected


def test_a_negative_idle_timeout_is_refused(settings: Settings) -> None:
    result = run_kassa("stream", "--idle-timeout", "-1", env=settings_env(settings), timeout=60)
    assert result.returncode == 2
    assert "'-1' is not a number >= 0" in result.stderr
