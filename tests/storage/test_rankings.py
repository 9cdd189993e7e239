"""Reading a ranking back: best first, ties by sku, exact revenue, either source."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import redis

from storage import keys
from storage.rankings import RankedItem, read_ranking

DAY = date(2026, 3, 29)
SPACE = "pytest"


def _fill(client: redis.Redis, source: keys.Source, store: str | None = None) -> None:
    units = {"a": 5, "b": 9, "c": 5, "d": 1, "e": 5}
    client.zadd(keys.day_key(SPACE, source, DAY, "units", store), units)
    client.hset(keys.day_key(SPACE, source, DAY, "revenue", store), mapping={"b": 123456, "a": 1})
    client.hset(keys.names_key(SPACE), mapping={"a": "Apple", "b": "Bread"})


@pytest.mark.parametrize("source", ["live", "daily"])
def test_best_first_ties_by_sku_revenue_exact(
    redis_client: redis.Redis, source: keys.Source
) -> None:
    _fill(redis_client, source)
    ranking = read_ranking(redis_client, SPACE, source, DAY, limit=3)
    assert ranking == [
        RankedItem(1, "b", "Bread", 9, Decimal("12.3456")),
        RankedItem(2, "a", "Apple", 5, Decimal("0.0001")),
        RankedItem(3, "c", None, 5, Decimal(0)),
    ]
    assert ranking[0].as_json() == {
        "rank": 1,
        "sku": "b",
        "name": "Bread",
        "units": 9,
        "revenue": "12.3456",
    }


def test_store_scope_and_unknown_day(redis_client: redis.Redis) -> None:
    _fill(redis_client, "live", store="s7")
    assert [i.sku for i in read_ranking(redis_client, SPACE, "live", DAY, 10, "s7")] == list(
        "baced"
    )
    assert read_ranking(redis_client, SPACE, "live", DAY, 10) == []
    assert read_ranking(redis_client, SPACE, "live", date(2026, 3, 30), 10, "s7") == []


def test_limit_must_be_positive(redis_client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        read_ranking(redis_client, SPACE, "live", DAY, 0)
