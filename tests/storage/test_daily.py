"""Daily rankings in Redis: atomic replacement, reconciliation with the live keys, repair."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal

import polars as pl
import pytest
import redis
from redis.client import Pipeline

from common.settings import Settings
from jobs.stream.aggregate import roll_up
from storage import keys
from storage.daily import (
    DaySnapshot,
    LiveCaughtUp,
    item_figures,
    read_day,
    reconcile,
    replace_day,
    stage_day,
)
from storage.live import Expectation, Identity, LiveStore, PartitionDelta
from storage.summaries import ManifestSummary, read_summaries

DAY = date(2026, 11, 20)
SPACE = "pytest"


def _summary(run_id: str) -> ManifestSummary:
    return ManifestSummary(
        run_id=run_id,
        revision=1,
        complete=True,
        forced=False,
        checkouts=1,
        lines=1,
        revenue=Decimal("1.1000"),
        finished_at="2026-11-21T02:31:07+00:00",
        code_version="0.1.0",
    )


def _snapshot(stores: dict[str, dict[str, tuple[int, int, int, int, int]]]) -> DaySnapshot:
    items: dict[str, tuple[int, int, int, int, int]] = {}
    for figures in stores.values():
        for sku, row in figures.items():
            old = items.get(sku, (0, 0, 0, 0, 0, 0))
            items[sku] = tuple(a + b for a, b in zip(old, row, strict=True))  # type: ignore[assignment]
    totals = {"units": sum(r[0] for r in items.values()), "checkouts": 1, "lines": 1}
    return DaySnapshot(items, totals, stores, {store: dict(totals) for store in stores})


def test_replace_day_swaps_every_key_and_drops_stale_stores(
    settings: Settings, redis_client: redis.Redis
) -> None:
    expire_at = int(time.time()) + 3600
    replace_day(
        redis_client,
        SPACE,
        "daily",
        DAY,
        _snapshot({"s1": {"a": (5, 5, 0, 100, 2, 0)}, "s2": {"b": (1, 2, 1, 10, 1, 0)}}),
        expire_at=expire_at,
        summary=_summary("one"),
    )
    replace_day(
        redis_client,
        SPACE,
        "daily",
        DAY,
        _snapshot({"s1": {"a": (7, 7, 0, 140, 3, 0)}}),
        expire_at=expire_at,
        summary=_summary("two"),
    )

    assert read_day(redis_client, SPACE, "daily", DAY) == {"a": (7, 7, 0, 140, 3, 0)}
    assert redis_client.smembers(keys.stores_key(SPACE, "daily", DAY)) == {b"s1"}
    assert redis_client.exists(keys.day_key(SPACE, "daily", DAY, "units", "s2")) == 0
    assert redis_client.exists(keys.day_key(SPACE, "daily", DAY, "returned")) == 0
    assert redis_client.hget(keys.manifest_key(SPACE, DAY), "run_id") == b"two"
    assert read_summaries(redis_client, SPACE, [DAY]) == {DAY: _summary("two")}
    assert list(redis_client.scan_iter("kassa:tmp:*")) == []
    assert 0 < redis_client.ttl(keys.day_key(SPACE, "daily", DAY, "units")) <= 3600


def test_a_failure_before_the_swap_leaves_the_old_day(
    settings: Settings, redis_client: redis.Redis
) -> None:
    expire_at = int(time.time()) + 3600
    replace_day(
        redis_client,
        SPACE,
        "daily",
        DAY,
        _snapshot({"s1": {"a": (5, 5, 0, 100, 2, 0)}}),
        expire_at=expire_at,
    )
    broken = _snapshot({"s1": {"a": (9, 9, 0, 100, 2, 0)}})
    # The stores key of the wrong type makes the step between building and swapping fail.
    redis_client.set(keys.stores_key(SPACE, "daily", DAY), "a string, not a set")

    with pytest.raises(redis.ResponseError):
        replace_day(redis_client, SPACE, "daily", DAY, broken, expire_at=expire_at)

    assert read_day(redis_client, SPACE, "daily", DAY) == {"a": (5, 5, 0, 100, 2, 0)}
    assert list(redis_client.scan_iter("kassa:tmp:*")) == []


def test_a_staged_day_is_invisible_until_swapped_and_discard_removes_it(
    settings: Settings, redis_client: redis.Redis
) -> None:
    expire_at = int(time.time()) + 3600
    old = _snapshot({"s1": {"a": (5, 5, 0, 100, 2, 0)}})
    replace_day(redis_client, SPACE, "daily", DAY, old, expire_at=expire_at)
    new = _snapshot({"s1": {"a": (9, 9, 0, 180, 3, 0)}})

    discarded = stage_day(redis_client, SPACE, "daily", DAY, new)
    assert list(redis_client.scan_iter("kassa:tmp:*")) != []
    assert read_day(redis_client, SPACE, "daily", DAY) == {"a": (5, 5, 0, 100, 2, 0)}
    discarded.discard()
    assert list(redis_client.scan_iter("kassa:tmp:*")) == []
    assert read_day(redis_client, SPACE, "daily", DAY) == {"a": (5, 5, 0, 100, 2, 0)}

    staged = stage_day(redis_client, SPACE, "daily", DAY, new, summary=_summary("three"))
    assert read_day(redis_client, SPACE, "daily", DAY) == {"a": (5, 5, 0, 100, 2, 0)}
    staged.swap(expire_at)
    assert read_day(redis_client, SPACE, "daily", DAY) == {"a": (9, 9, 0, 180, 3, 0)}
    assert read_day(redis_client, SPACE, "daily", DAY, "s1") == {"a": (9, 9, 0, 180, 3, 0)}
    assert redis_client.hget(keys.manifest_key(SPACE, DAY), "run_id") == b"three"
    assert list(redis_client.scan_iter("kassa:tmp:*")) == []


def test_reconcile_reports_drift_and_repair_makes_live_equal(
    settings: Settings, redis_client: redis.Redis
) -> None:
    daily = {"a": (5, 5, 0, 100, 2, 0), "b": (1, 1, 0, 10, 1, 0)}
    redis_client.zadd(keys.day_key(SPACE, "live", DAY, "units"), {"a": 4, "c": 2})
    redis_client.hset(keys.day_key(SPACE, "live", DAY, "sold"), mapping={"a": 4, "c": 2})

    report = reconcile(redis_client, SPACE, DAY, daily)

    assert report.live_items > 0
    assert [drift.sku for drift in report.drifts] == ["a", "b", "c"]
    assert report.drifts[0].as_dict()["difference"] == {
        "units": -1,
        "sold": -1,
        "returned": 0,
        "revenue": -100,
        "checkouts": -2,
        "discount": 0,
    }

    replace_day(
        redis_client,
        SPACE,
        "live",
        DAY,
        DaySnapshot(daily, {"units": 6}),
        expire_at=int(time.time()) + 60,
    )
    assert reconcile(redis_client, SPACE, DAY, daily).drifts == ()


def test_item_figures_count_money_in_money_units_at_any_decimal_scale() -> None:
    frame = pl.DataFrame(
        {
            "sku": ["a", "b", "c"],
            "units": [1, 2, -3],
            "units_sold": [1, 2, 0],
            "units_returned": [0, 0, 3],
            "revenue": [Decimal("1.2345"), Decimal("-99999999999999.9999"), Decimal(0)],
            "checkouts": [1, 1, 2],
            "discount": [Decimal("0.1"), Decimal(0), Decimal("-2.5")],
        },
        schema_overrides={"revenue": pl.Decimal(38, 4), "discount": pl.Decimal(38, 4)},
    )
    expected = {
        "a": (1, 1, 0, 12_345, 1, 1_000),
        "b": (2, 2, 0, -999_999_999_999_999_999, 1, 0),
        "c": (-3, 0, 3, 0, 2, -25_000),
    }

    assert item_figures(frame) == expected
    wider = frame.with_columns(pl.col("revenue", "discount").cast(pl.Decimal(38, 6)))
    assert item_figures(wider) == expected


class _RacingGuard(LiveCaughtUp):
    """Lets ``kassa stream rebuild`` land between its check and the swap's EXEC, once."""

    def __init__(self, key: str, ends: dict[int, int], store: LiveStore, identity: Identity):
        super().__init__(key, ends)
        self._race: tuple[LiveStore, Identity] | None = (store, identity)

    def allows(self, pipe: Pipeline) -> bool:
        allowed = super().allows(pipe)
        if self._race is not None:
            store, identity = self._race
            self._race = None
            store.rebuild(identity, 0, {0: 0}, DAY)  # another client, between WATCH and EXEC
        return allowed


def test_a_rebuild_between_the_repair_check_and_its_swap_refuses_the_repair(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = LiveStore(redis_client, SPACE, settings.zone, settings.retention_days)
    identity = Identity("topic-id", "cluster-id")
    delta = PartitionDelta(0, 0, 9, items={(DAY, "s1"): {"a": [5, 5, 0, 100, 2, 0]}})
    delta.stores[(DAY, "s1")] = [2, 2]
    roll_up(delta)
    store.apply(delta, Expectation(identity, 0, -1))
    daily = _snapshot({"s1": {"a": (5, 5, 0, 100, 2, 0)}})
    guard = _RacingGuard(keys.applied_offsets_key(SPACE), {0: 10}, store, identity)

    staged = stage_day(redis_client, SPACE, "live", DAY, daily)
    assert staged.swap(int(time.time()) + 3600, guard) is False
    assert guard.behind == {0: (-1, 10)}  # the rebuild moved the watermark back
    assert read_day(redis_client, SPACE, "live", DAY) == {}  # cleared for the recount, not repaired
