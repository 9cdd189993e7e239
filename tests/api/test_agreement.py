"""The API, ``kassa top`` and Redis agree with a ground truth, for rankings, items and totals.

Three days of simulated checkouts in three stores go through the real stream job (live) and
the real daily job (daily); every ranking is then read four ways: the API, the CLI, Redis'
documented keys read directly, and the plain sums of what was produced.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import islice, takewhile
from typing import Any

import pytest
import redis

from cli.main import main as kassa
from common.schema import Checkout, from_money_units
from common.settings import Settings
from jobs.daily.job import run_day
from jobs.stream.app import build_stream_job
from producers.publish import publish
from producers.synthetic import generate
from storage import keys
from storage.daily import read_day
from storage.figures import RANKED_BY, RankedBy
from tests.api.helpers import QUANTUM, as_rows, expected_ranking, get, serving
from tests.helpers import Figures, settings_env, truth, wait_until

STORES = 3
SOURCES: tuple[keys.Source, ...] = ("live", "daily")


def _checkouts(first: date, last: date) -> list[Checkout]:
    """Every 10th simulated checkout from 07:00 on ``first`` to the end of ``last`` (UTC)."""
    start = datetime.combine(first, time(7), tzinfo=UTC)
    within = takewhile(
        lambda c: c.occurred_at.date() <= last, generate(11, start, store_count=STORES)
    )
    return list(islice(within, 0, None, 10))


def _redis_ranking(
    client: redis.Redis,
    space: str,
    source: keys.Source,
    *,
    days: list[date],
    store: str | None,
    by: RankedBy,
    limit: int,
) -> list[tuple[int, str, int, str]]:
    """The ranking a direct reader computes from each day's documented keys."""
    figures: Figures = {}
    for day in days:
        for sku, (units, sold, returned, revenue, baskets, discount) in read_day(
            client, space, source, day, store
        ).items():
            figures[(day, store, sku)] = (
                units,
                sold,
                returned,
                from_money_units(revenue),
                baskets,
                from_money_units(discount),
            )
    return expected_ranking(figures, days, store, by, limit)


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    # In process, not run_kassa: this asks ``kassa top`` 24 rankings in a loop, and a child
    # process each would spend most of the test importing kassa.
    assert kassa(args) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def produced(settings: Settings) -> Iterator[tuple[Settings, list[Checkout], list[date]]]:
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=4), today - timedelta(days=3), today - timedelta(days=2)]
    checkouts = _checkouts(days[0], days[-1])
    report = publish(settings, checkouts)
    assert report.delivered == len(checkouts), report.summary()
    build_stream_job(settings.model_copy(update={"metrics_port": 0})).run(timeout=3.0)
    for day in days:
        run_day(settings, day, force=True)
    yield settings, checkouts, days


def test_rankings_agree_for_sources_days_ranges_stores_and_measures(
    produced: tuple[Settings, list[Checkout], list[date]],
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, checkouts, days = produced
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    figures = truth(checkouts, settings.zone)
    store = sorted({c.store_id for c in checkouts})[1]
    spans = [(days[1], days[1]), (days[0], days[2])]
    with serving(settings, probe_kafka=False) as base:
        for source in SOURCES:
            for first, last in spans:
                span = [first + timedelta(days=i) for i in range((last - first).days + 1)]
                for scope in (None, store):
                    for by in RANKED_BY:
                        case = f"{source} {first}..{last} store={scope} by={by}"
                        expected = expected_ranking(figures, span, scope, by, 7)
                        assert len(expected) == 7, case
                        when = (
                            {"day": str(first)}
                            if first == last
                            else {"from": str(first), "to": str(last)}
                        )
                        query = {"source": source, "by": by, "n": "7", **when}
                        flags = [f"--{key}" if key != "n" else "-n" for key in query]
                        args = ["top", "--json"]
                        for flag, value in zip(flags, query.values(), strict=True):
                            args += [flag, value]
                        if scope is not None:
                            query["store"] = scope
                            args += ["--store", scope]
                        url = f"{base}/api/rankings?" + "&".join(
                            f"{k}={v}" for k, v in query.items()
                        )
                        status, body = get(url)
                        assert status == 200, (case, body)
                        assert as_rows(body["items"]) == expected, case
                        assert as_rows(_cli(args, capsys)) == expected, case
                        direct = _redis_ranking(
                            redis_client,
                            settings.key_space,
                            source,
                            days=span,
                            store=scope,
                            by=by,
                            limit=7,
                        )
                        assert direct == expected, case


def test_item_figures_and_day_totals_agree_with_the_ground_truth(
    produced: tuple[Settings, list[Checkout], list[date]],
) -> None:
    settings, checkouts, days = produced
    figures = truth(checkouts, settings.zone)
    store = sorted({c.store_id for c in checkouts})[0]
    sku = max(
        (key for key in figures if key[1] is None), key=lambda key: (figures[key][0], key[2])
    )[2]
    with serving(settings, probe_kafka=False) as base:
        for source in ("live", "daily"):
            for scope in (None, store):
                suffix = f"source={source}&from={days[0]}&to={days[-1]}"
                suffix += f"&store={scope}" if scope else ""
                status, item = get(f"{base}/api/items/{sku}?{suffix}")
                assert status == 200, item
                zero = (0, 0, 0, Decimal(0), 0, Decimal(0))
                want = [figures.get((day, scope, sku), zero) for day in days]
                assert [
                    (
                        d["units"],
                        d["units_sold"],
                        d["units_returned"],
                        d["revenue"],
                        d["checkouts"],
                        d["discount"],
                    )
                    for d in item["days"]
                ] == [
                    (u, s, r, str(m.quantize(QUANTUM)), c, str(x.quantize(QUANTUM)))
                    for u, s, r, m, c, x in want
                ]
                assert item["total"]["units"] == sum(row[0] for row in want)

                status, totals = get(f"{base}/api/totals?{suffix}")
                assert status == 200, totals
                for row in totals["days"]:
                    day = date.fromisoformat(row["day"])
                    mine = [c for c in checkouts if c.occurred_at.date() == day]
                    mine = [c for c in mine if scope is None or c.store_id == scope]
                    revenue = sum(
                        (line.quantity * line.unit_price for c in mine for line in c.lines),
                        Decimal(0),
                    )
                    assert row["checkouts"] == len(mine), (source, scope, day)
                    assert row["lines"] == sum(len(c.lines) for c in mine)
                    assert row["units"] == sum(line.quantity for c in mine for line in c.lines)
                    assert row["revenue"] == str(revenue.quantize(QUANTUM))


def test_stores_days_manifests_and_health(
    produced: tuple[Settings, list[Checkout], list[date]],
) -> None:
    settings, checkouts, days = produced
    with serving(settings) as base:
        status, stores = get(f"{base}/api/stores?from={days[0]}&to={days[-1]}")
        assert status == 200
        assert stores["stores"] == sorted({c.store_id for c in checkouts})

        status, statuses = get(f"{base}/api/days?from={days[0]}&to={days[-1]}")
        assert status == 200
        assert [(d["day"], d["live"], d["daily"]) for d in statuses["days"]] == [
            (str(day), True, True) for day in days
        ]
        assert all(d["manifest"]["forced"] is not None for d in statuses["days"])

        status, manifest = get(f"{base}/api/manifests/{days[0]}")
        assert status == 200
        assert manifest["day"] == str(days[0])
        assert manifest["totals"]["checkouts"] == sum(
            1 for c in checkouts if c.occurred_at.date() == days[0]
        )

        def settled() -> bool:
            code, body = get(f"{base}/health")
            return code == 200 and body["kafka"]["reachable"] and body["kafka"]["lag"] == 0

        wait_until(settled, 60, "/health to report Kafka reachable and no lag")
        status, health = get(f"{base}/health")
        assert health["status"] == "ok"
        assert health["stream"]["consumer_group"] == settings.consumer_group
        assert sum(p["high_watermark"] for p in health["kafka"]["partitions"]) == len(checkouts)
        assert health["daily"]["day"] == str(days[-1])
