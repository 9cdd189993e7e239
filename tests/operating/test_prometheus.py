"""A real Prometheus scraping a running stream job, the scheduler and ``kassa serve``: every
query of the board returns data, every alert is silent while kassa is healthy and reads
series that exist, and stopping Redis sets off the Redis alert."""

from __future__ import annotations

import time

from tests.helpers import wait_until
from tests.operating.conftest import Operated, log_tails
from tests.operating.expressions import alert_rules, board_queries, metric_names

SCRAPED_WITHIN = 120.0
"""Seconds for every series to be scraped (librdkafka's statistics come every 5 s)."""


def _empty(operated: Operated, queries: dict[str, str]) -> list[str]:
    return [name for name, expr in queries.items() if not operated.prometheus.query(expr)]


def test_prometheus_scrapes_the_three_kassa_jobs(operated: Operated) -> None:
    prometheus = operated.prometheus
    assert sorted(prometheus.jobs) == sorted(operated.ports)
    wait_until(
        lambda: prometheus.target_health() == {job: ["up"] for job in operated.ports},
        60,
        "every kassa job to be scraped",
    )


def test_every_query_of_the_board_returns_data(operated: Operated) -> None:
    queries = board_queries()
    deadline = time.monotonic() + SCRAPED_WITHIN
    while (empty := _empty(operated, queries)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not empty, ({name: queries[name] for name in empty}, log_tails(operated))


def test_every_alert_is_silent_while_kassa_is_healthy_and_reads_series_that_exist(
    operated: Operated,
) -> None:
    prometheus = operated.prometheus
    names = {name for expr in alert_rules().values() for name in metric_names(expr)}
    counts = {name: f'count({{__name__="{name}"}})' for name in names}
    deadline = time.monotonic() + SCRAPED_WITHIN
    while (missing := _empty(operated, counts)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not missing, (missing, log_tails(operated))
    firing = {alert: prometheus.query(expr) for alert, expr in alert_rules().items()}
    assert {alert: result for alert, result in firing.items() if result} == {}
    assert prometheus.alert_states() == {}


def test_redis_stopped_sets_off_the_redis_alert(operated: Operated) -> None:
    """The last test of the module: it stops the Redis server kassa uses."""
    prometheus = operated.prometheus
    assert "KassaRedisUnreachable" not in prometheus.alert_states()
    operated.redis.stop()
    wait_until(
        lambda: prometheus.alert_states().get("KassaRedisUnreachable") in {"pending", "firing"},
        30,
        "KassaRedisUnreachable to go pending",
    )
